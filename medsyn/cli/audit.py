"""``medsyn audit``: where did a note come from, does a generated set match its provenance, what did a run do."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.tree import Tree

from medsyn.atomic import check_output
from medsyn.cli.consoles import make_console
from medsyn.cli.options import number_of, path_of
from medsyn.errors import ExitCode

if TYPE_CHECKING:
    from medsyn.kg.store import Store

app = typer.Typer(help="Audit provenance: note lineage, integrity of generated sets, runs and sources.")
console = make_console()

StoreOpt = Annotated[
    Path | None, typer.Option("--store", help="Store directory (default: $MEDSYN_STORE or .medsyn/store).")
]
EndpointOpt = Annotated[
    str | None, typer.Option("--endpoint", help="SPARQL endpoint URL to use instead of the embedded store.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


@contextlib.contextmanager
def _opened(store: Path | None, endpoint: str | None) -> Iterator[Store]:
    from medsyn.kg.opener import open_store
    from medsyn.paths import default_store_dir

    s = open_store(None if endpoint else (store or default_store_dir()), endpoint=endpoint, read_only=True)
    try:
        yield s
    finally:
        s.close()


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _tail(iri: Any) -> str:
    return str(iri).rsplit("/", 1)[-1] if iri else "?"


@app.command()
def note(
    note_id: Annotated[str, typer.Argument(help="Synthetic note id (or IRI).")],
    as_json: JsonOpt = False,
    store: StoreOpt = None,
    endpoint: EndpointOpt = None,
) -> None:
    """The full lineage of one note as a tree."""
    from medsyn.audit import note_lineage

    with _opened(store, endpoint) as s:
        lin = note_lineage(s, note_id)
    if as_json:
        _echo_json(lin.to_json())
        return
    f = lin.facts
    tree = Tree(f"[bold]note {f.get('noteId', _tail(lin.note))}[/]  sha256 {f.get('hash', '?')}")
    state = "accepted" if f.get("accepted") else "rejected" + (f": {f['reason']}" if f.get("reason") else "")
    tree.add(f"{state}; scores {f.get('scores', '{}')}; generated {f.get('generatedAt', '?')}")
    run = tree.add(f"[bold]run[/] {_tail(f.get('run'))}  (graph {_tail(lin.graph)})")
    run.add(f"started {f.get('runStart', '?')}, ended {f.get('runEnd', '?')}, seed {f.get('runSeed', '?')}")
    if f.get("parameters"):
        run.add(f"parameters {f['parameters']}")
    model = tree.add(f"[bold]model[/] {f.get('backend', '?')} / {f.get('model', '?')}")
    model.add(f"adapter sha256 {f['adapter']}" if f.get("adapter") else "no adapter")
    tree.add(f"[bold]prompt template[/] {f.get('templateLabel', '?')}  sha256 {f.get('templateHash', '?')}")
    gen = tree.add(f"[bold]generation[/] {f.get('genStart', '?')} → {f.get('genEnd', '?')}")
    gen.add(f"seed {f.get('seed', '?')}" + (f", attempt {f['attempt']}" if "attempt" in f else ""))
    if "promptTokens" in f or "cost" in f:
        gen.add(f"tokens {f.get('promptTokens', 0)} + {f.get('completionTokens', 0)}, cost ${f.get('cost', 0)}")
    version = f.get("graphVersion") or f.get("runGraphVersion") or "?"
    current = lin.current_graph_version
    note_v = "" if current is None or current == version else f"  [yellow](graph now at {current})[/]"
    gen.add(f"graph version {version}{note_v}")
    code = tree.add(
        f"[bold]code[/] {f.get('usedNotation') or _tail(f.get('usedCode'))} (note label {f.get('noteCode')})"
    )
    syms = code.add(f"[bold]symptoms[/] ({len(lin.symptoms)})")
    for sym in lin.symptoms:
        label = sym["label"] or _tail(sym["symptom"])
        node = syms.add(label + (f"  [yellow]→ now {_tail(sym['replaced_by'])}[/]" if sym["replaced_by"] else ""))
        if not sym["sources"]:
            node.add("[red]no knowledge source links it to the code now[/]")
        for src in sym["sources"]:
            node.add(f"{src['label'] or _tail(src['source'])} (weight {src['weight']})")
    tree.add(f"[bold]example note[/] {f.get('exampleId', '?')} from {_tail(f.get('exampleSource'))}")
    console.print(tree)


@app.command()
def verify(
    folder: Annotated[Path, typer.Argument(help="Generation output directory (notes.jsonl, failures.jsonl).")],
    run: Annotated[str | None, typer.Option("--run", help="Compare with this run (default: from the folder).")] = None,
    as_json: JsonOpt = False,
    limit: Annotated[
        int, typer.Option("--limit", parser=number_of("--limit", at_least=0), help="Rows shown per problem kind.")
    ] = 30,
    store: StoreOpt = None,
    endpoint: EndpointOpt = None,
) -> None:
    """Recompute note hashes and compare with the provenance; exit 1 on altered, missing or unrecorded notes."""
    from medsyn.audit import verify as do_verify

    with _opened(store, endpoint) as s:
        report = do_verify(s, folder, run=run)
    if as_json:
        _echo_json(report.to_json())
    else:
        t = Table(title=f"audit verify {folder} (runs: {', '.join(_tail(r) for r in report.runs) or 'none'})")
        t.add_column("result")
        t.add_column("notes", justify="right")
        t.add_row("checked", str(report.checked))
        t.add_row("hash matches", str(report.ok), style="green")
        for name, items in (("altered", report.altered), ("missing", report.missing)):
            t.add_row(name, str(len(items)), style="red" if items else "dim")
        t.add_row("unrecorded", str(len(report.unrecorded)), style="red" if report.unrecorded else "dim")
        console.print(t)
        if report.failed:
            d = Table(title="problems")
            d.add_column("kind")
            d.add_column("note")
            d.add_column("detail", overflow="fold")
            rows = [
                ("altered", a["id"], f"recorded {a['recorded'][:16]}…, file {a['actual'][:16]}…")
                for a in report.altered
            ]
            rows += [("missing", m, "in provenance, not in the folder") for m in report.missing]
            rows += [("unrecorded", u, "in the folder, no provenance") for u in report.unrecorded]
            for r in rows[:limit]:
                d.add_row(*r, style="red")
            console.print(d)
    if report.failed:
        raise typer.Exit(ExitCode.FINDING)


@app.command("run")
def run_cmd(
    run: Annotated[str | None, typer.Argument(help="Run id (or IRI); omit to list runs.")] = None,
    as_json: JsonOpt = False,
    store: StoreOpt = None,
    endpoint: EndpointOpt = None,
) -> None:
    """A run's counts, models, cost, acceptance rate and codes covered (no RUN: list the runs)."""
    from medsyn.audit import list_runs, run_summary

    with _opened(store, endpoint) as s:
        if run is None:
            runs = list_runs(s)
            if as_json:
                _echo_json(runs)
                return
            t = Table(title="generation runs")
            for col in ("run", "started", "ended", "notes"):
                t.add_column(col)
            for r in runs:
                t.add_row(_tail(r["run"]), str(r.get("start", "")), str(r.get("end", "")), str(r["notes"]))
            console.print(t)
            return
        summary = run_summary(s, run)
    if as_json:
        _echo_json(summary.to_json())
        return
    f = summary.facts
    t = Table(title=f"run {_tail(summary.run)}")
    t.add_column("")
    t.add_column("value", overflow="fold")
    cost = "not recorded" if summary.cost_usd is None else f"${summary.cost_usd:.4f}"
    for k, v in (
        ("started", f.get("start")),
        ("ended", f.get("end")),
        ("seed", f.get("seed")),
        ("graph version", f.get("graphVersion")),
        ("notes", summary.notes),
        ("accepted", f"{summary.accepted} ({summary.acceptance_rate:.1%})"),
        ("models", ", ".join(f"{m} ({n})" for m, n in summary.models.items())),
        ("tokens", f"{f.get('promptTokens', '?')} prompt + {f.get('completionTokens', '?')} completion"),
        ("cost", cost),
        ("codes covered", f"{len(summary.codes)}: " + ", ".join(f"{c} ({n})" for c, n in summary.codes.items())),
    ):
        t.add_row(k, str(v if v is not None else "?"))
    console.print(t)


@app.command()
def sources(
    run: Annotated[str | None, typer.Option("--run", help="Only notes of this run.")] = None,
    as_json: JsonOpt = False,
    store: StoreOpt = None,
    endpoint: EndpointOpt = None,
) -> None:
    """Which knowledge sources contributed to how many notes (sampled symptoms and example notes)."""
    from medsyn.audit import sources_summary
    from medsyn.cli.progress import steps

    with _opened(store, endpoint) as s, steps("audit sources", None) as step:
        step("tracing each note's symptoms and example to their sources (one query)")
        rows = sources_summary(s, run=run)
    if as_json:
        _echo_json(rows)
        return
    t = Table(title="knowledge sources behind the notes" + (f" of run {run}" if run else ""))
    for col in ("source", "label", "notes", "symptoms"):
        t.add_column(col, justify="right" if col in ("notes", "symptoms") else "left")
    for r in rows:
        t.add_row(_tail(r["source"]), str(r.get("label") or ""), str(r["notes"]), str(r["symptoms"]))
    console.print(t)


@app.command("export-prov")
def export_prov_command(
    run: Annotated[str, typer.Argument(help="Run id (or IRI).")],
    fmt: Annotated[str, typer.Option("--format", help="provn (PROV-N), provjson (PROV-JSON) or ttl.")] = "provn",
    out: Annotated[
        Path | None, typer.Option("--out", parser=path_of("--out"), help="File to write (default: standard output).")
    ] = None,
    store: StoreOpt = None,
    endpoint: EndpointOpt = None,
) -> None:
    """A run's provenance as a W3C PROV document written through the `prov` package (what PROV tools read)."""
    from medsyn.atomic import atomic_write_text
    from medsyn.audit import export_prov

    if out is not None:
        check_output(out, folder=False)
    with _opened(store, endpoint) as s:
        text = export_prov(s, run, fmt=fmt)
    if out is None:
        typer.echo(text)
    else:
        atomic_write_text(out, text if text.endswith("\n") else text + "\n")
        typer.echo(f"wrote {out} ({fmt}, {len(text):,} characters)", err=True)


@app.command("reprov")
def reprov_command(
    folder: Annotated[Path, typer.Argument(help="A medsyn generate output folder.")],
    store: StoreOpt = None,
    endpoint: EndpointOpt = None,
) -> None:
    """Write a run's provenance again from its folder (idempotent): brings runs recorded by an older MedSyn up to
    the current PROV-O layout that `kg validate`'s SHACL shapes check."""
    from medsyn.audit import rerecord
    from medsyn.kg.opener import open_store
    from medsyn.paths import default_store_dir

    s = open_store(None if endpoint else (store or default_store_dir()), endpoint=endpoint)
    try:
        run_id, n = rerecord(s, folder)
    finally:
        s.close()
    typer.echo(f"run {run_id}: provenance of {n} notes written again")
