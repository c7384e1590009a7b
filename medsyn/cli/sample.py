"""``medsyn sample`` and ``medsyn weights``: draw samples from the knowledge graph, show the code weights."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from medsyn.errors import InputError

console = Console()

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
TotalOpt = Annotated[int, typer.Option("--total", help="Notes to share between categories by weight.")]

AUTHORS_TOTAL = 2491
"""The total the authors shared by weight in make_taskgen.py (before forcing Z00 to 10)."""


def _open(store: Path | None, endpoint: str | None) -> Any:
    from medsyn.paths import default_store_dir
    from medsyn.store import open_store

    return open_store(None if endpoint else (store or default_store_dir()), endpoint=endpoint, read_only=True)


def _split(items: list[str] | None) -> list[str]:
    return [c for item in items or [] for c in item.replace(",", " ").split()]


def weights(
    store: StoreOpt = None,
    endpoint: EndpointOpt = None,
    total: TotalOpt = AUTHORS_TOTAL,
    override: OverrideOpt = None,
    sources: SourcesOpt = "wikimed",
    min_words: MinWordsOpt = 30,
) -> None:
    """Print the code weights w(C) = J3(N_symp) * J3(N_exmp) and the planned notes per category."""
    from medsyn.weights import code_weights, parse_overrides, plan_counts

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
    table.caption = f"planned total {sum(plan.values())} (requested {total})"
    console.print(table)


def sample(
    out: Annotated[Path, typer.Option("--out", help="Samples JSONL file to write (atomically).")],
    n: Annotated[int | None, typer.Option("--n", help="Samples to draw, categories by weight.")] = None,
    strategy: Annotated[str, typer.Option("--strategy", help="Sampling strategy: paper or softmax.")] = "paper",
    seed: Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives the same samples.")] = 0,
    codes: Annotated[
        list[str] | None, typer.Option("--codes", help="Only these categories or codes (comma-separated or repeated).")
    ] = None,
    plan: Annotated[
        str | None, typer.Option("--plan", help="'weights': exact counts round(w/sum(w)*total) instead of --n.")
    ] = None,
    total: TotalOpt = AUTHORS_TOTAL,
    override: OverrideOpt = None,
    temperature: Annotated[float, typer.Option("--temperature", help="Softmax temperature T (softmax only).")] = 10.0,
    workers: Annotated[int, typer.Option("--workers", help="Worker processes.")] = 1,
    sources: SourcesOpt = "wikimed",
    min_words: MinWordsOpt = 30,
    store: StoreOpt = None,
    endpoint: EndpointOpt = None,
) -> None:
    """Draw samples (code, symptoms, example note...) from the knowledge graph into a JSONL file."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from medsyn.samples import write_samples
    from medsyn.sampling import draw_samples
    from medsyn.vocab import normalize_code
    from medsyn.weights import code_weights, parse_overrides, plan_counts

    if plan is not None and plan != "weights":
        raise InputError(f"unknown plan {plan!r}; the only plan is 'weights'")
    if plan is not None and n is not None:
        raise InputError("give either --n or --plan weights, not both")
    if plan is None and n is None:
        raise InputError("give --n N (categories drawn by weight) or --plan weights --total T")
    if plan is None and override:
        raise InputError("--override applies to --plan weights only")
    selected = _split(codes)
    started = time.perf_counter()
    kg = _open(store, endpoint)
    try:
        counts = None
        if plan is not None:
            ws = code_weights(kg, sources=sources, min_words=min_words)
            if selected:
                known = {w.category for w in ws}
                cats = {normalize_code(c)[:3] for c in selected}
                for c in sorted(cats - known):
                    raise InputError(
                        f"unknown code {c}: no category with symptoms from {sources}; see `medsyn weights`"
                    )
                ws = [w for w in ws if w.category in cats]
            counts = plan_counts(ws, total, overrides=parse_overrides(override or []))
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
            samples = draw_samples(
                kg,
                n=n,
                plan=counts,
                strategy=strategy,
                seed=seed,
                codes=selected or None,
                workers=workers,
                temperature=temperature,
                sources=sources,
                min_words=min_words,
                progress=lambda k: bar.advance(task, k),
            )
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


def register(app: typer.Typer) -> None:
    """Add the top-level ``sample`` and ``weights`` commands."""
    app.command("sample")(sample)
    app.command("weights")(weights)
