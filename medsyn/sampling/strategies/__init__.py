"""Sampling strategies, pluggable by name.

>>> sorted(available_strategies())
['paper', 'softmax']
>>> get_strategy("softmax", {"temperature": "2"}).temperature
2.0

A new strategy is one module here with a class that has ``name``, ``width``, ``weighted_source``, ``drugs``,
``options`` and ``draw`` (see :class:`~medsyn.sampling.strategies.base.Strategy`), plus one line in :data:`BUILT_IN`.
Its constructor takes its declared options (:class:`~medsyn.sampling.strategies.options.Option`) as keyword
arguments; :func:`get_strategy` refuses any other. Third-party strategies register under the entry point group
``medsyn.strategies`` (:mod:`medsyn.plugins`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from medsyn.errors import InputError
from medsyn.sampling.strategies.base import Strategy
from medsyn.sampling.strategies.options import Option, resolve_options

__all__ = ["Option", "Strategy", "available_strategies", "get_strategy", "register_strategy", "strategy_class"]

ENTRY_POINTS = "medsyn.strategies"

BUILT_IN: dict[str, str] = {
    "paper": "medsyn.sampling.strategies.paper:PaperStrategy",
    "softmax": "medsyn.sampling.strategies.softmax:SoftmaxStrategy",
}
"""Name -> ``module:Class`` of the strategies shipped with MedSyn, imported when selected."""

_REGISTRY: dict[str, Callable[..., Strategy]] = {}


def register_strategy(name: str, factory: Callable[..., Strategy]) -> None:
    """Register a strategy class under ``name`` at run time; a second registration replaces the first."""
    _REGISTRY[name] = factory


def _loaders() -> dict[str, Callable[[], Any]]:
    from medsyn.plugins import entry_point_components

    out: dict[str, Callable[[], Any]] = dict(entry_point_components(ENTRY_POINTS))
    out.update({name: _built_in(target) for name, target in BUILT_IN.items()})
    out.update({name: (lambda f=factory: f) for name, factory in _REGISTRY.items()})
    return out


def _built_in(target: str) -> Callable[[], Any]:
    def load() -> Any:
        from importlib import import_module

        module, _, attr = target.partition(":")
        return getattr(import_module(module), attr)

    return load


def available_strategies() -> list[str]:
    """Names of the built-in, registered and plugin strategies."""
    return sorted(_loaders())


def strategy_class(name: str) -> Callable[..., Strategy]:
    """The class (or factory) registered as ``name``; an unknown name is one line listing the known ones."""
    loaders = _loaders()
    if name not in loaders:
        raise InputError(f"unknown strategy {name!r}; expected one of {', '.join(sorted(loaders))}")
    return loaders[name]()  # type: ignore[no-any-return]


def get_strategy(strategy: str | Strategy | type, options: Mapping[str, Any] | None = None) -> Strategy:
    """A strategy instance from a registered name, a strategy class or an instance (returned as is).

    ``options`` are the strategy's own declared options (values or their text); an undeclared one is refused.
    """
    if isinstance(strategy, str):
        factory = strategy_class(strategy)
    elif inspect.isclass(strategy):
        factory = strategy
    elif isinstance(strategy, Strategy):
        if options:
            raise InputError(f"strategy {strategy.name!r} is already made; give its options to its constructor")
        return strategy
    else:
        raise InputError(f"not a sampling strategy: {strategy!r}")
    name = str(getattr(factory, "name", strategy))
    instance = factory(**resolve_options(name, tuple(getattr(factory, "options", ())), options))
    if instance.width % 4 or instance.width < 1:
        raise InputError(f"strategy {instance.name!r}: width must be a positive multiple of 4, got {instance.width}")
    return instance


def describe_options(name: str) -> list[Option]:
    """The options strategy ``name`` declares, for ``--help`` texts and listings."""
    return list(getattr(strategy_class(name), "options", ()))
