"""Local generation speed: llama.cpp (``--backend llamacpp``) against transformers (``--backend local``) on the
same GGUF file and the same few-shot prompts, in one run.

    .venv/bin/python benchmarks/local_generation.py [--model gemma3] [--prompts 4] [--max-tokens 48]

The prompts are ``paper_fewshot_ru`` prompts of real samples drawn from the real data (a small in-memory graph of
the WikiMed symptoms and the RuMedTop3 train notes). Both engines decode greedily (temperature 0) to the same token
limit with no stop sequence, so they do the same work. Measured per engine:

* prompt tokens/s: llama.cpp's own prompt timing; transformers: one forward pass over the prompt (its prefill);
* generation tokens/s: new tokens over decode time (transformers: generate time minus the prefill);
* seconds per note (prompt + generation) and, for llama.cpp, notes/s with 1 and 2 threads and with 2 slots.

Prints one JSON object per measurement and a table of ratios against transformers (the baseline measured here).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from medsyn.generation.backends import ChatRequest, get_backend  # noqa: E402
from medsyn.generation.prompts import load_template  # noqa: E402
from medsyn.kg.store import OxigraphStore  # noqa: E402
from medsyn.paths import data_dir  # noqa: E402
from medsyn.sampling.draw import add_examples, draw_samples  # noqa: E402


def prompts(n: int) -> list[str]:
    from sampling_graph import real_graph

    st = OxigraphStore.in_memory()
    real_graph(data_dir()).into(st)
    t = load_template("paper_fewshot_ru")
    samples = add_examples(st, draw_samples(st, n=n, seed=11), t.shots, seed=11)
    return [t.render_text(s) for s in samples]


def bench_transformers(model: str, texts: list[str], max_tokens: int) -> dict[str, Any]:
    import torch

    be = get_backend("local", model=model, batch_size=1, stop=())
    lm, tok = be._load()  # type: ignore[attr-defined]
    pt = gt = nt = ptok = 0.0
    for text in texts:
        enc = tok((tok.bos_token or "") + text, return_tensors="pt", add_special_tokens=False)
        t0 = time.perf_counter()
        with torch.inference_mode():
            lm(**enc)
        prefill = time.perf_counter() - t0
        t0 = time.perf_counter()
        (c,) = asyncio.run(
            be.complete(
                [ChatRequest(key="b", messages=[], prompt=text, temperature=0.0, max_tokens=max_tokens, stop=())]
            )
        )
        total = time.perf_counter() - t0
        pt += prefill
        gt += max(total - prefill, 1e-9)
        nt += c.completion_tokens
        ptok += c.prompt_tokens
    return {
        "engine": "transformers",
        "prompt_tok_s": ptok / pt,
        "gen_tok_s": nt / gt,
        "s_per_note": (pt + gt) / len(texts),
    }


def bench_llamacpp(model: str, texts: list[str], max_tokens: int, *, threads: int, parallel: int) -> dict[str, Any]:
    be = get_backend("llamacpp", model=model, threads=threads, parallel=parallel, stop=())
    be._load()  # type: ignore[attr-defined]
    reqs = [
        ChatRequest(key=str(i), messages=[], prompt=t, temperature=0.0, max_tokens=max_tokens, stop=())
        for i, t in enumerate(texts)
    ]

    async def run_all() -> list[Any]:
        sem = asyncio.Semaphore(parallel)

        async def one(r: ChatRequest) -> Any:
            async with sem:
                return (await be.complete([r]))[0]

        return await asyncio.gather(*(one(r) for r in reqs))

    t0 = time.perf_counter()
    outs = asyncio.run(run_all())
    wall = time.perf_counter() - t0
    pms = sum(o.extra.get("prompt_ms", 0.0) for o in outs) / 1000
    gms = sum(o.extra.get("predicted_ms", 0.0) for o in outs) / 1000
    return {
        "engine": f"llama.cpp t={threads} slots={parallel}",
        "prompt_tok_s": sum(o.prompt_tokens for o in outs) / pms if pms else 0.0,
        "gen_tok_s": sum(o.completion_tokens for o in outs) / gms if gms else 0.0,
        "s_per_note": wall / len(texts),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="gemma3")
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=48)
    args = ap.parse_args()
    texts = prompts(args.prompts)
    base = bench_transformers(args.model, texts, args.max_tokens)
    rows = [base]
    for threads, parallel in ((1, 1), (2, 1), (1, 2)):
        rows.append(bench_llamacpp(args.model, texts, args.max_tokens, threads=threads, parallel=parallel))
    for r in rows:
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}))
    print(f"\n{'engine':28} {'prompt tok/s':>12} {'gen tok/s':>10} {'s/note':>7}  speed-up vs transformers")
    for r in rows:
        print(
            f"{r['engine']:28} {r['prompt_tok_s']:12.1f} {r['gen_tok_s']:10.1f} {r['s_per_note']:7.2f}  "
            f"x{base['s_per_note'] / r['s_per_note']:.2f}"
        )


if __name__ == "__main__":
    main()
