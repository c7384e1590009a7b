"""Reading JSON Lines files with errors that name ``file:line``.

One reader for every JSONL input (real notes, instruction data, generated sets), so a bad line reads the same
whatever command met it.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "x.jsonl"
>>> _ = p.write_text('{"a": 1}\\n\\n{"a": 2}\\n', encoding="utf-8")
>>> [(n, obj["a"]) for n, obj in read_jsonl(p)]
[(1, 1), (3, 2)]
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from medsyn.errors import InputError


def read_jsonl(
    path: str | Path, *, blank_lines: Literal["skip", "error"] = "skip"
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, object)`` for each line; every line must be a JSON object.

    Lines are split on ``\\n`` only: a note written with ``ensure_ascii=False`` may hold U+2028 inside a string,
    which ``str.splitlines`` would wrongly treat as a line break.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise InputError("file not found", path=p) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path=p) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InputError(f"not UTF-8 text (byte {exc.start})", path=p, line=line) from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line; it does not start an empty one
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            if blank_lines == "error":
                raise InputError("empty line", path=p, line=n)
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON ({exc.msg}, column {exc.colno})", path=p, line=n) from None
        if not isinstance(obj, dict):
            raise InputError("expected a JSON object", path=p, line=n)
        yield n, obj
