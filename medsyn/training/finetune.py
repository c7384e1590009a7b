"""LoRA fine-tuning of a local LLaMA-architecture model on an instruction dataset, with TRL's ``SFTTrainer`` + PEFT.

The trainer is TRL's (on transformers' ``Trainer`` and ``accelerate``), so one command runs on a CPU, one GPU, or
several GPUs/machines (DDP, FSDP, DeepSpeed ZeRO from an ``accelerate`` config: ``medsyn finetune
--accelerate-config FILE`` re-launches itself under ``accelerate launch``). What MedSyn adds around it:

* the records are tokenised here (:func:`encode_record`): prompt tokens get label ``-100``, so the loss covers the
  answer of the "### Задание / ### Вход / ### Ответ" format only (and its eos), tokenised exactly as at generation
  time; the trainer gets ``input_ids`` + ``labels`` and keeps them as they are;
* ``batch_size`` records per optimiser step = ``micro_batch_size`` per forward x processes x accumulation; the loss of
  a step is the mean over all its answer tokens (transformers' ``num_items_in_batch``);
* the held-out part of the dataset (``split == "eval"``) gives the exact mean answer-token loss
  (:func:`evaluate_loss`) before training (= the base model: LoRA starts as a no-op), every ``eval_every`` steps
  and at the end;
* a checkpoint counts only once its ``medsyn_state.json`` is written (files fsynced first), so a kill -9 while the
  trainer writes one leaves the previous one as the newest; a rerun resumes from it with the trainer's own
  optimizer, scheduler, data-order and RNG states, and ends with the same adapter (bit-identical on CPU);
* optional 4-bit / 8-bit loading of the base (bitsandbytes, QLoRA) on a CUDA device;
* the manifest (``medsyn_adapter.json``: base fingerprint, data hash, hyper-parameters, metrics, adapter hash) is
  written last, atomically, by the main process.

Layout of ``out``::

    out/checkpoints/checkpoint-10/   the trainer's checkpoint + medsyn_state.json (its completion mark)
    out/adapter_config.json, adapter_model.safetensors, medsyn_adapter.json   (the final adapter; manifest last)
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from medsyn.atomic import atomic_dir, atomic_write_text, check_output, fsync_dir
from medsyn.errors import InputError
from medsyn.faults import pause_point
from medsyn.locks import hold, lock_beside
from medsyn.training.instructions import InstructionRecord, file_sha256, read_dataset
from medsyn.training.models import (
    MANIFEST_NAME,
    adapter_hash,
    base_fingerprint,
    base_name,
    check_adapter_base,
    load_base,
    pick_device,
)

IGNORE_INDEX = -100
MANIFEST_FORMAT = "medsyn-adapter/1"
STATE_NAME = "medsyn_state.json"
"""Written last into a trainer checkpoint: the checkpoint is complete, and of which run."""
QUANTIZE = ("4bit", "8bit")
_PUBLISHING = ".adapter."
"""Prefix of the temp folder inside ``out`` the final adapter is saved into before its files are moved in."""
ACCELERATE_CONFIG_ENV = "MEDSYN_ACCELERATE_CONFIG"
"""Set by ``medsyn finetune --accelerate-config FILE`` in the processes it launches (recorded in the manifest)."""


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters; the defaults are the paper's (LLaMA-2, LoRA r=16, alpha=16, lr 2e-5, batch 256, 2048)."""

    r: int = 16
    alpha: int = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    lr: float = 2e-5
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    batch_size: int = 256
    """Records per optimiser step (micro_batch_size x gradient-accumulation steps)."""
    micro_batch_size: int = 4
    max_len: int = 2048
    epochs: float = 1.0
    max_steps: int | None = None
    """Optimiser steps; default ``ceil(epochs * train records / batch_size)``."""
    max_train: int | None = None
    """Use only the first N train records (after a seeded shuffle)."""
    max_eval: int | None = 256
    """Evaluate on the first N held-out records (after a seeded shuffle)."""
    eval_every: int | None = None
    save_every: int = 50
    keep_checkpoints: int = 2
    seed: int = 0
    quantize: str | None = None
    """Load the base in ``4bit`` (NF4, QLoRA) or ``8bit`` with bitsandbytes; CUDA only."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory at 2,048 tokens, ~30 % more compute."""

    def __post_init__(self) -> None:
        positive = ("r", "alpha", "batch_size", "micro_batch_size", "max_len", "save_every", "keep_checkpoints")
        for name in positive:
            if getattr(self, name) < 1:
                raise InputError(f"{name}: expected a positive integer, got {getattr(self, name)}")
        if self.batch_size % self.micro_batch_size:
            raise InputError(f"batch_size: {self.batch_size} is not a multiple of micro_batch_size")
        if not 0 <= self.dropout < 1 or not 0 <= self.warmup_ratio < 1:
            raise InputError("dropout/warmup_ratio: expected values in [0, 1)")
        if self.lr <= 0 or self.epochs <= 0:
            raise InputError("lr/epochs: expected positive values")
        if self.max_steps is not None and self.max_steps < 1:
            raise InputError(f"max_steps: expected a positive integer, got {self.max_steps}")
        if not self.target_modules:
            raise InputError("target_modules: expected at least one module name")
        if self.quantize is not None and self.quantize not in QUANTIZE:
            raise InputError(f"quantize: expected one of {', '.join(QUANTIZE)}, got {self.quantize!r}")

    def run_key(self) -> dict[str, Any]:
        """The settings a checkpoint must share to be resumed (everything but saving/eval cadence)."""
        skip = {"save_every", "keep_checkpoints", "eval_every"}
        return {k: v for k, v in asdict(self).items() if k not in skip}


# ---------------------------------------------------------------- tokenisation


def encode_record(tokenizer: Any, prompt: str, answer: str, max_len: int) -> tuple[list[int], list[int]] | None:
    """Token ids and labels of one record: prompt tokens get ``-100`` (no loss), answer tokens + eos keep their ids.

    The prompt is tokenised on its own, exactly as at generation time. Sequences longer than ``max_len`` are cut
    at the end; ``None`` when no answer token would remain.
    """
    prompt_ids = list(tokenizer(prompt, add_special_tokens=True)["input_ids"])
    answer_ids = list(tokenizer(answer, add_special_tokens=False)["input_ids"])
    if tokenizer.eos_token_id is not None:
        answer_ids.append(tokenizer.eos_token_id)
    ids = (prompt_ids + answer_ids)[:max_len]
    labels = ([IGNORE_INDEX] * len(prompt_ids) + answer_ids)[:max_len]
    if all(t == IGNORE_INDEX for t in labels):
        return None
    return ids, labels


def encode_records(
    tokenizer: Any, records: list[InstructionRecord], max_len: int
) -> tuple[list[tuple[list[int], list[int]]], int]:
    """Encode records; also return how many were dropped (prompt alone reaches ``max_len``)."""
    out, dropped = [], 0
    for r in records:
        enc = encode_record(tokenizer, r.prompt, r.output, max_len)
        if enc is None:
            dropped += 1
        else:
            out.append(enc)
    return out, dropped


def collate(batch: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, Any]:
    """Right-pad a micro-batch into ``input_ids``, ``attention_mask``, ``labels`` tensors."""
    import torch

    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, (ids, lab) in enumerate(batch):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, : len(lab)] = torch.tensor(lab)
        mask[i, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


def answer_loss_sum(model: Any, batch: dict[str, Any]) -> tuple[Any, int]:
    """Summed next-token cross-entropy over the answer tokens of a batch, and their count."""
    import torch.nn.functional as F

    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    shift_logits = logits[:, :-1, :].float()
    shift_labels = batch["labels"][:, 1:]
    n = int((shift_labels != IGNORE_INDEX).sum())
    loss = F.cross_entropy(
        shift_logits.reshape(-1, shift_logits.size(-1)),
        shift_labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )
    return loss, n


def evaluate_loss(model: Any, examples: list[tuple[list[int], list[int]]], *, pad_id: int, micro: int) -> float:
    """Mean answer-token loss (nats per token) over ``examples``, in eval mode without gradients."""
    import torch

    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    device = next(model.parameters()).device
    with torch.no_grad(), _autocast(device):
        for i in range(0, len(examples), micro):
            batch = {k: v.to(device) for k, v in collate(examples[i : i + micro], pad_id).items()}
            loss, n = answer_loss_sum(model, batch)
            total, count = total + float(loss), count + n
    model.train(was_training)
    return total / max(count, 1)


def _autocast(device: Any) -> Any:
    import contextlib

    import torch

    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


# ---------------------------------------------------------------- checkpoints


def _checkpoints(out: Path) -> list[Path]:
    """Complete trainer checkpoints (with their ``medsyn_state.json``), oldest first."""
    d = out / "checkpoints"
    if not d.is_dir():
        return []
    found = [p for p in d.iterdir() if p.name.startswith("checkpoint-") and (p / STATE_NAME).is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def latest_checkpoint(out: str | Path) -> Path | None:
    """The newest complete checkpoint under ``out/checkpoints`` (None when there is none)."""
    found = _checkpoints(Path(out))
    return found[-1] if found else None


def _drop_incomplete(out: Path) -> None:
    """Remove checkpoints a kill left half-written (no state file): the trainer writes that step again; and the temp
    folders of an adapter a kill stopped while it was being published (:func:`_publish_adapter`)."""
    if out.is_dir():
        for p in out.glob(f"{_PUBLISHING}*"):
            shutil.rmtree(p, ignore_errors=True)
    d = out / "checkpoints"
    if d.is_dir():
        for p in d.iterdir():
            if p.is_dir() and p.name.startswith("checkpoint-") and not (p / STATE_NAME).is_file():
                shutil.rmtree(p, ignore_errors=True)


def _fsync_tree(path: Path) -> None:
    for f in sorted(path.rglob("*")):
        if f.is_file():
            fd = os.open(f, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _read_json(path: Path) -> dict[str, Any]:
    """A training state or manifest file; a damaged one is named in one error line, with the way out."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"unreadable ({exc}); delete it or rerun with --restart", path=path) from None
    if not isinstance(data, dict):
        raise InputError("expected a JSON object; delete it or rerun with --restart", path=path)
    return data


def _check_resumable(ckpt: Path, run: dict[str, Any], out: Path) -> dict[str, Any]:
    state = _read_json(ckpt / STATE_NAME)
    if not isinstance(state.get("run"), dict):
        raise InputError("no 'run' object; delete it or rerun with --restart", path=ckpt / STATE_NAME)
    saved = state["run"]
    diff = sorted(k for k in set(saved) | set(run) if saved.get(k) != run.get(k))
    if diff:
        raise InputError(
            f"{out}: holds checkpoints of a different run ({', '.join(diff)} differ); "
            "use another --out, or --restart to discard them"
        )
    return state


# ---------------------------------------------------------------- training


def _split(
    records: list[InstructionRecord], cfg: TrainConfig
) -> tuple[list[InstructionRecord], list[InstructionRecord]]:
    rng = np.random.default_rng(cfg.seed)
    train = [r for r in records if r.split == "train"]
    held = [r for r in records if r.split == "eval"]
    train = [train[i] for i in rng.permutation(len(train))][: cfg.max_train]
    held = [held[i] for i in rng.permutation(len(held))][: cfg.max_eval]
    if not train:
        raise InputError("the dataset has no train records (split == 'train')")
    return train, held


def _progress(enabled: bool) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]fine-tune"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("eval {task.fields[eval]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    )


def world_size() -> int:
    """Processes of this training (``accelerate launch`` sets ``WORLD_SIZE``; 1 for a plain run)."""
    return max(1, int(os.environ.get("WORLD_SIZE", "1") or 1))


def _accumulation(cfg: TrainConfig, processes: int) -> int:
    per_step = cfg.micro_batch_size * processes
    if cfg.batch_size % per_step:
        raise InputError(
            f"batch_size: {cfg.batch_size} records per step cannot be split into micro-batches of "
            f"{cfg.micro_batch_size} over {processes} processes; choose a multiple of {per_step}"
        )
    return cfg.batch_size // per_step


def quantization_config(kind: str | None) -> Any:
    """bitsandbytes 4-bit (NF4, QLoRA) or 8-bit loading; one clear line when there is no CUDA or no bitsandbytes."""
    if kind is None:
        return None
    import importlib.util

    import torch

    if not torch.cuda.is_available():
        raise InputError(
            f"--quantize {kind}: needs a CUDA GPU (bitsandbytes) and none is available here; "
            "drop --quantize to train in full precision"
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise InputError(f"--quantize {kind}: needs the bitsandbytes package: pip install 'bitsandbytes>=0.45,<1'")
    from transformers import BitsAndBytesConfig

    if kind == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    bf16 = torch.cuda.is_bf16_supported()
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16 if bf16 else torch.float16,
    )


def _callback(
    *,
    out: Path,
    run: dict[str, Any],
    eval_fn: Any,
    eval_every: int | None,
    total_steps: int,
    stop_after: int | None,
    progress: bool,
    medsyn_state: dict[str, Any],
) -> Any:
    """The trainer callback that marks complete checkpoints, evaluates, shows progress and stops after N steps."""
    from transformers import TrainerCallback

    class MedsynCallback(TrainerCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.started = time.monotonic()
            self.first_step: int | None = None
            self.bar: Any = None
            self.task: Any = None

        def wall_time(self) -> float:
            return float(medsyn_state.get("wall_time_s", 0.0)) + time.monotonic() - self.started

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.first_step = state.global_step
            self.started = time.monotonic()
            if state.is_world_process_zero:
                self.bar = _progress(progress)
                self.bar.start()
                base = medsyn_state.get("eval_loss_base")
                self.task = self.bar.add_task(
                    "train", total=total_steps, completed=state.global_step, loss="-", eval=_fmt(base)
                )

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            step = state.global_step
            if eval_every and step % eval_every == 0 and step < total_steps:
                # Saved with the checkpoint's log history, so a resumed run reports the same history.
                state.log_history.append({"step": step, "eval_loss": eval_fn()})
            if stop_after is not None and self.first_step is not None and step - self.first_step >= stop_after:
                control.should_training_stop = True
                control.should_save = True

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if self.bar is not None and logs and "loss" in logs:
                evals = [e["eval_loss"] for e in state.log_history if "eval_loss" in e]
                last = evals[-1] if evals else medsyn_state.get("eval_loss_base")
                self.bar.update(self.task, completed=state.global_step, loss=_fmt(logs["loss"]), eval=_fmt(last))

        def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if not state.is_world_process_zero:
                return
            ckpt = out / "checkpoints" / f"checkpoint-{state.global_step}"
            if not ckpt.is_dir():
                return
            _fsync_tree(ckpt)  # every file of the checkpoint is on disk before it is marked complete
            doc = {**medsyn_state, "run": run, "step": state.global_step, "wall_time_s": round(self.wall_time(), 3)}
            atomic_write_text(ckpt / STATE_NAME, json.dumps(doc, ensure_ascii=False, indent=1))

        def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if self.bar is not None:
                self.bar.stop()

    return MedsynCallback()


def _trainer_class() -> Any:
    """TRL's ``SFTTrainer`` with the model's own causal-LM loss (transformers' ``Trainer.compute_loss``).

    The labels already hold -100 outside the answers, so the loss is the same sum over answer tokens divided by the
    step's answer-token count (``num_items_in_batch``). TRL's default path runs a fused LM head that also computes
    per-token entropy and top-1 accuracy for its logs on every micro-batch: on a CPU with a small model that doubled
    the time of a step (measured with ``benchmarks/finetune.py``), for metrics MedSyn does not report.
    """
    from transformers import Trainer
    from trl import SFTTrainer

    class MedsynSFTTrainer(SFTTrainer):  # type: ignore[misc]
        def compute_loss(
            self, model: Any, inputs: Any, return_outputs: bool = False, num_items_in_batch: Any = None
        ) -> Any:
            return Trainer.compute_loss(
                self, model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )

    return MedsynSFTTrainer


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "-"


def _history(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per optimiser step: train loss, learning rate, and the held-out loss where it was measured."""
    by_step: dict[int, dict[str, Any]] = {}
    for e in log_history:
        step = int(e.get("step", 0))
        if "loss" in e:
            by_step.setdefault(step, {"step": step})
            by_step[step].update(train_loss=round(float(e["loss"]), 5), lr=e.get("learning_rate"))
        if "eval_loss" in e and step:
            by_step.setdefault(step, {"step": step})["eval_loss"] = e["eval_loss"]
    return [by_step[k] for k in sorted(by_step)]


def finetune(
    base: str,
    data: str | Path,
    out: str | Path,
    *,
    config: TrainConfig | None = None,
    device: str | None = None,
    restart: bool = False,
    stop_after: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train a LoRA adapter of ``base`` on the instruction JSONL ``data`` into ``out``; return its manifest.

    Resumes from the newest complete checkpoint in ``out`` unless ``restart``. ``stop_after`` ends this call after
    that many optimiser steps (checkpointed), so a long run can be spread over several sessions; the manifest is
    then ``{"complete": False, ...}``. A complete adapter already in ``out`` for the same run is returned as is.
    Under ``accelerate launch`` every process runs this function; the main one writes the adapter and manifest.
    """
    cfg = config or TrainConfig()
    out = check_output(out, folder=True)
    main_process = int(os.environ.get("RANK", "0") or 0) == 0
    # One training per --out: the main process holds the folder's lock (the other ranks of its launch share it).
    with hold(lock_beside(out), f"adapter folder {out}") if main_process else contextlib.nullcontext():
        if restart and main_process:
            pause_point("finetune.restart")
            _clear(out)
        # The other ranks must not read --out (manifest, checkpoints) before rank 0 has cleared it.
        _barrier(device)
        return _train(base, data, out, cfg, device=device, stop_after=stop_after, progress=progress)


def _train(
    base: str,
    data: str | Path,
    out: Path,
    cfg: TrainConfig,
    *,
    device: str | None,
    stop_after: int | None,
    progress: bool,
) -> dict[str, Any]:
    fingerprint = base_fingerprint(base)  # checks the base first: a bad one fails before anything loads
    records = read_dataset(data)
    run = {"base": base_name(base), "base_fingerprint": fingerprint, "data_sha256": file_sha256(data)}
    run |= {**cfg.run_key(), "target_modules": list(cfg.target_modules)}
    processes = world_size()
    accumulation = _accumulation(cfg, processes)
    main_process = int(os.environ.get("RANK", "0") or 0) == 0
    done = _finished_adapter(out, run)
    if done is not None:
        return done
    ckpt = latest_checkpoint(out)
    medsyn_state: dict[str, Any] = _check_resumable(ckpt, run, out) if ckpt is not None else {}
    train_recs, eval_recs = _split(records, cfg)
    quant = quantization_config(cfg.quantize)  # before the heavy imports: a missing GPU is one line, at once
    if main_process:
        _drop_incomplete(out)

    # heavy imports only once the inputs are known to be good
    from transformers import PrinterCallback

    model, tokenizer, use_cpu, bf16 = _load_for_training(base, device, quant, processes)
    train_ex, eval_ex, counts = _encode(tokenizer, train_recs, eval_recs, cfg, data)
    total_steps = cfg.max_steps or math.ceil(cfg.epochs * len(train_ex) / cfg.batch_size)
    args = _sft_config(cfg, out, accumulation=accumulation, total_steps=total_steps, use_cpu=use_cpu, bf16=bf16)
    trainer = _lora_trainer(cfg, args, model, tokenizer, train_ex)
    pad_id = tokenizer.pad_token_id

    def eval_loss() -> float | None:
        return evaluate_loss(trainer.model, eval_ex, pad_id=pad_id, micro=cfg.micro_batch_size) if eval_ex else None

    if ckpt is None:
        medsyn_state["eval_loss_base"] = eval_loss()
    callback = _callback(
        out=out,
        run=run,
        eval_fn=eval_loss,
        eval_every=cfg.eval_every,
        total_steps=total_steps,
        stop_after=stop_after,
        progress=progress and main_process,
        medsyn_state=medsyn_state,
    )
    trainer.remove_callback(PrinterCallback)  # its dict per step on stdout; the progress bar shows the same
    trainer.add_callback(callback)
    trainer.train(resume_from_checkpoint=str(ckpt) if ckpt is not None else None)
    state = trainer.state
    if state.global_step < total_steps:
        return {"complete": False, "step": state.global_step, "total_steps": total_steps, "run": run}

    manifest = _manifest(
        cfg,
        run,
        data=Path(data),
        model=model,
        state=state,
        eval_loss_base=medsyn_state.get("eval_loss_base"),
        eval_loss=eval_loss(),
        wall_time_s=callback.wall_time(),
        counts=counts,
        total_steps=total_steps,
        accumulation=accumulation,
        processes=processes,
        use_cpu=use_cpu,
        bf16=bf16,
    )
    if not trainer.is_world_process_zero():
        return manifest
    return _publish_adapter(trainer.model, out, manifest)


def _encode(
    tokenizer: Any, train_recs: list[Any], eval_recs: list[Any], cfg: TrainConfig, data: str | Path
) -> tuple[list[Any], list[Any], dict[str, int]]:
    """The train and eval records as token ids, and the counts the manifest records."""
    train_ex, dropped = encode_records(tokenizer, train_recs, cfg.max_len)
    eval_ex, eval_dropped = encode_records(tokenizer, eval_recs, cfg.max_len)
    if not train_ex:
        raise InputError(f"{data}: no train record fits max_len={cfg.max_len} tokens")
    counts = {
        "train_records": len(train_recs),
        "eval_records": len(eval_recs),
        "train_dropped_too_long": dropped,
        "eval_dropped_too_long": eval_dropped,
    }
    return train_ex, eval_ex, counts


def _lora_trainer(cfg: TrainConfig, args: Any, model: Any, tokenizer: Any, train_ex: list[Any]) -> Any:
    """The SFT trainer of a LoRA adapter on ``model`` over the encoded train records."""
    from datasets import Dataset
    from peft import LoraConfig

    lora = LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=list(cfg.target_modules),
        task_type="CAUSAL_LM",
        bias="none",
    )
    train_set = Dataset.from_dict({"input_ids": [i for i, _ in train_ex], "labels": [lab for _, lab in train_ex]})
    return _make_trainer(model=model, args=args, train_dataset=train_set, processing_class=tokenizer, peft_config=lora)


def _load_for_training(base: str, device: str | None, quant: Any, processes: int) -> tuple[Any, Any, bool, bool]:
    """``(model, tokenizer, on_cpu, bf16)``: bf16 where the GPU has it; each process of a multi-GPU launch loads onto
    its own GPU (where the trainer keeps it); a quantized base is prepared for k-bit training."""
    import torch

    dev = torch.device(pick_device(device))
    use_cpu = dev.type == "cpu"
    bf16 = not use_cpu and torch.cuda.is_bf16_supported()
    local_rank = int(os.environ.get("LOCAL_RANK", "0") or 0)
    load_device = (
        None if quant is not None else ("cpu" if use_cpu else f"cuda:{local_rank}" if processes > 1 else str(dev))
    )
    model, tokenizer = load_base(
        base,
        device=load_device,
        dtype=torch.bfloat16 if bf16 else torch.float32,
        quantization=quant,
    )
    if quant is not None:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model)
    return model, tokenizer, use_cpu, bf16


def _make_trainer(**kwargs: Any) -> Any:
    """The trainer, with PEFT's and TRL's refusals as one line."""
    try:
        return _trainer_class()(**kwargs)
    except ValueError as exc:  # PEFT: a target module the model does not have; else a setting TRL refuses
        first = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{'target_modules' if 'target modules' in first.lower() else 'trainer'}: {first}") from None


def _clear(out: Path) -> None:
    """``--restart``: drop the checkpoints and the adapter's manifest and config (the rest is overwritten)."""
    if out.exists():
        for p in [out / "checkpoints", *(out / n for n in (MANIFEST_NAME, "adapter_config.json"))]:
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
        fsync_dir(out)


def _barrier(device: str | None) -> None:
    """Under ``accelerate launch`` / torchrun: every process waits here until all have arrived (a no-op alone).

    The process group is the one the trainer uses later: accelerate's shared state, set up here with the same
    ``cpu`` choice the trainer makes.
    """
    if world_size() == 1:
        return
    from accelerate import PartialState

    PartialState(cpu=pick_device(device) == "cpu").wait_for_everyone()


def _finished_adapter(out: Path, run: dict[str, Any]) -> dict[str, Any] | None:
    """The manifest of a complete adapter of this same run in ``out`` (nothing to do); refuses an adapter of
    another run."""
    if not (out / MANIFEST_NAME).is_file():
        return None
    done = _read_json(out / MANIFEST_NAME)
    if done.get("run") == run:
        return done
    raise InputError(f"{out}: holds an adapter of a different run; use another --out, or --restart to replace it")


def _sft_config(cfg: TrainConfig, out: Path, *, accumulation: int, total_steps: int, use_cpu: bool, bf16: bool) -> Any:
    """TRL's ``SFTConfig``: answer-only loss on the records encoded here, checkpoints every ``save_every`` steps."""
    from trl import SFTConfig

    processes = world_size()
    return SFTConfig(
        output_dir=str(out / "checkpoints"),
        per_device_train_batch_size=cfg.micro_batch_size,
        gradient_accumulation_steps=accumulation,
        learning_rate=cfg.lr,
        weight_decay=cfg.weight_decay,
        lr_scheduler_type="cosine",
        warmup_steps=math.ceil(cfg.warmup_ratio * total_steps),
        max_steps=total_steps,
        max_grad_norm=1.0,
        optim="adamw_torch",
        seed=cfg.seed,
        data_seed=cfg.seed,
        logging_steps=1,
        save_strategy="steps",
        save_steps=cfg.save_every,
        save_total_limit=cfg.keep_checkpoints,
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=use_cpu,
        bf16=bf16,
        max_length=cfg.max_len,
        completion_only_loss=True,
        dataset_kwargs={"skip_prepare_dataset": True},  # input_ids + answer-only labels, made above
        remove_unused_columns=False,
        include_num_input_tokens_seen="non_padding",
        dataloader_num_workers=0,
        activation_checkpointing=cfg.gradient_checkpointing,
        ddp_find_unused_parameters=False if processes > 1 else None,
    )


def _manifest(
    cfg: TrainConfig,
    run: dict[str, Any],
    *,
    data: Path,
    model: Any,
    state: Any,
    eval_loss_base: float | None,
    eval_loss: float | None,
    wall_time_s: float,
    counts: dict[str, int],
    total_steps: int,
    accumulation: int,
    processes: int,
    use_cpu: bool,
    bf16: bool,
) -> dict[str, Any]:
    """The adapter's manifest: base, data, hyperparameters, metrics (held-out loss before and after), trainer."""
    history = _history(state.log_history)
    metrics = {
        "eval_loss_base": eval_loss_base,
        "eval_loss": eval_loss,
        "eval_perplexity_base": _ppl(eval_loss_base),
        "eval_perplexity": _ppl(eval_loss),
        "train_loss_last": history[-1].get("train_loss") if history else None,
        "steps": state.global_step,
        "tokens_trained": int(state.num_input_tokens_seen),
        "wall_time_s": round(wall_time_s, 1),
        "history": history,
    }
    return {
        "format": MANIFEST_FORMAT,
        "complete": True,
        "base": run["base"],
        "base_fingerprint": run["base_fingerprint"],
        "base_model_type": getattr(getattr(model, "config", None), "model_type", None),
        "data": {
            "path": str(data),
            "sha256": run["data_sha256"],
            **counts,
        },
        "hyperparameters": {
            **asdict(cfg),
            "target_modules": list(cfg.target_modules),
            "total_steps": total_steps,
            "gradient_accumulation_steps": accumulation,
        },
        "metrics": metrics,
        "trainer": {
            "engine": "trl.SFTTrainer",
            "processes": processes,
            **(
                {"accelerate_config": os.environ[ACCELERATE_CONFIG_ENV]}
                if os.environ.get(ACCELERATE_CONFIG_ENV)
                else {}
            ),
        },
        "device": "cpu" if use_cpu else "cuda",
        "dtype": "bfloat16" if bf16 else "float32",
        "versions": _versions(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "run": run,
    }


def _ppl(loss: float | None) -> float | None:
    return round(math.exp(loss), 3) if loss is not None and loss < 50 else None


def _versions() -> dict[str, str]:
    import accelerate
    import peft
    import torch
    import transformers
    import trl

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "trl": trl.__version__,
        "accelerate": accelerate.__version__,
    }


def _publish_adapter(model: Any, out: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Save the adapter into a temp dir inside ``out``, move its files in, then write the manifest last."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_PUBLISHING, dir=out))
    try:
        model.save_pretrained(str(tmp))
        manifest["adapter_hash"] = adapter_hash(tmp)
        for f in sorted(tmp.iterdir()):
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    atomic_write_text(out / MANIFEST_NAME, json.dumps(manifest, ensure_ascii=False, indent=1) + "\n")
    return manifest


# ---------------------------------------------------------------- merge


def merge(adapter: str | Path, out: str | Path, *, base: str | None = None) -> Path:
    """Fold a LoRA adapter into its base and save a plain model directory (usable as ``--base``).

    The base defaults to the one named in the adapter's manifest. Written to a temp dir and renamed.
    """
    adapter = Path(adapter)
    out = check_output(out, folder=True, inputs=[adapter, *([base] if base and Path(base).exists() else [])])
    if out.exists():
        raise InputError(f"{out}: already exists; choose a new output directory")
    with hold(lock_beside(out), f"output folder {out}"):
        return _merge(adapter, out, base)


def _merge(adapter: Path, out: Path, base: str | None) -> Path:
    from peft import PeftModel

    manifest = check_adapter_base(adapter, base) if base else None
    if manifest is None:
        from medsyn.training.models import read_manifest

        manifest = read_manifest(adapter)
        base = str(manifest["base"])
        check_adapter_base(adapter, base)
    assert base is not None
    model, tokenizer = load_base(base, device="cpu")
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    if out.exists():  # made while the model loaded (not by another merge: that one is refused by the lock)
        raise InputError(f"{out}: already exists; choose a new output directory")
    with atomic_dir(out) as tmp:
        merged.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        info = {
            "merged_from": str(adapter.resolve()),
            "adapter_hash": adapter_hash(adapter),
            "adapter_manifest": manifest,
        }
        (tmp / "medsyn_merged.json").write_text(json.dumps(info, ensure_ascii=False, indent=1), encoding="utf-8")
    return out


__all__ = [
    "TrainConfig",
    "collate",
    "encode_record",
    "evaluate_loss",
    "finetune",
    "latest_checkpoint",
    "merge",
]
