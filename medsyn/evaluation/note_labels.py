"""The labelled note table (tests/data/note_labels.tsv) and the quality filter's acceptance on it.

Each row is one note (ours, the authors' GPT-4 or a real RuMedTop3 train note) with the symptoms that prompted it
(none for real notes) and a reader's label: ``list`` (the requested symptoms restated), ``nonsense`` (invented
words, broken grammar, incoherent), ``plausible`` (reads like a real complaint note) or ``wrong_code``. The filter
should accept exactly the plausible notes; :func:`acceptance` says how close it comes.

Real notes have no requested list, so symptom recall and novelty do not apply to them: they are judged by the
other checks only (length, repetition, non-words).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Container, Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

from medsyn.errors import InputError
from medsyn.generation.filter import FilterConfig, Scores, decide, score_note
from medsyn.generation.fluency import note_vocabulary, phrases

LABELS = ("list", "nonsense", "plausible", "wrong_code")
COLUMNS = ("source", "id", "code", "requested", "note", "label", "why")
ACCEPT = "plausible"


@dataclass(frozen=True)
class LabelledNote:
    source: str
    id: str
    code: str
    requested: tuple[str, ...]
    note: str
    label: str
    why: str
    line: int


def _uncell(text: str) -> str:
    # scripts/label_sample.py writes a newline inside a note as the two characters "\n" (one row per note).
    return text.replace("\\n", "\n")


def read_labels(path: str | Path) -> list[LabelledNote]:
    """The rows of a labelled table; a bad row is an :class:`InputError` naming its line and field."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").split("\n")
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path=p) from None
    if tuple(lines[0].split("\t")) != COLUMNS:
        raise InputError(f"header must be {' '.join(COLUMNS)}", path=p, line=1)
    out = []
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) != len(COLUMNS):
            raise InputError(f"expected {len(COLUMNS)} tab-separated fields, got {len(cells)}", path=p, line=n)
        row = dict(zip(COLUMNS, cells, strict=True))
        if row["label"] not in LABELS:
            raise InputError(f"field 'label' must be one of {', '.join(LABELS)}, got {row['label']!r}", path=p, line=n)
        if not row["note"].strip():
            raise InputError("field 'note' is empty", path=p, line=n)
        requested = tuple(s.strip() for s in row["requested"].split(" | ") if s.strip())
        out.append(
            LabelledNote(
                row["source"], row["id"], row["code"], requested, _uncell(row["note"]), row["label"], row["why"], n
            )
        )
    return out


@cache
def real_vocabulary() -> frozenset[str]:
    """:func:`~medsyn.generation.fluency.note_vocabulary` of the real RuMedTop3 train notes (the graph's notes)."""
    from medsyn.evaluation.data import default_train, read_notes

    return note_vocabulary(read_notes(default_train()).texts)


@cache
def real_phrase_counts() -> Counter[str]:
    """In how many real RuMedTop3 train notes (the graph's notes) each word pair occurs
    (:func:`~medsyn.generation.fluency.phrases`)."""
    from medsyn.evaluation.data import default_train, read_notes

    counts: Counter[str] = Counter()
    for text in read_notes(default_train()).texts:
        counts.update(phrases(text))
    return counts


@dataclass(frozen=True)
class OthersHold:
    """The word pairs some real note other than ``own``'s holds: a real note scored against the rest of the
    corpus, as a generated note is scored against all of it.

    >>> from collections import Counter
    >>> known = OthersHold(Counter({"боль в": 2, "в ресницах": 1}), frozenset({"в ресницах"}))
    >>> "боль в" in known, "в ресницах" in known
    (True, False)
    """

    counts: Counter[str]
    own: frozenset[str]

    def __contains__(self, pair: object) -> bool:
        return self.counts.get(pair, 0) - (pair in self.own) > 0  # type: ignore[call-overload]


def table_scores(
    rows: Sequence[LabelledNote], vocabulary: frozenset[str], phrase_counts: Counter[str] | None = None
) -> list[Scores]:
    """The filter's scores of each row (no example note: similarity 0); recall 1 where nothing was requested. With
    ``phrase_counts`` (:func:`real_phrase_counts`) the unfamiliar-phrasing share too, a real row's own pairs left
    out of the counts (it is one of the notes counted)."""
    out = []
    for r in rows:
        known: Container[str] | None = None
        if phrase_counts is not None:
            known = OthersHold(phrase_counts, frozenset(phrases(r.note))) if r.source == "real" else phrase_counts
        s = score_note(r.note, r.requested, None, vocabulary=vocabulary, phrases=known)
        out.append(s if r.requested else replace(s, recall=1.0))
    return out


@dataclass(frozen=True)
class Acceptance:
    precision: float
    """Share of accepted notes labelled plausible."""
    recall: float
    """Share of plausible notes accepted."""
    accepted: dict[str, int]
    """Accepted notes per label."""
    total: dict[str, int]
    """Notes per label."""
    reasons: dict[str, int]
    """Rejected notes per reason (its first word)."""


def acceptance(rows: Sequence[LabelledNote], scores: Sequence[Scores], config: FilterConfig) -> Acceptance:
    """Precision and recall of the filter's acceptance against the label ``plausible``."""
    accepted: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for r, s in zip(rows, scores, strict=True):
        ok, why = decide(s, config)
        if ok:
            accepted[r.label] += 1
        else:
            reasons[why.split(" ")[0]] += 1
    total = Counter(r.label for r in rows)
    n_acc = sum(accepted.values())
    return Acceptance(
        precision=accepted[ACCEPT] / n_acc if n_acc else 0.0,
        recall=accepted[ACCEPT] / total[ACCEPT] if total[ACCEPT] else 0.0,
        accepted={k: accepted[k] for k in LABELS},
        total={k: total[k] for k in LABELS},
        reasons=dict(reasons.most_common()),
    )


OLD_FILTER = FilterConfig(max_restatement=-1.0, max_nonword_rate=-1.0)
"""The filter before issue 22.2: recall, similarity, repetition and length only."""
