"""medsyn.training.finetune (TRL SFTTrainer + PEFT): answer-only loss, training, checkpoints, resume after stop and
after kill -9 (bit-identical), accelerate launch with two CPU processes, manifest, merge, errors (tiny LLaMA +
SmolLM2)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medsyn.errors import InputError
from medsyn.testing.commands import MEDSYN
from medsyn.testing.tiny_llama import make_tiny_llama
from medsyn.training.finetune import (
    IGNORE_INDEX,
    TrainConfig,
    collate,
    encode_record,
    evaluate_loss,
    finetune,
    latest_checkpoint,
    merge,
)
from medsyn.training.instructions import (
    BuildOptions,
    build_instructions,
    build_prompt,
    read_notes,
    symptoms_from_json,
    write_dataset,
)
from medsyn.training.models import MANIFEST_NAME, adapter_hash, load_base, load_causal_lm

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


def _identical(a: Path, b: Path) -> bool:
    import torch

    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory, tiny: Path, data: Path) -> Path:
    """The uninterrupted 6-step run every resumed run is compared with."""
    out = tmp_path_factory.mktemp("full") / "adapter"
    finetune(str(tiny), data, out, config=CFG, progress=False)
    return out


def _cli_args(tiny: Path, data: Path, out: Path) -> list[str]:
    """The CLI form of CFG (save_every is not part of a run's identity: checkpoint every step here)."""
    return [
        "finetune", "--base", str(tiny), "--data", str(data), "--out", str(out), "--r", "8", "--alpha", "16",
        "--lr", "3e-3", "--batch-size", "8", "--micro-batch-size", "4", "--max-len", "96", "--max-steps", "6",
        "--warmup-ratio", "0.2", "--save-every", "1", "--no-progress",
    ]  # fmt: skip


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


def test_train_save_reload_resume_generate(tmp_path: Path, tiny: Path, data: Path, full: Path) -> None:
    import torch

    full_dir = full
    full = json.loads((full_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert full["complete"] and full["trainer"] == {"engine": "trl.SFTTrainer", "processes": 1}
    assert full["complete"] and full["metrics"]["steps"] == 6 and len(full["metrics"]["history"]) == 6
    m = full["metrics"]
    assert m["eval_loss"] < m["eval_loss_base"]
    assert full["base_fingerprint"] and full["data"]["sha256"].startswith("sha256:")
    assert full["hyperparameters"]["r"] == 8 and full["hyperparameters"]["total_steps"] == 6
    assert full["adapter_hash"] == adapter_hash(full_dir)
    assert m["tokens_trained"] > 0 and full["hyperparameters"]["gradient_accumulation_steps"] == 2

    # the step-0 evaluation is the base model's own held-out loss (LoRA starts as a no-op)
    from medsyn.training.finetune import _split, encode_records
    from medsyn.training.instructions import read_dataset

    base_model, tok = load_base(str(tiny))
    held = encode_records(tok, _split(read_dataset(data), CFG)[1], CFG.max_len)[0]
    assert evaluate_loss(base_model, held, pad_id=tok.pad_token_id, micro=4) == pytest.approx(m["eval_loss_base"])

    # interrupted after 3 steps, then resumed: same adapter as the uninterrupted run
    part = finetune(str(tiny), data, tmp_path / "resumed", config=CFG, progress=False, stop_after=3)
    assert part == {"complete": False, "step": 3, "total_steps": 6, "run": full["run"]}
    assert latest_checkpoint(tmp_path / "resumed").name == "checkpoint-3"
    assert not (tmp_path / "resumed" / MANIFEST_NAME).exists()
    with pytest.raises(InputError, match=r"incomplete adapter"):
        load_causal_lm(str(tiny), adapter=tmp_path / "resumed")
    resumed = finetune(str(tiny), data, tmp_path / "resumed", config=CFG, progress=False)
    assert resumed["metrics"]["history"] == full["metrics"]["history"]
    assert _identical(full_dir, tmp_path / "resumed")  # bit-identical on CPU
    # a complete adapter is not retrained; another setting in the same --out is refused
    assert finetune(str(tiny), data, tmp_path / "resumed", config=CFG, progress=False) == resumed
    other = TrainConfig(**{**CFG.__dict__, "lr": 1e-3})
    with pytest.raises(InputError, match=r"holds an adapter of a different run"):
        finetune(str(tiny), data, tmp_path / "resumed", config=other, progress=False)
    finetune(str(tiny), data, tmp_path / "other", config=other, progress=False, stop_after=1)
    with pytest.raises(InputError, match=r"checkpoints of a different run \(lr differ\)"):
        finetune(str(tiny), data, tmp_path / "other", config=CFG, progress=False)

    # reload the adapter and generate; merge gives the same logits
    model, tok = load_causal_lm(str(tiny), adapter=full_dir)
    enc = tok([build_prompt("Продолжи медицинскую запись.", "Жалобы на")], return_tensors="pt")
    out = model.generate(**enc, max_new_tokens=5, do_sample=False)
    assert out.shape[1] == enc.input_ids.shape[1] + 5
    merged_dir = merge(full_dir, tmp_path / "merged")
    merged, _ = load_causal_lm(str(merged_dir))
    with torch.no_grad():
        assert torch.allclose(model(**enc).logits, merged(**enc).logits, atol=1e-4)
        assert not torch.allclose(base_model(**enc).logits, merged(**enc).logits, atol=1e-4)
    with pytest.raises(InputError, match=r"already exists"):
        merge(full_dir, merged_dir)


def test_kill_9_mid_run_then_the_same_command_ends_with_the_same_adapter(
    tmp_path: Path, tiny: Path, data: Path, full: Path
) -> None:
    out = tmp_path / "killed"
    args = _cli_args(tiny, data, out)
    proc = subprocess.Popen([*MEDSYN, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not (out / "checkpoints" / "checkpoint-2" / "medsyn_state.json").exists():
            assert proc.poll() is None, "training ended before it could be killed"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL and not (out / MANIFEST_NAME).exists()
    step = int(latest_checkpoint(out).name.split("-")[1])  # type: ignore[union-attr]
    assert 2 <= step < 6
    done = subprocess.run([*MEDSYN, *args], capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "held-out loss" in done.stdout and "{'loss'" not in done.stdout
    assert _identical(full, out)
    resumed = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
    want = json.loads((full / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert resumed["metrics"]["history"] == want["metrics"]["history"] and resumed["run"] == want["run"]


def test_accelerate_launch_trains_the_same_adapter(tmp_path: Path, tiny: Path, data: Path, full: Path) -> None:
    """`--accelerate-config` reruns the command under `accelerate launch --config_file` (here one CPU process: a
    multi-process CPU launch needs MPI); the adapter is bit-identical to the plain run's."""
    config = tmp_path / "cpu.yaml"
    config.write_text(
        "compute_environment: LOCAL_MACHINE\ndistributed_type: 'NO'\nnum_processes: 1\nnum_machines: 1\n"
        "machine_rank: 0\nmixed_precision: 'no'\nuse_cpu: true\n",
        encoding="utf-8",
    )
    out = tmp_path / "launched"
    args = _cli_args(tiny, data, out)
    done = subprocess.run(
        [*MEDSYN, *args, "--accelerate-config", str(config)], capture_output=True, text=True, check=False, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    m = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert m["trainer"] == {"engine": "trl.SFTTrainer", "processes": 1, "accelerate_config": str(config)}
    assert _identical(full, out) and done.stdout.count("held-out loss") == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("num_processes: 2\n", encoding="utf-8")
    r = subprocess.run([*MEDSYN, *args, "--accelerate-config", str(bad)], capture_output=True, text=True, check=False)
    assert r.returncode == 2 and f"{bad}: not an accelerate config" in r.stderr and "Traceback" not in r.stderr


def test_two_process_ddp_on_cpu(tmp_path: Path, tiny: Path, data: Path) -> None:
    """Two real processes (torchrun, gloo on CPU): 4 records per forward x 2 processes = 8 per step, no
    accumulation; only the main process writes the adapter and reports."""
    out = tmp_path / "ddp"
    args = _cli_args(tiny, data, out)
    del args[args.index("--r") : args.index("--r") + 2]  # torchrun's own parser would take --r for --rdzv-*
    args[args.index("--max-steps") + 1] = "3"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port())]
    done = subprocess.run([*cmd, "-m", "medsyn", *args], capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    m = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert m["trainer"] == {"engine": "trl.SFTTrainer", "processes": 2} and m["metrics"]["steps"] == 3
    assert m["hyperparameters"]["gradient_accumulation_steps"] == 1 and m["hyperparameters"]["r"] == 16
    assert m["adapter_hash"] == adapter_hash(out) and done.stdout.count("held-out loss") == 1
    assert m["metrics"]["eval_loss"] < m["metrics"]["eval_loss_base"]

    # --restart: rank 0 clears --out while the other rank waits at the barrier. Rank 0 is held at its fault point
    # before clearing: rank 1 could otherwise read the finished manifest, return "done" and leave rank 0 training
    # alone (stuck in DDP); with the barrier both train again.
    flag = tmp_path / "flag"
    env = {**os.environ, "MEDSYN_PAUSE_AT": "finetune.restart", "MEDSYN_PAUSE_FILE": str(flag)}
    cmd[-1] = str(_free_port())
    proc = subprocess.Popen([*cmd, "-m", "medsyn", *args, "--restart"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 300
    while not flag.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "rank 0 never reached finetune.restart"
        time.sleep(0.02)
    assert (out / MANIFEST_NAME).is_file()  # not cleared yet: rank 0 holds it
    (out / "checkpoints" / "from-the-first-run").write_text("x", encoding="utf-8")
    flag.unlink()
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    again = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert not (out / "checkpoints" / "from-the-first-run").exists()  # cleared, then trained again by both ranks
    assert again["metrics"]["steps"] == 3 and again["adapter_hash"] == adapter_hash(out)
    assert stdout.count("held-out loss") == 1


def _free_port() -> int:
    from medsyn.testing.servers import free_port

    return free_port()


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
        # this machine has no CUDA GPU: asking for bitsandbytes loading is one clear line
        (["finetune", "--base", str(tiny), "--data", str(data), "--quantize", "4bit"], "--quantize 4bit: needs a CUDA"),
        (["finetune", "--base", str(tiny), "--data", str(data), "--quantize", "2bit"], "quantize: expected one of"),
    ]
    for args, message in cases:
        cmd = [*MEDSYN, *args, "--out", str(tmp_path / "out")]
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


def test_a_second_finetune_into_one_out_is_refused(tmp_path: Path, tiny: Path, data: Path) -> None:
    """Two `finetune` into one --out both succeeded and the first adapter was lost: the folder is locked."""
    out, flag = tmp_path / "adapter", tmp_path / "flag"
    env = {**os.environ, "MEDSYN_PAUSE_AT": "finetune.restart", "MEDSYN_PAUSE_FILE": str(flag)}
    first = subprocess.Popen([*MEDSYN, *_cli_args(tiny, data, out), "--restart"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not flag.exists():
            assert first.poll() is None and time.monotonic() < deadline, "never reached finetune.restart"
            time.sleep(0.02)
        second = subprocess.run([*MEDSYN, *_cli_args(tiny, data, out)], capture_output=True, text=True, timeout=300)
        assert second.returncode == 2 and "Traceback" not in second.stderr, second.stderr[-2000:]
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and f"error: adapter folder {out} is locked by process {first.pid}" in lines[0]
    finally:
        first.kill()
        first.wait(timeout=60)


def test_kill_9_before_the_merged_folder_is_renamed_in(tmp_path: Path, full: Path) -> None:
    """A kill inside the folder write leaves no half folder under --out, and the rerun removes the work folder."""
    out, flag = tmp_path / "merged", tmp_path / "flag"
    env = {**os.environ, "MEDSYN_PAUSE_AT": "swap.filled", "MEDSYN_PAUSE_FILE": str(flag)}
    proc = subprocess.Popen([*MEDSYN, "merge", str(full), "--out", str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 300
    while not flag.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "merge never reached swap.filled"
        time.sleep(0.02)
    proc.kill()
    proc.wait(timeout=60)
    work = [p.name for p in tmp_path.iterdir() if p.name.startswith(".merged.")]
    assert not out.exists() and len(work) == 1 and work[0].startswith(".merged.building-")
    again = subprocess.run(
        [*MEDSYN, "merge", str(full), "--out", str(out)], capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"recovered output folder {out}: removed {work[0]}" in again.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".merged.")] == []
    assert (out / "config.json").is_file() and (out / "medsyn_merged.json").is_file()
