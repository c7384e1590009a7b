"""Issue 22.3(c): a ``medsyn finetune`` LoRA adapter served by llama.cpp. The adapter is converted to a GGUF LoRA
file that the real engine applies to the packaged Gemma 3 270M: an adapter whose B matrices are zero changes nothing,
a non-zero one changes the note, and the same adapter and seed give the same note."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from medsyn.errors import InputError
from medsyn.generation.backends import ChatRequest, Completion, get_backend
from medsyn.training.gguf_lora import gguf_adapter, gguf_tensor_name, write_gguf_lora
from medsyn.training.models import GEMMA3, MANIFEST_NAME, base_fingerprint, gguf_path

MEDSYN = str(Path(sys.executable).with_name("medsyn"))
PROMPT = "Жалобы: боль в горле, насморк, температура 37,5.\nЖалобы: кашель с мокротой, слабость.\nЖалобы:"
RANK = 4


def _layer_shapes() -> dict[str, tuple[int, int]]:
    """(out, in) of q_proj and v_proj in the packaged base, read from its GGUF (ggml lists dims innermost first)."""
    import gguf

    reader = gguf.GGUFReader(str(gguf_path(GEMMA3)))
    dims = {t.name: [int(x) for x in t.shape] for t in reader.tensors}
    return {
        m: (dims[f"blk.0.{n}.weight"][1], dims[f"blk.0.{n}.weight"][0]) for m, n in (("q", "attn_q"), ("v", "attn_v"))
    }


def _adapter(folder: Path, *, b_scale: float, layers: int = 2, base: str = GEMMA3) -> Path:
    """A PEFT LoRA folder (config, safetensors, medsyn manifest) on q_proj and v_proj of the first ``layers`` layers."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    shapes, tensors = _layer_shapes(), {}
    for i in range(layers):
        for m, (out, inp) in shapes.items():
            key = f"base_model.model.model.layers.{i}.self_attn.{m}_proj"
            tensors[f"{key}.lora_A.weight"] = rng.normal(0, 0.05, (RANK, inp)).astype(np.float32)
            tensors[f"{key}.lora_B.weight"] = (b_scale * rng.normal(0, 1, (out, RANK))).astype(np.float32)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    config = {"peft_type": "LORA", "r": RANK, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]}
    (folder / "adapter_config.json").write_text(json.dumps(config), encoding="utf-8")
    manifest = {"base": base, "base_fingerprint": base_fingerprint(GEMMA3) if base == GEMMA3 else "other"}
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def _note(adapter: Path | None, seed: int = 3) -> Completion:
    backend = get_backend("llamacpp", model=GEMMA3, adapter=adapter)
    req = ChatRequest(key="k", messages=[], prompt=PROMPT, seed=seed, temperature=0.0, max_tokens=24, stop=("\n",))
    try:
        (out,) = asyncio.run(backend.complete([req]))
    finally:
        asyncio.run(backend.aclose())
    assert out.error is None, out.error
    return out


def test_the_gguf_file_holds_the_adapter_as_llama_cpp_names_it(tmp_path: Path) -> None:
    import gguf

    folder = _adapter(tmp_path / "a", b_scale=0.5)
    out = write_gguf_lora(folder, tmp_path / "a.gguf", arch="gemma3")
    reader = gguf.GGUFReader(str(out))

    def text(key: str) -> str:
        f = reader.fields[key]
        return bytes(f.parts[f.data[0]]).decode()

    assert (text("general.type"), text("adapter.type"), text("general.architecture")) == ("adapter", "lora", "gemma3")
    alpha = reader.fields["adapter.lora.alpha"]
    assert float(alpha.parts[alpha.data[0]][0]) == 8.0
    from safetensors.numpy import load_file

    peft = load_file(str(folder / "adapter_model.safetensors"))
    stored = {t.name: np.asarray(t.data).reshape([int(x) for x in reversed(t.shape)]) for t in reader.tensors}
    assert set(stored) == {gguf_tensor_name(k) for k in peft}
    for k, v in peft.items():
        assert np.array_equal(stored[gguf_tensor_name(k)], v), k
    assert not list(tmp_path.glob(".*.tmp"))  # written under a temp name, then renamed in


def test_llama_cpp_applies_the_adapter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDSYN_MODELS", str(gguf_path(GEMMA3).parent))  # the base stays where it was assembled
    base = _note(None)
    neutral = _note(_adapter(tmp_path / "zero", b_scale=0.0))
    strong_dir = _adapter(tmp_path / "strong", b_scale=2.0, layers=6)
    strong, again = _note(strong_dir), _note(strong_dir)
    assert neutral.text == base.text  # B = 0: the adapter adds nothing, so llama.cpp's note is the base's
    assert strong.text != base.text  # a real adapter changes what the engine writes
    assert again.text == strong.text  # and the same adapter and seed write the same note
    # Converted once, then reused (named by the adapter's hash).
    converted = gguf_adapter(strong_dir, GEMMA3)
    stamp = converted.stat().st_mtime_ns
    assert gguf_adapter(strong_dir, GEMMA3) == converted and converted.stat().st_mtime_ns == stamp
    llama = get_backend("llamacpp", model=GEMMA3, adapter=strong_dir)
    assert llama.adapter_hash and llama.describe()["adapter_hash"] == llama.adapter_hash  # type: ignore[attr-defined]


def test_adapters_llama_cpp_cannot_apply_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a LoRA adapter"):
        get_backend("llamacpp", model=GEMMA3, adapter=tmp_path)
    other = _adapter(tmp_path / "other", b_scale=1.0, base="/elsewhere/model")
    with pytest.raises(InputError, match="was trained for base"):
        get_backend("llamacpp", model=GEMMA3, adapter=other)
    with pytest.raises(InputError, match="cannot convert LoRA tensor"):
        gguf_tensor_name("base_model.model.model.embed_tokens.lora_embedding_A")
    dora = _adapter(tmp_path / "dora", b_scale=1.0)
    config = json.loads((dora / "adapter_config.json").read_text())
    (dora / "adapter_config.json").write_text(json.dumps({**config, "use_dora": True}))
    with pytest.raises(InputError, match="use_dora"):
        write_gguf_lora(dora, tmp_path / "d.gguf", arch="gemma3")
    with pytest.raises(InputError, match="not supported"):
        write_gguf_lora(_adapter(tmp_path / "llama", b_scale=1.0), tmp_path / "x.gguf", arch="llama")
    done = subprocess.run(
        [MEDSYN, "generate", "--n", "1", "--backend", "llamacpp", "--adapter", str(tmp_path / "missing"),
         "--out", str(tmp_path / "o")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "adapter" in done.stderr
