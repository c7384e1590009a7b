"""Reader of MedSyn's ``main_proc.csv`` (one row per ICD-10 code), shared by the medsyn-mkg, hsdn, pharmacotherapydb
and sider4 importers. Cells holding lists are Python literals (``"['MESH:D006560']"``)."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from medsyn.errors import InputError
from medsyn.kg.importers._common import read_table
from medsyn.kg.vocab import is_valid_code, normalize_code

FILE = "medsyn/mkg/main_proc.csv"
FIELDS = [
    "icd_10",
    "DOID",
    "MESH",
    "ULMS",
    "Name",
    "names_ru",
    "symptoms",
    "symptoms_mesh_id",
    "sympotoms_tf_idfs",
    "symptoms_ru",
]


@dataclass(frozen=True)
class Row:
    line: int
    code: str
    raw_code: str
    doid: str
    mesh: tuple[str, ...]
    umls: tuple[str, ...]
    name_en: str
    name_ru: str
    symptoms_en: tuple[str, ...]
    symptoms_ru: tuple[str, ...]
    symptoms_mesh: tuple[str, ...]
    tfidf: tuple[float, ...]


def _list(cell: str, field: str, path: Path, line: int) -> list[object]:
    cell = cell.strip()
    if not cell or cell == "nan":
        return []
    try:
        value = ast.literal_eval(cell)
    except (ValueError, SyntaxError):
        raise InputError(f"field {field}: not a list literal: {cell[:40]!r}", path=path, line=line) from None
    if not isinstance(value, list | tuple):
        raise InputError(f"field {field}: expected a list, got {type(value).__name__}", path=path, line=line)
    return list(value)


def _strs(cell: str, field: str, path: Path, line: int, prefix: str = "") -> tuple[str, ...]:
    out = []
    for v in _list(cell, field, path, line):
        s = str(v).strip()
        out.append(s[len(prefix) :] if prefix and s.startswith(prefix) else s)
    return tuple(out)


_cache: dict[tuple[Path, int, int], list[Row]] = {}


def read(data: Path) -> list[Row]:
    """Parsed rows; a duplicate code, a bad code or misaligned symptom lists raise InputError with file:line."""
    path = data / FILE
    try:
        st = path.stat()
    except OSError:
        raise InputError("source file not found", path=path) from None
    key = (path.resolve(), st.st_mtime_ns, st.st_size)
    if key in _cache:
        return _cache[key]
    rows: list[Row] = []
    seen: dict[str, int] = {}
    # main_proc.csv has a leading index column in some revisions; the named fields are what we rely on.
    for line, r in read_table(path, delimiter=",", required=FIELDS):
        raw = r["icd_10"]
        code = normalize_code(raw)
        if not is_valid_code(code):
            raise InputError(f"field icd_10: invalid ICD-10 code {raw!r}", path=path, line=line)
        if code in seen:
            raise InputError(f"field icd_10: duplicate code {code} (first on line {seen[code]})", path=path, line=line)
        seen[code] = line
        en = _strs(r["symptoms"], "symptoms", path, line)
        ru = _strs(r["symptoms_ru"], "symptoms_ru", path, line)
        try:
            w = tuple(float(x) for x in _list(r["sympotoms_tf_idfs"], "sympotoms_tf_idfs", path, line))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise InputError("field sympotoms_tf_idfs: non-numeric weight", path=path, line=line) from None
        if len(w) != len(en) or (ru and len(ru) != len(en)):
            raise InputError(
                f"fields symptoms/sympotoms_tf_idfs/symptoms_ru: lengths {len(en)}/{len(w)}/{len(ru)} differ",
                path=path,
                line=line,
            )
        rows.append(
            Row(
                line=line,
                code=code,
                raw_code=raw,
                doid=r["DOID"].strip(),
                mesh=_strs(r["MESH"], "MESH", path, line, "MESH:"),
                umls=_strs(r["ULMS"], "ULMS", path, line, "UMLS_CUI:"),
                name_en=r["Name"].strip(),
                name_ru=r["names_ru"].strip(),
                symptoms_en=en,
                symptoms_ru=ru,
                symptoms_mesh=_strs(r["symptoms_mesh_id"], "symptoms_mesh_id", path, line, "MESH:"),
                tfidf=w,
            )
        )
    _cache.clear()
    _cache[key] = rows
    return rows


def path_of(data: Path) -> Path:
    return data / FILE
