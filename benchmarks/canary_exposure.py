"""Canary exposure in the test setting (tests/test_canaries.py), with more candidates and sampled notes: the figures
of docs/evaluation.md "Canary exposure".

    .venv/bin/python benchmarks/canary_exposure.py [--candidates 1000] [--samples 10] [--steps 40] [--out DIR]

A tiny LLaMA (made here) is LoRA-tuned on 4 RuMedTop3 notes' records plus canary-0 (twice); canary-1 is planted in
the manifest but left out of training. Prints each canary's exposure under the adapter and under the base (3 seeds
of candidates), then samples notes as `medsyn generate` does with a local model at its defaults (temperature 1.0,
top-p 0.95) from each canary's prompt, from each canary's prompt plus the text before its secret (an attacker who
knows the prefix), and from the real records' prompts, and counts canary secrets in them.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--candidates", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="canaries-"))
    base, adapter, manifest, prompts = _train(out, args.steps)
    from medsyn.evaluation.canaries import measure_exposure
    from medsyn.training.canaries import read_manifest

    planted = read_manifest(manifest)
    rows = []
    for seed in (0, 1, 2):
        for label, ad, b in (("adapter", adapter, None), ("base", None, str(base))):
            ex = measure_exposure(ad, planted, base=b, n_candidates=args.candidates, rng=np.random.default_rng(seed))
            rows += [{"model": label, "seed": seed, "canary": e.canary, "rank": e.rank, "bits": round(e.exposure, 2)}
                     for e in ex]  # fmt: skip
    print(f"exposure, {args.candidates} candidates (max {math.log2(args.candidates):.2f} bits)")
    for r in rows:
        print(json.dumps(r))
    print(json.dumps(_leaks(base, adapter, planted, prompts, args.samples), ensure_ascii=False))


def _train(out: Path, steps: int) -> tuple[Path, Path, Path, list[str]]:
    from medsyn.paths import data_dir
    from medsyn.testing.tiny_llama import make_tiny_llama
    from medsyn.training.canaries import manifest_path, read_manifest
    from medsyn.training.finetune import TrainConfig, finetune
    from medsyn.training.instructions import BuildOptions, build_dataset, read_dataset, write_dataset
    from medsyn.training.models import MANIFEST_NAME

    d = data_dir()
    lines = (d / "rumedbench/RuMedTop3/train_v1.jsonl").read_text(encoding="utf-8").splitlines()[:4]
    (out / "train.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    opts = BuildOptions(eval_fraction=0.0, canaries=2, canary_repeats=2)
    smap = d / "medsyn/mkg/rumedtop3_wikimed_symptoms_equipped_with_rumedprime.json"
    build_dataset(out / "ift.jsonl", train=out / "train.jsonl", symptom_map=smap, options=opts)
    records = read_dataset(out / "ift.jsonl")
    planted = read_manifest(manifest_path(out / "ift.jsonl"))
    seen = [r for r in records if r.note_id != planted[1].id]
    stub = {"records": len(seen), "codes": 0, "with_example": 0, "by_task_split": {}, "length_unit": "w", "lengths": {}}
    write_dataset(seen, out / "seen.jsonl", stub)
    base = make_tiny_llama(out / "tiny", vocab_texts=[r.output for r in records if r.task != "canary"], seed=0)
    modules = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    cfg = TrainConfig(r=8, alpha=16, lr=1e-2, batch_size=4, micro_batch_size=4, max_len=256, max_steps=steps,
                      max_eval=0, save_every=1000, warmup_ratio=0.1, target_modules=modules)  # fmt: skip
    if not (out / "adapter" / MANIFEST_NAME).exists():
        finetune(str(base), out / "seen.jsonl", out / "adapter", config=cfg, progress=False)
    prompts = [r.prompt for r in records if r.task != "canary"]
    return base, out / "adapter", manifest_path(out / "ift.jsonl"), prompts


def _leaks(base: Path, adapter: Path, planted: list, prompts: list[str], samples: int) -> dict:  # type: ignore[type-arg]
    import torch

    from medsyn.evaluation.canaries import scan_secrets
    from medsyn.training.models import load_causal_lm

    model, tok = load_causal_lm(str(base), adapter=adapter)
    torch.manual_seed(0)
    settings = {
        "canary prompt": [(c.prompt, "") for c in planted],
        "canary prompt + prefix": [(c.prompt, c.prefix.rstrip()) for c in planted],
        "real prompts": [(p, "") for p in prompts],
    }
    result = {}
    for name, pairs in settings.items():
        notes = []
        for prompt, prefix in pairs:
            ids = tok(prompt)["input_ids"] + (tok(prefix, add_special_tokens=False)["input_ids"] if prefix else [])
            enc = torch.tensor([ids] * samples)
            gen = model.generate(input_ids=enc, attention_mask=torch.ones_like(enc), do_sample=True, temperature=1.0,
                                 top_p=0.95, max_new_tokens=120)  # fmt: skip
            notes += [prefix + tok.decode(g[len(ids) :], skip_special_tokens=True) for g in gen]
        hits = scan_secrets([(str(i), "", t) for i, t in enumerate(notes)], planted)
        result[name] = {"notes": len(notes), "secret_hits": [(h.canary, h.note_id) for h in hits]}
    return result


if __name__ == "__main__":
    main()
