"""The unit of work between sampling and generation: one sampled set of medical facts.

Samples are plain JSON lines so that a user can inspect, edit or produce them by hand.

>>> s = Sample(id="s1", index=0, strategy="paper", seed=1, code="M54.5", category="M54",
...            symptoms=["боль в пояснице"], symptom_iris=["https://w3id.org/medsyn/id/symptom/x"])
>>> Sample.from_json(s.to_json()) == s
True
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from medsyn.errors import InputError


def sample_id(seed: int, strategy: str, index: int) -> str:
    """Deterministic id of the ``index``-th sample of a (seed, strategy) stream."""
    return hashlib.sha256(f"{strategy}\x1f{seed}\x1f{index}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Sample:
    id: str
    index: int
    strategy: str
    seed: int
    code: str
    """The ICD-10 code the symptoms were drawn from (a sub-code such as ``M54.5``, or the category)."""
    category: str
    """Its 3-character category, e.g. ``M54``: the label a classifier learns."""
    symptoms: list[str]
    symptom_iris: list[str]
    disease_name: str | None = None
    example_id: str | None = None
    example_text: str | None = None
    demographics: dict[str, Any] | None = None
    """``{"age": int, "sex": "male"|"female", "marital_status": str, "smoking": bool}`` when drawn."""
    drug: dict[str, Any] | None = None
    """``{"iri", "name", "side_effects": [{"iri", "name", "frequency"}]}`` when drawn."""
    kg_version: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Sample:
        """A sample from its JSON object; a field of the wrong type is refused, naming it (a string ``symptoms``
        would otherwise be read as a list of characters)."""
        names = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - names
        if unknown:
            raise InputError(f"unknown sample field(s): {', '.join(sorted(unknown))}")
        missing = [
            f for f in ("id", "index", "strategy", "seed", "code", "category", "symptoms", "symptom_iris") if f not in d
        ]
        if missing:
            raise InputError(f"sample is missing field(s): {', '.join(missing)}")
        for name, kind in _FIELD_TYPES.items():
            value = d.get(name)
            if value is None and name in _OPTIONAL:
                continue
            if kind == "str_list":
                if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
                    raise InputError(f"field {name!r} must be a list of strings, got {_kind(value)}")
            elif kind is int:
                if not isinstance(value, int) or isinstance(value, bool):
                    raise InputError(f"field {name!r} must be an integer, got {_kind(value)}")
            elif not isinstance(value, kind):  # type: ignore[arg-type]
                raise InputError(f"field {name!r} must be {_NAMES[kind]}, got {_kind(value)}")
        return cls(**d)

    @classmethod
    def from_json(cls, line: str) -> Sample:
        return cls.from_dict(json.loads(line))


MAX_SAMPLES = 1_000_000
"""Most samples one `sample` or `generate` call draws (the samples of a call are held in memory, ~1 KB each)."""

_FIELD_TYPES: dict[str, Any] = {
    "id": str,
    "index": int,
    "strategy": str,
    "seed": int,
    "code": str,
    "category": str,
    "symptoms": "str_list",
    "symptom_iris": "str_list",
    "example_id": str,
    "example_text": str,
    "demographics": dict,
    "drug": dict,
    "kg_version": str,
    "extra": dict,
}
_OPTIONAL = {"example_id", "example_text", "demographics", "drug", "kg_version", "extra"}
_NAMES = {str: "a string", dict: "an object"}


def _kind(value: Any) -> str:
    return {
        str: "a string",
        int: "a number",
        float: "a number",
        bool: "a boolean",
        list: "a list",
        dict: "an object",
    }.get(type(value), "null" if value is None else type(value).__name__)


def read_samples(path: str | Path) -> list[Sample]:
    """Read a samples JSONL file; a bad line raises InputError naming ``file:line``."""
    from medsyn.jsonl import read_jsonl

    p = Path(path)
    if not p.is_file():
        raise InputError("samples file not found", path=p)
    out: list[Sample] = []
    for n, obj in read_jsonl(p):
        try:
            out.append(Sample.from_dict(obj))
        except (InputError, TypeError) as exc:
            raise InputError(str(exc), path=p, line=n) from None
    return out


def write_samples(path: str | Path, samples: list[Sample]) -> None:
    """Write samples atomically (temp file + rename)."""
    from medsyn.atomic import atomic_write_text

    atomic_write_text(path, "".join(s.to_json() + "\n" for s in samples))
