"""The output folder of ``medsyn generate``: its files, the records in them, and reading a run back.

Layout::

    DIR/run.json        run id, parameters, graph version, totals, cost (atomic rewrite, periodically and at the end)
    DIR/samples.jsonl   the samples of the run (written once, atomically, at the first start)
    DIR/notes.jsonl     accepted notes, one JSON object per line, appended and flushed per note
    DIR/failures.jsonl  rejected notes and failed attempts with their reason, same fields plus ``status``
    DIR/.lock           the folder's OS lock while a process generates into it

Readers of a run (audit, evaluation, export) need only this module, not the engine.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from medsyn.atomic import writable_folder
from medsyn.errors import InputError
from medsyn.jsonl import read_jsonl
from medsyn.locks import is_held_here
from medsyn.sampling.samples import Sample, read_samples

NOTES_FILE = "notes.jsonl"
FAILURES_FILE = "failures.jsonl"
RUN_FILE = "run.json"
SAMPLES_FILE = "samples.jsonl"
LOCK_FILE = ".lock"
"""The output folder's OS lock: one generating process per folder (released by the kernel on kill -9)."""
LOST = "lost"
"""Status of a failures.jsonl line for a note the store recorded but the folder lost (its id is never reused)."""
NOTE_STATUSES = ("accepted", "rejected")
"""Record statuses that carry a scored note (and so provenance); other failures.jsonl lines are failed attempts."""


def failure_reasons(out_dir: str | Path, top: int = 3) -> str:
    """The most frequent reasons in a run's failures.jsonl, e.g. ``"5 symptom recall, 2 too short"``.

    Reasons are grouped by their words, numbers and parentheses left out, so "symptom recall 0.20 < 0.5" and
    "symptom recall 0.00 < 0.5" count as one reason.
    """
    counts: dict[str, int] = {}
    for rec in read_note_records(Path(out_dir) / FAILURES_FILE):
        words = re.sub(r"\s+", " ", re.sub(r"\(.*?\)|[0-9.]+(?:\s*[<>]\s*[0-9.]+)?", " ", str(rec.get("reason", ""))))
        key = words.strip(" :;,") or str(rec.get("status", "failed"))
        counts[key] = counts.get(key, 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return ", ".join(f"{n} {k}" for k, n in ranked)


def read_note_records(path: Path) -> list[dict[str, Any]]:
    """Records of a JSONL output file (through :func:`medsyn.jsonl.read_jsonl`), without a torn last line (no
    newline: a killed process leaves at most that one). A reader: the file is not changed (the run that owns the
    folder cuts that line, under the folder's lock, with :func:`cut_torn_line`)."""
    if not path.exists():
        return []
    out = []
    try:
        for n, rec in read_jsonl(path, torn_tail="skip"):
            if "id" not in rec or "sample_id" not in rec:
                raise InputError("not a note record (no id or sample_id)", path=path, line=n)
            out.append(rec)
    except InputError as exc:
        raise InputError(f"corrupt output: {exc}; move the file away to start over") from None
    return out


def cut_torn_line(path: Path) -> None:
    """Truncate a torn last line away, so that the next appended record starts a line of its own.

    Only for the process that holds the folder's lock (``generate`` resuming its run): another run may be appending,
    so without the lock this refuses to write.
    """
    if not is_held_here(path.parent / LOCK_FILE):
        raise RuntimeError(f"cut_torn_line({path}) without the lock of its folder: another run may be appending")
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as fh:
            fh.truncate(data.rfind(b"\n") + 1)
            os.fsync(fh.fileno())


def load_run_samples(out_dir: str | Path, sampling: Mapping[str, Any]) -> list[Sample] | None:
    """The samples of an earlier run in ``out_dir`` drawn with the same ``sampling`` parameters, or None.

    Lets a resumed command skip sampling; with other sampling parameters the caller samples again and the engine
    then refuses the directory.
    """
    d = Path(out_dir)
    try:
        prev = json.loads((d / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(prev, dict) or prev.get("identity", {}).get("sampling") != dict(sampling):
        return None
    if not (d / SAMPLES_FILE).is_file():
        return None
    return read_samples(d / SAMPLES_FILE)


def sample_line(s: Sample) -> str:
    """``Sample.to_json()`` without ``dataclasses.asdict``'s deep copies (same text: the fields are JSON values)."""
    return json.dumps(vars(s), ensure_ascii=False, sort_keys=True)


def samples_hash(lines: Sequence[str]) -> str:
    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode("utf-8") + b"\n")
    return h.hexdigest()


def prepare_out(out: Path) -> None:
    """Refuse, in one line, an output folder that is a file or cannot be created or written."""
    if out.exists() and not out.is_dir():
        raise InputError("--out must be a folder, and this is a file", path=out)
    writable_folder(out, "output folder")


def has_note(rec: Mapping[str, Any]) -> bool:
    """A record with a scored note text (accepted or rejected by the filter) gets provenance."""
    return rec.get("status") in NOTE_STATUSES and bool(rec.get("content_hash"))
