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
