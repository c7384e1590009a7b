"""Fine-tuning speed and memory: the TRL ``SFTTrainer`` path of ``medsyn finetune`` against the hand-written loop
it replaced, on the same tiny LLaMA, data and settings, in one run.

    .venv/bin/python benchmarks/finetune.py [--steps 16] [--repeats 2] [--base DIR] [--device cpu|cuda]

The data is a real instruction set (60 RuMedTop3 train notes through ``build_instructions``); the model is the
test suite's tiny LLaMA (``make_tiny_llama``) unless ``--base`` names another. Each measurement runs in its own
process, so its peak memory (max RSS on CPU, ``torch.cuda.max_memory_allocated`` on a GPU) is its own; old and new
alternate ``--repeats`` times and the best of each counts (the machine is shared). Tokens/s = non-padding input
tokens (prompt + answer) of the optimiser steps over their wall time, evaluation excluded on both sides.

The old loop below is the baseline only (``medsyn.training.finetune`` no longer has it): torch AdamW, cosine schedule
with warm-up, micro-batches accumulated to the step, answer-only loss summed over the step's answer tokens.
Target: new/old tokens/s >= 1.0 on CPU (exit 1 below it).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from medsyn.training.finetune import TrainConfig  # noqa: E402

TARGET = 1.0


def config(steps: int) -> TrainConfig:
    # max_eval=0: no held-out evaluation on either side, so only the optimiser steps are timed.
    return TrainConfig(
        r=8, alpha=16, lr=3e-3, batch_size=8, micro_batch_size=4, max_len=128, max_steps=steps, save_every=10_000,
        warmup_ratio=0.2, max_eval=0,
    )  # fmt: skip


def prepare(work: Path) -> tuple[Path, Path]:
    from medsyn.paths import data_dir
    from medsyn.testing.tiny_llama import make_tiny_llama
    from medsyn.training.instructions import (
        BuildOptions,
        build_instructions,
        read_notes,
        symptoms_from_json,
        write_dataset,
    )

    d = data_dir()
    notes = read_notes(d / "rumedbench/RuMedTop3/train_v1.jsonl")[:60]
    symptoms = symptoms_from_json(d / "medsyn/mkg/rumedtop3_wikimed_symptoms_equipped_with_rumedprime.json")
    records, _ = build_instructions(notes, symptoms, options=BuildOptions(seed=0, eval_fraction=0.2))
    data = work / "ift.jsonl"
    card = {"records": len(records), "codes": 0, "with_example": 0, "by_task_split": {}, "length_unit": "words"}
    write_dataset(records, data, card | {"lengths": {}})
    texts = [r.output for r in records]
    return data, make_tiny_llama(work / "tiny", vocab_texts=texts, seed=0)


def _peak_mb(device: str) -> float:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_old(base: str, data: Path, steps: int, device: str) -> dict[str, Any]:
    """The replaced hand-written loop (training part), on the same encoded records and data order rule."""
    import numpy as np
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import get_cosine_schedule_with_warmup

    from medsyn.training.finetune import IGNORE_INDEX, _split, answer_loss_sum, collate, encode_records
    from medsyn.training.instructions import read_dataset
    from medsyn.training.models import load_base

    cfg = config(steps)
    torch.manual_seed(cfg.seed)
    train_recs, _ = _split(read_dataset(data), cfg)
    model, tok = load_base(base, device=device)
    train_ex, _ = encode_records(tok, train_recs, cfg.max_len)
    lora = LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=list(cfg.target_modules))
    model = get_peft_model(model, lora)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = get_cosine_schedule_with_warmup(opt, math.ceil(cfg.warmup_ratio * steps), steps)
    model.train()
    n, tokens = len(train_ex), 0
    t0 = time.perf_counter()
    for step in range(steps):
        first = step * cfg.batch_size
        perm = {e: np.random.default_rng([cfg.seed, e]).permutation(n) for e in range(first // n, first // n + 2)}
        idx = [int(perm[p // n][p % n]) for p in range(first, first + cfg.batch_size)]
        n_answer = sum(sum(t != IGNORE_INDEX for t in train_ex[j][1][1:]) for j in idx)
        opt.zero_grad(set_to_none=True)
        for i in range(0, len(idx), cfg.micro_batch_size):
            batch = collate([train_ex[j] for j in idx[i : i + cfg.micro_batch_size]], tok.pad_token_id)
            tokens += int(batch["attention_mask"].sum())
            loss, _ = answer_loss_sum(model, {k: v.to(device) for k, v in batch.items()})
            (loss / max(n_answer, 1)).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
    seconds = time.perf_counter() - t0
    return {"variant": "old loop", "tokens": tokens, "seconds": seconds, "peak_mb": _peak_mb(device)}


def run_new(base: str, data: Path, steps: int, device: str, out: Path) -> dict[str, Any]:
    from medsyn.training.finetune import finetune

    m = finetune(base, data, out, config=config(steps), device=device, progress=False)
    met = m["metrics"]
    return {
        "variant": "TRL SFTTrainer",
        "tokens": met["tokens_trained"],
        "seconds": met["wall_time_s"],
        "peak_mb": _peak_mb(device),
    }


def _rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def child(args: argparse.Namespace) -> None:
    data, base = Path(args.data), args.base
    # The libraries of each path, imported before anything is measured: the new path also loads trl and datasets
    # (pyarrow), whose import memory is not training memory.
    import peft  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401

    if args.variant == "new":
        import datasets  # noqa: F401
        import trl  # noqa: F401
    imports_mb = _rss_mb()
    if args.variant == "old":
        res = run_old(base, data, args.steps, args.device)
    else:
        res = run_new(base, data, args.steps, args.device, Path(tempfile.mkdtemp(prefix="bench-ft-")) / "adapter")
    res["tokens_per_s"] = res["tokens"] / res["seconds"]
    res["imports_mb"] = imports_mb
    res["peak_above_imports_mb"] = res["peak_mb"] - (0.0 if args.device.startswith("cuda") else imports_mb)
    print(json.dumps(res))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--base", default=None, help="base model (default: a tiny LLaMA made here)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--variant", choices=("old", "new"), help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.variant:
        child(args)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-finetune-") as tmp:
        data, tiny = prepare(Path(tmp))
        base = args.base or str(tiny)
        best: dict[str, dict[str, Any]] = {}
        for _ in range(args.repeats):
            for variant in ("old", "new"):
                cmd = [sys.executable, __file__, "--variant", variant, "--data", str(data), "--base", base]
                cmd += ["--steps", str(args.steps), "--device", args.device]
                done = subprocess.run(cmd, capture_output=True, text=True, check=True)
                res = json.loads(done.stdout.strip().splitlines()[-1])
                print(json.dumps(res), flush=True)
                if variant not in best or res["tokens_per_s"] > best[variant]["tokens_per_s"]:
                    best[variant] = res
    ratio = best["new"]["tokens_per_s"] / best["old"]["tokens_per_s"]
    mem = best["new"]["peak_above_imports_mb"] / best["old"]["peak_above_imports_mb"]
    print(f"{'variant':<16} {'tokens/s':>10} {'peak MB':>9} {'above imports':>14}")
    for v in ("old", "new"):
        r = best[v]
        print(f"{r['variant']:<16} {r['tokens_per_s']:>10.0f} {r['peak_mb']:>9.0f} {r['peak_above_imports_mb']:>14.0f}")
    verdict = "ok" if ratio >= TARGET else "SLOWER"
    print(f"new/old tokens/s x{ratio:.2f} (target >= {TARGET}: {verdict}); peak memory above imports x{mem:.2f}")
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
