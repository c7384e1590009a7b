"""LoRA fine-tuning of a local LLaMA-architecture model on an instruction dataset, with resumable checkpoints.

A small, explicit training loop (torch AdamW + cosine schedule with warm-up): the loss covers the answer tokens only,
gradients accumulate over micro-batches up to ``batch_size`` records per optimiser step, and the held-out part of
the dataset (``split == "eval"``) gives an evaluation loss before training (= the base model: LoRA starts as a
no-op), every ``eval_every`` steps and at the end.

Layout of ``out``::

    out/checkpoints/step-000010/   adapter files + trainer_state.pt + state.json (each checkpoint renamed into place)
    out/adapter_config.json, adapter_model.safetensors, medsyn_adapter.json   (the final adapter; manifest last)

A rerun with the same ``out`` resumes from the newest checkpoint; the order of records is a pure function of the
seed and the step, and the RNG states are restored, so an interrupted run ends with the same adapter.
"""

from __future__ import annotations

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

from medsyn.atomic import atomic_dir, atomic_write_text
from medsyn.errors import InputError
from medsyn.instructions import InstructionRecord, file_sha256, read_dataset
from medsyn.models import (
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
STATE_NAME = "trainer_state.pt"


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

    @property
    def accumulation(self) -> int:
        return self.batch_size // self.micro_batch_size

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
    d = out / "checkpoints"
    if not d.is_dir():
        return []
    found = [p for p in d.iterdir() if p.name.startswith("step-") and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def latest_checkpoint(out: str | Path) -> Path | None:
    """The newest complete checkpoint under ``out/checkpoints`` (None when there is none)."""
    found = _checkpoints(Path(out))
    return found[-1] if found else None


def _save_checkpoint(out: Path, model: Any, optimizer: Any, scheduler: Any, state: dict[str, Any], keep: int) -> Path:
    import torch

    ckdir = out / "checkpoints"
    ckdir.mkdir(parents=True, exist_ok=True)
    final = ckdir / f"step-{state['step']:06d}"
    with atomic_dir(final) as tmp:
        model.save_pretrained(str(tmp))
        trainer_state = {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }
        torch.save(trainer_state, tmp / STATE_NAME)
        (tmp / "state.json").write_text(json.dumps(state, indent=1), encoding="utf-8")
    for old in _checkpoints(out)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _load_checkpoint(path: Path, model: Any, optimizer: Any, scheduler: Any) -> dict[str, Any]:
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(str(path / "adapter_model.safetensors")))
    ts = torch.load(path / STATE_NAME, map_location="cpu", weights_only=True)
    optimizer.load_state_dict(ts["optimizer"])
    scheduler.load_state_dict(ts["scheduler"])
    torch.set_rng_state(ts["torch_rng"])
    if ts["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(ts["cuda_rng"])
    return _read_json(path / "state.json")


def _read_json(path: Path) -> dict[str, Any]:
    """A training state or manifest file; a damaged one is named in one error line, with the way out."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"unreadable ({exc}); delete it or rerun with --restart", path=path) from None
    if not isinstance(data, dict):
        raise InputError("expected a JSON object; delete it or rerun with --restart", path=path)
    return data


def _check_resumable(ckpt: Path, run: dict[str, Any], out: Path) -> None:
    state = _read_json(ckpt / "state.json")
    if not isinstance(state.get("run"), dict):
        raise InputError("no 'run' object; delete it or rerun with --restart", path=ckpt / "state.json")
    saved = state["run"]
    diff = sorted(k for k in set(saved) | set(run) if saved.get(k) != run.get(k))
    if diff:
        raise InputError(
            f"{out}: holds checkpoints of a different run ({', '.join(diff)} differ); "
            "use another --out, or --restart to discard them"
        )


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


def _positions(step: int, cfg: TrainConfig, n: int) -> list[int]:
    """Indices of the train examples used by optimiser step ``step`` (a pure function of seed and step).

    Each epoch visits the examples in its own seeded permutation, so a resumed run sees the same order.
    """
    first, last = step * cfg.batch_size, (step + 1) * cfg.batch_size
    perms = {e: np.random.default_rng([cfg.seed, e]).permutation(n) for e in range(first // n, (last - 1) // n + 1)}
    return [int(perms[pos // n][pos % n]) for pos in range(first, last)]


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

    Resumes from the newest checkpoint in ``out`` unless ``restart``. ``stop_after`` ends this call after that many
    optimiser steps (checkpointed), so a long run can be spread over several sessions; the manifest is then
    ``{"complete": False, ...}``. A complete adapter already in ``out`` for the same run is returned as is.
    """
    cfg = config or TrainConfig()
    out = Path(out)
    fingerprint = base_fingerprint(base)  # checks the base first: a bad one fails before anything loads
    records = read_dataset(data)
    run = {"base": base_name(base), "base_fingerprint": fingerprint, "data_sha256": file_sha256(data)}
    run |= cfg.run_key()
    run["target_modules"] = list(cfg.target_modules)
    if restart and out.exists():
        for p in [out / "checkpoints", *(out / n for n in (MANIFEST_NAME, "adapter_config.json"))]:
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    if (out / MANIFEST_NAME).is_file():
        done = _read_json(out / MANIFEST_NAME)
        if done.get("run") == run:
            return done
        raise InputError(f"{out}: holds an adapter of a different run; use another --out, or --restart to replace it")
    ckpt = latest_checkpoint(out)
    if ckpt is not None:
        _check_resumable(ckpt, run, out)

    train_recs, eval_recs = _split(records, cfg)
    import torch  # heavy imports only once the inputs are known to be good
    from peft import LoraConfig, get_peft_model
    from transformers import get_cosine_schedule_with_warmup

    torch.manual_seed(cfg.seed)
    dev = torch.device(pick_device(device))
    bf16 = dev.type == "cuda" and torch.cuda.is_bf16_supported()
    model, tokenizer = load_base(base, device=str(dev), dtype=torch.bfloat16 if bf16 else torch.float32)
    train_ex, dropped = encode_records(tokenizer, train_recs, cfg.max_len)
    eval_ex, eval_dropped = encode_records(tokenizer, eval_recs, cfg.max_len)
    if not train_ex:
        raise InputError(f"{data}: no train record fits max_len={cfg.max_len} tokens")
    lora = LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=list(cfg.target_modules),
        task_type="CAUSAL_LM",
        bias="none",
    )
    try:
        model = get_peft_model(model, lora)
    except ValueError as exc:
        raise InputError(f"target_modules: {str(exc).splitlines()[0]}") from None
    total_steps = cfg.max_steps or math.ceil(cfg.epochs * len(train_ex) / cfg.batch_size)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, math.ceil(cfg.warmup_ratio * total_steps), total_steps)
    pad_id = tokenizer.pad_token_id

    def eval_loss() -> float | None:
        return evaluate_loss(model, eval_ex, pad_id=pad_id, micro=cfg.micro_batch_size) if eval_ex else None

    state: dict[str, Any] = {"step": 0, "run": run, "history": [], "wall_time_s": 0.0, "tokens": 0}
    if ckpt is not None:
        state = _load_checkpoint(ckpt, model, optimizer, scheduler)
    else:
        state["eval_loss_base"] = eval_loss()
    model.train()
    started = time.monotonic()
    start_step = state["step"]
    last_loss = float("nan")
    with _progress(progress) as bar:
        fmt = "{:.4f}".format
        base_eval = state.get("eval_loss_base")
        task = bar.add_task("train", total=total_steps, completed=start_step, loss="-", eval=fmt(base_eval or 0))
        for step in range(start_step, total_steps):
            if stop_after is not None and step - start_step >= stop_after:
                break
            idx = _positions(step, cfg, len(train_ex))
            micro = [idx[i : i + cfg.micro_batch_size] for i in range(0, len(idx), cfg.micro_batch_size)]
            n_tokens = sum(sum(t != IGNORE_INDEX for t in train_ex[j][1][1:]) for j in idx)
            optimizer.zero_grad(set_to_none=True)
            step_loss = 0.0
            for mb in micro:
                batch = {k: v.to(dev) for k, v in collate([train_ex[j] for j in mb], pad_id).items()}
                with _autocast(dev):
                    loss, _ = answer_loss_sum(model, batch)
                (loss / max(n_tokens, 1)).backward()
                step_loss += float(loss.detach())
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            last_loss = step_loss / max(n_tokens, 1)
            state["step"] = step + 1
            state["tokens"] += n_tokens
            entry: dict[str, Any] = {
                "step": step + 1,
                "train_loss": round(last_loss, 5),
                "lr": scheduler.get_last_lr()[0],
            }
            if cfg.eval_every and (step + 1) % cfg.eval_every == 0 and step + 1 < total_steps:
                entry["eval_loss"] = eval_loss()
                model.train()
            state["history"].append(entry)
            bar.update(task, advance=1, loss=fmt(last_loss), eval=fmt(entry.get("eval_loss") or base_eval or 0))
            if (step + 1) % cfg.save_every == 0 and step + 1 < total_steps:
                state["wall_time_s"] += time.monotonic() - started
                started = time.monotonic()
                _save_checkpoint(out, model, optimizer, scheduler, state, cfg.keep_checkpoints)
    state["wall_time_s"] += time.monotonic() - started
    if state["step"] < total_steps:
        _save_checkpoint(out, model, optimizer, scheduler, state, cfg.keep_checkpoints)
        return {"complete": False, "step": state["step"], "total_steps": total_steps, "run": run}

    final_eval = eval_loss()
    metrics = {
        "eval_loss_base": state.get("eval_loss_base"),
        "eval_loss": final_eval,
        "eval_perplexity_base": _ppl(state.get("eval_loss_base")),
        "eval_perplexity": _ppl(final_eval),
        "train_loss_last": state["history"][-1]["train_loss"] if state["history"] else None,
        "steps": state["step"],
        "tokens_trained": state["tokens"],
        "wall_time_s": round(state["wall_time_s"], 1),
        "history": state["history"],
    }
    manifest = {
        "format": MANIFEST_FORMAT,
        "complete": True,
        "base": run["base"],
        "base_fingerprint": run["base_fingerprint"],
        "base_model_type": getattr(getattr(model, "config", None), "model_type", None),
        "data": {
            "path": str(Path(data)),
            "sha256": run["data_sha256"],
            "train_records": len(train_recs),
            "eval_records": len(eval_recs),
            "train_dropped_too_long": dropped,
            "eval_dropped_too_long": eval_dropped,
        },
        "hyperparameters": {**asdict(cfg), "target_modules": list(cfg.target_modules), "total_steps": total_steps},
        "metrics": metrics,
        "device": dev.type,
        "dtype": "bfloat16" if bf16 else "float32",
        "versions": _versions(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "run": run,
    }
    return _publish_adapter(model, out, manifest)


def _ppl(loss: float | None) -> float | None:
    return round(math.exp(loss), 3) if loss is not None and loss < 50 else None


def _versions() -> dict[str, str]:
    import peft
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}


def _publish_adapter(model: Any, out: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Save the adapter into a temp dir inside ``out``, move its files in, then write the manifest last."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".adapter.", dir=out))
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
    from peft import PeftModel

    adapter = Path(adapter)
    out = Path(out)
    manifest = check_adapter_base(adapter, base) if base else None
    if manifest is None:
        from medsyn.models import read_manifest

        manifest = read_manifest(adapter)
        base = str(manifest["base"])
        check_adapter_base(adapter, base)
    assert base is not None
    model, tokenizer = load_base(base, device="cpu")
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    if out.exists():
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
