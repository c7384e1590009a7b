"""medsyn.finetune: answer-only loss, training, checkpoints, resume, manifest, merge, errors (tiny LLaMA + SmolLM2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from medsyn.errors import InputError
from medsyn.finetune import (
    IGNORE_INDEX,
    TrainConfig,
    collate,
    encode_record,
    evaluate_loss,
    finetune,
    latest_checkpoint,
    merge,
)
from medsyn.instructions import (
    BuildOptions,
    build_instructions,
    build_prompt,
    read_notes,
    symptoms_from_json,
    write_dataset,
)
from medsyn.models import MANIFEST_NAME, adapter_hash, load_base, load_causal_lm, make_tiny_llama

CFG = TrainConfig(
    r=8, alpha=16, lr=3e-3, batch_size=8, micro_batch_size=4, max_len=96, max_steps=6, save_every=2, warmup_ratio=0.2
)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """A small real instruction dataset: 60 RuMedTop3 train notes, a fifth of them held out."""
    notes = read_notes(shared_data / "rumedbench/RuMedTop3/train_v1.jsonl")[:60]
    symptoms = symptoms_from_json(shared_data / "medsyn/mkg/rumedtop3_wikimed_symptoms_equipped_with_rumedprime.json")
    records, _ = build_instructions(notes, symptoms, options=BuildOptions(seed=0, eval_fraction=0.2))
    path = tmp_path_factory.mktemp("data") / "ift.jsonl"
    write_dataset(records, path, {"records": len(records)} | _card_stub())
    return path


def _card_stub() -> dict[str, object]:
    return {"codes": 0, "with_example": 0, "by_task_split": {}, "length_unit": "words", "lengths": {}}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, data: Path) -> Path:
    texts = [json.loads(line)["output"] for line in data.read_text(encoding="utf-8").splitlines()]
    return make_tiny_llama(tmp_path_factory.mktemp("base") / "tiny", vocab_texts=texts, seed=0)


def _weights(adapter: Path) -> dict[str, object]:
    from safetensors.torch import load_file

    return load_file(str(adapter / "adapter_model.safetensors"))


def test_answer_only_loss_mask(tiny: Path) -> None:
    _, tok = load_base(str(tiny))
    prompt = build_prompt("Продолжи медицинскую запись.", "Жалобы на боль")
    ids, labels = encode_record(tok, prompt, "в пояснице.", max_len=512)
    prompt_ids = tok(prompt)["input_ids"]
    answer_ids = tok("в пояснице.", add_special_tokens=False)["input_ids"]
    assert ids == prompt_ids + answer_ids + [tok.eos_token_id]
    assert labels == [IGNORE_INDEX] * len(prompt_ids) + answer_ids + [tok.eos_token_id]
    assert tok.decode([t for t in labels if t != IGNORE_INDEX], skip_special_tokens=True) == "в пояснице."
    # cut at max_len; nothing left of the answer -> dropped
    assert encode_record(tok, prompt, "в пояснице.", max_len=len(prompt_ids) + 1)[1][-1] == answer_ids[0]
    assert encode_record(tok, prompt, "в пояснице.", max_len=len(prompt_ids)) is None

    batch = collate([(ids, labels), ([5, 6], [IGNORE_INDEX, 6])], pad_id=tok.pad_token_id)
    assert batch["input_ids"][1].tolist() == [5, 6] + [tok.pad_token_id] * (len(ids) - 2)
    assert batch["labels"][1].tolist() == [IGNORE_INDEX, 6] + [IGNORE_INDEX] * (len(ids) - 2)
    assert batch["attention_mask"].sum().item() == len(ids) + 2


def test_train_save_reload_resume_generate(tmp_path: Path, tiny: Path, data: Path) -> None:
    import torch

    full = finetune(str(tiny), data, tmp_path / "full", config=CFG, progress=False)
    assert full["complete"] and full["metrics"]["steps"] == 6 and len(full["metrics"]["history"]) == 6
    m = full["metrics"]
    assert m["eval_loss"] < m["eval_loss_base"]
    assert full["base_fingerprint"] and full["data"]["sha256"].startswith("sha256:")
    assert full["hyperparameters"]["r"] == 8 and full["hyperparameters"]["total_steps"] == 6
    assert full["adapter_hash"] == adapter_hash(tmp_path / "full")
    assert json.loads((tmp_path / "full" / MANIFEST_NAME).read_text()) == full

    # the step-0 evaluation is the base model's own held-out loss (LoRA starts as a no-op)
    from medsyn.finetune import _split, encode_records
    from medsyn.instructions import read_dataset

    base_model, tok = load_base(str(tiny))
    held = encode_records(tok, _split(read_dataset(data), CFG)[1], CFG.max_len)[0]
    assert evaluate_loss(base_model, held, pad_id=tok.pad_token_id, micro=4) == pytest.approx(m["eval_loss_base"])

    # interrupted after 3 steps, then resumed: same adapter as the uninterrupted run
    part = finetune(str(tiny), data, tmp_path / "resumed", config=CFG, progress=False, stop_after=3)
    assert part == {"complete": False, "step": 3, "total_steps": 6, "run": full["run"]}
    assert latest_checkpoint(tmp_path / "resumed").name == "step-000003"
    assert not (tmp_path / "resumed" / MANIFEST_NAME).exists()
    with pytest.raises(InputError, match=r"incomplete adapter"):
        load_causal_lm(str(tiny), adapter=tmp_path / "resumed")
    resumed = finetune(str(tiny), data, tmp_path / "resumed", config=CFG, progress=False)
    assert resumed["metrics"]["history"] == full["metrics"]["history"]
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "resumed")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    # a complete adapter is not retrained; another setting in the same --out is refused
    assert finetune(str(tiny), data, tmp_path / "resumed", config=CFG, progress=False) == resumed
    other = TrainConfig(**{**CFG.__dict__, "lr": 1e-3})
    with pytest.raises(InputError, match=r"holds an adapter of a different run"):
        finetune(str(tiny), data, tmp_path / "resumed", config=other, progress=False)
    finetune(str(tiny), data, tmp_path / "other", config=other, progress=False, stop_after=1)
    with pytest.raises(InputError, match=r"checkpoints of a different run \(lr differ\)"):
        finetune(str(tiny), data, tmp_path / "other", config=CFG, progress=False)

    # reload the adapter and generate; merge gives the same logits
    model, tok = load_causal_lm(str(tiny), adapter=tmp_path / "full")
    enc = tok([build_prompt("Продолжи медицинскую запись.", "Жалобы на")], return_tensors="pt")
    out = model.generate(**enc, max_new_tokens=5, do_sample=False)
    assert out.shape[1] == enc.input_ids.shape[1] + 5
    merged_dir = merge(tmp_path / "full", tmp_path / "merged")
    merged, _ = load_causal_lm(str(merged_dir))
    with torch.no_grad():
        assert torch.allclose(model(**enc).logits, merged(**enc).logits, atol=1e-4)
        assert not torch.allclose(base_model(**enc).logits, merged(**enc).logits, atol=1e-4)
    with pytest.raises(InputError, match=r"already exists"):
        merge(tmp_path / "full", merged_dir)


def test_bad_settings(tmp_path: Path, tiny: Path, data: Path) -> None:
    with pytest.raises(InputError, match=r"batch_size: 10 is not a multiple of micro_batch_size"):
        TrainConfig(batch_size=10, micro_batch_size=4)
    with pytest.raises(InputError, match=r"target_modules: "):
        finetune(str(tiny), data, tmp_path / "x", config=TrainConfig(target_modules=("nope",)), progress=False)
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / MANIFEST_NAME).write_text("{broken", encoding="utf-8")
    with pytest.raises(InputError, match=r"medsyn_adapter\.json: unreadable .*--restart"):
        finetune(str(tiny), data, damaged, config=TrainConfig(max_steps=1), progress=False)


def test_cli_errors_are_one_line(tmp_path: Path, tiny: Path, data: Path) -> None:
    bad = tmp_path / "ift.jsonl"
    bad.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "a"}\n', encoding="utf-8")
    not_lm = tmp_path / "enc"
    not_lm.mkdir()
    (not_lm / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    cases = [
        (["finetune", "--base", str(tiny), "--data", str(bad)], f"{bad}:2: field 'output': missing or empty"),
        (["finetune", "--base", str(not_lm), "--data", str(bad)], "not a causal LM (config.json has model_type=bert)"),
        (["finetune", "--base", str(tiny), "--data", str(data), "--device", "gpu"], "unknown device 'gpu'"),
    ]
    for args, message in cases:
        cmd = [sys.executable, "-m", "medsyn", *args, "--out", str(tmp_path / "out")]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        assert done.returncode == 2 and message in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def smollm2_adapter(tmp_path_factory: pytest.TempPathFactory, data: Path) -> Path:
    """One LoRA step on the real default base (a GGUF file); no warm-up (it would make that step's rate 0) and a
    large rate, so the adapter visibly changes the model."""
    out = tmp_path_factory.mktemp("smollm2") / "adapter"
    cfg = TrainConfig(
        lr=2e-2, warmup_ratio=0.0, batch_size=2, micro_batch_size=2, max_len=192, max_steps=1, max_train=4, max_eval=2
    )
    finetune("smollm2", data, out, config=cfg, progress=False)
    return out


def test_smollm2_one_step(smollm2_adapter: Path) -> None:
    """The real default base: its tokenizer masks the prompt, one LoRA step runs, the adapter reloads."""
    manifest = json.loads((smollm2_adapter / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert manifest["base"] == "smollm2" and manifest["base_model_type"] == "llama"
    assert manifest["metrics"]["eval_loss_base"] > 0 and manifest["metrics"]["steps"] == 1
    model, tok = load_causal_lm("smollm2", adapter=smollm2_adapter)
    _, labels = encode_record(tok, build_prompt("Продолжи запись.", "Жалобы на"), "кашель.", max_len=192)
    assert labels[-1] == tok.eos_token_id and labels.count(IGNORE_INDEX) == len(
        tok(build_prompt("Продолжи запись.", "Жалобы на"))["input_ids"]
    )
    enc = tok([build_prompt("Продолжи запись.", "Жалобы на")], return_tensors="pt")
    assert model.generate(**enc, max_new_tokens=3, do_sample=False).shape[1] == enc.input_ids.shape[1] + 3


def test_merge_works_on_the_gguf_default_base(smollm2_adapter: Path, tmp_path: Path) -> None:
    """`medsyn merge` of a smollm2 (GGUF) adapter: the base loads dequantised, the merged model saves and gives the
    adapter's logits."""
    import torch

    merged_dir = tmp_path / "merged"
    medsyn = Path(sys.executable).parent / "medsyn"
    done = subprocess.run(
        [str(medsyn), "merge", str(smollm2_adapter), "--out", str(merged_dir)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    config = json.loads((merged_dir / "config.json").read_text(encoding="utf-8"))
    assert "quantization_config" not in config and config["model_type"] == "llama"
    with_adapter, tok = load_causal_lm("smollm2", adapter=smollm2_adapter, device="cpu")
    merged, _ = load_causal_lm(str(merged_dir), device="cpu")
    base, _ = load_base("smollm2", device="cpu")
    enc = tok([build_prompt("Продолжи запись.", "Жалобы на")], return_tensors="pt")
    with torch.no_grad():
        want, got = with_adapter(**enc).logits, merged(**enc).logits
        assert torch.allclose(want, got, atol=1e-3)
        assert (base(**enc).logits - got).abs().max() > 0.05
