"""Readers for the evaluation inputs: RuMedTop3 splits, the authors' synthetic sets and ``medsyn generate`` output.

Two JSONL layouts are accepted and told apart by their fields, per line:

* RuMedTop3 (also the authors' synthetic sets): ``{"idx", "symptoms", "code"}``; ``symptoms`` is the note text.
* ``medsyn generate`` notes: ``{"id", "code", "response", "symptoms": [...], "example_id", "accepted", ...}``;
  ``response`` is the note text and ``symptoms`` the requested symptom list. Rejected notes are skipped by default.

A folder is read as a ``medsyn generate`` output folder (notes.jsonl + failures.jsonl) or as a ``medsyn export``
folder (export.json + data/train.jsonl or .parquet: RuMedTop3 records with ``requested_symptoms`` and
``example_ids``).

Every problem is reported as ``file:line: message`` (:class:`~medsyn.errors.InputError`).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from medsyn.errors import InputError
from medsyn.generation.run_folder import FAILURES_FILE, NOTE_STATUSES, NOTES_FILE
from medsyn.jsonl import read_jsonl
from medsyn.paths import data_dir
from medsyn.sharing.folder import read_export_records, read_manifest

Format = Literal["rumedtop3", "generate", "export"]
_CODE = re.compile(r"^[A-Z][0-9]{2}$")


@dataclass(frozen=True, slots=True)
class Note:
    """One clinical note with its 3-character ICD-10 category and where it was read from."""

    id: str
    text: str
    code: str
    path: str
    line: int
    requested: tuple[str, ...] = ()
    example_id: str | None = None
    accepted: bool = True
    """False for a ``medsyn generate`` note the quality filter rejected (read only with ``include_rejected``)."""
    shots: tuple[str, ...] = ()
    """Ids of every real note the prompt showed (a few-shot prompt shows several; ``example_id`` is the first)."""

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(slots=True)
class NoteSet:
    """The notes of one file, plus one warning line per note that was skipped."""

    name: str
    path: Path
    format: Format
    notes: list[Note]
    warnings: list[str] = field(default_factory=list)
    control_of: str | None = None
    """Set for a graph-only control: the name of the set whose requested symptoms it holds as its texts."""

    @property
    def codes(self) -> list[str]:
        return [n.code for n in self.notes]

    @property
    def texts(self) -> list[str]:
        return [n.text for n in self.notes]


def default_train() -> Path:
    return data_dir() / "rumedbench" / "RuMedTop3" / "train_v1.jsonl"


def default_dev() -> Path:
    return data_dir() / "rumedbench" / "RuMedTop3" / "dev_v1.jsonl"


def default_synthetic() -> list[Path]:
    d = data_dir() / "medsyn" / "synthetic"
    return [d / "gpt4_train.jsonl", d / "ru_llama2_7b_ckpt_last_train.jsonl", d / "ru_llama2_13b_ckpt_last_train.jsonl"]


def default_requested() -> Path:
    """The sampled symptom sets the authors prompted their synthetic sets with (RuMedTop3 layout, comma-joined)."""
    return data_dir() / "medsyn" / "synthetic" / "train_sampled.jsonl"


def set_name(path: Path) -> str:
    """A short display name: ``gpt4_train.jsonl`` -> ``gpt4``, ``ru_llama2_7b_ckpt_last_train`` -> ``llama2_7b``."""
    stem = path.stem
    for cut in ("_ckpt_last_train", "_train"):
        stem = stem.removesuffix(cut)
    return stem.removeprefix("ru_")


def display_path(path: str | Path) -> str:
    """``path`` relative to the shared data folder when it lies there, so reports do not leak a machine's layout."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(data_dir().resolve()))
    except ValueError:
        return str(p)


def normalise_code(raw: str) -> str:
    """``"M54.5"`` -> ``"M54"``: RuMedTop3 predicts the 3-character category (as its builder does)."""
    return raw.strip().upper().split(".")[0]


def _string(obj: dict, key: str, path: Path, line: int) -> str:
    value = obj.get(key)
    if value is None:
        raise InputError(f"missing field '{key}'", path=path, line=line)
    if not isinstance(value, str):
        raise InputError(f"field '{key}' must be a string, got {type(value).__name__}", path=path, line=line)
    return value


def _detect(obj: dict) -> Format:
    return "generate" if "response" in obj else "rumedtop3"


def _parse(obj: dict, fmt: Format, path: Path, line: int) -> tuple[Note, bool]:
    """The note of one line and whether it counts (``accepted``; always true for RuMedTop3 lines)."""
    text_key, id_key = ("response", "id") if fmt == "generate" else ("symptoms", "idx")
    text = _string(obj, text_key, path, line)
    if not text.strip():
        raise InputError(f"field '{text_key}' is empty", path=path, line=line)
    code = normalise_code(_string(obj, "code", path, line))
    if not _CODE.match(code):
        raise InputError(f"field 'code' is not an ICD-10 category: {obj['code']!r}", path=path, line=line)
    note_id = obj.get(id_key)
    note_id = str(note_id) if note_id is not None else f"{path.name}:{line}"
    if fmt == "rumedtop3":
        return Note(note_id, text, code, str(path), line), True
    requested = obj.get("symptoms") or []
    if not isinstance(requested, list) or not all(isinstance(s, str) for s in requested):
        raise InputError("field 'symptoms' must be a list of strings", path=path, line=line)
    accepted = obj.get("accepted", True)
    if not isinstance(accepted, bool):
        raise InputError("field 'accepted' must be true or false", path=path, line=line)
    example = obj.get("example_id")
    ex = str(example) if example is not None else None
    shots = obj.get("example_ids") or ([ex] if ex else [])
    if not isinstance(shots, list):
        raise InputError("field 'example_ids' must be a list", path=path, line=line)
    note = Note(note_id, text, code, str(path), line, tuple(requested), ex, accepted, tuple(str(i) for i in shots))
    return note, accepted


GENERATE_FILES = (NOTES_FILE, FAILURES_FILE)


def read_notes(path: str | Path, *, accepted_only: bool = True, name: str | None = None) -> NoteSet:
    """Read a JSONL file of notes in either layout (blank lines ignored), or a ``medsyn generate`` output folder
    (its notes.jsonl and failures.jsonl read as one set).

    >>> ns = read_notes(default_dev())
    >>> ns.format, len(ns.notes), ns.notes[0].code
    ('rumedtop3', 848, 'E11')
    """
    p = Path(path)
    if p.is_dir() and (p / "export.json").is_file():
        return _read_export(p, name=name)
    if p.is_dir():
        files = [p / n for n in GENERATE_FILES if (p / n).is_file()]
        if not files:
            raise InputError(f"no {' or '.join(GENERATE_FILES)} in this folder", path=p)
    elif p.is_file():
        files = [p]
    else:
        raise InputError("no such file", path=p)
    notes: list[Note] = []
    warnings: list[str] = []
    fmt: Format | None = None
    for f in files:
        f_notes, f_warnings, f_fmt = _read_file(f, accepted_only=accepted_only)
        notes += f_notes
        warnings += f_warnings
        fmt = fmt or f_fmt
    if not notes:
        raise InputError("no notes in file" if fmt is None else "no accepted notes in file", path=p)
    return NoteSet(name or set_name(p), p, fmt or "rumedtop3", notes, warnings)


def _read_export(folder: Path, *, name: str | None) -> NoteSet:
    """The notes of a ``medsyn export`` folder; a record flagged as a near-copy is skipped with a warning."""
    path = folder / read_manifest(folder)["data_file"]
    notes: list[Note] = []
    warnings: list[str] = []
    for i, rec in enumerate(read_export_records(folder), start=1):
        text = _string(rec, "symptoms", path, i)
        if not text.strip():
            raise InputError("field 'symptoms' is empty", path=path, line=i)
        code = normalise_code(_string(rec, "code", path, i))
        if not _CODE.match(code):
            raise InputError(f"field 'code' is not an ICD-10 category: {rec['code']!r}", path=path, line=i)
        if rec.get("near_copy"):
            warnings.append(f"{path}:{i}: {rec.get('idx')} is flagged as a near-copy of a real note; skipped")
            continue
        requested = rec.get("requested_symptoms") or []
        examples = rec.get("example_ids") or []
        if not isinstance(requested, list) or not isinstance(examples, list):
            raise InputError("fields 'requested_symptoms' and 'example_ids' must be lists", path=path, line=i)
        ex = str(examples[0]) if examples else None
        shots = tuple(str(e) for e in examples)
        note_id = str(rec.get("idx") or f"{path.name}:{i}")
        notes.append(Note(note_id, text, code, str(path), i, tuple(requested), ex, shots=shots))
    if not notes:
        raise InputError("no notes in the export", path=folder)
    return NoteSet(name or folder.name, folder, "export", notes, warnings)


def _read_file(p: Path, *, accepted_only: bool) -> tuple[list[Note], list[str], Format | None]:
    notes: list[Note] = []
    warnings: list[str] = []
    fmt: Format | None = None
    for i, obj in read_jsonl(p):
        line_fmt = _detect(obj)
        if fmt is None:
            fmt = line_fmt
        elif line_fmt != fmt:
            raise InputError(f"line is in {line_fmt} layout but the file started in {fmt} layout", path=p, line=i)
        if fmt == "generate" and obj.get("status") not in (None, *NOTE_STATUSES):
            # failures.jsonl also holds failed attempts (errors, truncated replies): not notes.
            warnings.append(f"{p}:{i}: {obj.get('id')} is a failed attempt ({obj.get('status')}); skipped")
            continue
        note, accepted = _parse(obj, fmt, p, i)
        if accepted or not accepted_only:
            notes.append(note)
        else:
            warnings.append(f"{p}:{i}: note {note.id} was not accepted by the filter; skipped")
    return notes, warnings, fmt


def restrict_codes(notes: NoteSet, known: Iterable[str], *, strict: bool = False, role: str = "train") -> NoteSet:
    """Drop notes whose code is not in ``known`` (one warning per note), or fail on the first when ``strict``."""
    allowed = set(known)
    kept: list[Note] = []
    warnings = list(notes.warnings)
    for n in notes.notes:
        if n.code in allowed:
            kept.append(n)
            continue
        msg = f"code {n.code} does not occur in the {role} set"
        if strict:
            raise InputError(msg, path=n.path, line=n.line)
        warnings.append(f"{n.where}: {msg}; note dropped")
    if not kept:
        raise InputError(f"no note has a code that occurs in the {role} set", path=notes.path)
    return replace(notes, notes=kept, warnings=warnings)


def read_requested(path: str | Path) -> dict[str, list[tuple[str, ...]]]:
    """Sampled symptom sets per code, in file order (``symptoms`` holds the comma-joined list)."""
    out: dict[str, list[tuple[str, ...]]] = defaultdict(list)
    for n in read_notes(path).notes:
        out[n.code].append(tuple(s.strip() for s in n.text.split(",") if s.strip()))
    return dict(out)


def attach_requested(notes: NoteSet, requested: dict[str, list[tuple[str, ...]]]) -> tuple[NoteSet, bool]:
    """Give each note its requested symptoms by rank within its code; ``False`` (unchanged) if counts differ.

    The authors' synthetic sets do not carry their prompts, but each holds exactly as many notes per code as
    ``train_sampled.jsonl`` and in the same order within a code: pairing the k-th note of a code with the k-th
    symptom set of that code recovers the prompt (recall 0.53 against 0.22 for a random same-code pairing on GPT-4).
    """
    by_code: dict[str, list[int]] = defaultdict(list)
    for i, n in enumerate(notes.notes):
        by_code[n.code].append(i)
    if any(len(idx) != len(requested.get(code, ())) for code, idx in by_code.items()):
        return notes, False
    new = list(notes.notes)
    for code, idx in by_code.items():
        for rank, i in enumerate(idx):
            new[i] = replace(new[i], requested=requested[code][rank])
    return replace(notes, notes=new), True
