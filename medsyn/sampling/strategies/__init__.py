"""Sampling strategies, pluggable by name.

>>> sorted(available_strategies())
['paper', 'softmax']
>>> get_strategy("softmax", {"temperature": "2"}).temperature
2.0
>>> [(o.name, o.type_text, o.default) for o in describe_options("softmax")]
[('temperature', 'float', 10.0), ('weighted_source', 'str | None', 'hsdn'), ('population_dir', 'str | None', None)]
>>> get_strategy("softmax", {"temprature": "2"})
Traceback (most recent call last):
...
medsyn.errors.InputError: strategy 'softmax' has no option 'temprature'; did you mean 'temperature'?

A new strategy is one module here with a class that has ``name``, ``width``, ``weighted_source``, ``drugs`` and
``draw`` (see :class:`~medsyn.sampling.strategies.base.Strategy`), plus one line in :data:`BUILT_IN`. Its options
are its constructor's keyword-only parameters (the annotation is the type, the default the default, a ``name: text``
line of the class docstring the help), read by :func:`medsyn.component_options.declared_options`, the one resolver
that backends use too; :func:`get_strategy` refuses any other. A check beyond the type (a temperature above 0) is
the constructor's own and raises a one-line :class:`~medsyn.errors.InputError` naming the strategy and the option.
Third-party strategies register under the entry point group ``medsyn.strategies`` (:mod:`medsyn.plugins`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from medsyn.component_options import OptionSpec, declared_options, parse_assignments, unknown_option
from medsyn.errors import InputError, ParameterError
from medsyn.sampling.strategies.base import Strategy

__all__ = [
    "Strategy",
    "available_strategies",
    "describe_options",
    "get_strategy",
    "parse_strategy_options",
    "register_strategy",
    "resolve_strategy_options",
    "strategy_class",
]

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
    if isinstance(strategy, str | type):
        factory = strategy_class(strategy) if isinstance(strategy, str) else strategy
    elif isinstance(strategy, Strategy):
        if options:
            raise InputError(f"strategy {strategy.name!r} is already made; give its options to its constructor")
        return strategy
    else:
        raise InputError(f"not a sampling strategy: {strategy!r}")
    instance = factory(**resolve_strategy_options(factory, options))
    if instance.width % 4 or instance.width < 1:
        raise InputError(f"strategy {instance.name!r}: width must be a positive multiple of 4, got {instance.width}")
    return instance


def describe_options(strategy: str | Callable[..., Strategy]) -> list[OptionSpec]:
    """The options a strategy declares (its constructor's keyword-only parameters), for ``--help`` and listings."""
    return list(_declaration(strategy)[0].values())


def resolve_strategy_options(
    strategy: str | Callable[..., Strategy], given: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The options ``given`` (values or their text) as the keyword arguments of ``strategy``, read by their declared
    types; one it does not declare is refused in one line naming the nearest. Defaults are left to the constructor.
    """
    declared, what = _declaration(strategy)
    out: dict[str, Any] = {}
    for key, value in (given or {}).items():
        spec = declared.get(key)
        if spec is None:
            raise unknown_option(key, declared, what=what)
        with _named(what):
            typed = spec.coerce(value)
        # A run's identity records these values (SamplingRequest.to_dict): 5 and 5.0 for a float must be one run.
        if spec.type is float and isinstance(typed, int) and not isinstance(typed, bool):
            typed = float(typed)
        out[key] = typed
    return out


def parse_strategy_options(strategy: str | Callable[..., Strategy], pairs: Sequence[str]) -> dict[str, Any]:
    """``--strategy-option key=value`` pairs as typed options of ``strategy`` (refused as :func:`get_strategy` does).

    >>> parse_strategy_options("softmax", ["temperature=2.5"])
    {'temperature': 2.5}
    """
    declared, what = _declaration(strategy)
    with _named(what):
        return parse_assignments(pairs, declared, what=what, flag="--strategy-option")


def _declaration(strategy: str | Callable[..., Strategy]) -> tuple[dict[str, OptionSpec], str]:
    factory = strategy_class(strategy) if isinstance(strategy, str) else strategy
    return declared_options(factory), f"strategy {getattr(factory, 'name', strategy)!r}"


@contextmanager
def _named(what: str) -> Iterator[None]:
    """A value its type cannot read, named by strategy and option: a bare ``{name}`` would be rendered by the CLI
    as a flag of the command (``generate --temperature`` is the model's, not the strategy's)."""
    try:
        yield
    except ParameterError as exc:
        raise InputError(f"{what}: option {exc}") from None
