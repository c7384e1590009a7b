"""``medsyn onto``: curate the knowledge graph — add, remove, relabel, merge; diff, check, snapshot, OWL round trip."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from medsyn.atomic import check_output
from medsyn.cli.consoles import make_console
from medsyn.cli.options import number_of, path_of
from medsyn.errors import ExitCode

if TYPE_CHECKING:
    from medsyn.curation.edits import Result
    from medsyn.kg.store import Store

app = typer.Typer(
    help="Curate the knowledge graph: every change is validated, atomic and recorded (PROV-O, graph/curation).",
    no_args_is_help=True,
)
console = make_console()

StoreOpt = Annotated[
    Path | None, typer.Option("--store", help="Store directory (default: $MEDSYN_STORE or .medsyn/store).")
]
EndpointOpt = Annotated[
    str | None, typer.Option("--endpoint", help="SPARQL endpoint URL to use instead of the embedded store.")
]
ByOpt = Annotated[str | None, typer.Option("--by", help="Curator name for the record (default: your login name).")]
DryOpt = Annotated[bool, typer.Option("--dry-run", help="Validate and show the change without writing it.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
SHOW_QUADS = 40


@contextlib.contextmanager
def _opened(
    store: Path | None, endpoint: str | None, *, read_only: bool = False, create: bool = False
) -> Iterator[Store]:
    from medsyn.kg.opener import open_store
    from medsyn.paths import default_store_dir

    s = open_store(
        None if endpoint else (store or default_store_dir()), endpoint=endpoint, read_only=read_only, create=create
    )
    try:
        yield s
    finally:
        s.close()


def _short(term: Any) -> str:
    """A term for a table cell: prefixed IRIs, literals as "value"@lang or "value"^^xsd:type."""
    from pyoxigraph import Literal

    from medsyn.kg.vocab import GRAPH, ID, PREFIXES

    if isinstance(term, Literal):
        if term.language:
            return f'"{term.value}"@{term.language}'
        dt = _short(term.datatype)
        return f'"{term.value}"' if dt == "xsd:string" else f'"{term.value}"^^{dt}'
    text = str(term)
    if text.startswith("<") and text.endswith(">"):
        iri = text[1:-1]
        for base, prefix in ((ID, "id:"), (GRAPH, "graph:")):
            if iri.startswith(base):
                return prefix + iri[len(base) :]
        for prefix, ns in PREFIXES.items():
            if iri.startswith(ns):
                return f"{prefix}:{iri[len(ns) :]}"
    return text


def _show(result: Result) -> None:
    table = Table(title=f"{result.operation}: {result.description}", show_lines=False)
    for col in ("", "graph", "subject", "predicate", "object"):
        table.add_column(col, overflow="fold")
    rows = [("-", q) for q in result.removed] + [("+", q) for q in result.added]
    for sign, q in rows[:SHOW_QUADS]:
        style = "red" if sign == "-" else "green"
        table.add_row(sign, _short(q.graph_name), _short(q.subject), _short(q.predicate), _short(q.object), style=style)
    console.print(table)
    if len(rows) > SHOW_QUADS:
        console.print(f"... and {len(rows) - SHOW_QUADS} more quads")
    state = "committed" if result.committed else "[yellow]dry run: validated, nothing written[/]"
    console.print(
        f"+{len(result.added)} -{len(result.removed)} quads, {state}; record {_short(f'<{result.activity.value}>')}"
    )


@app.command("add-symptom")
def add_symptom(
    code: Annotated[str, typer.Argument(help="ICD-10 code, e.g. M54.5.")],
    label: Annotated[str, typer.Argument(help="Symptom label, e.g. 'боль в пояснице'.")],
    weight: Annotated[float, typer.Option("--weight", help="Raw weight (> 0; 1.0 for unweighted sources).")] = 1.0,
    source: Annotated[
        str, typer.Option("--source", help="Knowledge source asserting the link (default: the curator source).")
    ] = "curation",
    lang: Annotated[str, typer.Option("--lang", help="Language tag of a new symptom's label.")] = "ru",
    by: ByOpt = None,
    dry_run: DryOpt = False,
    store: StoreOpt = None,
    endpoint: EndpointOpt = None,
) -> None:
    """Link a symptom to a code (creating the symptom if new); an existing link gets the new weight."""
    from medsyn.curation import edits as curation

    with _opened(store, endpoint) as s:
        _show(curation.add_symptom(s, code, label, weight=weight, source=source, lang=lang, by=by, dry_run=dry_run))


@app.command()
def remove(
    label: Annotated[str, typer.Argument(help="Symptom label (or IRI).")],
    code: Annotated[str | None, typer.Option("--code", help="Only the link to this code.")] = None,
    source: Annotated[str | None, typer.Option("--source", help="Only links asserted by this source.")] = None,
    by: ByOpt = None,
    dry_run: DryOpt = False,
    store: StoreOpt = None,
    endpoint: EndpointOpt = None,
) -> None:
    """Remove a symptom's links (all of them, or of one code / source); the symptom goes with its last link."""
    from medsyn.curation import edits as curation

    with _opened(store, endpoint) as s:
        _show(curation.remove_symptom(s, label, code=code, source=source, by=by, dry_run=dry_run))


@app.command()
def relabel(
    target: Annotated[str, typer.Argument(help="An ICD-10 code or a symptom label (or IRI).")],
    new_label: Annotated[str, typer.Argument(help="The new label.")],
    lang: Annotated[str, typer.Option("--lang", help="Language tag of the label.")] = "ru",
    by: ByOpt = None,
    dry_run: DryOpt = False,
    store: StoreOpt = None,
    endpoint: EndpointOpt = None,
) -> None:
    """Relabel a code, or a symptom (its links move to the IRI of the new label; the old label stays as altLabel)."""
    from medsyn.curation import edits as curation

    with _opened(store, endpoint) as s:
        _show(curation.relabel(s, target, new_label, lang=lang, by=by, dry_run=dry_run))


@app.command("merge-symptoms")
def merge_symptoms(
    keep: Annotated[str, typer.Argument(help="Symptom to keep (label or IRI).")],
    drop: Annotated[str, typer.Argument(help="Duplicate to fold into it (label or IRI).")],
    by: ByOpt = None,
    dry_run: DryOpt = False,
    store: StoreOpt = None,
    endpoint: EndpointOpt = None,
) -> None:
    """Merge a duplicate symptom into another: links move (larger weight wins), labels become altLabels."""
    from medsyn.curation import edits as curation

    with _opened(store, endpoint) as s:
        _show(curation.merge_symptoms(s, keep, drop, by=by, dry_run=dry_run))


@app.command()
def diff(
    old: Annotated[Path, typer.Argument(help="Store directory or RDF file (nq, trig, ttl, owl...).")],
    new: Annotated[Path, typer.Argument(help="Store directory or RDF file.")],
    as_json: JsonOpt = False,
    limit: Annotated[
        int, typer.Option("--limit", parser=number_of("--limit", at_least=0), help="Rows shown per table.")
    ] = 50,
) -> None:
    """What changed between two versions: classes, codes, symptoms, links and weights. Exit 1 when they differ."""
    from medsyn.curation.diff import diff_paths

    d = diff_paths(old, new)
    if as_json:
        typer.echo(json.dumps(d.to_json(), ensure_ascii=False, indent=2, default=str))
    else:
        _show_diff(d, limit)
    if not d.empty:
        raise typer.Exit(ExitCode.FINDING)


def _show_diff(d: Any, limit: int) -> None:
    summary = Table(title="onto diff")
    summary.add_column("change")
    summary.add_column("count", justify="right")
    for k, v in d.counts().items():
        summary.add_row(k.replace("_", " "), str(v), style="bold" if v else "dim")
    console.print(summary)
    if d.empty:
        console.print("[green]no differences[/]")
        return
    t = Table(title="details")
    for col in ("change", "what", "old", "new"):
        t.add_column(col, overflow="fold")
    rows: list[tuple[str, str, str, str]] = []
    rows += [("+ class", _short(f"<{c}>"), "", "") for c in d.added_classes]
    rows += [("- class", _short(f"<{c}>"), "", "") for c in d.removed_classes]
    rows += [("+ code", c, "", "") for c in d.added_codes]
    rows += [("- code", c, "", "") for c in d.removed_codes]
    rows += [(f"~ code {c['field']}", c["code"], str(c["old"]), str(c["new"])) for c in d.changed_codes]
    rows += [("+ symptom", "; ".join(s["labels"]) or s["symptom"], "", "") for s in d.added_symptoms]
    rows += [("- symptom", "; ".join(s["labels"]) or s["symptom"], "", "") for s in d.removed_symptoms]
    rows += [("~ symptom label", s["symptom"], "; ".join(s["old"]), "; ".join(s["new"])) for s in d.relabelled_symptoms]
    rows += [("+ link", f"{x['code']} — {x['label']} ({x['source']})", "", f"{x['weight']}") for x in d.added_links]
    rows += [("- link", f"{x['code']} — {x['label']} ({x['source']})", f"{x['weight']}", "") for x in d.removed_links]
    rows += [
        ("~ weight", f"{x['code']} — {x['label']} ({x['source']})", f"{x['old']}", f"{x['new']}")
        for x in d.changed_weights
    ]
    for r in rows[:limit]:
        t.add_row(*r, style="green" if r[0][0] == "+" else "red" if r[0][0] == "-" else "yellow")
    console.print(t)
    if len(rows) > limit:
        console.print(f"... and {len(rows) - limit} more (use --limit or --json)")


@app.command()
def check(
    as_json: JsonOpt = False,
    limit: Annotated[
        int, typer.Option("--limit", parser=number_of("--limit", at_least=0), help="Groups and codes shown per table.")
    ] = 30,
    store: StoreOpt = None,
    endpoint: EndpointOpt = None,
) -> None:
    """Curator work list: near-duplicate symptom labels and codes without symptoms, parent or label."""
    from medsyn.curation.check import check as run_check
    from medsyn.curation.check import merge_commands

    with _opened(store, endpoint, read_only=True) as s:
        report = run_check(s)
    if as_json:
        typer.echo(json.dumps(report.to_json(), ensure_ascii=False, indent=2, default=str))
        return
    summary = Table(title="onto check")
    summary.add_column("finding")
    summary.add_column("count", justify="right")
    for k, v in report.counts().items():
        summary.add_row(k.replace("_", " "), str(v), style="bold" if v else "dim")
    console.print(summary)
    if report.duplicate_groups:
        t = Table(title="near-duplicate symptoms (same content stems)")
        t.add_column("keep (most links)")
        t.add_column("duplicates")
        t.add_column("merge with")
        for g in report.duplicate_groups[:limit]:
            others = ", ".join(f"{x.label} ({x.links})" for x in g[1:])
            t.add_row(f"{g[0].label} ({g[0].links})", others, "\n".join(merge_commands(g)))
        console.print(t)
    for title, rows in (
        ("codes used by example notes without any symptom", report.codes_without_symptoms),
        ("codes without parent", report.codes_without_parent),
        ("codes without label", report.codes_without_label),
        ("codes referenced but not in the hierarchy", report.unmapped_codes),
    ):
        if rows:
            t = Table(title=title)
            for col in rows[0]:
                t.add_column(col)
            for r in rows[:limit]:
                t.add_row(*(_short(f"<{v}>") if isinstance(v, str) and "://" in v else str(v) for v in r.values()))
            console.print(t)


@app.command()
def snapshot(
    out: Annotated[Path, typer.Option("--out", parser=path_of("--out"), help="N-Quads file to write.")],
    store: StoreOpt = None,
    endpoint: EndpointOpt = None,
) -> None:
    """Save the whole dataset as N-Quads, to undo curation later with `onto restore`."""
    from medsyn.curation.snapshot import snapshot as take

    check_output(out, folder=False)
    with _opened(store, endpoint, read_only=True) as s:
        size = take(s, out)
    console.print(f"wrote {out} ({size:,} bytes)")


@app.command()
def restore(
    path: Annotated[Path, typer.Argument(help="Snapshot file from `onto snapshot`.")],
    by: ByOpt = None,
    store: StoreOpt = None,
    endpoint: EndpointOpt = None,
) -> None:
    """Make the knowledge graphs equal to a snapshot's, in one update (runs and the curation record are kept)."""
    from medsyn.curation.snapshot import restore as put_back

    if not path.is_file():  # checked before a missing store is created for it
        from medsyn.errors import InputError

        raise InputError("snapshot file not found", path=path)
    with _opened(store, endpoint, create=True) as s:
        r = put_back(s, path, by=by)
    console.print(f"restored: +{r.added} -{r.removed} quads in {len(r.graphs)} graph(s)")


@app.command("export-owl")
def export_owl(
    out: Annotated[Path, typer.Option("--out", parser=path_of("--out"), help="RDF/XML file to write (.owl).")],
    with_symptoms: Annotated[
        bool, typer.Option("--with-symptoms", help="Include symptoms and their links (for browsing).")
    ] = False,
    store: StoreOpt = None,
    endpoint: EndpointOpt = None,
) -> None:
    """Export the ontology and ICD-10 hierarchy as OWL (RDF/XML) for Protégé or owlready2."""
    from medsyn.curation.owl import export_owl as export

    check_output(out, folder=False)
    with _opened(store, endpoint, read_only=True) as s:
        n = export(s, out, with_symptoms=with_symptoms)
    console.print(f"wrote {out} ({n:,} triples)")


@app.command("import-owl")
def import_owl(
    path: Annotated[Path, typer.Argument(help="Edited OWL file (RDF/XML, Turtle...).")],
    by: ByOpt = None,
    dry_run: DryOpt = False,
    store: StoreOpt = None,
    endpoint: EndpointOpt = None,
) -> None:
    """Replace the ontology and ICD-10 graphs with an edited OWL file, validated, in one update."""
    from medsyn.curation.owl import import_owl as do_import

    with _opened(store, endpoint) as s:
        r = do_import(s, path, by=by, dry_run=dry_run)
    if not r.added and not r.removed:
        console.print("no change: the file matches the store")
    else:
        state = "committed" if r.committed else "dry run: validated, nothing written"
        console.print(f"+{r.added} -{r.removed} quads, {state}")
    if r.ignored:
        console.print(f"[dim]{r.ignored} triples about symptoms/sources ignored (edit them with onto commands)[/]")


@app.command()
def history(
    limit: Annotated[
        int, typer.Option("--limit", parser=number_of("--limit", at_least=0), help="Newest activities shown.")
    ] = 20,
    as_json: JsonOpt = False,
    store: StoreOpt = None,
    endpoint: EndpointOpt = None,
) -> None:
    """The curation record: who changed what, when."""
    from medsyn.kg.queries import run_named
    from medsyn.kg.store import to_python

    with _opened(store, endpoint, read_only=True) as s:
        rows = [{k: to_python(v) for k, v in r.items()} for r in run_named(s, "curation/history")][:limit]
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2, default=str))
        return
    t = Table(title="curation history (newest first)")
    for col in ("when", "who", "operation", "change", "+", "-"):
        t.add_column(col, overflow="fold")
    for r in rows:
        t.add_row(
            str(r.get("start", "")),
            str(r.get("agentName", "")),
            str(r.get("operation", "")),
            str(r.get("change", "")),
            str(r.get("added", "")),
            str(r.get("removed", "")),
        )
    console.print(t)
