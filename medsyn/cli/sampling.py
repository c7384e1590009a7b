"""``medsyn sample`` and ``medsyn weights``: draw samples from the knowledge graph, show the code weights."""

from __future__ import annotations

import math
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from medsyn.atomic import check_output
from medsyn.cli.consoles import make_console
from medsyn.cli.options import path_of
from medsyn.errors import InputError, ParameterError

if TYPE_CHECKING:
    from medsyn.sampling.draw import SamplingRequest

console = make_console()

StoreOpt = Annotated[
    Path | None, typer.Option("--store", help="Store directory (default: $MEDSYN_STORE or .medsyn/store).")
]
EndpointOpt = Annotated[
    str | None, typer.Option("--endpoint", help="SPARQL endpoint URL to use instead of the embedded store.")
]
SourcesOpt = Annotated[
    str, typer.Option("--sources", help="Symptom sources of the categories and the paper strategy, comma-separated.")
]
MinWordsOpt = Annotated[int, typer.Option("--min-words", help="Words an example note needs to count in N_exmp.")]
OverrideOpt = Annotated[
    list[str] | None, typer.Option("--override", help="Fixed count of a category in the plan, e.g. Z00=10; repeatable.")
]
TotalOpt = Annotated[
    int | None,
    typer.Option("--total", help="Notes to share between categories by weight (default: the authors' 2491)."),
]

# The sampling options of `medsyn sample` and `medsyn generate`: one definition, turned into one
# medsyn.sampling.draw.SamplingRequest by `sampling_request`.
NOpt = Annotated[int | None, typer.Option("--n", help="Samples to draw, categories by weight.")]
PlanOpt = Annotated[
    str | None,
    typer.Option(
        "--plan",
        help="'weights': exactly --total samples shared by weight (largest remainder); "
        "'topup': --total samples to the categories with the fewest real notes first. Not with --n.",
    ),
]
StrategyOpt = Annotated[
    str, typer.Option("--strategy", help="Sampling strategy: paper, softmax or a plugin's (see `medsyn strategies`).")
]
StrategyOptionOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--strategy-option",
        help="An option of the selected strategy as KEY=VALUE, e.g. temperature=5; repeatable. "
        "`medsyn strategies` lists each strategy's options; an unknown one is refused.",
    ),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives the same samples.")]
CodesOpt = Annotated[
    list[str] | None, typer.Option("--codes", help="Only these categories or codes (comma-separated or repeated).")
]
SoftmaxTemperatureOpt = Annotated[
    float | None,
    typer.Option(
        "--softmax-temperature",
        help="T of the softmax strategy's softmax(weight / T) over symptoms: short for --strategy-option "
        "temperature=T, used by the strategies that declare a temperature.",
    ),
]


def sampling_request(
    *,
    n: int | None,
    plan: str | None,
    total: int | None,
    override: list[str] | None,
    codes: list[str] | None,
    strategy: str,
    seed: int,
    softmax_temperature: float | None = None,
    strategy_option: list[str] | None = None,
    sources: str = "wikimed",
    min_words: int = 30,
) -> SamplingRequest:
    """The options above as a :class:`medsyn.sampling.draw.SamplingRequest` (checked there)."""
    from medsyn.sampling.draw import SamplingRequest
    from medsyn.sampling.strategies import parse_strategy_options

    picked = _split(codes)
    if codes is not None and not picked:  # `--codes ''` used to mean every code, silently
        raise InputError("--codes: no code given; name categories or codes (e.g. --codes M54,J45) or leave it out")
    given = parse_strategy_options(strategy, strategy_option) if strategy_option else {}
    return SamplingRequest(
        n=n,
        plan=plan,
        total=total,
        overrides=tuple(override or ()),
        codes=tuple(picked),
        strategy=strategy,
        seed=seed,
        strategy_options=_with_temperature(strategy, given, softmax_temperature),
        sources=sources,
        min_words=min_words,
    )


def _with_temperature(strategy: str, options: dict[str, Any], temperature: float | None) -> dict[str, Any]:
    """``--softmax-temperature T`` as the strategy's ``temperature`` option. It predates per-strategy options and
    was always accepted (and ignored by strategies without a temperature), so it still is; --strategy-option wins."""
    if temperature is None:
        return options
    if not (math.isfinite(temperature) and temperature > 0):
        raise ParameterError(f"{{softmax_temperature}} must be a positive number, got {temperature}")
    from medsyn.sampling.strategies import describe_options

    if "temperature" in {o.name for o in describe_options(strategy)}:
        return {"temperature": temperature, **options}
    return options


def _open(store: Path | None, endpoint: str | None) -> Any:
    from medsyn.kg.opener import open_store
    from medsyn.paths import default_store_dir

    return open_store(None if endpoint else (store or default_store_dir()), endpoint=endpoint, read_only=True)


def _split(items: list[str] | None) -> list[str]:
    return [c for item in items or [] for c in item.replace(",", " ").split()]


def weights(
    store: StoreOpt = None,
    endpoint: EndpointOpt = None,
    total: TotalOpt = None,
    override: OverrideOpt = None,
    sources: SourcesOpt = "wikimed",
    min_words: MinWordsOpt = 30,
) -> None:
    """Print the code weights w(C) = J3(N_symp) * J3(N_exmp) and the planned notes per category."""
    from medsyn.sampling.tables import code_weights
    from medsyn.sampling.weights import parse_overrides, plan_counts

    kg = _open(store, endpoint)
    try:
        ws = code_weights(kg, sources=sources, min_words=min_words)
    finally:
        kg.close()
    plan = plan_counts(ws, total, overrides=parse_overrides(override or []))
    mass = sum(w.weight for w in ws) or 1.0
    table = Table(title=f"Code weights ({len(ws)} categories, {sum(w.weight > 0 for w in ws)} with weight > 0)")
    for col, justify in [
        ("category", "left"),
        ("N_exmp", "right"),
        ("codes", "right"),
        ("symptoms", "right"),
        ("N_symp", "right"),
        ("w(C)", "right"),
        ("share", "right"),
        ("planned", "right"),
    ]:
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for w in sorted(ws, key=lambda w: (-w.weight, w.category)):
        table.add_row(
            w.category,
            str(w.n_examples),
            str(w.n_codes),
            str(w.n_symptoms),
            f"{w.n_symp:.2f}",
            f"{w.weight:.4f}",
            f"{100 * w.weight / mass:.2f}%",
            str(plan[w.category]),
        )
    table.caption = f"planned total {sum(plan.values())}"
    console.print(table)


def sample(
    out: Annotated[
        Path, typer.Option("--out", parser=path_of("--out"), help="Samples JSONL file to write (atomically).")
    ],
    n: NOpt = None,
    strategy: StrategyOpt = "paper",
    seed: SeedOpt = 0,
    codes: CodesOpt = None,
    plan: PlanOpt = None,
    total: TotalOpt = None,
    override: OverrideOpt = None,
    strategy_option: StrategyOptionOpt = None,
    softmax_temperature: SoftmaxTemperatureOpt = None,
    workers: Annotated[int, typer.Option("--workers", help="Worker processes.")] = 1,
    sources: SourcesOpt = "wikimed",
    min_words: MinWordsOpt = 30,
    store: StoreOpt = None,
    endpoint: EndpointOpt = None,
) -> None:
    """Draw samples (code, symptoms, example note...) from the knowledge graph into a JSONL file."""
    check_output(out, folder=False)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from medsyn.sampling.samples import write_samples

    request = sampling_request(
        n=n,
        plan=plan,
        total=total,
        override=override,
        codes=codes,
        strategy=strategy,
        seed=seed,
        softmax_temperature=softmax_temperature,
        strategy_option=strategy_option,
        sources=sources,
        min_words=min_words,
    )
    started = time.perf_counter()
    kg = _open(store, endpoint)
    try:
        counts = request.counts(kg)
        size = sum(counts.values()) if counts is not None else int(n or 0)
        with Progress(
            TextColumn("sampling"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=size < 50_000,
        ) as bar:
            task = bar.add_task("sampling", total=size)
            samples = request.draw_planned(kg, counts, workers=workers, progress=lambda k: bar.advance(task, k))
    finally:
        kg.close()
    write_samples(out, samples)
    elapsed = time.perf_counter() - started
    per_cat = Counter(s.category for s in samples)
    table = Table(title=f"{len(samples)} samples ({strategy}, seed {seed}) -> {out}")
    table.add_column("category")
    table.add_column("samples", justify="right")
    for cat, k in per_cat.most_common(10):
        table.add_row(cat, str(k))
    if len(per_cat) > 10:
        table.add_row(f"... {len(per_cat) - 10} more", str(sum(k for _, k in per_cat.most_common()[10:])))
    table.caption = f"{elapsed:.2f} s, {len(samples) / max(elapsed, 1e-9):,.0f} samples/s"
    console.print(table)


def strategies() -> None:
    """List the sampling strategies (built-in and plugins) with their options, defaults and help."""
    from medsyn.sampling.strategies import available_strategies, describe_options

    table = Table(title="Sampling strategies (--strategy NAME --strategy-option KEY=VALUE)")
    for col in ("strategy", "option", "type", "default", "help"):
        table.add_column(col)
    for name in available_strategies():
        try:
            opts = describe_options(name)
        except InputError as exc:  # a broken plugin is listed, not fatal: it fails again only when selected
            table.add_row(name, "", "", "", f"[red]{exc}[/]")
            continue
        if not opts:
            table.add_row(name, "-", "", "", "no options")
        for i, o in enumerate(opts):
            table.add_row(name if i == 0 else "", o.name, o.type_text, repr(o.default), o.help)
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add the top-level ``sample``, ``weights`` and ``strategies`` commands."""
    app.command("sample")(sample)
    app.command("weights")(weights)
    app.command("strategies")(strategies)
