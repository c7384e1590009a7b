"""Third-party components found through Python entry points, so a hospital adds its own without forking.

A distribution declares, in its ``pyproject.toml``::

    [project.entry-points."medsyn.backends"]
    mybackend = "my_package.backend:MyBackend"

and ``medsyn`` finds ``mybackend`` beside its own backends (groups: ``medsyn.backends``, ``medsyn.strategies``,
``medsyn.sources``). Listing reads only the installed metadata; a plugin's module is imported when it is selected,
so one broken plugin never stops the others (its loader raises one :class:`~medsyn.errors.InputError` line naming
the plugin and its distribution).

>>> entry_point_components("medsyn.no-such-group")
{}
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from medsyn.errors import InputError

GROUPS = ("medsyn.backends", "medsyn.strategies", "medsyn.sources")


def entry_point_components(group: str) -> dict[str, Callable[[], Any]]:
    """``{name: loader}`` of the components installed distributions declare in ``group``; a loader imports the
    component (a class or factory) when it is called."""
    found: dict[str, Callable[[], Any]] = {}
    for ep in entry_points(group=group):
        found.setdefault(ep.name, _loader(ep, group))  # the first distribution on the path wins, as imports do
    return found


def plugin_distribution(group: str, name: str) -> str | None:
    """The distribution that declares ``name`` in ``group`` (None: no installed distribution does)."""
    for ep in entry_points(group=group, name=name):
        return _dist_name(ep)
    return None


def _dist_name(ep: EntryPoint) -> str:
    dist = ep.dist
    return f"{dist.name} {dist.version}" if dist is not None else "an unknown distribution"


def _loader(ep: EntryPoint, group: str) -> Callable[[], Any]:
    def load() -> Any:
        try:
            return ep.load()
        except Exception as exc:  # any failure of third-party code is reported as this plugin's, in one line
            why = " ".join(f"{type(exc).__name__}: {exc}".split())
            raise InputError(
                f"plugin {ep.name!r} ({group}, from {_dist_name(ep)}) cannot be loaded from {ep.value!r}: {why}"
            ) from None

    return load
