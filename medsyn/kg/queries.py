"""SPARQL query files in ``sparql/`` and their parameter binding.

Queries are never assembled from user input: a ``.rq`` file declares its parameters in a header comment
(``# Parameters: ?code - ...``) and callers bind them to RDF terms, written as a ``VALUES`` row at the start of the
WHERE group that uses each one, a sub-SELECT's included (``medsyn.kg.store.bind_query``), the same on the embedded
store and on any remote SPARQL 1.1 endpoint. A parameter a query does not declare, or does not use, is refused.

>>> from medsyn.kg.store import OxigraphStore
>>> s = OxigraphStore.in_memory()
>>> run_query(s, "SELECT ?x WHERE { BIND(?v AS ?x) }", v=3)[0]["x"].value
'3'
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from medsyn.errors import InputError
from medsyn.kg.store import Store, Term, sparql_syntax_error
from medsyn.paths import SPARQL_DIR


@lru_cache(maxsize=256)
def load_query(name: str) -> str:
    """Text of ``sparql/<name>.rq`` (``name`` may include a sub-folder, e.g. ``checks/orphan_associations``)."""
    path = SPARQL_DIR / f"{name}.rq"
    if not path.is_file():
        raise InputError(f"no SPARQL query named {name!r} (looked for {path})")
    return path.read_text(encoding="utf-8")


_DECLARED = re.compile(r"^#\s*Parameters:(.*)$", re.M)
_PARAM = re.compile(r"\?(\w+)\s+-")


@lru_cache(maxsize=256)
def query_parameters(name: str) -> tuple[str, ...]:
    """The parameters ``sparql/<name>.rq`` declares in its ``# Parameters: ?a - ..., ?b - ...`` header line."""
    m = _DECLARED.search(load_query(name))
    return tuple(_PARAM.findall(m.group(1))) if m else ()


def list_queries(folder: str = "") -> list[str]:
    """Names of the queries in a sub-folder of ``sparql/`` (sorted), e.g. ``list_queries("checks")``."""
    base = SPARQL_DIR / folder if folder else SPARQL_DIR
    return sorted(str(p.relative_to(SPARQL_DIR).with_suffix("")) for p in base.glob("*.rq"))


def read_query_file(path: str | Path) -> str:
    """The text of a ``.rq`` file, parsed here (by an empty in-memory Oxigraph) so that a syntax error names the
    file and line in one line, whichever store then runs it."""
    p = Path(path)
    text = _read(p)
    from pyoxigraph import Store as Oxigraph

    try:
        Oxigraph().query(text)  # prepares the query; evaluation over an empty store is nothing
    except SyntaxError as exc:
        raise sparql_syntax_error(exc, text, p) from None
    return text


def _read(p: Path) -> str:
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("query file not found", path=p) from None
    except IsADirectoryError:
        raise InputError("is a folder; give a .rq query file", path=p) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.start})", path=p) from None
    except OSError as exc:
        raise InputError(f"cannot read the query file: {exc.strerror or exc}", path=p) from None


def run_query(store: Store, sparql: str, *, union: bool = True, **params: Term | str | int | float | bool) -> Any:
    """Run query text with named parameters bound as RDF terms."""
    return store.query(sparql, bindings=params or None, union=union)


def run_named(store: Store, name: str, *, union: bool = True, **params: Term | str | int | float | bool) -> Any:
    """Run ``sparql/<name>.rq`` with named parameters, e.g. ``run_named(s, "curation/code", code=iri)``."""
    undeclared = sorted(set(params) - set(query_parameters(name)))
    if undeclared:
        declared = ", ".join("?" + p for p in query_parameters(name)) or "none"
        raise InputError(f"sparql/{name}.rq has no parameter ?{undeclared[0]} (it declares: {declared})")
    return run_query(store, load_query(name), union=union, **params)
