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
        names = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - names
        if unknown:
            raise InputError(f"unknown sample field(s): {', '.join(sorted(unknown))}")
        missing = [
            f for f in ("id", "index", "strategy", "seed", "code", "category", "symptoms", "symptom_iris") if f not in d
        ]
        if missing:
            raise InputError(f"sample is missing field(s): {', '.join(missing)}")
        return cls(**d)

    @classmethod
    def from_json(cls, line: str) -> Sample:
        return cls.from_dict(json.loads(line))


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
