"""``medsyn generate``: turn sampled medical facts into synthetic notes with provenance (resumable).

The backend's options are its own (:func:`medsyn.generation.backends.backend_options`): ``--option key=value``
sets any of them, read by its declared type; ``--model`` and the run's ``--seed`` and ``--max-tokens`` reach every
backend that declares them; the flags of :data:`BACKEND_FLAGS` are aliases of ``--option`` kept for the commands
and pipelines that use them.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand

from medsyn.atomic import check_output
from medsyn.cli.consoles import make_console
from medsyn.cli.options import path_of
from medsyn.cli.sampling import (
    CodesOpt,
    EndpointOpt,
    MinWordsOpt,
    NOpt,
    OverrideOpt,
    PlanOpt,
    SoftmaxTemperatureOpt,
    SourcesOpt,
    StoreOpt,
    StrategyOpt,
    StrategyOptionOpt,
    TotalOpt,
    sampling_request,
)
from medsyn.errors import ExitCode, InputError

if TYPE_CHECKING:
    from medsyn.generation.backends import Backend, BackendSpec
    from medsyn.generation.config import GenerationConfig, RunSummary
    from medsyn.sampling.draw import SamplingRequest

console = make_console(stderr=True)

BACKEND_FLAGS: dict[str, tuple[Any, str]] = {
    "base_url": (list[str], "openai; repeat it for a pool of replicas"),
    "server_cooldown": (float, "openai"),
    "concurrency": (int, "openai"),
    "rpm": (float, "openai"),
    "timeout": (float, "openai"),
    "max_retries": (int, "openai"),
    "price": (str, "openai; PROMPT,COMPLETION USD per 1k tokens"),
    "adapter": (Path, "local"),
    "device": (str, "local"),
    "batch_size": (int, "local"),
    "max_input_tokens": (int, "local, llamacpp"),
    "threads": (int, "llamacpp"),
    "parallel": (int, "llamacpp"),
}
"""Flags that set one backend option each (``--concurrency 4`` is ``--option concurrency=4``): the option's own
declaration types and documents it (``medsyn backends``); the CLI type here only parses the text early."""


def _with_backend_flags(command: Callable[..., None]) -> Callable[..., None]:
    """``command`` with one keyword option per :data:`BACKEND_FLAGS` entry; the ones given reach it as the dict
    ``backend_flags`` (unset ones are left out, so the backend keeps its own defaults)."""
    signature = inspect.signature(command, eval_str=True)
    flags = [
        inspect.Parameter(
            key,
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[
                kind | None,
                typer.Option(
                    f"--{key.replace('_', '-')}",
                    help=f"Backend option {key} ({where}).",
                    rich_help_panel="Backend option aliases (of --option KEY=VALUE)",
                ),
            ],
        )
        for key, (kind, where) in BACKEND_FLAGS.items()
    ]
    kept = [p for p in signature.parameters.values() if p.name != "backend_flags"]

    @functools.wraps(command)
    def run(**kwargs: Any) -> None:
        given = {k: v for k in BACKEND_FLAGS if (v := kwargs.pop(k)) not in (None, [])}
        command(**kwargs, backend_flags=given)

    run.__signature__ = signature.replace(parameters=[*kept, *flags])  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in run.__signature__.parameters.values()}  # type: ignore[attr-defined]
    return run


class _GenerateCommand(TyperCommand):
    """``generate`` whose help ends with each backend's options, read when the help is shown (so a plain run
    imports no backend it does not use)."""

    @property  # type: ignore[override]
    def epilog(self) -> str:
        from medsyn.generation.backends import backend_catalog

        lines = [
            f"{row['name']}: {', '.join(o['name'] for o in row.get('options', [])) or row.get('error', '')}"
            for row in backend_catalog()
        ]
        return "Backend options (--option KEY=VALUE; types and help: medsyn backends):\n\n" + "\n\n".join(lines)

    @epilog.setter
    def epilog(self, value: str | None) -> None:
        pass


OutOpt = Annotated[
    Path,
    typer.Option("--out", parser=path_of("--out"), help="Output directory (notes.jsonl, failures.jsonl, run.json)."),
]
SamplesOpt = Annotated[
    Path | None, typer.Option("--samples", help="Generate from this samples JSONL instead of sampling.")
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of sampling and generation.")]
BackendOpt = Annotated[
    str,
    typer.Option("--backend", help="A backend (medsyn backends lists them): openai, local, llamacpp or a plugin's."),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model", help="The backend's model option (openai: gpt-4; local/llamacpp: gemma3, smollm2, a dir, a .gguf)."
    ),
]
OptionOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--option", "-o", help="A backend option KEY=VALUE (repeat it; medsyn backends lists each backend's)."
    ),
]
StopOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--stop",
        help="Stop sequence (repeat; '' alone disables): overrides the template's (paper_fewshot_ru: a newline); "
        "without either, the local/llamacpp backends stop at a blank line.",
    ),
]
MaxCostOpt = Annotated[float | None, typer.Option("--max-cost", help="Stop cleanly at this cost in USD.")]
TargetOpt = Annotated[int | None, typer.Option("--target-per-code", help="Generate until K accepted notes per code.")]
AttemptsOpt = Annotated[
    int, typer.Option("--max-attempts", help="Attempts per sample (x K per code) before giving up.")
]
RecallOpt = Annotated[float, typer.Option("--min-recall", help="Minimum symptom recall of a note.")]
SimilarityOpt = Annotated[
    float, typer.Option("--max-similarity", help="Maximum share of shingles copied from the example.")
]
RepetitionOpt = Annotated[
    float, typer.Option("--max-repetition", help="Maximum share of repeated word 3-grams (generation loops).")
]
RestatementOpt = Annotated[
    float, typer.Option("--max-restatement", help="Reject novelty <= this (restates the symptoms); -1: off.")
]
NonwordOpt = Annotated[
    float, typer.Option("--max-nonword-rate", help="Maximum share of words no dictionary knows; -1: off.")
]
PhrasesOpt = Annotated[
    float,
    typer.Option(
        "--max-unseen-phrases",
        help="Maximum share of word pairs no real note of the graph holds (word salad); -1: off (the default).",
    ),
]
PiiOpt = Annotated[
    bool, typer.Option("--reject-pii", help="Reject notes holding personal data (names, dates, phone numbers).")
]
TemplateOpt = Annotated[
    str | None,
    typer.Option(
        "--template",
        help="paper_ru, paper_fewshot_ru, demographics_ru, paper_en or a template JSON file "
        "(default: the backend's, as medsyn backends lists).",
    ),
]
TemperatureOpt = Annotated[
    float, typer.Option("--temperature", help="The model's sampling temperature (not --softmax-temperature).")
]
MaxTokensOpt = Annotated[int, typer.Option("--max-tokens", help="Maximum tokens per note.")]
ShotsOpt = Annotated[
    int | None,
    typer.Option("--shots", help="Real example notes per prompt of a few-shot template (default: the template's)."),
]
ShotSelectionOpt = Annotated[
    str,
    typer.Option(
        "--shot-selection",
        help="How a few-shot prompt's real notes are chosen: 'random' (seeded, within the category) or "
        "'overlap' (the notes stating most of the sample's symptoms first, ties seeded).",
    ),
]
CandidatesOpt = Annotated[
    int,
    typer.Option(
        "--candidates",
        help="Completions per attempt (distinct seeds); the one the filter ranks best is kept (best-of-N).",
    ),
]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")]
EngineOpt = Annotated[
    str,
    typer.Option(
        "--engine",
        help="'local': this process sends the requests; 'ray': Ray Data maps them over a Ray cluster's workers "
        "(pip install 'medsyn[ray]'; docs/generation.md).",
    ),
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option("--ray-address", help="The Ray cluster to run on with --engine ray (default: a local Ray)."),
]
ShardRowsOpt = Annotated[
    int | None,
    typer.Option("--shard-rows", help="With --engine ray: attempts per shard, the unit a rerun of a killed run skips."),
]
RayWorkersOpt = Annotated[
    int | None,
    typer.Option("--ray-workers", help="With --engine ray: model-call tasks at once, each --concurrency requests."),
]


@_with_backend_flags
def generate_command(
    out: OutOpt,
    n: NOpt = None,
    plan: PlanOpt = None,
    total: TotalOpt = None,
    override: OverrideOpt = None,
    samples: SamplesOpt = None,
    strategy: StrategyOpt = "paper",
    codes: CodesOpt = None,
    seed: SeedOpt = 0,
    softmax_temperature: SoftmaxTemperatureOpt = 10.0,
    strategy_option: StrategyOptionOpt = None,
    sources: SourcesOpt = "wikimed",
    min_words: MinWordsOpt = 30,
    backend: BackendOpt = "openai",
    model: ModelOpt = None,
    option: OptionOpt = None,
    stop: StopOpt = None,
    max_cost: MaxCostOpt = None,
    target_per_code: TargetOpt = None,
    max_attempts: AttemptsOpt = 3,
    min_recall: RecallOpt = 0.5,
    max_similarity: SimilarityOpt = 0.6,
    max_repetition: RepetitionOpt = 0.3,
    max_restatement: RestatementOpt = 0.35,
    max_nonword_rate: NonwordOpt = 0.05,
    max_unseen_phrases: PhrasesOpt = -1.0,
    reject_pii: PiiOpt = False,
    template: TemplateOpt = None,
    temperature: TemperatureOpt = 1.0,
    max_tokens: MaxTokensOpt = 1024,
    shots: ShotsOpt = None,
    shot_selection: ShotSelectionOpt = "random",
    candidates: CandidatesOpt = 1,
    store: StoreOpt = None,
    endpoint: EndpointOpt = None,
    progress: ProgressOpt = True,
    engine: EngineOpt = "local",
    ray_address: RayAddressOpt = None,
    shard_rows: ShardRowsOpt = None,
    ray_workers: RayWorkersOpt = None,
    backend_flags: dict[str, Any] | None = None,
) -> None:
    """Generate synthetic notes (rerun the same command to resume an interrupted run)."""
    from medsyn.generation.backends import BackendSpec, default_template
    from medsyn.generation.config import GenerationConfig
    from medsyn.generation.filter import FilterConfig
    from medsyn.generation.prompts import DEFAULT_TEMPLATE

    check_output(out, folder=True)
    request = _sampling(n, plan, total, samples, override=override, codes=codes, strategy=strategy, seed=seed,
                        softmax_temperature=softmax_temperature, strategy_option=strategy_option, sources=sources,
                        min_words=min_words)  # fmt: skip
    # Stop sequences travel with every request (the template's, or these), so one parsed value serves all backends.
    stops = tuple(x.replace("\\n", "\n").replace("\\t", "\t") for x in stop if x) if stop is not None else None
    limits = FilterConfig(min_recall=min_recall, max_similarity=max_similarity, max_repetition=max_repetition,
                          max_restatement=max_restatement, max_nonword_rate=max_nonword_rate,
                          max_unseen_phrases=max_unseen_phrases, reject_pii=reject_pii)  # fmt: skip
    config = GenerationConfig(
        template=template or default_template(backend) or DEFAULT_TEMPLATE,
        seed=seed, temperature=temperature, max_tokens=max_tokens, max_attempts=max_attempts,
        target_per_code=target_per_code, max_cost=max_cost, filter=limits, shots=shots, stop=stops,
        shot_selection=shot_selection, candidates=candidates,
    )  # fmt: skip
    named = {"model": model} if model is not None else {}
    spec = BackendSpec(backend, tuple(option or []), {**(backend_flags or {}), **named},
                       {"seed": seed, "max_tokens": max_tokens})  # fmt: skip
    where = _engine(engine, spec, address=ray_address, shard_rows=shard_rows, workers=ray_workers)
    summary = _run(out, request, samples, spec.build(), config, store=store, endpoint=endpoint, progress=progress,
                   engine=where)  # fmt: skip
    _report(summary, out)


def _sampling(
    n: int | None, plan: str | None, total: int | None, samples: Path | None, **how: Any
) -> SamplingRequest | None:
    """The draw this run asks for (None: the samples come from a file); exactly one way must be given."""
    from medsyn.sampling.samples import MAX_SAMPLES

    if (samples is not None) == (n is not None or plan is not None):
        raise InputError("give exactly one of --n N, --plan weights [--total N], or --samples FILE")
    for flag, value in (("--n", n), ("--total", total)):
        if value is not None and value > MAX_SAMPLES:
            raise InputError(f"{flag} {value:,} is above the limit of {MAX_SAMPLES:,} notes per run; split the run")
    return None if samples is not None else sampling_request(n=n, plan=plan, total=total, **how)


def _engine(engine: str, spec: BackendSpec, **ray: Any) -> dict[str, Any] | None:
    """The Ray run's arguments (None: this process generates); a bad choice is refused before anything runs."""
    if engine not in ("local", "ray"):
        raise InputError(f"--engine must be 'local' or 'ray', got {engine!r}")
    given = {k: v for k, v in ray.items() if v is not None}
    if engine == "local":
        if given:
            flags = {"address": "--ray-address", "shard_rows": "--shard-rows", "workers": "--ray-workers"}
            raise InputError(f"{', '.join(flags[k] for k in given)}: only with --engine ray")
        return None
    return {"spec": spec, **given}


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
    engine: dict[str, Any] | None = None,
) -> RunSummary:
    """Open the store, take the samples (an earlier run's, a drawn set or a file) and generate: in this process, or
    with ``engine`` (:func:`_engine`) on Ray."""
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
        how = {"config": config, "sampling": sampling, "progress": progress, "command": ["medsyn", *sys.argv[1:]]}
        if engine is not None:
            from medsyn.generation.ray_engine import generate_ray

            return generate_ray(chosen_samples, out, store=st, backend=engine.pop("spec"), built=backend, **engine,
                                **how)  # fmt: skip
        return generate(chosen_samples, out, store=st, backend=backend, **how)
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
    app.command("generate", cls=_GenerateCommand)(generate_command)
