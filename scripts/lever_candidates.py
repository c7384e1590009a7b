"""Keep every candidate of one attempt per sample, so that filter settings and candidate rankings can be judged on
exactly the replies a run gets (docs/generation.md, "Word salad"). Resumable: rerun to continue; shard over cores.

    python scripts/lever_candidates.py --samples samples.jsonl --store STORE --out cands/shard0.jsonl \\
        --candidates 5 --shard 0 --shards 2

The requests are `generate`'s own (`engine.attempt_requests`: `--template` (expansion shots by default), `--seed 7`,
temperature 0.7, 160 tokens), sent to the embedded Gemma 3 270M (with `--adapter`, a fine-tuned one) through
llama.cpp with one thread. Each line: the sample id, the seconds
the call took, and each candidate's seed, text and finish reason.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path

from medsyn.generation.backends import BackendSpec
from medsyn.generation.config import GenerationConfig
from medsyn.generation.engine import attempt_requests, with_examples
from medsyn.kg.opener import open_store
from medsyn.sampling.samples import read_samples

CONFIG = {"seed": 7, "temperature": 0.7, "max_tokens": 160, "max_attempts": 1}


async def _dump(args: argparse.Namespace) -> None:
    out = Path(args.out)
    done = set()
    if out.exists():
        done = {json.loads(x)["sample_id"] for x in out.read_text().splitlines() if x.endswith("}")}
    cfg = GenerationConfig(**CONFIG, template=args.template, candidates=args.candidates)  # type: ignore[arg-type]
    store = open_store(Path(args.store))
    try:
        sampling = {"samples_file": str(Path(args.samples).resolve())}
        samples = with_examples(read_samples(Path(args.samples)), store, cfg, sampling)
    finally:
        store.close()
    template = cfg.load_template()
    flags = {"threads": 1, "parallel": 1, **({"adapter": args.adapter} if args.adapter else {})}
    backend = BackendSpec("llamacpp", (), flags, {"seed": 7, "max_tokens": 160}).build()
    with out.open("a", encoding="utf-8") as f:
        for i, s in enumerate(samples):
            if i % args.shards != args.shard or s.id in done:
                continue
            t0 = time.monotonic()
            _, reqs = attempt_requests(cfg, template, "dump", s, 0)
            comps = await backend.complete(reqs)
            line = {
                "i": i,
                "sample_id": s.id,
                "seconds": round(time.monotonic() - t0, 2),
                "completions": [
                    {"seed": r.seed, "text": c.text, "finish_reason": c.finish_reason}
                    for r, c in zip(reqs, comps, strict=True)
                ],
            }
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())  # a line is a finished sample: a rerun skips it
    await backend.aclose()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", required=True)
    p.add_argument("--store", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--candidates", type=int, default=5)
    p.add_argument("--template", default="fewshot_expand_ru")
    p.add_argument("--adapter", help="a medsyn finetune adapter folder, applied by llama.cpp")
    p.add_argument("--shard", type=int, default=0)
    p.add_argument("--shards", type=int, default=1)
    asyncio.run(_dump(p.parse_args()))


if __name__ == "__main__":
    main()
