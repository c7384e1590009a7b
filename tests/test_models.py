"""medsyn.training.models: base resolution, loading, the tiny test LLaMA, adapter identity and base checks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from medsyn.errors import InputError
from medsyn.testing.tiny_llama import make_tiny_llama
from medsyn.training.models import (
    MANIFEST_NAME,
    SMOLLM2_GGUF,
    adapter_hash,
    base_fingerprint,
    base_name,
    check_adapter_base,
    load_causal_lm,
    pick_device,
    resolve_base,
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_llama(tmp_path_factory.mktemp("m") / "tiny", seed=0)


def _make_adapter(base: Path, out: Path, *, seed: int = 0) -> Path:
    """A real (untrained) PEFT LoRA adapter of ``base`` with a manifest, as medsyn.training.finetune writes it."""
    import torch
    from peft import LoraConfig, get_peft_model

    from medsyn.training.models import load_base

    model, _ = load_base(str(base))
    torch.manual_seed(seed)
    peft_model = get_peft_model(
        model, LoraConfig(r=4, lora_alpha=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    )
    peft_model.save_pretrained(str(out))
    manifest = {"base": base_name(str(base)), "base_fingerprint": base_fingerprint(str(base))}
    (out / MANIFEST_NAME).write_text(json.dumps(manifest), encoding="utf-8")
    return out


def test_tiny_llama_loads_and_generates(tiny: Path) -> None:
    assert resolve_base(str(tiny)) == (tiny.resolve(), None)
    model, tok = load_causal_lm(str(tiny))
    assert not model.training
    assert tok.padding_side == "left" and tok.pad_token == "<pad>"
    enc = tok(["Жалобы на боль", "кашель"], return_tensors="pt", padding=True)
    out = model.generate(**enc, max_new_tokens=4, do_sample=False)
    assert out.shape == (2, enc.input_ids.shape[1] + 4)
    assert load_causal_lm(str(tiny))[0] is model  # cached per (spec, adapter)
    text = tok.apply_chat_template([{"role": "user", "content": "привет"}], tokenize=False, add_generation_prompt=True)
    assert "привет" in text


def test_tiny_llama_is_seeded(tmp_path: Path, tiny: Path) -> None:
    again = make_tiny_llama(tmp_path / "again", seed=0)
    other = make_tiny_llama(tmp_path / "other", seed=1)
    assert base_fingerprint(str(again)) == base_fingerprint(str(tiny))
    assert base_fingerprint(str(other)) != base_fingerprint(str(tiny))


def test_resolve_smollm2() -> None:
    directory, gguf = resolve_base("smollm2")
    assert gguf == SMOLLM2_GGUF and (directory / gguf).is_file()
    assert resolve_base(str(directory / gguf)) == (directory, gguf)


def test_not_a_causal_lm(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    with pytest.raises(InputError, match=r"not a causal LM \(config.json has model_type=bert\)"):
        resolve_base(str(tmp_path))
    with pytest.raises(InputError, match=r"no config\.json"):
        resolve_base(str(tmp_path / ".."))
    with pytest.raises(InputError, match=r"base model not found"):
        resolve_base(str(tmp_path / "absent"))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(InputError, match=r"config.json: invalid JSON"):
        resolve_base(str(tmp_path))


def test_adapter_hash_and_base_check(tmp_path: Path, tiny: Path) -> None:
    adapter = _make_adapter(tiny, tmp_path / "adapter")
    h = adapter_hash(adapter)
    assert h.startswith("sha256:") and len(h) == 7 + 64
    copy = tmp_path / "copy"
    shutil.copytree(adapter, copy)
    (copy / MANIFEST_NAME).write_text(json.dumps({"base": "x", "note": "manifest is not hashed"}))
    assert adapter_hash(copy) == h
    assert check_adapter_base(adapter, str(tiny))["base"] == str(tiny.resolve())

    model, _ = load_causal_lm(str(tiny), adapter=adapter)
    assert type(model).__name__ == "PeftModelForCausalLM" and not model.training

    other = make_tiny_llama(tmp_path / "other", seed=7)
    with pytest.raises(InputError, match=rf"adapter {adapter} was trained for base {tiny.resolve()}, not {other}"):
        load_causal_lm(str(other), adapter=adapter)

    (adapter / MANIFEST_NAME).unlink()
    with pytest.raises(InputError, match=r"incomplete adapter"):
        load_causal_lm(str(tiny), adapter=adapter)


def _with_config(src: Path, out: Path, edit) -> Path:  # type: ignore[no-untyped-def]
    shutil.copytree(src, out)
    config = json.loads((out / "adapter_config.json").read_text(encoding="utf-8"))
    edit(config)
    # Other key order and layout too: only the content may count.
    text = json.dumps(dict(reversed(list(config.items()))), indent=4)
    (out / "adapter_config.json").write_text(text, encoding="utf-8")
    return out


def test_adapter_hash_ignores_set_order_and_layout_of_the_config(tmp_path: Path, tiny: Path) -> None:
    adapter = _make_adapter(tiny, tmp_path / "adapter")
    h = adapter_hash(adapter)

    def reorder(c: dict) -> None:  # type: ignore[type-arg]
        c["target_modules"] = sorted(c["target_modules"], reverse=True)

    def reorder_back(c: dict) -> None:  # type: ignore[type-arg]
        c["target_modules"] = sorted(c["target_modules"])

    a = _with_config(adapter, tmp_path / "a", reorder)
    b = _with_config(adapter, tmp_path / "b", reorder_back)
    assert (a / "adapter_config.json").read_bytes() != (b / "adapter_config.json").read_bytes()
    assert adapter_hash(a) == adapter_hash(b) == h

    other_rank = _with_config(adapter, tmp_path / "r", lambda c: c.update(r=8))
    other_targets = _with_config(adapter, tmp_path / "t", lambda c: c.update(target_modules=["q_proj"]))
    assert len({h, adapter_hash(other_rank), adapter_hash(other_targets)}) == 3
    # A list whose order matters stays in order.
    c1 = _with_config(adapter, tmp_path / "m1", lambda c: c.update(modules_to_save=["lm_head", "embed_tokens"]))
    c2 = _with_config(adapter, tmp_path / "m2", lambda c: c.update(modules_to_save=["embed_tokens", "lm_head"]))
    assert adapter_hash(c1) != adapter_hash(c2)

    (a / "adapter_config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match=r"adapter_config.json: not valid JSON"):
        adapter_hash(a)


_SAVE_IN_A_FRESH_PROCESS = """
import sys, torch
from peft import LoraConfig, get_peft_model
from medsyn.training.models import load_base
model, _ = load_base(sys.argv[1])
torch.manual_seed(0)
config = LoraConfig(r=4, lora_alpha=4, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], task_type="CAUSAL_LM")
get_peft_model(model, config).save_pretrained(sys.argv[2])
"""


def test_adapter_hash_is_the_same_for_identical_adapters_saved_by_different_processes(
    tmp_path: Path, tiny: Path
) -> None:
    """PEFT writes target_modules in each process's (salted) set order: the bytes differ, the hash must not."""
    import os
    import subprocess
    import sys

    dirs = []
    for seed in ("1", "2", "3", "4"):
        out = tmp_path / f"p{seed}"
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run([sys.executable, "-c", _SAVE_IN_A_FRESH_PROCESS, str(tiny), str(out)], env=env, check=True)
        dirs.append(out)
    configs = {(d / "adapter_config.json").read_bytes() for d in dirs}
    weights = {(d / "adapter_model.safetensors").read_bytes() for d in dirs}
    assert len(configs) > 1 and len(weights) == 1
    assert len({adapter_hash(d) for d in dirs}) == 1


def test_smollm2_gguf_load_prints_no_progress_bar(capfd: pytest.CaptureFixture[str]) -> None:
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    from medsyn.training.models import load_base

    bare = gguf_utils.tqdm
    model, tok = load_base("smollm2", device="cpu")
    assert model.config.model_type == "llama" and tok.pad_token is not None
    assert "de-quantizing" not in capfd.readouterr().err
    assert gguf_utils.tqdm is bare  # the loader's own tqdm is put back afterwards


def test_pick_device_rejects_unknown_or_absent_devices() -> None:
    import torch

    assert pick_device("cpu") == "cpu"
    assert pick_device() == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(InputError, match=r"unknown device 'gpu'"):
        pick_device("gpu")
    with pytest.raises(InputError, match=r"--device cuda:99: no such CUDA GPU"):
        pick_device("cuda:99")


def test_loading_a_model_through_the_package_starts_no_hub_telemetry() -> None:
    """huggingface_hub reads HF_HUB_DISABLE_TELEMETRY once at import; the package sets it before any transformers
    import of its own, and leaves a user's explicit choice alone."""
    code = (
        "import medsyn.training.models, transformers, huggingface_hub.constants as c; print(c.HF_HUB_DISABLE_TELEMETRY)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_HUB_DISABLE_TELEMETRY")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
    env["HF_HUB_DISABLE_TELEMETRY"] = "0"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
