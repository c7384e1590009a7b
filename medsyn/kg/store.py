"""The knowledge-graph store: one interface, an embedded Oxigraph implementation.

Every other module talks to a :class:`Store`; ``medsyn.kg.remote_store`` implements the same interface over a
SPARQL 1.1 endpoint. SELECT results are lists of ``{variable: pyoxigraph term}`` dicts on both.

>>> s = OxigraphStore.in_memory()
>>> s.update('INSERT DATA { GRAPH <urn:g> { <urn:a> <urn:p> "1" } }')
>>> [row["o"].value for row in s.query("SELECT ?o WHERE { ?s ?p ?o }")]
['1']
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import re
import signal
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any, NoReturn, Protocol, runtime_checkable

from pyoxigraph import (
    BlankNode,
    DefaultGraph,
    Literal,
    NamedNode,
    Quad,
    QueryBoolean,
    QuerySolutions,
    RdfFormat,
    Triple,
)
from pyoxigraph import (
    Store as _OxStore,
)

from medsyn.atomic import BUILDING, OLD, leftovers, recover_dir
from medsyn.errors import InputError, StoreError
from medsyn.kg.scopes import binding_sites, query_dataset
from medsyn.locks import acquire, is_held_here, lock_beside, release

Term = NamedNode | BlankNode | Literal | Triple
Row = dict[str, Term]
Bindings = Mapping[str, Term | str | int | float | bool]
QueryResult = QuerySolutions | QueryBoolean | list[Triple]
"""A query's result as pyoxigraph gives it (CONSTRUCT/DESCRIBE as a list of triples), for its own serializers."""

FORMATS: dict[str, RdfFormat] = {
    "ttl": RdfFormat.TURTLE,
    "turtle": RdfFormat.TURTLE,
    "nt": RdfFormat.N_TRIPLES,
    "nq": RdfFormat.N_QUADS,
    "trig": RdfFormat.TRIG,
    "owl": RdfFormat.RDF_XML,
    "rdf": RdfFormat.RDF_XML,
    "xml": RdfFormat.RDF_XML,
}


def bind_query(sparql: str, bindings: Bindings) -> str:
    r"""Bind parameters by a ``VALUES`` row at the start of each WHERE group that uses them.

    That is the outer WHERE group, or the WHERE group of the sub-SELECT a variable lives in (a row outside a
    sub-query would not reach into it; see :mod:`medsyn.kg.scopes`). A parameter the query does not use is
    refused. Terms are written in N-Triples syntax by pyoxigraph (escaped), so a bound string can never alter the
    query. Works the same on every SPARQL 1.1 engine, unlike engine-specific substitution.

    >>> print(bind_query("SELECT ?s WHERE { ?s ?p ?o }", {"o": 'x" }'}))
    SELECT ?s WHERE { VALUES (?o) { ("x\" }") } ?s ?p ?o }
    """
    for n in bindings:
        if not n.isidentifier():
            raise InputError(f"invalid SPARQL parameter name {n!r}")
    terms = {n: str(to_term(v)) for n, v in bindings.items()}
    sites = binding_sites(sparql, list(bindings))
    for pos in sorted(sites, reverse=True):
        names = sites[pos]
        values = "VALUES (" + " ".join("?" + n for n in names) + ") { (" + " ".join(terms[n] for n in names) + ") }"
        rest = sparql[pos + 1 :].lstrip(" ")
        sparql = sparql[: pos + 1] + " " + values + ("" if rest[:1].isspace() else " ") + rest
    return sparql


_ERROR_AT = re.compile(r"error at (\d+):(\d+)")
_PREFIX_USE = re.compile(r"(?<![\w<#/.:-])([A-Za-z][\w.-]*)?:(?=[\w%])")
_PREFIX_DECL = re.compile(r"PREFIX\s+([A-Za-z][\w.-]*)?:", re.IGNORECASE)


def sparql_syntax_error(exc: SyntaxError, sparql: str, path: str | Path | None = None) -> InputError:
    r"""One line for a SPARQL syntax error, naming the line (and the file when given) instead of the parser's dump
    of expected characters; an undeclared prefix is named with the PREFIX line that declares it.

    >>> from pyoxigraph import Store as Oxigraph
    >>> q = "SELECT ?c WHERE {\n  ?c a ms:ICD10Category .\n}"
    >>> try:
    ...     Oxigraph().query(q)
    ... except SyntaxError as e:
    ...     print(sparql_syntax_error(e, q, "q.rq"))
    q.rq:2: prefix ms: is not declared; add PREFIX ms: <https://w3id.org/medsyn/ontology#> at the top
    """
    from medsyn.kg.vocab import PREFIXES

    text = str(exc)
    at = _ERROR_AT.search(text)
    line = int(at.group(1)) if at else None
    if "Prefix not found" in text and line is not None:
        declared = {m.group(1) or "" for m in _PREFIX_DECL.finditer(sparql)}
        row = _IRI.sub(" ", sparql.split("\n")[line - 1] if line <= sparql.count("\n") + 1 else "")
        missing = [m.group(1) or "" for m in _PREFIX_USE.finditer(row) if (m.group(1) or "") not in declared]
        if missing:
            name = missing[0]
            iri = PREFIXES.get(name, "IRI")
            where = "" if path is not None else f" (line {line})"
            message = f"prefix {name}: is not declared{where}; add PREFIX {name}: <{iri}> at the top"
            return InputError(message, path=path, line=line if path is not None else None)
    # The parser lists every character it would have accepted: the position and the first words are what help.
    detail = text.split(" expected one of ")[0] if "..=" in text else text
    if at:
        detail = detail.replace(at.group(0), "").strip(" :") or "unexpected text"
    if path is not None:
        where = f" at column {at.group(2)}" if at else ""
        return InputError(f"SPARQL syntax error{where}: {detail[:200]}", path=path, line=line)
    where = f" at line {line}, column {at.group(2)}" if at else ""
    return InputError(f"SPARQL syntax error{where}: {detail[:200]}")


_IRI = re.compile(r"<[^<>\s]*>")


def rdf_format(name: str) -> RdfFormat:
    """Map a short format name or file suffix (``ttl``, ``nq``, ``owl``...) to an Oxigraph format."""
    try:
        return FORMATS[name.lower().lstrip(".")]
    except KeyError:
        raise InputError(f"unknown RDF format {name!r}; expected one of {', '.join(sorted(FORMATS))}") from None


def to_term(value: Term | str | int | float | bool) -> Term:
    """Python value -> RDF term for query bindings. Strings become plain literals; pass a NamedNode for IRIs."""
    if isinstance(value, NamedNode | BlankNode | Literal | Triple):
        return value
    if isinstance(value, bool):
        return Literal("true" if value else "false", datatype=NamedNode("http://www.w3.org/2001/XMLSchema#boolean"))
    if isinstance(value, int):
        return Literal(str(value), datatype=NamedNode("http://www.w3.org/2001/XMLSchema#integer"))
    if isinstance(value, float):
        return Literal(repr(value), datatype=NamedNode("http://www.w3.org/2001/XMLSchema#double"))
    if isinstance(value, str):
        return Literal(value)
    raise TypeError(f"cannot bind {type(value).__name__} in a SPARQL query")


def to_python(term: Term | None) -> Any:
    """RDF term -> Python value: IRIs to str, typed numeric/boolean literals to numbers/bools."""
    if term is None:
        return None
    if isinstance(term, Literal):
        dt = term.datatype.value.rsplit("#", 1)[-1]
        if dt in {"integer", "int", "long", "nonNegativeInteger", "positiveInteger"}:
            return int(term.value)
        if dt in {"double", "float", "decimal"}:
            return float(term.value)
        if dt == "boolean":
            return term.value in {"true", "1"}
        return term.value
    return term.value


def rows_of(result: QueryResult) -> list[Row] | bool | list[Triple]:
    """SELECT -> list of ``{variable: term}`` rows (unbound variables left out), ASK -> bool, else the triples."""
    if isinstance(result, QueryBoolean):
        return bool(result)
    if isinstance(result, QuerySolutions):
        names = [v.value for v in result.variables]
        return [{n: t for n, t in zip(names, sol, strict=True) if t is not None} for sol in result]
    return result


@runtime_checkable
class Store(Protocol):
    """What every store offers.

    On the embedded store every write is one transaction. A remote store sends large writes in batches, one
    transaction per batch (see ``medsyn.kg.remote_store``), and its error says how much was stored.
    """

    def query(self, sparql: str, *, bindings: Bindings | None = None, union: bool = True) -> Any:
        """SELECT -> list of rows, ASK -> bool, CONSTRUCT/DESCRIBE -> list of triples."""

    def results(self, sparql: str, *, union: bool = True) -> QueryResult:
        """The result with its variables, as pyoxigraph parses it: read it before the store is closed."""

    def update(self, sparql: str, *, bindings: Bindings | None = None) -> None:
        """Run a SPARQL update as one transaction."""

    def add_quads(self, quads: Iterable[Quad]) -> None:
        """Insert quads as one transaction."""

    def load(self, data: bytes | str | Path, *, format: str, graph: NamedNode | None = None) -> None:
        """Parse and insert an RDF document as one transaction (into ``graph`` for triple formats)."""

    def dump(self, *, format: str, graph: NamedNode | None = None) -> bytes:
        """Serialize the whole dataset (quad formats) or one graph (triple formats)."""

    def named_graphs(self) -> list[NamedNode]: ...

    def clear_graph(self, graph: NamedNode) -> None:
        """Remove every triple of a named graph as one transaction."""

    def flush(self) -> None:
        """Write buffered writes out to disk, so a long run's memory stays bounded; a no-op where the store manages
        it."""

    def compact(self) -> None:
        """Reclaim the space of a bulk of writes (the end of a generate run); a no-op where the store manages it."""

    def close(self) -> None: ...


class OxigraphStore:
    """An embedded, persistent Oxigraph store (RocksDB on disk) or an in-memory one.

    One process owns an on-disk store: a read-write open holds the store's OS lock (``<store>.lock``, see
    :func:`lock_file`) until ``close()``, and a second one raises StoreError naming the holder. :func:`open_store`,
    the opener of the commands, refuses a missing store unless told to create it (``kg build``, ``onto restore``).
    Leftovers of an interrupted build are recovered first (:func:`recover`).
    """

    def __init__(
        self, path: str | Path | None = None, *, read_only: bool = False, create: bool = True, lock: bool = True
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.read_only = read_only
        self._locked = False
        if self.path is None:
            self._store = _OxStore()
            return
        if not read_only and lock:
            acquire(lock_file(self.path), f"store {self.path}")
            self._locked = True
        try:
            if lock:
                recover(self.path)
            self._store = self._open(create=create)
        except BaseException:
            self._unlock()
            raise

    def _open(self, *, create: bool) -> _OxStore:
        assert self.path is not None
        if not self.path.exists() and (self.read_only or not create):
            raise StoreError(f"store {self.path} does not exist; build it with `medsyn kg build --store {self.path}`")
        if self.path.exists() and not self.path.is_dir():
            raise StoreError(f"store {self.path} is not a directory")
        if self.path.is_dir() and not (self.path / "CURRENT").is_file() and any(self.path.iterdir()):
            raise StoreError(f"{self.path} is not an Oxigraph store (no CURRENT file)")
        try:
            if self.read_only:
                return _OxStore.read_only(str(self.path))
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return _OxStore(str(self.path))
        except OSError as exc:
            msg = str(exc)
            if "lock" in msg.lower():
                raise StoreError(
                    f"store {self.path} is locked by another process (is `medsyn serve` or `oxigraph serve` running "
                    "on it? then use --endpoint URL)"
                ) from None
            raise StoreError(f"cannot open store {self.path}: {msg.splitlines()[0] if msg else exc!r}") from None
        except RuntimeError as exc:  # RocksDB reports damage (Corruption: ...) as RuntimeError
            raise corrupt_store_error(self.path, exc) from None

    def _unlock(self) -> None:
        if self._locked and self.path is not None:
            self._locked = False
            release(lock_file(self.path))

    @classmethod
    def in_memory(cls) -> OxigraphStore:
        return cls(None)

    @property
    def raw(self) -> _OxStore:
        """The underlying ``pyoxigraph.Store`` for bulk work that needs it."""
        return self._store

    def query(self, sparql: str, *, bindings: Bindings | None = None, union: bool = True) -> Any:
        if bindings:
            sparql = bind_query(sparql, bindings)
        try:
            return rows_of(self.results(sparql, union=union))
        except RuntimeError as exc:  # damage found while reading the solutions
            raise corrupt_store_error(self.path, exc) from None

    def results(self, sparql: str, *, union: bool = True) -> QueryResult:
        # A query's own FROM / FROM NAMED replaces the union default (pyoxigraph's union switch would override it).
        union = union and not query_dataset(sparql)
        try:
            result = self._store.query(sparql, use_default_graph_as_union=union)
        except SyntaxError as exc:
            raise sparql_syntax_error(exc, sparql) from None
        except OSError as exc:
            raise StoreError(f"query failed: {exc}") from None
        except RuntimeError as exc:  # RocksDB damage found while planning or reading
            raise corrupt_store_error(self.path, exc) from None
        if isinstance(result, QueryBoolean | QuerySolutions):
            return result
        return list(result)

    def update(self, sparql: str, *, bindings: Bindings | None = None) -> None:
        if bindings:
            # Oxigraph has no substitutions for updates; bind by a VALUES-free rewrite is unsafe, so refuse.
            raise TypeError("bindings are not supported for updates; build quads and call add_quads instead")
        try:
            self._store.update(sparql)
        except SyntaxError as exc:
            raise InputError(f"SPARQL update syntax error: {exc}") from None
        except OSError as exc:
            raise StoreError(f"update failed: {exc}") from None
        except RuntimeError as exc:
            raise corrupt_store_error(self.path, exc) from None

    def add_quads(self, quads: Iterable[Quad]) -> None:
        try:
            self._store.extend(quads)
        except OSError as exc:
            raise StoreError(f"write failed: {exc}") from None

    def remove_quads(self, quads: Iterable[Quad]) -> None:
        """Remove quads as one transaction (one DELETE DATA update)."""
        body = quads_to_sparql_data(quads)
        if body:
            self.update("DELETE DATA { " + body + " }")

    def load(self, data: bytes | str | Path, *, format: str, graph: NamedNode | None = None) -> None:
        fmt = rdf_format(format)
        to_graph = graph if graph is not None and not fmt.supports_datasets else None
        try:
            if isinstance(data, Path):
                self._store.load(path=str(data), format=fmt, to_graph=to_graph)
            else:
                raw = data.encode("utf-8") if isinstance(data, str) else data
                self._store.load(io.BytesIO(raw), format=fmt, to_graph=to_graph)
        except SyntaxError as exc:
            where = str(data) if isinstance(data, Path) else "input"
            raise InputError(f"{where}: RDF syntax error: {exc}") from None
        except OSError as exc:
            raise StoreError(f"load failed: {exc}") from None

    def dump(self, *, format: str, graph: NamedNode | None = None) -> bytes:
        fmt = rdf_format(format)
        out: IO[bytes] = io.BytesIO()
        if fmt.supports_datasets:
            if graph is None:
                self._store.dump(out, format=fmt)
            else:
                # Oxigraph drops the graph name when dumping one graph; a quad format must keep it to reload.
                from pyoxigraph import serialize

                serialize(self._store.quads_for_pattern(None, None, None, graph), out, format=fmt)
        else:
            self._store.dump(out, format=fmt, from_graph=graph if graph is not None else DefaultGraph())
        return out.getvalue()  # type: ignore[attr-defined]

    def named_graphs(self) -> list[NamedNode]:
        return sorted((g for g in self._store.named_graphs() if isinstance(g, NamedNode)), key=lambda g: g.value)

    def clear_graph(self, graph: NamedNode) -> None:
        self.update(f"DROP SILENT GRAPH <{graph.value}>")

    def __len__(self) -> int:
        return len(self._store)

    def flush(self) -> None:
        """Write RocksDB's memtables out to disk: until then they hold every write in memory (generate at 20,000
        samples: a peak RSS of 913 MB without a flush during the run, 358 MB flushing every 4,096 notes)."""
        if self.path is not None and not self.read_only:
            self._store.flush()

    def compact(self) -> None:
        """Flush, compact (RocksDB ``optimize``) and reopen: a generate run's many small transactions leave
        overlapping level-0 files that only a compaction merges, and a write-ahead log (27 KB a note) that RocksDB
        drops only when the store is opened again. Measured in ``benchmarks/paper_scale.py`` (docs/generation.md).
        The OS lock (:func:`lock_file`) is held throughout."""
        if self.path is None or self.read_only:
            return
        try:
            self._store.flush()
            self._store.optimize()
            del self._store  # closes RocksDB
            self._store = self._open(create=False)
        except OSError as exc:
            raise StoreError(f"compaction of {self.path} failed: {exc}") from None

    def close(self) -> None:
        if not hasattr(self, "_store"):
            return
        if self.path is not None and not self.read_only:
            with contextlib.suppress(OSError, RuntimeError):
                self._store.flush()
        del self._store
        self._unlock()

    def __enter__(self) -> OxigraphStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def quads_to_sparql_data(quads: Iterable[Quad]) -> str:
    """The body of an INSERT DATA / DELETE DATA block (or an INSERT template): the default graph's triples, then one
    ``GRAPH`` block per named graph; pyoxigraph terms print as escaped N-Triples terms.

    One block per graph, not per quad: Virtuoso fails an INSERT template that names one graph in two blocks.
    """
    graphs: dict[str, list[str]] = {}
    for q in quads:
        key = "" if isinstance(q.graph_name, DefaultGraph) else str(q.graph_name)
        graphs.setdefault(key, []).append(f"{q.subject} {q.predicate} {q.object} .")
    parts = graphs.pop("", [])
    parts += [f"GRAPH {g} {{\n" + "\n".join(triples) + "\n}" for g, triples in graphs.items()]
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------------ store folders
def lock_file(store: Path) -> Path:
    """The OS lock of a store: ``<store>.lock`` beside it, so it survives the folder swap of a rebuild."""
    return lock_beside(store)


def recover(store: Path) -> list[str]:
    """Undo what an interrupted build left (:func:`medsyn.atomic.recover_dir`): a missing store gets its ``.old-*``
    folder back, stale ``.building-*`` and ``.old-*`` folders are removed. Returns what was done (one phrase each).

    Only a holder of the store lock may do this (no build is running then); a read-only caller takes the lock
    only when there is something to recover, and skips the clean-up when a writer holds it.
    """
    if not leftovers(store, OLD) and not leftovers(store, BUILDING):
        return []
    key = lock_file(store)
    if not is_held_here(key):
        try:
            # The store may be missing for the instant between a build's two renames: wait that out.
            acquire(key, f"store {store}", wait_s=0.0 if store.exists() else 10.0)
        except StoreError:
            return []
        try:
            return recover(store)
        finally:
            release(key)
    done = recover_dir(store)
    if done:
        print(f"recovered store {store}: " + "; ".join(done), file=sys.stderr)
    return done


def corrupt_store_error(path: Path | None, exc: BaseException) -> StoreError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return StoreError(
        f"store {path} is damaged ({first}); rebuild it with `medsyn kg build --store {path}` "
        "(or restore it from a snapshot or backup)"
    )


def in_child(work: Callable[[], bytes], *, what: str = "the query") -> bytes:
    """``work()`` run in a forked child process, its bytes returned here.

    pyoxigraph's parser and planner recurse: a query with thousands of nested groups or tens of thousands of
    patterns overflows the stack, a segfault that no exception can catch. In a child it costs the child, and becomes
    one :class:`InputError` here. An exception of ``work`` is raised here as it was raised there. Fork, not spawn:
    nothing is imported again, so a query costs a fork (milliseconds); call it before this process opens the store
    and while it runs one thread (the CLI), since only the calling thread exists in the child.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_end)
        _child(work, write_end)
    os.close(write_end)
    try:
        with os.fdopen(read_end, "rb") as pipe:
            data = pipe.read()
    finally:
        _, status = os.waitpid(pid, 0)
    return _outcome(data, status, what)


def _child(work: Callable[[], bytes], write_end: int) -> NoReturn:
    code = 0
    try:
        try:
            payload = b"0" + work()
        except BaseException as exc:  # every failure travels to the parent, which raises it
            payload = b"1" + _pickled(exc)
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(payload)
    except BaseException:  # the parent reads a short answer as a failure
        code = 1
    finally:
        os._exit(code)  # no interpreter teardown: atexit handlers and buffers belong to the parent


def _pickled(exc: BaseException) -> bytes:
    try:
        return pickle.dumps(exc)
    except Exception:  # an exception that does not pickle still says what it was
        return pickle.dumps(RuntimeError(f"{type(exc).__name__}: {exc}"))


def _outcome(data: bytes, status: int, what: str) -> bytes:
    if os.WIFSIGNALED(status):
        sig = signal.Signals(os.WTERMSIG(status)).name
        raise InputError(f"{what} crashed the SPARQL engine ({sig}): it is nested or long beyond what it can parse")
    if data[:1] == b"0":
        return data[1:]
    if data[:1] == b"1":
        raise pickle.loads(data[1:])
    raise StoreError(f"{what} ended without an answer (exit status {os.waitstatus_to_exitcode(status)})")
