"""``medsyn export``: generated runs (and the authors' sets) as one shareable dataset folder with a card."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated

import typer

from medsyn.cli.consoles import make_console
from medsyn.cli.options import path_of

console = make_console(stderr=True)


def export_command(
    inputs: Annotated[
        list[Path],
        typer.Argument(help="medsyn generate output folders, or RuMedTop3-layout JSONL files (the authors' sets)."),
    ],
    out: Annotated[
        Path, typer.Option("--out", parser=path_of("--out"), help="Dataset folder to write (replaced as a whole).")
    ],
    fmt: Annotated[str, typer.Option("--format", help="jsonl or parquet.")] = "jsonl",
    on_near_copy: Annotated[
        str,
        typer.Option(
            "--on-near-copy", help="A note copying a real one (exact, or word 5-gram Jaccard >= 0.8): drop, flag, fail."
        ),
    ] = "drop",
    store: Annotated[
        Path | None,
        typer.Option("--store", help="Store the runs were generated with (default: $MEDSYN_STORE or .medsyn/store)."),
    ] = None,
    endpoint: Annotated[
        str | None, typer.Option("--endpoint", help="SPARQL endpoint URL instead of the store.")
    ] = None,
    evaluation: Annotated[
        Path | None,
        typer.Option(
            "--evaluation",
            help="An `eval upsample` report folder: its graph-only control (what the text adds) goes into the card.",
        ),
    ] = None,
    privacy: Annotated[
        Path | None,
        typer.Option("--privacy", help="An `eval privacy` report folder: its figures go into the card and prov.ttl."),
    ] = None,
    check_privacy: Annotated[
        bool,
        typer.Option(
            "--check-privacy",
            help="Run `eval privacy`'s checks (membership inference, personal data) on the exported notes.",
        ),
    ] = False,
) -> None:
    """Merge runs into RuMedTop3-compatible records (jsonl or Parquet) with a dataset card; no real note inside."""
    from medsyn.kg.opener import open_store
    from medsyn.paths import default_store_dir
    from medsyn.sharing.export import export

    s = open_store(None if endpoint else (store or default_store_dir()), endpoint=endpoint, read_only=True)
    try:
        r = export(
            inputs,
            out,
            store=s,
            fmt=fmt,
            on_near_copy=on_near_copy,
            command=["medsyn", "export", *sys.argv[2:]],
            evaluation=evaluation,
            privacy=privacy,
            check_privacy=check_privacy,
        )
    finally:
        with contextlib.suppress(Exception):
            s.close()
    typer.echo(
        f"exported {len(r.records)} notes over {len(r.per_code)} codes from {len(r.sources)} input(s) -> {r.out} "
        f"({r.format}); near-copy check against {r.real_notes} real notes: {r.exact} exact, {r.near} near "
        f"(Jaccard >= 0.8), {r.dropped} dropped, {r.flagged} flagged"
        + (f"; {r.duplicates} duplicate ids skipped" if r.duplicates else "")
    )
    for line in (r.privacy or {}).get("failures", []):
        console.print(f"[yellow]privacy goal not met:[/] {line}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("export")(export_command)
