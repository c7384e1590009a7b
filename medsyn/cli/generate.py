"""``medsyn generate``: turn sampled medical facts into synthetic notes with provenance (resumable)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from medsyn.errors import InputError

console = Console(stderr=True)


def _sample(
    store: Any,
    *,
    n: int | None,
    plan: str | None,
    total: int | None,
    overrides: list[str],
    strategy: str,
    seed: int,
    codes: str | None,
) -> list[Any]:
    try:
        from medsyn.sampling import draw_samples
    except ImportError:
        raise InputError("sampling is not available in this installation; pass --samples FILE") from None
    code_list = [c for c in (codes or "").replace(",", " ").split() if c] or None
    if plan is None:
        return list(draw_samples(store, n=n, strategy=strategy, seed=seed, codes=code_list))
    if plan != "weights":
        raise InputError(f"--plan must be 'weights', got {plan!r}")
    if total is None:
        raise InputError("--plan weights needs --total N")
    from medsyn.weights import code_weights, parse_overrides, plan_counts

    counts = plan_counts(code_weights(store), total, overrides=parse_overrides(overrides))
    return list(draw_samples(store, plan=counts, strategy=strategy, seed=seed, codes=code_list))


def generate_command(
    out: Annotated[Path, typer.Option("--out", help="Output directory (notes.jsonl, failures.jsonl, run.json).")],
    n: Annotated[int | None, typer.Option("--n", help="Number of samples (notes) to generate.")] = None,
    plan: Annotated[
        str | None, typer.Option("--plan", help="'weights': notes per code from the paper's code weights.")
    ] = None,
    total: Annotated[int | None, typer.Option("--total", help="Total notes of a --plan.")] = None,
    override: Annotated[
        list[str] | None, typer.Option("--override", help="CODE=COUNT fixing a code's count in a --plan.")
    ] = None,
    samples: Annotated[
        Path | None, typer.Option("--samples", help="Generate from this samples JSONL instead of sampling.")
    ] = None,
    strategy: Annotated[str, typer.Option("--strategy", help="Sampling strategy.")] = "paper",
    codes: Annotated[str | None, typer.Option("--codes", help="Restrict sampling to these codes (comma list).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of sampling and generation.")] = 0,
    backend: Annotated[str, typer.Option("--backend", help="openai or local.")] = "openai",
    model: Annotated[
        str | None, typer.Option("--model", help="Model name (openai: gpt-4) or base spec (local: smollm2 or a dir).")
    ] = None,
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="OpenAI-compatible endpoint (vLLM, llama.cpp, Ollama).")
    ] = None,
    adapter: Annotated[Path | None, typer.Option("--adapter", help="LoRA adapter directory (local backend).")] = None,
    device: Annotated[str | None, typer.Option("--device", help="Torch device (local backend).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Prompts per batch (local backend).")] = 4,
    max_input_tokens: Annotated[
        int, typer.Option("--max-input-tokens", help="Longer prompts are recorded as failures (local backend).")
    ] = 2048,
    stop: Annotated[
        list[str] | None,
        typer.Option("--stop", help="Stop sequence of the local backend (repeat; default: a blank line; '' disables)."),
    ] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Requests in flight (openai backend).")] = 8,
    rpm: Annotated[float | None, typer.Option("--rpm", help="Requests-per-minute limit (openai backend).")] = None,
    max_cost: Annotated[float | None, typer.Option("--max-cost", help="Stop cleanly at this cost in USD.")] = None,
    price: Annotated[
        str | None, typer.Option("--price", help="USD per 1k prompt,completion tokens (overrides the table).")
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per request (openai backend).")] = 120.0,
    max_retries: Annotated[int, typer.Option("--max-retries", help="Retries per request on 429/5xx/timeouts.")] = 6,
    target_per_code: Annotated[
        int | None, typer.Option("--target-per-code", help="Generate until K accepted notes per code.")
    ] = None,
    max_attempts: Annotated[
        int, typer.Option("--max-attempts", help="Attempts per sample (x K per code) before giving up.")
    ] = 3,
    min_recall: Annotated[float, typer.Option("--min-recall", help="Minimum symptom recall of a note.")] = 0.5,
    max_similarity: Annotated[
        float, typer.Option("--max-similarity", help="Maximum share of shingles copied from the example.")
    ] = 0.6,
    template: Annotated[
        str, typer.Option("--template", help="paper_ru, demographics_ru, paper_en or a template JSON file.")
    ] = "paper_ru",
    temperature: Annotated[float, typer.Option("--temperature", help="Sampling temperature.")] = 1.0,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Maximum tokens per note.")] = 1024,
    store: Annotated[
        Path | None, typer.Option("--store", help="Store directory (default: $MEDSYN_STORE or .medsyn/store).")
    ] = None,
    endpoint: Annotated[
        str | None, typer.Option("--endpoint", help="SPARQL endpoint URL to use instead of the embedded store.")
    ] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
) -> None:
    """Generate synthetic notes (rerun the same command to resume an interrupted run)."""
    from medsyn.backends import get_backend
    from medsyn.backends.pricing import parse_price
    from medsyn.filtering import FilterConfig
    from medsyn.generation import GenerationConfig, generate, load_run_samples
    from medsyn.samples import read_samples
    from medsyn.store import open_store

    chosen = [name for name, v in (("--n", n), ("--plan", plan), ("--samples", samples)) if v is not None]
    if len(chosen) != 1:
        raise InputError("give exactly one of --n N, --plan weights --total N, or --samples FILE")
    if n is not None and n < 1:
        raise InputError(f"--n must be >= 1, got {n}")
    from medsyn.samples import MAX_SAMPLES

    for flag, value in (("--n", n), ("--total", total)):
        if value is not None and value > MAX_SAMPLES:
            raise InputError(f"{flag} {value:,} is above the limit of {MAX_SAMPLES:,} notes per run; split the run")
    config = GenerationConfig(
        template=template,
        seed=seed,
        temperature=temperature,
        max_tokens=max_tokens,
        max_attempts=max_attempts,
        target_per_code=target_per_code,
        max_cost=max_cost,
        filter=FilterConfig(min_recall=min_recall, max_similarity=max_similarity),
    )
    options: dict[str, Any] = {"model": model, "seed": seed}
    if backend == "openai":
        options.update(
            base_url=base_url,
            concurrency=concurrency,
            rpm=rpm,
            timeout=timeout,
            max_retries=max_retries,
            price=parse_price(price) if price else None,
        )
    elif backend == "local":
        options.update(adapter=adapter, device=device, batch_size=batch_size, max_input_tokens=max_input_tokens)
        if stop is not None:
            options["stop"] = [x.replace("\\n", "\n").replace("\\t", "\t") for x in stop]
    be = get_backend(backend, **options)
    sampling = {
        "samples_file": str(samples.resolve()) if samples else None,
        "n": n,
        "plan": plan,
        "total": total,
        "overrides": sorted(override or []),
        "strategy": strategy,
        "codes": codes,
        "seed": seed,
    }
    given = read_samples(samples) if samples is not None else None  # bad input is reported before the store opens
    st = open_store(store if not endpoint else None, endpoint=endpoint)
    try:
        if given is not None:
            chosen_samples = given
        else:
            resumed = load_run_samples(out, sampling)
            chosen_samples = (
                resumed
                if resumed is not None
                else _sample(
                    st,
                    n=n,
                    plan=plan,
                    total=total,
                    overrides=override or [],
                    strategy=strategy,
                    seed=seed,
                    codes=codes,
                )
            )
        summary = generate(
            chosen_samples, out, store=st, backend=be, config=config, sampling=sampling, progress=progress
        )
    finally:
        with contextlib.suppress(Exception):
            st.close()
    s = summary
    console.print(
        f"run {s.run_id}: {s.status}; {s.accepted}/{s.requested} notes accepted, {s.rejected} rejected, "
        f"{s.failed} failed; {s.prompt_tokens + s.completion_tokens:,} tokens, ${s.cost_usd:.4f}; "
        f"{s.notes_per_s:.1f} attempts/s -> {out}",
        highlight=False,
    )
    if s.lost:
        console.print(
            f"[yellow]{s.lost} notes recorded in the store were missing from {out}[/] (lost lines); they were "
            "generated again under new ids and listed as 'lost' in failures.jsonl",
            highlight=False,
        )
    print(json.dumps(s.to_dict(), ensure_ascii=False))
    if s.status == "budget":
        console.print("[yellow]stopped at --max-cost[/]; raise it and rerun the same command to continue")


def register(app: typer.Typer) -> None:
    app.command("generate")(generate_command)
