"""The options a component (a backend, a strategy, a source) declares, read from its constructor by one resolver.

A component declares an option by taking it as a keyword parameter: the annotation is its type, the default its
default, and its help is the ``name: text`` line of the class (or constructor) docstring. Nothing else lists a
component's options, so the CLI (``--option key=value`` for a backend, ``--strategy-option key=value`` for a sampling
strategy), ``medsyn backends``, ``medsyn strategies`` and the refusal of a misspelt option all read the same
declaration. A value check beyond the type (a temperature above 0) is the component's own, in its constructor.

>>> class Echo:
...     '''A test component.
...
...     width: characters per line.
...     '''
...     def __init__(self, *, width: int = 80, tags: tuple[str, ...] = ()) -> None: ...
>>> opts = declared_options(Echo)
>>> [(o.name, o.type_text, o.default, o.help) for o in opts.values()]
[('width', 'int', 80, 'characters per line.'), ('tags', 'tuple[str, ...]', (), '')]
>>> parse_assignments(["width=72", "tags=a", "tags=b"], opts, what="the echo backend")
{'width': 72, 'tags': ['a', 'b']}
>>> parse_assignments(["widht=72"], opts, what="the echo backend")
Traceback (most recent call last):
...
medsyn.errors.InputError: the echo backend has no option 'widht'; did you mean 'width'?
"""

from __future__ import annotations

import difflib
import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medsyn.errors import InputError, ParameterError

REQUIRED: Any = inspect.Parameter.empty
"""The default of an option the component cannot do without."""

_SEQUENCES = (list, tuple, Sequence, typing.Sequence)
_TRUE, _FALSE = {"true", "yes", "1", "on"}, {"false", "no", "0", "off"}


@dataclass(frozen=True)
class OptionSpec:
    name: str
    type: Any
    """The resolved annotation (a class, ``X | None``, ``Sequence[str]``...); a string when it cannot be resolved."""
    default: Any
    help: str = ""

    @property
    def type_text(self) -> str:
        return _type_text(self.type)

    @property
    def repeatable(self) -> bool:
        """Given once per value (``--option stop=a --option stop=b``); ``key=`` alone gives an empty list."""
        return _sequence_item(self.type) is not None

    def to_dict(self) -> dict[str, Any]:
        default = None if self.default is REQUIRED else self.default
        return {
            "name": self.name,
            "type": self.type_text,
            "default": list(default) if isinstance(default, tuple) else default,
            "required": self.default is REQUIRED,
            "help": self.help,
        }

    def coerce(self, value: Any) -> Any:
        """``value`` as this option's type: text is parsed, a list item by item; anything else is taken as is."""
        if isinstance(value, list | tuple) and self.repeatable:
            return [self.coerce(v) for v in value]
        if not isinstance(value, str):
            return value
        item = _sequence_item(self.type)
        target = item if item is not None else self.type
        try:
            return _parse(target, value)
        except ValueError as exc:  # the CLI names the option as its user gave it (ParameterError.render)
            raise ParameterError(f"{{{self.name}}} ({self.type_text}): {exc}") from None


def declared_options(factory: Callable[..., Any]) -> dict[str, OptionSpec]:
    """The options ``factory`` (a class or a function) takes by keyword, in its signature's order."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin without a signature declares nothing readable
        return {}
    target = factory.__init__ if isinstance(factory, type) else factory  # type: ignore[misc]
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # an annotation naming something not importable at run time: keep the text
        hints = {}
    helps = _docstring_help([inspect.getdoc(target) or "", inspect.getdoc(factory) or ""])
    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return {
        k: OptionSpec(k, hints.get(k, p.annotation), p.default, helps.get(k, ""))
        for k, p in params.items()
        if p.kind in kinds
    }


def takes_any_option(factory: Callable[..., Any]) -> bool:
    """Whether ``factory`` takes ``**kwargs`` (then it alone can judge an option)."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def unknown_option(key: str, declared: Mapping[str, OptionSpec], *, what: str) -> InputError:
    """One line naming the option ``what`` does not take and the nearest one it does."""
    valid = sorted(declared)
    near = difflib.get_close_matches(key, valid, n=1)
    hint = f"; did you mean {near[0]!r}?" if near else f"; it takes {', '.join(valid) or 'no options'}"
    return InputError(f"{what} has no option {key!r}{hint}")


def check_options(options: Mapping[str, Any], declared: Mapping[str, OptionSpec], *, what: str) -> None:
    for key in options:
        if key not in declared:
            raise unknown_option(key, declared, what=what)


def parse_assignments(
    pairs: Sequence[str], declared: Mapping[str, OptionSpec], *, what: str, flag: str = "--option"
) -> dict[str, Any]:
    """``["key=value", ...]`` as typed options of ``what``; a repeatable option collects its values in order.

    ``flag`` is the command-line option the pairs came from, named in the error of a malformed or repeated pair.
    """
    options: dict[str, Any] = {}
    for pair in pairs:
        key, eq, text = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or not key:
            raise InputError(f"{flag} {pair!r}: expected KEY=VALUE")
        spec = declared.get(key)
        if spec is None:
            raise unknown_option(key, declared, what=what)
        if spec.repeatable:
            options.setdefault(key, []).extend([spec.coerce(text)] if text else [])
        elif key in options:
            raise InputError(f"{flag} {key} is given twice")
        else:
            options[key] = spec.coerce(text)
    return options


def _parse(t: Any, text: str) -> Any:
    args = [a for a in typing.get_args(t) if a is not type(None)]
    if _is_union(t):
        if text.lower() == "none" and type(None) in typing.get_args(t):
            return None
        errors = []
        for a in sorted(args, key=lambda a: a is str):  # the narrowest type that reads the text wins; text last
            try:
                return _parse(a, text)
            except ValueError as exc:
                errors.append(exc)
        raise errors[0]
    if typing.get_origin(t) is tuple and args and Ellipsis not in args:  # a fixed pair such as a price "0.03,0.06"
        parts = text.split(",")
        if len(parts) != len(args):
            raise ValueError(f"expected {len(args)} comma-separated values, got {text!r}")
        return tuple(_parse(a, p.strip()) for a, p in zip(args, parts, strict=True))
    if t is bool:
        if text.lower() not in _TRUE | _FALSE:
            raise ValueError(f"expected true or false, got {text!r}")
        return text.lower() in _TRUE
    if t in (int, float):
        try:
            return t(text)
        except ValueError:
            raise ValueError(f"expected {'an integer' if t is int else 'a number'}, got {text!r}") from None
    if t in (str, Path, Any) or isinstance(t, str):
        return Path(text) if t is Path else text
    raise ValueError(f"cannot be given as text ({_type_text(t)})")


def _is_union(t: Any) -> bool:
    return typing.get_origin(t) in (typing.Union, types.UnionType)


def _sequence_item(t: Any) -> Any:
    """The item type of a list-like option (``Sequence[str]``, ``str | Sequence[str] | None``); None otherwise."""
    for a in typing.get_args(t) if _is_union(t) else (t,):
        origin, args = typing.get_origin(a), typing.get_args(a)
        if origin in _SEQUENCES and args and (origin is not tuple or Ellipsis in args or len(args) == 1):
            return args[0]
    return None


def _type_text(t: Any) -> str:
    if isinstance(t, str):
        return t
    if t is inspect.Parameter.empty:
        return "any"
    if _is_union(t):
        return " | ".join(_type_text(a) for a in typing.get_args(t))
    origin = typing.get_origin(t)
    if origin is not None:
        args = ", ".join("..." if a is Ellipsis else _type_text(a) for a in typing.get_args(t))
        return f"{_type_text(origin)}[{args}]"
    return "None" if t is type(None) else getattr(t, "__name__", str(t))


_ENTRY = re.compile(r"^(\s*)([a-z_][a-z0-9_]*): (.+)$")


def _docstring_help(docs: Sequence[str]) -> dict[str, str]:
    """``{name: text}`` from ``name: text`` lines (a line indented deeper continues the text above)."""
    helps: dict[str, str] = {}
    for doc in docs:
        current, indent = None, 0
        for line in doc.splitlines():
            m = _ENTRY.match(line)
            if m and m[2] not in helps:
                current, indent = m[2], len(m[1])
                helps[current] = m[3].strip()
            elif current and line.strip() and len(line) - len(line.lstrip()) > indent:
                helps[current] += " " + line.strip()
            else:
                current = None
    return helps
