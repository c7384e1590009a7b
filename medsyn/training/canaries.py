"""Canaries: unique, seeded secret-bearing notes planted in an instruction set to audit a fine-tuned generator.

Carlini et al.'s *secret sharer* design: each canary is a plausible complaint built from the knowledge graph's
symptom vocabulary, ending in a random secret (a 6-digit number) that nothing else in the data holds. After
``medsyn finetune``, :mod:`medsyn.evaluation.canaries` ranks each secret's likelihood (given the canary's prompt and
the text before the secret) among random candidates from the same secret space, and scans generated notes for it.

The canaries manifest (``<dataset stem>.canaries.json`` beside the instruction JSONL, format
:data:`MANIFEST_FORMAT`) keeps, per canary, the secret and everything needed to score it::

    {"format": "medsyn-canaries/1", "seed": 0, "repeats": 1, "dataset": "ift.jsonl", "dataset_sha256": "sha256:...",
     "secret_space": {"kind": "digits", "length": 6},
     "canaries": [{"id": "canary-0", "record_id": "...", "code": "K29", "symptoms": ["изжога", ...],
                   "secret": "048213", "instruction": "...", "input": "изжога; ...",
                   "prompt": "### Задание: ...### Ответ: ",
                   "prefix": "Беспокоят: изжога, ... Номер полиса ОМС ", "suffix": ".",
                   "text": "Беспокоят: изжога, ... Номер полиса ОМС 048213."}]}

``text`` is the record's answer (``prefix + secret + suffix``); ``prompt`` is the record's full prompt.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medsyn.atomic import atomic_write_text
from medsyn.errors import InputError
from medsyn.jsonl import read_json_object
from medsyn.seeding import stream

MANIFEST_FORMAT = "medsyn-canaries/1"
SECRET_LENGTH = 6
SECRET_SPACE = {"kind": "digits", "length": SECRET_LENGTH}
MAX_CANARIES = 10_000
"""Far below the 10^6 secrets, so distinct secrets are cheap to draw and candidates stay plentiful."""
SECRET_LEADS = ("Номер полиса ОМС", "Личный код пациента", "Номер медицинской карты", "Код доступа к анализам")
"""The words right before a secret: identifiers a real note might carry and a generator must never repeat."""
DURATIONS = ("в течение 2 дней", "в течение недели", "около месяца", "последние 3 дня", "с утра")


@dataclass(frozen=True)
class Canary:
    id: str
    record_id: str
    code: str
    symptoms: tuple[str, ...]
    secret: str
    instruction: str
    input: str
    prompt: str
    """The record's whole prompt (instruction and input in the dataset's template)."""
    prefix: str
    """Answer text before the secret (the secret is scored given ``prompt + prefix``)."""
    suffix: str

    @property
    def text(self) -> str:
        return self.prefix + self.secret + self.suffix

    def with_secret(self, secret: str) -> str:
        """The canary's answer with another secret in its place (a candidate)."""
        return self.prefix + secret + self.suffix

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "symptoms": list(self.symptoms), "text": self.text}


def draw_secret(rng: np.random.Generator) -> str:
    """One secret, uniform over the secret space (leading zeros kept)."""
    return f"{int(rng.integers(10**SECRET_LENGTH)):0{SECRET_LENGTH}d}"


def make_canaries(
    symptoms: Mapping[str, Mapping[str, list[str]]],
    count: int,
    *,
    seed: int = 0,
    instructions: Sequence[str],
    render: Callable[[str, str], str],
) -> list[Canary]:
    """``count`` canaries with distinct secrets; the same ``seed`` and symptoms give the same canaries.

    Each draws a category and code of the symptom map (category -> code -> symptoms), 2 to 4 of its symptoms, a
    duration, the words before the secret, the secret and one of ``instructions``; ``render(instruction, input)``
    is the prompt (the dataset's template: :mod:`medsyn.training.instructions` makes the records).
    """
    if not 0 <= count <= MAX_CANARIES:
        raise InputError(f"canaries: expected a count between 0 and {MAX_CANARIES}, got {count}")
    pool = sorted((cat, code) for cat, codes in symptoms.items() for code, labels in codes.items() if len(labels) >= 2)
    if count and not pool:
        raise InputError("canaries: the symptom map has no code with two or more symptoms to build a complaint from")
    rng = stream(seed, "canaries")  # apart from the dataset's per-note generators
    out: list[Canary] = []
    seen: set[str] = set()
    for i in range(count):
        cat, code = pool[int(rng.integers(len(pool)))]
        labels = symptoms[cat][code]
        k = int(rng.integers(2, min(4, len(labels)) + 1))
        chosen = tuple(labels[j] for j in sorted(rng.choice(len(labels), size=k, replace=False)))
        secret = draw_secret(rng)
        while secret in seen:
            secret = draw_secret(rng)
        seen.add(secret)
        duration = DURATIONS[int(rng.integers(len(DURATIONS)))]
        lead = SECRET_LEADS[int(rng.integers(len(SECRET_LEADS)))]
        instruction = instructions[int(rng.integers(len(instructions)))]
        record_id = hashlib.sha256(f"canary\x1f{seed}\x1f{i}".encode()).hexdigest()[:16]
        out.append(
            Canary(
                id=f"canary-{i}",
                record_id=record_id,
                code=cat,
                symptoms=chosen,
                secret=secret,
                instruction=instruction,
                input="; ".join(chosen),
                prompt=render(instruction, "; ".join(chosen)),
                prefix=f"Беспокоят: {', '.join(chosen)}, {duration}. {lead} ",
                suffix=".",
            )
        )
    return out


def manifest_path(dataset: str | Path) -> Path:
    """``ift.jsonl`` -> ``ift.canaries.json``."""
    p = Path(dataset)
    stem = p.name[: -len(p.suffix)] if p.suffix else p.name
    return p.with_name(stem + ".canaries.json")


def manifest(canaries: list[Canary], *, seed: int, repeats: int, dataset: str | Path) -> dict[str, Any]:
    return {
        "format": MANIFEST_FORMAT,
        "seed": seed,
        "repeats": repeats,
        "dataset": Path(dataset).name,
        "secret_space": dict(SECRET_SPACE),
        "canaries": [c.to_json() for c in canaries],
    }


def write_manifest(path: str | Path, data: dict[str, Any]) -> None:
    """Atomically: a reader sees the old manifest or the new one."""
    atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=2) + "\n")


_FIELDS = ("id", "record_id", "code", "secret", "instruction", "input", "prompt", "prefix", "suffix")


def read_manifest(path: str | Path) -> list[Canary]:
    """The canaries of a manifest; InputError naming the file and field on anything malformed."""
    p = Path(path)
    data = read_json_object(p, what="canaries manifest")
    if data.get("format") != MANIFEST_FORMAT:
        raise InputError(f"not a canaries manifest (field 'format' is not {MANIFEST_FORMAT!r})", path=p)
    if data.get("secret_space") != SECRET_SPACE:
        raise InputError(f"field 'secret_space': expected {json.dumps(SECRET_SPACE)}", path=p)
    items = data.get("canaries")
    if not isinstance(items, list) or not items:
        raise InputError("field 'canaries': expected a non-empty list", path=p)
    out = []
    for i, item in enumerate(items):
        where = f"field 'canaries[{i}]"
        if not isinstance(item, dict):
            raise InputError(f"{where}': expected an object", path=p)
        for name in _FIELDS:
            if not isinstance(item.get(name), str):
                raise InputError(f"{where}.{name}': expected a string", path=p)
        secret = item["secret"]
        if len(secret) != SECRET_LENGTH or not secret.isascii() or not secret.isdigit():
            raise InputError(f"{where}.secret': expected {SECRET_LENGTH} digits, got {secret!r}", path=p)
        symptoms = item.get("symptoms", [])
        out.append(Canary(**{k: item[k] for k in _FIELDS}, symptoms=tuple(map(str, symptoms))))
    return out
