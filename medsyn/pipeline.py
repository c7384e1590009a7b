"""Whole runs from a config file: build the graph, sample, generate, report.

A pipeline file is TOML with one table per step; a step runs when its table is present. Keys are the keyword
arguments of the step's library function, so a notebook user and a config file say the same thing.

>>> cfg = parse_pipeline('[sample]\\nn = 2\\nseed = 1\\n', source="inline")
>>> [s.name for s in cfg]
['sample']
"""

from __future__ import annotations

import inspect
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medsyn.errors import InputError

STEP_ORDER = ("kg", "sample", "generate", "quality")


@dataclass
class Step:
    name: str
    options: dict[str, Any] = field(default_factory=dict)


def parse_pipeline(text: str, *, source: str) -> list[Step]:
    """Parse pipeline TOML into ordered steps; unknown tables raise InputError naming the file."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"invalid TOML ({exc})", path=source) from None
    unknown = [k for k in data if k not in STEP_ORDER]
    if unknown:
        raise InputError(f"unknown step table [{unknown[0]}]; expected one of {', '.join(STEP_ORDER)}", path=source)
    steps = []
    for name in STEP_ORDER:
        if name in data:
            if not isinstance(data[name], dict):
                raise InputError(f"[{name}] must be a table", path=source)
            steps.append(Step(name, dict(data[name])))
    return steps


def load_pipeline(path: str | Path) -> list[Step]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("pipeline file not found", path=p) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 (byte {exc.start})", path=p) from None
    return parse_pipeline(text, source=str(p))


def check_options(func: Callable[..., Any], options: dict[str, Any], *, step: str, source: str) -> None:
    """Reject keys the step's function does not take, naming the field."""
    params = inspect.signature(func).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    for key in options:
        if key not in params:
            allowed = ", ".join(k for k in params if not k.startswith("_"))
            raise InputError(f"[{step}] unknown key {key!r} (allowed: {allowed})", path=source)
