"""Option parsers shared by the commands: the raw text of an option, before Typer turns ``''`` into ``Path('.')``.

What an output path may be (a regular file or a missing one, apart from the inputs) is checked by
:func:`medsyn.atomic.check_output`, the one home of that rule; these parsers only see the text.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from medsyn.errors import InputError


def path_of(option: str) -> Callable[[str], Path]:
    """A parser for a path option that refuses an empty value (``--out ''`` would otherwise mean ``.``)."""

    def parse(raw: str | Path) -> Path:
        if isinstance(raw, Path):  # a default value, already a path
            return raw
        if not raw.strip():
            raise InputError(f"{option}: empty path")
        return Path(raw)

    return parse


def text_of(option: str) -> Callable[[str], str]:
    """A parser for a text option that refuses an empty or blank value."""

    def parse(raw: str) -> str:
        if not str(raw).strip():
            raise InputError(f"{option}: empty value")
        return str(raw)

    return parse


def number_of(option: str, *, kind: type[int] | type[float] = int, above: float | None = None,
              at_least: float | None = None) -> Callable[[str], float]:  # fmt: skip
    """A parser for a number option with a lower bound, refused at parse time in one line (``--timeout 0`` used to
    be retried for minutes): ``above=0`` for a positive value, ``at_least=0`` for a count that may be 0."""

    def parse(raw: str | float) -> float:
        if isinstance(raw, int | float):  # a default value
            return raw
        try:
            value = kind(raw)
        except ValueError:
            raise InputError(f"{option}: {raw!r} is not {'an integer' if kind is int else 'a number'}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise InputError(f"{option}: {raw!r} is not a finite number")
        if above is not None and not value > above:
            raise InputError(f"{option} must be > {above:g}, got {raw}")
        if at_least is not None and value < at_least:
            raise InputError(f"{option} must be >= {at_least:g}, got {raw}")
        return value

    return parse
