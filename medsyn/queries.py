"""SPARQL query files in ``sparql/`` and their parameter binding.

Queries are never assembled from user input: a ``.rq`` file declares variables such as ``?code`` and callers
bind them to RDF terms, written as a ``VALUES`` row at the start of the WHERE group (``medsyn.store.bind_query``),
the same on the embedded store and on any remote SPARQL 1.1 endpoint.

>>> from medsyn.store import OxigraphStore
>>> s = OxigraphStore.in_memory()
>>> run_query(s, "SELECT ?x WHERE { BIND(?v AS ?x) }", v=3)[0]["x"].value
'3'
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from medsyn.errors import InputError
from medsyn.paths import SPARQL_DIR
from medsyn.store import Store, Term


@lru_cache(maxsize=256)
def load_query(name: str) -> str:
    """Text of ``sparql/<name>.rq`` (``name`` may include a sub-folder, e.g. ``checks/orphan_associations``)."""
    path = SPARQL_DIR / f"{name}.rq"
    if not path.is_file():
        raise InputError(f"no SPARQL query named {name!r} (looked for {path})")
    return path.read_text(encoding="utf-8")


def list_queries(folder: str = "") -> list[str]:
    """Names of the queries in a sub-folder of ``sparql/`` (sorted), e.g. ``list_queries("checks")``."""
    base = SPARQL_DIR / folder if folder else SPARQL_DIR
    return sorted(str(p.relative_to(SPARQL_DIR).with_suffix("")) for p in base.glob("*.rq"))


def read_query_file(path: str | Path) -> str:
    p = Path(path)
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
    """Run ``sparql/<name>.rq`` with named parameters, e.g. ``run_named(s, "symptoms_of_code", code=iri)``."""
    return run_query(store, load_query(name), union=union, **params)
