"""``medsyn generate``: turn sampled medical facts into synthetic notes with provenance (resumable)."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from medsyn.atomic import check_output
from medsyn.cli.options import number_of, path_of
from medsyn.cli.sampling import (
    CodesOpt,
    MinWordsOpt,
    NOpt,
    OverrideOpt,
    PlanOpt,
    SoftmaxTemperatureOpt,
    SourcesOpt,
    StrategyOpt,
    TotalOpt,
    sampling_request,
)
from medsyn.errors import ExitCode, InputError

if TYPE_CHECKING:
    from medsyn.generation.backends import Backend
    from medsyn.generation.config import GenerationConfig, RunSummary
    from medsyn.sampling.draw import SamplingRequest

console = Console(stderr=True)

DEFAULT_TEMPLATES = {"openai": "paper_ru", "local": "paper_fewshot_ru", "llamacpp": "paper_fewshot_ru"}
"""The prompt a backend gets without --template: the paper's chat prompt for chat models (GPT-4), the few-shot
completion prompt for the small local base models."""


def generate_command(
    out: Annotated[
        Path,
        typer.Option(
            "--out", parser=path_of("--out"), help="Output directory (notes.jsonl, failures.jsonl, run.json)."
        ),
    ],
    n: NOpt = None,
    plan: PlanOpt = None,
    total: TotalOpt = None,
    override: OverrideOpt = None,
    samples: Annotated[
        Path | None, typer.Option("--samples", help="Generate from this samples JSONL instead of sampling.")
    ] = None,
    strategy: StrategyOpt = "paper",
    codes: CodesOpt = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of sampling and generation.")] = 0,
    softmax_temperature: SoftmaxTemperatureOpt = 10.0,
    sources: SourcesOpt = "wikimed",
    min_words: MinWordsOpt = 30,
    backend: Annotated[
        str, typer.Option("--backend", help="openai, local (transformers) or llamacpp (GGUF in llama.cpp).")
    ] = "openai",
    model: Annotated[
        str | None,
        typer.Option(
            "--model", help="Model name (openai: gpt-4) or base spec (local/llamacpp: gemma3, smollm2, a dir, a .gguf)."
        ),
    ] = None,
    base_url: Annotated[
        list[str] | None,
        typer.Option(
            "--base-url",
            help="OpenAI-compatible endpoint (vLLM, llama.cpp, TGI, Ollama); repeat it for a pool of replicas: each "
            "request goes to the least-loaded one, a failing one is taken out and tried again later.",
        ),
    ] = None,
    server_cooldown: Annotated[
        float, typer.Option("--server-cooldown", help="Seconds a failing server of a pool is left out (doubling).")
    ] = 5.0,
    adapter: Annotated[Path | None, typer.Option("--adapter", help="LoRA adapter directory (local backend).")] = None,
    device: Annotated[str | None, typer.Option("--device", help="Torch device (local backend).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Prompts per batch (local backend).")] = 4,
    max_input_tokens: Annotated[
        int, typer.Option("--max-input-tokens", help="Longer prompts are recorded as failures (local backend).")
    ] = 2048,
    stop: Annotated[
        list[str] | None,
        typer.Option(
            "--stop",
            help="Stop sequence (repeat; '' alone disables): overrides the template's (paper_fewshot_ru: a newline); "
            "without either, the local/llamacpp backends stop at a blank line.",
        ),
    ] = None,
    threads: Annotated[int, typer.Option("--threads", help="CPU threads per decode step (llamacpp backend).")] = 1,
    parallel: Annotated[int, typer.Option("--parallel", help="Requests decoded at once (llamacpp backend slots).")] = 1,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Requests in flight (openai backend).")] = 8,
    rpm: Annotated[float | None, typer.Option("--rpm", help="Requests-per-minute limit (openai backend).")] = None,
    max_cost: Annotated[float | None, typer.Option("--max-cost", help="Stop cleanly at this cost in USD.")] = None,
    price: Annotated[
        str | None, typer.Option("--price", help="USD per 1k prompt,completion tokens (overrides the table).")
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            parser=number_of("--timeout", kind=float, above=0),
            help="Seconds per request (openai backend).",
        ),
    ] = 120.0,
    max_retries: Annotated[
        int,
        typer.Option(
            "--max-retries",
            parser=number_of("--max-retries", at_least=0),
            help="Retries per request on 429/5xx/timeouts.",
        ),
    ] = 6,
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
    max_repetition: Annotated[
        float, typer.Option("--max-repetition", help="Maximum share of repeated word 3-grams (generation loops).")
    ] = 0.3,
    max_restatement: Annotated[
        float, typer.Option("--max-restatement", help="Reject novelty <= this (restates the symptoms); -1: off.")
    ] = 0.35,
    max_nonword_rate: Annotated[
        float, typer.Option("--max-nonword-rate", help="Maximum share of words no dictionary knows; -1: off.")
    ] = 0.05,
    reject_pii: Annotated[
        bool, typer.Option("--reject-pii", help="Reject notes holding personal data (names, dates, phone numbers).")
    ] = False,
    template: Annotated[
        str | None,
        typer.Option(
            "--template",
            help="paper_ru, paper_fewshot_ru, demographics_ru, paper_en or a template JSON file "
            "(default: paper_ru for openai, paper_fewshot_ru for local and llamacpp).",
        ),
    ] = None,
    temperature: Annotated[
        float, typer.Option("--temperature", help="The model's sampling temperature (not --softmax-temperature).")
    ] = 1.0,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Maximum tokens per note.")] = 1024,
    shots: Annotated[
        int | None,
        typer.Option("--shots", help="Real example notes per prompt of a few-shot template (default: the template's)."),
    ] = None,
    shot_selection: Annotated[
        str,
        typer.Option(
            "--shot-selection",
            help="How a few-shot prompt's real notes are chosen: 'random' (seeded, within the category) or "
            "'overlap' (the notes stating most of the sample's symptoms first, ties seeded).",
        ),
    ] = "random",
    candidates: Annotated[
        int,
        typer.Option(
            "--candidates",
            help="Completions per attempt (distinct seeds); the one the filter ranks best is kept (best-of-N).",
        ),
    ] = 1,
    store: Annotated[
        Path | None, typer.Option("--store", help="Store directory (default: $MEDSYN_STORE or .medsyn/store).")
    ] = None,
    endpoint: Annotated[
        str | None, typer.Option("--endpoint", help="SPARQL endpoint URL to use instead of the embedded store.")
    ] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
) -> None:
    """Generate synthetic notes (rerun the same command to resume an interrupted run)."""
    check_output(out, folder=True)
    from medsyn.generation.backends import get_backend
    from medsyn.generation.backends.pricing import parse_price
    from medsyn.generation.config import GenerationConfig
    from medsyn.generation.filter import FilterConfig
    from medsyn.sampling.samples import MAX_SAMPLES

    if (samples is not None) == (n is not None or plan is not None):
        raise InputError("give exactly one of --n N, --plan weights [--total N], or --samples FILE")
    for flag, value in (("--n", n), ("--total", total)):
        if value is not None and value > MAX_SAMPLES:
            raise InputError(f"{flag} {value:,} is above the limit of {MAX_SAMPLES:,} notes per run; split the run")
    request = None
    if samples is None:
        request = sampling_request(
            n=n,
            plan=plan,
            total=total,
            override=override,
            codes=codes,
            strategy=strategy,
            seed=seed,
            softmax_temperature=softmax_temperature,
            sources=sources,
            min_words=min_words,
        )
    # Stop sequences travel with every request (the template's, or these), so one parsed value serves all backends.
    stops = tuple(x.replace("\\n", "\n").replace("\\t", "\t") for x in stop if x) if stop is not None else None
    config = GenerationConfig(
        template=template or DEFAULT_TEMPLATES.get(backend, "paper_ru"),
        seed=seed,
        temperature=temperature,
        max_tokens=max_tokens,
        max_attempts=max_attempts,
        target_per_code=target_per_code,
        max_cost=max_cost,
        filter=FilterConfig(
            min_recall=min_recall,
            max_similarity=max_similarity,
            max_repetition=max_repetition,
            max_restatement=max_restatement,
            max_nonword_rate=max_nonword_rate,
            reject_pii=reject_pii,
        ),
        shots=shots,
        stop=stops,
        shot_selection=shot_selection,
        candidates=candidates,
    )
    # Each backend gets only the options it takes: get_backend refuses any other.
    options: dict[str, Any] = {"model": model}
    if backend == "openai":
        options.update(
            seed=seed,
            base_url=base_url,
            server_cooldown=server_cooldown,
            concurrency=concurrency,
            rpm=rpm,
            timeout=timeout,
            max_retries=max_retries,
            price=parse_price(price) if price else None,
        )
    elif backend == "local":
        options.update(adapter=adapter, max_input_tokens=max_input_tokens, device=device, batch_size=batch_size)
    elif backend == "llamacpp":
        options.update(
            adapter=adapter,
            max_input_tokens=max_input_tokens,
            max_tokens=max_tokens,
            threads=threads,
            parallel=parallel,
        )
    be = get_backend(backend, **options)
    summary = _run(out, request, samples, be, config, store=store, endpoint=endpoint, progress=progress)
    _report(summary, out)


def _run(
    out: Path,
    request: SamplingRequest | None,
    samples: Path | None,
    backend: Backend,
    config: GenerationConfig,
    *,
    store: Path | None,
    endpoint: str | None,
    progress: bool,
) -> RunSummary:
    """Open the store, take the samples (an earlier run's, a drawn set or a file) and generate."""
    from medsyn.generation.engine import generate
    from medsyn.generation.run_folder import load_run_samples
    from medsyn.kg.opener import open_store
    from medsyn.sampling.samples import read_samples

    given = read_samples(samples) if samples is not None else None  # bad input is reported before the store opens
    st = open_store(store if not endpoint else None, endpoint=endpoint)
    try:
        sampling: dict[str, Any] = {}
        chosen_samples: list[Any] = []
        if request is not None:
            sampling = request.to_dict()
            chosen_samples = load_run_samples(out, sampling) or request.draw(st)
        elif samples is not None and given is not None:
            sampling = {"samples_file": str(samples.resolve())}
            chosen_samples = given
        return generate(
            chosen_samples,
            out,
            store=st,
            backend=backend,
            config=config,
            sampling=sampling,
            progress=progress,
            command=["medsyn", *sys.argv[1:]],
        )
    finally:
        with contextlib.suppress(Exception):
            st.close()


def _report(s: RunSummary, out: Path) -> None:
    """The run's line, its JSON summary on stdout, and exit 1 when nothing was accepted."""
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
    elif s.status == "incomplete":
        console.print(
            "[yellow]incomplete[/]: some samples used up --max-attempts without an accepted note "
            "(failures.jsonl has the reasons)",
            highlight=False,
        )
    if s.produced_nothing:
        from medsyn.generation.run_folder import failure_reasons

        why = failure_reasons(out)
        console.print(
            f"[red]no note was accepted[/] in {s.attempts} attempts"
            + (f" ({why})" if why else "")
            + f"; every reason is in {out / 'failures.jsonl'}",
            highlight=False,
        )
        raise typer.Exit(ExitCode.FINDING)


def register(app: typer.Typer) -> None:
    app.command("generate")(generate_command)
