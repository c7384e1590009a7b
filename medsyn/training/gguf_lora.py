"""A ``medsyn finetune`` LoRA adapter as a GGUF LoRA file, so that llama.cpp serves it (``--backend llamacpp
--adapter DIR``) at llama.cpp's speed instead of transformers'.

llama.cpp reads an adapter file whose header says ``general.type = adapter``, ``adapter.type = lora`` and
``adapter.lora.alpha``, and whose tensors are named after the base model's GGUF tensors plus ``.lora_a`` and
``.lora_b``. For an adapted linear layer W (out x in), ``lora_a`` is PEFT's ``lora_A`` (rank x in) and ``lora_b``
its ``lora_B`` (out x rank); llama.cpp then computes ``W x + alpha / rank * B A x``, as PEFT does. The base's names
come from the gguf package's own table (``blk.N.attn_q`` for ``model.layers.N.self_attn.q_proj``). Architectures
whose converter permutes the attention weights (LLaMA's rotary layout) would need the same permutation on the LoRA
tensors; Gemma 3, the packaged base, has none, and any other architecture is refused rather than converted wrongly.

The conversion is cached beside the base models (:func:`medsyn.training.models.models_dir`), named by the adapter's
hash, and written to a temp file that is renamed in: a killed conversion leaves no half file.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

from medsyn.atomic import file_mode, fsync_dir, fsync_file
from medsyn.errors import InputError
from medsyn.jsonl import read_json_object

ARCHITECTURES = frozenset(["gemma3"])
"""Base architectures whose GGUF keeps the attention weights in the Hugging Face layout (no permutation)."""
_MODULES = {
    "q_proj": "attn_q",
    "k_proj": "attn_k",
    "v_proj": "attn_v",
    "o_proj": "attn_output",
    "gate_proj": "ffn_gate",
    "up_proj": "ffn_up",
    "down_proj": "ffn_down",
}
_PEFT_NAME = re.compile(
    r"^(?:base_model\.model\.)?model\.layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)\.lora_([AB])\.weight$"
)


def gguf_tensor_name(peft_name: str) -> str:
    """The GGUF LoRA tensor name of a PEFT tensor name.

    >>> gguf_tensor_name("base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight")
    'blk.3.attn_q.weight.lora_a'
    >>> gguf_tensor_name("base_model.model.model.layers.0.mlp.down_proj.lora_B.weight")
    'blk.0.ffn_down.weight.lora_b'
    """
    m = _PEFT_NAME.match(peft_name)
    if m is None or m.group(2) not in _MODULES:
        raise InputError(f"cannot convert LoRA tensor {peft_name!r} to GGUF (adapt {', '.join(_MODULES)} only)")
    return f"blk.{m.group(1)}.{_MODULES[m.group(2)]}.weight.lora_{m.group(3).lower()}"


def gguf_architecture(path: str | Path) -> str:
    """``general.architecture`` of a GGUF file."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    field = reader.fields.get("general.architecture")
    if field is None:
        raise InputError("GGUF file has no general.architecture", path=path)
    return bytes(field.parts[field.data[0]]).decode("utf-8")


def write_gguf_lora(adapter_dir: str | Path, out: str | Path, *, arch: str) -> Path:
    """Write the PEFT adapter in ``adapter_dir`` as a GGUF LoRA file at ``out`` (atomically); return ``out``."""
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    if arch not in ARCHITECTURES:
        raise InputError(
            f"converting a LoRA adapter for a {arch} base to GGUF is not supported (only {sorted(ARCHITECTURES)})"
        )
    d = Path(adapter_dir)
    config = read_json_object(d / "adapter_config.json", what="adapter config")
    weights = d / "adapter_model.safetensors"
    if not weights.is_file():
        raise InputError("adapter has no adapter_model.safetensors", path=d)
    try:
        alpha = float(config["lora_alpha"])
    except (KeyError, TypeError, ValueError):
        raise InputError("adapter config has no numeric lora_alpha", path=d / "adapter_config.json") from None
    # llama.cpp scales by alpha / rank: rank-stabilised or weight-decomposed adapters would be applied wrongly.
    for flag in ("use_rslora", "use_dora"):
        if config.get(flag):
            raise InputError(f"adapter uses {flag}, which llama.cpp's LoRA does not apply", path=d)
    tensors: dict[str, Any] = {gguf_tensor_name(k): v for k, v in load_file(str(weights)).items()}
    for name in tensors:
        pair = name[:-1] + ("b" if name.endswith("a") else "a")
        if pair not in tensors:
            raise InputError(f"adapter tensor {name} has no {pair[-6:]} partner", path=weights)
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        writer = gguf.GGUFWriter(tmp, arch=arch)
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
        for name in sorted(tensors):
            writer.add_tensor(name, np.ascontiguousarray(tensors[name], dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.chmod(tmp, file_mode())  # mkstemp made it 0600; a converted adapter is as readable as its folder
        fsync_file(tmp)
        os.replace(tmp, target)
        fsync_dir(target.parent)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def gguf_adapter(adapter_dir: str | Path, base: str, *, digest: str | None = None) -> Path:
    """The GGUF LoRA file of a finished adapter trained on ``base`` (a GGUF base spec), converted once and cached.

    ``digest``: the adapter's :func:`~medsyn.training.models.adapter_hash` when the caller has it already (hashing
    reads every weight file).
    """
    from medsyn.training.models import adapter_hash, check_adapter_base, gguf_path, models_dir

    check_adapter_base(adapter_dir, base)
    base_file = gguf_path(base)
    if base_file is None:
        raise InputError(f"{base}: llama.cpp needs a GGUF base model to apply an adapter to")
    digest = digest or adapter_hash(adapter_dir)
    target = models_dir() / f"lora-{digest.removeprefix('sha256:')[:24]}.gguf"
    if target.is_file() and target.stat().st_size > 0:
        return target
    return write_gguf_lora(adapter_dir, target, arch=gguf_architecture(base_file))
