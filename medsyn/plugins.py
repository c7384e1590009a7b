"""Third-party components found through Python entry points: one home for the plugin mechanism.

A distribution adds a backend, a sampling strategy or a graph source without forking MedSyn by declaring an entry
point in one of the groups ``medsyn.backends``, ``medsyn.strategies`` or ``medsyn.sources``, e.g. in its
``pyproject.toml``::

    [project.entry-points."medsyn.strategies"]
    mystrategy = "my_package.sampler:MyStrategy"

Each registry merges :func:`entry_point_components` of its group with its built-in names. A plugin is imported only
when it is selected, so one broken plugin cannot break the others or the command line.

>>> entry_point_components("medsyn.no-such-group")
{}
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from medsyn.errors import InputError


def entry_point_components(group: str) -> dict[str, Callable[[], Any]]:
    """``{name: loader}`` of the entry points of ``group``; a loader imports the plugin and returns its object.

    A plugin that fails to import raises a one-line :class:`~medsyn.errors.InputError` naming it and its entry point
    when it is loaded (that is, when it is selected), not when the registry is listed.
    """
    return {ep.name: _loader(group, ep) for ep in sorted(entry_points(group=group), key=lambda ep: ep.name)}


def _loader(group: str, ep: EntryPoint) -> Callable[[], Any]:
    def load() -> Any:
        try:
            return ep.load()
        except Exception as exc:  # any import-time failure of third-party code is the plugin's, not ours
            message = " ".join(f"{type(exc).__name__}: {exc}".split())
            raise InputError(f"plugin {ep.name!r} ({group} = {ep.value}) failed to load: {message}") from None

    return load
