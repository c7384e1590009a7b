"""``medsyn kg``: build, inspect, query, export and validate the knowledge graph."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from medsyn.atomic import check_output
from medsyn.cli.consoles import make_console
from medsyn.cli.options import path_of
from medsyn.errors import InputError, ValidationError

app = typer.Typer(help="Build, inspect, query, export and validate the knowledge graph.", no_args_is_help=True)
console = make_console()

StoreOpt = Annotated[
    Path | None, typer.Option("--store", help="Store directory (default: $MEDSYN_STORE or .medsyn/store).")
]
EndpointOpt = Annotated[
    str | None, typer.Option("--endpoint", help="SPARQL endpoint URL to use instead of the embedded store.")
]


def _store_dir(store: Path | None) -> Path:
    from medsyn.paths import default_store_dir

    return store if store is not None else default_store_dir()


def _open(store: Path | None, endpoint: str | None, *, read_only: bool = True) -> Any:
    from medsyn.kg.opener import open_store

    return open_store(_store_dir(store) if not endpoint else None, endpoint=endpoint, read_only=read_only)


def _counts_tables(class_counts: dict[str, int], graph_counts: dict[str, int]) -> tuple[Table, Table]:
    from medsyn.kg.vocab import GRAPH

    ct = Table(title="Instances per class")
    ct.add_column("class")
    ct.add_column("count", justify="right")
    for k, v in sorted(class_counts.items()):
        ct.add_row(k, f"{v:,}")
    gt = Table(title="Triples per named graph")
    gt.add_column("graph")
    gt.add_column("triples", justify="right")
    for k, v in sorted(graph_counts.items()):
        gt.add_row(k.removeprefix(GRAPH), f"{v:,}")
    gt.add_row("[bold]total[/]", f"[bold]{sum(graph_counts.values()):,}[/]")
    return ct, gt


@app.command()
def build(
    store: StoreOpt = None,
    sources: Annotated[
        list[str] | None,
        typer.Option(
            "--sources",
            help="Sources to build (repeat or comma-separate); 'all' adds the non-commercial sider4. "
            "Default: all but sider4.",
        ),
    ] = None,
    data: Annotated[Path | None, typer.Option("--data", help="Real-data folder (default: $MEDSYN_DATA).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    endpoint: EndpointOpt = None,
    discard_provenance: Annotated[
        bool,
        typer.Option(
            "--discard-provenance",
            help="Do not carry the generation runs (graph/run/*) and the curation record of the old store over.",
        ),
    ] = False,
) -> None:
    """Build the knowledge graph from the real data; replaces the store atomically.

    The store's lock is held for the whole build; a rebuild keeps the run provenance and the curation record.

    With --endpoint the graph is built locally in a temporary store, then published to the SPARQL server graph by
    graph (each named graph is replaced there).
    """
    from medsyn.kg.build import build_kg

    if endpoint:
        import tempfile

        from medsyn.kg.opener import open_store
        from medsyn.kg.remote_store import copy_graphs
        from medsyn.kg.store import OxigraphStore

        # Opened first: a bad URL or credentials setting is reported before minutes of building, not after.
        remote = open_store(endpoint=endpoint)
        with tempfile.TemporaryDirectory(prefix="medsyn-build-") as tmp:
            report = build_kg(Path(tmp) / "store", data=data, sources=sources, progress=not quiet)
            local = OxigraphStore(Path(tmp) / "store", read_only=True)
            try:
                sent = copy_graphs(local, remote)  # type: ignore[arg-type]
            finally:
                local.close()
                remote.close()
        console.print(f"published {sent:,} quads to {endpoint}", highlight=False)
    else:
        report = build_kg(
            _store_dir(store), data=data, sources=sources, progress=not quiet, discard_provenance=discard_provenance
        )
    ct, gt = _counts_tables(report.class_counts, report.graph_counts)
    console.print(ct)
    console.print(gt)
    for name, n in report.skipped.items():
        if n:
            console.print(f"[yellow]{name}[/]: {n:,} facts dropped (no ICD-10 mapping or unknown id)")
    if report.kept_quads:
        console.print(
            f"kept {report.kept_quads:,} quads of run provenance and curation record from the previous store "
            "(--discard-provenance drops them)",
            highlight=False,
        )
    elif report.dropped_quads:
        console.print(f"[yellow]dropped {report.dropped_quads:,} quads of provenance and curation record[/]")
    console.print(
        f"built [bold]{endpoint or report.store}[/] from {', '.join(report.sources)}: {report.triples:,} triples in "
        f"{report.seconds:.1f} s ({report.triples_per_second:,.0f} triples/s); version {report.version}",
        highlight=False,
    )


@app.command()
def sources(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per source, one a line.")] = False,
) -> None:
    """The knowledge sources `kg build --sources` knows (built-in and plugins), with their licences."""
    import json

    from medsyn.kg.importers import all_source_names, source_spec

    rows = []
    for name in all_source_names():
        try:
            spec = source_spec(name)
        except InputError as exc:  # a broken plugin is listed, not fatal: it fails again only when selected
            rows.append({"name": name, "error": str(exc)})
            continue
        rows.append(
            {
                "name": name,
                "default": spec.default,
                "non_commercial": spec.non_commercial,
                "license": spec.license,
                "description": spec.description,
                "module": spec.module,
            }
        )
    if as_json:
        sys.stdout.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        return
    table = Table(title="Knowledge sources (kg build --sources NAME,...; default: those marked)")
    for col in ("source", "default", "non-commercial", "licence", "what it adds"):
        table.add_column(col)
    for r in rows:
        if "error" in r:
            table.add_row(r["name"], "", "", "", f"[red]{r['error']}[/]")
        else:
            nc = "[bold]yes[/]" if r["non_commercial"] else "no"
            table.add_row(r["name"], "yes" if r["default"] else "no", nc, r["license"], r["description"])
    console.print(table)


@app.command()
def stats(store: StoreOpt = None, endpoint: EndpointOpt = None) -> None:
    """Counts per class and per named graph, and the graph version notes generated now would cite."""
    from medsyn.kg.stats import build_info, class_counts, graph_counts
    from medsyn.kg.version import graph_version

    s = _open(store, endpoint)
    try:
        ct, gt = _counts_tables(class_counts(s), graph_counts(s))
        info = build_info(s)
        version = graph_version(s)
    finally:
        s.close()
    console.print(ct)
    console.print(gt)
    if info:
        console.print(f"version {version} built {info['time']} from {', '.join(info['sources'])}", highlight=False)
    else:
        console.print("[yellow]no build record in graph/meta[/] (not built by `medsyn kg build`)")


FORMATS = ("table", "json", "xml", "csv", "tsv", "ttl", "nt")
"""``kg query -f``: SELECT and ASK take table, json, xml, csv, tsv; CONSTRUCT and DESCRIBE take table, json
(JSON-LD), xml (RDF/XML), ttl, nt."""


@app.command()
def query(
    file: Annotated[Path | None, typer.Argument(help="A .rq file.")] = None,
    expr: Annotated[str | None, typer.Option("-e", "--expr", help="Query text instead of a file.")] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="table | json | xml | csv | tsv (SELECT, ASK) | table | json | xml | ttl | nt (CONSTRUCT, DESCRIBE)",
        ),
    ] = "table",
    store: StoreOpt = None,
    endpoint: EndpointOpt = None,
) -> None:
    """Run a SPARQL query (default graph = union of all named graphs); results in the W3C formats."""
    from medsyn.kg.queries import read_query_file
    from medsyn.kg.store import in_child

    if fmt not in FORMATS:
        raise InputError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    if (file is None) == (expr is None):
        raise InputError("give either a query FILE or -e QUERY")

    def text() -> str:
        # A file is parsed first (file:line in a syntax error), by pyoxigraph too: only ever in the child below.
        return read_query_file(file) if file is not None else str(expr)

    def run(sparql: str) -> bytes:
        s = _open(store, endpoint)
        try:
            return format_result(s.results(sparql), fmt)  # before close: solutions are read lazily from the store
        finally:
            s.close()

    # The embedded engine can crash on a deeply nested or very long query (a segfault), in its parser as in the
    # file check: run them in a child process, so the user gets one error line, not exit 139.
    if endpoint:
        data = run(in_child(lambda: text().encode()).decode() if file is not None else str(expr))
    else:
        data = in_child(lambda: run(text()))
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def format_result(result: Any, fmt: str) -> bytes:
    """A :data:`medsyn.kg.store.QueryResult` written by pyoxigraph's serializers, or as a table (header: the query's
    variables, also when no row binds them)."""
    from pyoxigraph import QueryBoolean, QueryResultsFormat, RdfFormat, serialize

    from medsyn.kg.vocab import PREFIXES

    if isinstance(result, list):  # CONSTRUCT / DESCRIBE
        graph_formats = {
            "json": RdfFormat.JSON_LD,
            "xml": RdfFormat.RDF_XML,
            "ttl": RdfFormat.TURTLE,
            "nt": RdfFormat.N_TRIPLES,
        }
        if fmt == "table":
            return _table(["subject", "predicate", "object"], [list(t) for t in result])
        if fmt not in graph_formats:
            raise InputError(
                f"--format {fmt} is for SELECT and ASK; a CONSTRUCT or DESCRIBE gives triples: "
                "table, json, xml, ttl, nt"
            )
        prefixes = PREFIXES if fmt == "ttl" else None
        return _ends_line(serialize(result, format=graph_formats[fmt], prefixes=prefixes) or b"")
    result_formats = {
        "json": QueryResultsFormat.JSON,
        "xml": QueryResultsFormat.XML,
        "csv": QueryResultsFormat.CSV,
        "tsv": QueryResultsFormat.TSV,
    }
    if fmt in result_formats:
        return _ends_line(result.serialize(format=result_formats[fmt]))
    if fmt != "table":
        raise InputError(
            f"--format {fmt} is for CONSTRUCT and DESCRIBE; a SELECT or ASK gives table, json, xml, csv, tsv"
        )
    if isinstance(result, QueryBoolean):
        return b"true\n" if result else b"false\n"
    names = [v.value for v in result.variables]
    return _table(names, [list(sol) for sol in result])


def _table(names: list[str], rows: list[list[Any]]) -> bytes:
    table = Table(*names, caption=f"{len(rows)} rows")
    for r in rows:
        table.add_row(*("" if t is None else t.value for t in r))
    out = Console(file=io.StringIO(), width=console.width, force_terminal=False)
    out.print(table)
    return out.file.getvalue().encode("utf-8")  # type: ignore[attr-defined,no-any-return]


def _ends_line(data: bytes) -> bytes:
    """JSON and XML serializers end without a newline; a terminal prompt should not follow on the same line."""
    return data if data.endswith(b"\n") else data + b"\n"


@app.command()
def export(
    fmt: Annotated[str, typer.Option("--format", "-f", help="ttl | nt | nq | owl")] = "nq",
    graph: Annotated[str | None, typer.Option("--graph", help="Only this named graph (IRI).")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", parser=path_of("--out"), help="Output file (default: stdout).")
    ] = None,
    store: StoreOpt = None,
    endpoint: EndpointOpt = None,
) -> None:
    """Export the graph. ``owl`` = RDF/XML of the ontology and ICD-10 graphs (opens in owlready2/Protégé)."""
    from medsyn.kg.export import EXPORT_FORMATS, export_bytes

    if out is not None:  # a typo in the folder must not create a new tree
        check_output(out, folder=False)
    owl = fmt.lower() == "owl"
    if not owl and fmt.lower() not in EXPORT_FORMATS:
        raise InputError(f"--format: {fmt!r} is not one of {', '.join((*EXPORT_FORMATS, 'owl'))}")
    if owl and graph:
        raise InputError("--graph: the owl export always holds the ontology and every ICD-10 code")
    s = _open(store, endpoint)
    try:
        if owl:
            from medsyn.curation.owl import owl_bytes

            data = owl_bytes(s)[0]
        else:
            data = export_bytes(s, fmt, graph=graph)
    finally:
        s.close()
    if out is None:
        sys.stdout.buffer.write(data)
        return
    from medsyn.atomic import atomic_write_bytes

    atomic_write_bytes(out, data)
    console.print(f"wrote {out} ({len(data):,} bytes)", highlight=False)


@app.command()
def validate(
    store: StoreOpt = None,
    endpoint: EndpointOpt = None,
    reasoner: Annotated[bool, typer.Option(help="Also run HermiT on the ontology + ICD-10 hierarchy.")] = True,
    limit: Annotated[int, typer.Option(help="Offending rows shown per check.")] = 20,
    shacl: Annotated[
        bool, typer.Option(help="Also run the SHACL shapes of ontology/shapes.ttl on the provenance (run graphs).")
    ] = True,
) -> None:
    """SPARQL checks (sparql/checks/*.rq must return no rows), the provenance SHACL shapes and an OWL consistency
    check; non-zero on failure."""
    from medsyn.cli.progress import steps
    from medsyn.kg.validate import check_names, reason, run_checks, validate_provenance

    s = _open(store, endpoint)
    try:
        with steps("kg validate", len(check_names()) + shacl + reasoner) as step:
            results = run_checks(s, on_check=lambda name: step(f"check {name}"))
            if shacl:
                step("SHACL shapes on the provenance")
            prov_report = validate_provenance(s) if shacl else None
            if reasoner:
                step("OWL consistency (HermiT)")
            consistency = reason(s) if reasoner else None
    finally:
        s.close()
    table = Table(title="SPARQL checks")
    table.add_column("check")
    table.add_column("offending rows", justify="right")
    for name, rows in results.items():
        table.add_row(name, "[green]0[/]" if not rows else f"[red]{len(rows)}[/]")
    console.print(table)
    failed = {n: r for n, r in results.items() if r}
    for name, rows in failed.items():
        console.print(f"[red]{name}[/]:")
        for r in rows[:limit]:
            console.print("  " + "  ".join(f"{k}={v.value}" for k, v in r.items()), highlight=False)
        if len(rows) > limit:
            console.print(f"  ... {len(rows) - limit} more")
    if prov_report is not None:
        console.print(f"[{'green' if prov_report.conforms else 'red'}]{prov_report.summary()}[/]", highlight=False)
        for line in prov_report.problems[:limit]:
            console.print("  " + line, highlight=False, soft_wrap=True)
        if len(prov_report.problems) > limit:
            console.print(f"  ... {len(prov_report.problems) - limit} more")
    if consistency is not None:
        colour = "green" if consistency.consistent else "red"
        console.print(f"[{colour}]{consistency.summary()}[/]", highlight=False)
    shacl_failed = prov_report is not None and not prov_report.conforms
    if failed or shacl_failed or (consistency is not None and not consistency.consistent):
        parts = [f"{n} ({len(r)} rows)" for n, r in failed.items()]
        if shacl_failed:
            parts.append(f"SHACL provenance ({len(prov_report.problems)} violations)")  # type: ignore[union-attr]
        if consistency is not None and not consistency.consistent:
            parts.append("OWL inconsistency")
        raise ValidationError("graph failed validation: " + ", ".join(parts))
