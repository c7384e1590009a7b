"""The options a sampling strategy declares: typed, with a default and a one-line help, refused when unknown.

A strategy lists its options in ``options`` (a tuple of :class:`Option`) and takes them as keyword arguments of its
constructor; :func:`resolve_options` turns what a caller gave (Python values, or the text of
``--strategy-option key=value``) into those arguments, so no strategy option is ever named outside its strategy.

>>> T = Option("temperature", float, 10.0, "T of the softmax", check=lambda v: v > 0, must="a positive number")
>>> resolve_options("softmax", (T,), {"temperature": "2.5"})
{'temperature': 2.5}
>>> unknown_option("softmax", "temprature", ["temperature"])
"strategy 'softmax' has no option 'temprature' (did you mean 'temperature'?); its options: temperature"
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from medsyn.errors import InputError

_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Option:
    """One option of a strategy. ``type`` is int, float, str or bool; a ``None`` default means "unset"."""

    name: str
    type: type
    default: Any
    help: str
    check: Callable[[Any], bool] | None = None
    must: str = ""
    """What ``check`` requires, for the error line (``"a positive number"``)."""

    def convert(self, value: Any, *, owner: str) -> Any:
        """``value`` (a Python value or the text of a command-line option) as this option's type, checked."""
        where = f"strategy {owner!r}: option {self.name!r}"
        if value is None or (isinstance(value, str) and value.lower() == "none" and self.default is None):
            return None
        try:
            out = _as(self.type, value)
        except (TypeError, ValueError):
            raise InputError(f"{where}: {value!r} is not {_kind(self.type)}") from None
        if isinstance(out, float) and not math.isfinite(out):
            raise InputError(f"{where}: {value!r} is not a finite number")
        if self.check is not None and not self.check(out):
            raise InputError(f"{where} must be {self.must or 'valid'}, got {value!r}")
        return out


def _as(kind: type, value: Any) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE | _FALSE:
            return text in _TRUE
        raise ValueError(value)
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise ValueError(value)
    if kind in (int, float) and isinstance(value, bool):
        raise TypeError(value)
    return kind(value)


def _kind(kind: type) -> str:
    return {int: "an integer", float: "a number", bool: "true or false"}.get(kind, f"a {kind.__name__}")


def resolve_options(owner: str, declared: Sequence[Option], given: Mapping[str, Any] | None) -> dict[str, Any]:
    """The keyword arguments of strategy ``owner``: every declared option, given or default.

    An option it does not declare is refused in one line naming the nearest declared one.
    """
    by_name = {o.name: o for o in declared}
    out = {o.name: o.default for o in declared}
    for key, value in (given or {}).items():
        if key not in by_name:
            raise InputError(unknown_option(owner, key, by_name))
        out[key] = by_name[key].convert(value, owner=owner)
    return out


def unknown_option(owner: str, key: str, names: Iterable[str]) -> str:
    known = sorted(names)
    near = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    listed = ", ".join(known) if known else "none"
    return f"strategy {owner!r} has no option {key!r}{hint}; its options: {listed}"


def parse_pairs(pairs: Iterable[str], *, flag: str = "--strategy-option") -> dict[str, str]:
    """``["temperature=5", ...]`` as ``{"temperature": "5"}``; a pair without ``=`` or a key twice is refused.

    >>> parse_pairs(["temperature=5", "weighted_source=hsdn"])
    {'temperature': '5', 'weighted_source': 'hsdn'}
    """
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = str(pair).partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise InputError(f"{flag}: {pair!r} is not KEY=VALUE (e.g. {flag} temperature=5)")
        if key in out:
            raise InputError(f"{flag}: {key!r} given twice")
        out[key] = value.strip()
    return out
