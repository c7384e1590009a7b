"""The instruction dataset for fine-tuning a local model (the paper's two tasks) and its dataset card.

Tasks, each with several paraphrased instructions:

* ``write`` - write a note from a code's symptoms (symptoms joined by "; ", plus an example note of the same
  code for part of the records); the answer is a real train note of that code. The symptoms are ``drawn`` (2-5 of
  one code's graph symptoms, the paper's way: the note need not say them) or ``stated`` (the graph symptoms of the
  note's category that the note itself states, found by the filter's lemma matcher, at most ``max_symptoms``): a
  model trained on stated symptoms learns to expand a list into the note that said it, not to ignore the list.
* ``continue`` - continue a note from its beginning; the answer is the rest of the note.

Every record is rendered as ``### Задание: {instruction}\\n### Вход: {input}\\n### Ответ: `` followed by the answer.
Only RuMedTop3 *train* notes are used (a note whose id or text is in the dev split is dropped). The held-out part
(``split == "eval"``) is chosen per note by a seeded hash, so the same note never feeds both parts, and examples are
drawn from the same part. Generated notes (optional mix-in) go to the train part only.

>>> build_prompt("Продолжи запись.", "Жалобы на")
'### Задание: Продолжи запись.\\n### Вход: Жалобы на\\n### Ответ: '
"""

from __future__ import annotations

import hashlib
import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medsyn.atomic import atomic_write_text
from medsyn.errors import InputError
from medsyn.jsonl import read_json_object, read_jsonl
from medsyn.training import canaries as cn
from medsyn.training.canaries import Canary, stream

if TYPE_CHECKING:
    from medsyn.sampling.draw import Matcher

PROMPT_TEMPLATE = "### Задание: {instruction}\n### Вход: {input}\n### Ответ: "

WRITE_INSTRUCTIONS = [
    "Напиши жалобы пациента для медицинской карты, используя только перечисленные симптомы.",
    "Составь краткую запись о жалобах пациента на приёме у врача по следующим симптомам.",
    "Опиши жалобы пациента так, как их записал бы врач в амбулаторной карте. Симптомы:",
    "По списку симптомов напиши реалистичную медицинскую запись с жалобами пациента на русском языке.",
    "Сформулируй жалобы больного для истории болезни. Используй только эти симптомы, без комментариев.",
]
WRITE_WITH_EXAMPLE_INSTRUCTIONS = [
    "Вот пример медицинской записи и список симптомов. Напиши похожую запись для другого пациента с тем же "
    "заболеванием, используя только эти симптомы.",
    "Следуя стилю примера, составь жалобы нового пациента с тем же диагнозом по перечисленным симптомам.",
    "Используя пример записи как образец, напиши краткую запись о жалобах другого пациента с указанными симптомами.",
    "Напиши новую медицинскую запись в стиле примера. Упомяни только заданные симптомы и не добавляй комментариев.",
]
# With stated symptoms the answer holds the listed symptoms and more: the instruction asks for exactly that.
STATED_INSTRUCTIONS = [
    "Напиши жалобы пациента для медицинской карты. В записи должны быть эти симптомы и подробности, которых нет в "
    "списке.",
    "Составь запись врача о жалобах пациента, в которой есть перечисленные симптомы.",
]
STATED_WITH_EXAMPLE_INSTRUCTIONS = [
    "Вот пример медицинской записи и симптомы другого пациента с тем же заболеванием. Напиши его жалобы так, как их "
    "записал бы врач: с этими симптомами и подробностями, которых нет в списке.",
    "Следуя стилю примера, напиши жалобы другого пациента с тем же диагнозом; упомяни перечисленные симптомы.",
]
SYMPTOM_MODES = ("drawn", "stated")
CONTINUE_INSTRUCTIONS = [
    "Продолжи медицинскую запись о жалобах пациента.",
    "Допиши запись врача, начало которой дано ниже.",
    "Перед тобой начало жалоб пациента из амбулаторной карты. Продолжи текст.",
    "Закончи медицинскую запись, сохраняя её стиль.",
    "Продолжи описание жалоб и анамнеза пациента с того места, где оно оборвалось.",
]
INSTRUCTIONS = {"write": WRITE_INSTRUCTIONS + WRITE_WITH_EXAMPLE_INSTRUCTIONS, "continue": CONTINUE_INSTRUCTIONS}
STATED = {"write": STATED_INSTRUCTIONS + STATED_WITH_EXAMPLE_INSTRUCTIONS, "continue": CONTINUE_INSTRUCTIONS}
TASKS = ("write", "continue")


def build_prompt(instruction: str, input: str) -> str:
    """The paper's prompt; the model's answer follows it directly (used for training and generation alike)."""
    return PROMPT_TEMPLATE.format(instruction=instruction, input=input)


@dataclass(frozen=True)
class Note:
    id: str
    text: str
    category: str
    """3-character ICD-10 category, e.g. ``M54``."""
    source: str = "rumedtop3"
    symptoms: tuple[str, ...] | None = None
    """Symptoms the note was generated from (generated notes only)."""


@dataclass(frozen=True)
class InstructionRecord:
    id: str
    task: str
    split: str
    instruction: str
    input: str
    output: str
    code: str | None = None
    note_id: str | None = None
    source: str | None = None
    example_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt(self) -> str:
        return build_prompt(self.instruction, self.input)

    def to_json(self) -> str:
        d = {k: v for k, v in asdict(self).items() if v not in (None, {})}
        return json.dumps(d, ensure_ascii=False)


def _stable_int(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()[:8], "big")


def split_of(note_id: str, *, seed: int, eval_fraction: float) -> str:
    """``"eval"`` for about ``eval_fraction`` of the note ids (seeded hash), ``"train"`` otherwise."""
    return "eval" if _stable_int("split", seed, note_id) % 1_000_000 < eval_fraction * 1_000_000 else "train"


# ---------------------------------------------------------------- reading notes and symptoms


def _text_field(obj: Mapping[str, Any], names: Iterable[str], *, path: Path, line: int, what: str) -> str:
    for name in names:
        value = obj.get(name)
        if isinstance(value, str) and value.strip():
            return " ".join(value.split())
    raise InputError(f"missing or empty {what} (one of: {', '.join(names)})", path=path, line=line)


def read_notes(path: str | Path, *, source: str = "rumedtop3") -> list[Note]:
    """RuMedTop3-format notes ``{idx, symptoms, code}``; generated-note files may instead use ``note_id``/``id``,
    ``text``/``response`` and ``category`` (a list-valued ``symptoms`` is then the symptom set used)."""
    p = Path(path)
    notes = []
    for n, obj in read_jsonl(p, blank_lines="error"):
        nid = _text_field(obj, ("idx", "note_id", "id"), path=p, line=n, what="note id")
        text = _text_field(obj, ("text", "response", "note", "symptoms"), path=p, line=n, what="note text")
        code = _text_field(obj, ("category", "code"), path=p, line=n, what="ICD-10 code")
        syms = obj.get("symptoms")
        notes.append(
            Note(
                id=nid,
                text=text,
                category=code.upper()[:3],
                source=source,
                symptoms=tuple(str(s) for s in syms) if isinstance(syms, list) and syms else None,
            )
        )
    if not notes:
        raise InputError("no notes", path=p)
    return notes


SymptomMap = dict[str, dict[str, list[str]]]
"""category -> code -> Russian symptoms (deduplicated by normalised label, sorted)."""


def _add_symptoms(out: SymptomMap, code: str, labels: Iterable[str]) -> None:
    from medsyn.kg.vocab import normalize_code, normalize_label

    code = normalize_code(code)
    seen: dict[str, str] = {}
    for label in [*out.get(code[:3], {}).get(code, []), *labels]:
        key = normalize_label(label)
        if key and key not in seen:
            seen[key] = " ".join(label.split())
    if seen:
        out.setdefault(code[:3], {})[code] = sorted(seen.values())


def symptoms_from_json(path: str | Path) -> SymptomMap:
    """Read the MedSyn symptom map ``{ICD-10 code: [Russian symptom, ...]}`` directly (no store needed)."""
    p = Path(path)
    data = read_json_object(p, what="symptom map")
    if not isinstance(data, dict):
        raise InputError("expected a JSON object {code: [symptoms]}", path=p)
    out: SymptomMap = {}
    for code, labels in data.items():
        if not isinstance(labels, list) or not all(isinstance(s, str) for s in labels):
            raise InputError(f"field {code!r}: expected a list of strings", path=p)
        _add_symptoms(out, code, labels)
    return out


def symptoms_from_store(store: Any, *, source: str = "wikimed") -> SymptomMap:
    """Symptoms per code from the knowledge graph (``sparql/instructions/symptoms_by_category.rq``)."""
    from urllib.parse import unquote

    from medsyn.kg.queries import run_named
    from medsyn.kg.vocab import source_iri

    rows = run_named(store, "instructions/symptoms_by_category", source=source_iri(source))
    per_code: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        code = row["code"].value if "code" in row else unquote(row["disease"].value.rsplit("/", 1)[-1])
        per_code[code].append(row["label"].value)
    out: SymptomMap = {}
    for code in sorted(per_code):
        _add_symptoms(out, code, per_code[code])
    if not out:
        raise InputError(
            f"the store has no symptom associations from source {source!r}; build it with `medsyn kg build`"
        )
    return out


# ---------------------------------------------------------------- building


@dataclass(frozen=True)
class BuildOptions:
    seed: int = 0
    eval_fraction: float = 0.05
    example_share: float = 0.5
    """Share of ``write`` records whose input also holds an example note of the same code."""
    min_symptoms: int = 2
    max_symptoms: int = 5
    symptoms: str = "drawn"
    """Which symptoms a ``write`` record lists (:data:`SYMPTOM_MODES`): ``drawn`` from a code of the note's
    category, or ``stated`` by the note itself."""
    min_continue_words: int = 8
    tasks: tuple[str, ...] = TASKS
    canaries: int = 0
    """Canary records to plant (:mod:`medsyn.training.canaries`); their manifest goes beside the dataset."""
    canary_repeats: int = 1
    """Copies of each canary record in the train part (more copies: more memorisation to detect)."""

    def __post_init__(self) -> None:
        if not 0 <= self.eval_fraction < 1:
            raise InputError(f"eval_fraction: expected a value in [0, 1), got {self.eval_fraction}")
        if not 0 <= self.example_share <= 1:
            raise InputError(f"example_share: expected a value in [0, 1], got {self.example_share}")
        if not 1 <= self.min_symptoms <= self.max_symptoms:
            raise InputError("min_symptoms/max_symptoms: expected 1 <= min <= max")
        if self.symptoms not in SYMPTOM_MODES:
            raise InputError(f"--symptoms must be one of {', '.join(SYMPTOM_MODES)}, got {self.symptoms!r}")
        unknown = set(self.tasks) - set(TASKS)
        if unknown or not self.tasks:
            raise InputError(f"tasks: expected some of {', '.join(TASKS)}, got {', '.join(self.tasks) or 'none'}")
        if self.canaries < 0 or self.canary_repeats < 1:
            raise InputError("canaries/canary_repeats: expected a count >= 0 and repeats >= 1")


def _record(task: str, note: Note, split: str, seed: int, instruction: str, inp: str, out: str, **kw: Any) -> Any:
    rid = hashlib.sha256(f"{task}\x1f{note.source}\x1f{note.id}\x1f{seed}".encode()).hexdigest()[:16]
    return InstructionRecord(
        id=rid,
        task=task,
        split=split,
        instruction=instruction,
        input=inp,
        output=out,
        code=note.category,
        note_id=note.id,
        source=note.source,
        **kw,
    )


def _write_record(
    note: Note,
    split: str,
    symptoms: SymptomMap,
    pool: list[Note],
    opts: BuildOptions,
    rng: np.random.Generator,
    stated_by: Matcher | None,
) -> InstructionRecord | None:
    """A write record; ``stated_by``: the matcher that lists the symptoms the note states (None: drawn symptoms)."""
    stated = stated_by is not None
    if note.symptoms:
        chosen = list(note.symptoms)
    elif stated_by is not None:
        chosen = _stated(note, symptoms, opts, rng, stated_by)
        if not chosen:
            return None
    else:
        codes = sorted(symptoms.get(note.category, {}))
        if not codes:
            return None
        labels = symptoms[note.category][codes[int(rng.integers(len(codes)))]]
        k = int(rng.integers(min(opts.min_symptoms, len(labels)), min(opts.max_symptoms, len(labels)) + 1))
        chosen = [labels[i] for i in rng.choice(len(labels), size=k, replace=False)]
    inp = "; ".join(chosen)
    others = [n for n in pool if n.id != note.id]
    use_example, pick = rng.random() < opts.example_share, rng.random()  # always drawn: later draws stay put
    example = others[int(pick * len(others))] if others and use_example else None
    if example is not None:
        choices = STATED_WITH_EXAMPLE_INSTRUCTIONS if stated else WRITE_WITH_EXAMPLE_INSTRUCTIONS
        inp = f"Пример: {example.text}\nСимптомы: {inp}"
    else:
        choices = STATED_INSTRUCTIONS if stated else WRITE_INSTRUCTIONS
    instruction = choices[int(rng.integers(len(choices)))]
    return _record(
        "write",
        note,
        split,
        opts.seed,
        instruction,
        inp,
        note.text,
        example_id=example.id if example else None,
        extra={"symptoms": chosen},
    )


def _stated(
    note: Note, symptoms: SymptomMap, opts: BuildOptions, rng: np.random.Generator, matcher: Matcher
) -> list[str]:
    """Up to ``max_symptoms`` of the category's graph symptoms that the note states, in a seeded order (the
    matcher returns them sorted, and a sorted list would teach the order, not the note)."""
    labels = sorted({s for per_code in symptoms.get(note.category, {}).values() for s in per_code})
    said = matcher(note.text, labels)
    order = rng.permutation(len(said))
    return [said[i] for i in order[: opts.max_symptoms]]


def _continue_record(note: Note, split: str, opts: BuildOptions, rng: np.random.Generator) -> InstructionRecord | None:
    words = note.text.split()
    if len(words) < opts.min_continue_words:
        return None
    cut = int(rng.integers(max(2, int(len(words) * 0.3)), int(len(words) * 0.7) + 1))
    instruction = CONTINUE_INSTRUCTIONS[int(rng.integers(len(CONTINUE_INSTRUCTIONS)))]
    return _record("continue", note, split, opts.seed, instruction, " ".join(words[:cut]), " ".join(words[cut:]))


def build_instructions(
    notes: list[Note],
    symptoms: SymptomMap,
    *,
    options: BuildOptions | None = None,
    generated: list[Note] | None = None,
    dev_notes: Iterable[Note] = (),
    matcher: Matcher | None = None,
) -> tuple[list[InstructionRecord], dict[str, int]]:
    """Records of both tasks for every usable note, in input order, plus counts of what was left out.

    Deterministic for the same inputs and ``options.seed``: each note draws from its own seeded generator.
    ``matcher`` finds the symptoms a note states (``options.symptoms == "stated"``): the generation layer's lemma
    matcher, :func:`medsyn.generation.mentions.mentioned_symptoms`, passed in because training sits below it.
    """
    opts = options or BuildOptions()
    stated_by = matcher if opts.symptoms == "stated" else None
    if opts.symptoms == "stated" and stated_by is None:
        raise InputError("stated symptoms need a matcher (medsyn.generation.mentions.mentioned_symptoms)")
    dev = list(dev_notes)
    dev_ids, dev_texts = {n.id for n in dev}, {n.text for n in dev}
    skipped: Counter[str] = Counter()
    real = []
    for n in notes:
        if n.id in dev_ids or n.text in dev_texts:
            skipped["dev_overlap"] += 1
        else:
            real.append(n)
    mixed = []
    for n in generated or []:
        if n.text in dev_texts:
            skipped["dev_overlap"] += 1
        else:
            mixed.append(n)
    pools: dict[tuple[str, str], list[Note]] = defaultdict(list)
    for n in real:
        pools[(split_of(n.id, seed=opts.seed, eval_fraction=opts.eval_fraction), n.category)].append(n)
    records: list[InstructionRecord] = []
    for n in [*real, *mixed]:
        split = "train" if n.source != "rumedtop3" else split_of(n.id, seed=opts.seed, eval_fraction=opts.eval_fraction)
        rng = np.random.default_rng([opts.seed, _stable_int(n.source, n.id) % (1 << 63)])
        if "write" in opts.tasks:
            rec = _write_record(n, split, symptoms, pools[(split, n.category)], opts, rng, stated_by)
            records.append(rec) if rec else skipped.update(["write_no_symptoms"])
        if "continue" in opts.tasks:
            rec = _continue_record(n, split, opts, rng)
            records.append(rec) if rec else skipped.update(["continue_too_short"])
    return records, dict(skipped)


# ---------------------------------------------------------------- canaries


def canary_record(canary: Canary) -> InstructionRecord:
    return InstructionRecord(
        id=canary.record_id,
        task="canary",
        split="train",
        instruction=canary.instruction,
        input=canary.input,
        output=canary.text,
        code=canary.code,
        note_id=canary.id,
        source="canary",
        extra={"symptoms": list(canary.symptoms)},
    )


def plant_canaries(
    records: list[InstructionRecord], canaries: list[Canary], *, repeats: int = 1, seed: int = 0
) -> list[InstructionRecord]:
    """``records`` with each canary's record inserted ``repeats`` times at seeded positions (order of the rest kept)."""
    if repeats < 1:
        raise InputError(f"canary repeats: expected a positive integer, got {repeats}")
    planted = [canary_record(c) for c in canaries for _ in range(repeats)]
    if not planted:
        return list(records)
    rng = stream(seed, "positions")
    slots = np.sort(rng.integers(0, len(records) + 1, size=len(planted)))
    order = rng.permutation(len(planted))
    out: list[InstructionRecord] = []
    j = 0
    for i, rec in enumerate(records):
        while j < len(planted) and slots[j] == i:
            out.append(planted[order[j]])
            j += 1
        out.append(rec)
    out += [planted[order[k]] for k in range(j, len(planted))]
    return out


# ---------------------------------------------------------------- reading and writing datasets


def read_dataset(path: str | Path) -> list[InstructionRecord]:
    """Read an instruction JSONL file (this module's records or any ``{instruction, input, output}`` lines).

    Bad lines raise InputError naming ``file:line``. Records without ``split`` count as train.
    """
    p = Path(path)
    records = []
    for n, obj in read_jsonl(p, blank_lines="error"):
        for name in ("instruction", "output"):
            value = obj.get(name)
            if not isinstance(value, str) or not value.strip():
                raise InputError(f"field {name!r}: missing or empty", path=p, line=n)
        inp = obj.get("input", "")
        if not isinstance(inp, str):
            raise InputError("field 'input': expected a string", path=p, line=n)
        split = obj.get("split", "train")
        if split not in ("train", "eval"):
            raise InputError(f"field 'split': expected 'train' or 'eval', got {split!r}", path=p, line=n)
        extra = obj.get("extra") or {}
        if not isinstance(extra, dict):
            raise InputError("field 'extra': expected a JSON object", path=p, line=n)
        known = {f for f in InstructionRecord.__dataclass_fields__}
        records.append(
            InstructionRecord(
                id=str(obj.get("id", n)),
                task=str(obj.get("task", "custom")),
                split=split,
                instruction=obj["instruction"],
                input=inp,
                output=obj["output"],
                code=obj.get("code"),
                note_id=obj.get("note_id"),
                source=obj.get("source"),
                example_id=obj.get("example_id"),
                extra={k: v for k, v in obj.items() if k not in known} | extra,
            )
        )
    if not records:
        raise InputError("empty dataset (no records)", path=p)
    return records


def _stats(values: list[int]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    s = sorted(values)
    return {
        "n": len(s),
        "min": s[0],
        "median": float(statistics.median(s)),
        "mean": round(statistics.fmean(s), 1),
        "p95": s[min(len(s) - 1, int(0.95 * len(s)))],
        "max": s[-1],
    }


def dataset_card(
    records: list[InstructionRecord],
    *,
    count: Callable[[str], int] | None = None,
    unit: str = "words",
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Counts per task, split, source and code, and prompt/answer lengths (``count``: text -> length)."""
    length = count or (lambda t: len(t.split()))
    per_code: dict[str, Counter[str]] = defaultdict(Counter)
    lengths: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        per_code[r.code or "-"][r.task] += 1
        p, a = length(r.prompt), length(r.output)
        for key in (r.task, "all"):
            lengths[key]["prompt"].append(p)
            lengths[key]["answer"].append(a)
            lengths[key]["total"].append(p + a)
    return {
        "format": PROMPT_TEMPLATE,
        "records": len(records),
        "by_split": dict(sorted(Counter(r.split for r in records).items())),
        "by_task": dict(sorted(Counter(r.task for r in records).items())),
        "by_task_split": dict(sorted(Counter(f"{r.task}/{r.split}" for r in records).items())),
        "by_source": dict(sorted(Counter(r.source or "-" for r in records).items())),
        "with_example": sum(1 for r in records if r.example_id),
        "codes": len(per_code),
        "per_code": {c: dict(sorted(v.items())) for c, v in sorted(per_code.items())},
        "length_unit": unit,
        "lengths": {k: {part: _stats(v) for part, v in d.items()} for k, d in sorted(lengths.items())},
        "instructions": INSTRUCTIONS,
        **dict(extra or {}),
    }


def card_markdown(card: Mapping[str, Any]) -> str:
    """A short human-readable rendering of a dataset card."""
    lines = [
        "# Instruction dataset card",
        "",
        f"Records: {card['records']} · codes: {card['codes']} · with example note: {card['with_example']}",
        "",
        "| task/split | records |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in card["by_task_split"].items()],
        "",
        f"Lengths ({card['length_unit']}):",
        "",
        "| task | part | min | median | mean | p95 | max |",
        "|---|---|---|---|---|---|---|",
    ]
    for task, parts in card["lengths"].items():
        for part, s in parts.items():
            if s.get("n"):
                lines.append(
                    f"| {task} | {part} | {s['min']} | {s['median']} | {s['mean']} | {s['p95']} | {s['max']} |"
                )
    for key in ("seed", "sources", "skipped"):
        if key in card:
            lines += ["", f"{key}: `{json.dumps(card[key], ensure_ascii=False)}`"]
    return "\n".join(lines) + "\n"


def card_paths(out: str | Path) -> tuple[Path, Path]:
    """``ift.jsonl`` -> (``ift.card.json``, ``ift.card.md``)."""
    p = Path(out)
    stem = p.name[: -len(p.suffix)] if p.suffix else p.name
    return p.with_name(stem + ".card.json"), p.with_name(stem + ".card.md")


def _jsonl(records: list[InstructionRecord]) -> str:
    return "".join(r.to_json() + "\n" for r in records)


def dataset_sha256(records: list[InstructionRecord]) -> str:
    """The ``sha256:`` of the JSONL file :func:`write_dataset` writes for ``records``."""
    return "sha256:" + hashlib.sha256(_jsonl(records).encode("utf-8")).hexdigest()


def write_dataset(records: list[InstructionRecord], out: str | Path, card: Mapping[str, Any]) -> None:
    """Write the JSONL file and its card (JSON + Markdown), each atomically."""
    if not records:
        raise InputError("no instruction records to write (no usable notes?)")
    atomic_write_text(out, _jsonl(records))
    card_json, card_md = card_paths(out)
    atomic_write_text(card_json, json.dumps(card, ensure_ascii=False, indent=2) + "\n")
    atomic_write_text(card_md, card_markdown(card))


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def default_paths() -> dict[str, Path]:
    """The real RuMedTop3 train/dev files and the MedSyn symptom map in the shared data folder."""
    from medsyn.paths import data_dir

    d = data_dir()
    return {
        "train": d / "rumedbench" / "RuMedTop3" / "train_v1.jsonl",
        "dev": d / "rumedbench" / "RuMedTop3" / "dev_v1.jsonl",
        "symptom_map": d / "medsyn" / "mkg" / "rumedtop3_wikimed_symptoms_equipped_with_rumedprime.json",
    }


def build_dataset(
    out: str | Path,
    *,
    train: str | Path | None = None,
    dev: str | Path | None = None,
    store: Any = None,
    symptom_map: str | Path | None = None,
    symptom_source: str = "wikimed",
    generated: str | Path | None = None,
    options: BuildOptions | None = None,
    tokenizer: Any = None,
    tokenizer_name: str | None = None,
    on_step: Callable[[str], None] | None = None,
    matcher: Matcher | None = None,
) -> dict[str, Any]:
    """Build the instruction JSONL at ``out`` and its card; return the card (``matcher``: see
    :func:`build_instructions`).

    Symptoms come from ``store`` (SPARQL) when given, else from the JSON ``symptom_map``. The dev file, when it
    exists, is read only to drop any note that also occurs there. Lengths are in tokens when ``tokenizer`` is given.
    ``on_step`` is told each of the :data:`BUILD_STEPS` as it starts (a progress line).
    """
    step = on_step or (lambda _label: None)
    step(BUILD_STEPS[0])
    opts = options or BuildOptions()
    defaults = default_paths()
    train_path = Path(train) if train else defaults["train"]
    dev_path = Path(dev) if dev else defaults["dev"]
    notes = read_notes(train_path)
    if dev and not dev_path.is_file():
        # An explicit dev file that is missing must not silently turn off the dev-overlap filter.
        raise InputError("dev file not found", path=dev_path)
    dev_notes = read_notes(dev_path) if dev_path.is_file() else []
    sources: dict[str, Any] = {"train": {"path": str(train_path), "sha256": file_sha256(train_path)}}
    step(BUILD_STEPS[1])
    if store is not None:
        symptoms = symptoms_from_store(store, source=symptom_source)
        sources["symptoms"] = {"store": str(getattr(store, "path", None) or "endpoint"), "source": symptom_source}
    else:
        map_path = Path(symptom_map) if symptom_map else defaults["symptom_map"]
        symptoms = symptoms_from_json(map_path)
        sources["symptoms"] = {"path": str(map_path), "sha256": file_sha256(map_path)}
    mixed = read_notes(generated, source="generated") if generated else None
    if generated:
        sources["generated"] = {"path": str(generated), "sha256": file_sha256(generated)}
    step(BUILD_STEPS[2])
    records, skipped = build_instructions(
        notes, symptoms, options=opts, generated=mixed, dev_notes=dev_notes, matcher=matcher
    )
    canary_manifest = None
    if opts.canaries:
        planted = cn.make_canaries(
            symptoms, opts.canaries, seed=opts.seed, instructions=WRITE_INSTRUCTIONS, render=build_prompt
        )
        records = plant_canaries(records, planted, repeats=opts.canary_repeats, seed=opts.seed)
        canary_manifest = cn.manifest(planted, seed=opts.seed, repeats=opts.canary_repeats, dataset=out)
        sources["canaries"] = {"count": len(planted), "manifest": cn.manifest_path(out).name}
    step(BUILD_STEPS[3])
    count = None
    if tokenizer is not None:

        def count(text: str) -> int:
            return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    ins = STATED if opts.symptoms == "stated" else INSTRUCTIONS
    card = dataset_card(
        records,
        count=count,
        unit=f"tokens ({tokenizer_name or 'tokenizer'})" if tokenizer is not None else "words",
        extra={"seed": opts.seed, "options": asdict(opts), "sources": sources, "skipped": skipped, "instructions": ins},
    )
    step(BUILD_STEPS[4])
    if canary_manifest is not None:
        # Before the dataset, so a dataset that holds canaries never lacks its manifest.
        cn.write_manifest(cn.manifest_path(out), canary_manifest | {"dataset_sha256": dataset_sha256(records)})
    write_dataset(records, out, card)
    return card


BUILD_STEPS = (
    "reading the notes",
    "reading the symptoms",
    "building the records",
    "measuring lengths for the card",
    "writing the dataset",
)
"""The steps of :func:`build_dataset`, in order."""
