"""JSON Lines files: one reader whose errors name ``file:line``, and the append-only writer of generate runs; and
the one reader of a whole-file JSON object (manifests, reports, configs).

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
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from medsyn.errors import InputError, StoreError


def read_json_object(path: str | Path, *, what: str = "file") -> dict[str, Any]:
    """The JSON object in ``path``; one :class:`InputError` line naming the file when it is missing, not JSON or not
    an object (``what`` names the file's role in the "not found" line: "canaries manifest not found")."""
    p = Path(path)
    try:
        data = json.loads(p.read_bytes())
    except FileNotFoundError:
        raise InputError(f"{what} not found", path=p) from None
    except IsADirectoryError:
        raise InputError(f"{what} expected, found a folder", path=p) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"invalid JSON: {exc}", path=p) from None
    if not isinstance(data, dict):
        raise InputError("expected a JSON object", path=p)
    return data


def read_jsonl(
    path: str | Path, *, blank_lines: Literal["skip", "error"] = "skip", torn_tail: Literal["read", "skip"] = "read"
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, object)`` for each line; every line must be a JSON object.

    Lines are split on ``\\n`` only: a note written with ``ensure_ascii=False`` may hold U+2028 inside a string,
    which ``str.splitlines`` would wrongly treat as a line break. ``torn_tail="skip"`` leaves out a last line with
    no newline (what a killed :class:`JsonlAppender` leaves), without changing the file.
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
    if lines and (lines[-1] == "" or torn_tail == "skip"):
        lines.pop()  # the final newline ends the last line (it does not start an empty one), or a torn line
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


class JsonlAppender:
    """Append-only JSONL: each record is one ``write`` syscall of a whole line (unbuffered), so a killed process leaves
    at most one torn last line, which :func:`medsyn.generation.run_folder.read_note_records` skips and
    :func:`~medsyn.generation.run_folder.cut_torn_line` cuts off under the folder's lock. :meth:`sync` makes the lines
    written so far survive a power loss; the generation engine calls it before it writes their provenance."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._fh = path.open("ab", buffering=0)
        except OSError as exc:
            raise StoreError(f"cannot open {path}: {exc.strerror or exc}") from None
        self._dirty = False

    def write(self, record: Mapping[str, Any]) -> None:
        data = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        try:
            n = self._fh.write(data)
            while n is not None and n < len(data):  # a short write (disk full): finish it or fail loudly
                data = data[n:]
                n = self._fh.write(data)
        except OSError as exc:
            raise StoreError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        self._dirty = True

    def sync(self) -> None:
        if self._dirty:
            try:
                os.fsync(self._fh.fileno())
            except OSError as exc:
                raise StoreError(f"cannot write {self.path}: {exc.strerror or exc}") from None
            self._dirty = False

    def close(self) -> None:
        if not self._fh.closed:
            self.sync()
            self._fh.close()
