"""Sampling strategies, pluggable by name.

>>> sorted(available_strategies())
['paper', 'softmax']
>>> get_strategy("paper").name
'paper'

A new strategy is a class with ``name``, ``width``, ``weighted_source``, ``drugs`` and ``draw`` (see
:class:`~medsyn.sampling.strategies.base.Strategy`), registered with :func:`register_strategy`; its constructor may take
a :class:`~medsyn.sampling.strategies.base.StrategyOptions`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from medsyn.errors import InputError
from medsyn.sampling.strategies.base import Strategy, StrategyOptions
from medsyn.sampling.strategies.paper import PaperStrategy
from medsyn.sampling.strategies.softmax import SoftmaxStrategy

__all__ = ["Strategy", "StrategyOptions", "available_strategies", "get_strategy", "register_strategy"]

_REGISTRY: dict[str, Callable[..., Strategy]] = {}


def register_strategy(name: str, factory: Callable[..., Strategy]) -> None:
    """Register a strategy class (or factory) under ``name``; a second registration replaces the first."""
    _REGISTRY[name] = factory


def available_strategies() -> list[str]:
    return sorted(_REGISTRY)


def get_strategy(strategy: str | Strategy | type, options: StrategyOptions | None = None) -> Strategy:
    """A strategy instance from a registered name, a strategy class or an instance (returned as is)."""
    if isinstance(strategy, str):
        try:
            factory = _REGISTRY[strategy]
        except KeyError:
            raise InputError(
                f"unknown strategy {strategy!r}; expected one of {', '.join(available_strategies())}"
            ) from None
    elif inspect.isclass(strategy):
        factory = strategy
    elif isinstance(strategy, Strategy):
        return strategy
    else:
        raise InputError(f"not a sampling strategy: {strategy!r}")
    params = inspect.signature(factory).parameters
    instance = factory(options or StrategyOptions()) if params else factory()
    if instance.width % 4 or instance.width < 1:
        raise InputError(f"strategy {instance.name!r}: width must be a positive multiple of 4, got {instance.width}")
    return instance


register_strategy("paper", PaperStrategy)
register_strategy("softmax", SoftmaxStrategy)
