"""Public names of a subpackage, imported from their module on first use.

Every subpackage's ``__init__`` lists its API in ``__all__`` without importing it: ``import medsyn.kg.vocab`` must
not load the store, SPARQLWrapper or torch, and an ``__init__`` that imported its modules eagerly would also put a
cycle between any two of them that import each other's package.

>>> import medsyn.kg as kg
>>> "open_store" in kg.__all__ and kg.open_store.__module__
'medsyn.kg.opener'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[list[str], Callable[[str], Any]]:
    """``(__all__, __getattr__)`` for ``package``, whose public name ``n`` lives in submodule ``exports[n]``.

    Use in an ``__init__``: ``__all__, __getattr__ = lazy_exports(__name__, {"open_store": "opener"})``.
    """

    def __getattr__(name: str) -> Any:
        try:
            module = exports[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        return getattr(import_module(f"{package}.{module}"), name)

    return sorted(exports), __getattr__
