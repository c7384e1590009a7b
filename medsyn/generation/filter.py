"""The quality filter: score a generated note and decide whether to keep it.

Two scores, both lexical and deterministic (no model download):

* ``recall``: share of the requested symptoms the note states as present
  (:func:`medsyn.generation.mentions.symptom_recall`). A symptom counts when all its content words have a lemma
  (pymorphy3) in one sentence of the note, close together and outside a negation's scope: "головная боль" does not
  mention "головокружение", "правом колене" not "левом колене", and "Отрицает тошноту и рвоту" mentions neither.
  Paraphrases with other lemmas ("частые позывы" for "учащенное мочеиспускание") are missed; the paper used
  BERTScore recall >= 0.65 instead, so the default threshold is a little lower. Precision and recall of the matcher
  on a labelled table: docs/generation.md.
* ``similarity``: share of the note's word 3-gram shingles that also occur in the example note (containment). A note
  that copies its example scores near 1 and is rejected as memorised; the paper's BERTScore precision against the
  example played the opposite role (keep notes close in style), which lexical overlap cannot measure without
  rewarding copies. With several example notes (a few-shot prompt) it is the highest share over them.
* ``repetition``: share of the note's word 3-grams that repeat an earlier 3-gram of the same note. Small models
  fall into loops ("0, ОГК 0, ОАМ 0, ОГК 0, ...") that can still mention the symptoms; a loop is not a note.
* ``novelty``: share of the note's content words that are not the requested symptoms' words
  (:func:`medsyn.generation.fluency.novelty`); 0 is the requested list restated ("Жалобы на тошноту; головную
  боль"), which recall alone rewards. A note is a restatement at ``novelty <= max_restatement``.
* ``nonwords``: the note's words no dictionary knows (:func:`medsyn.generation.fluency.nonwords`): small models
  invent words ("избытокое", "дезадабание"). Recorded as the list, so a record shows which words.

* ``unseen_phrases`` (only when the run knows the real notes' phrasing): share of the note's word pairs that no real
  note of the graph holds (:func:`medsyn.generation.fluency.unseen_phrases`): a small model's word salad ("Боли в
  ресницах", "Сон болит") is made of dictionary words that the non-word check passes. Off unless
  ``max_unseen_phrases`` is set, because it measures likeness to one corpus's phrasing.

* ``pii`` (only with ``reject_pii``): the kinds of personal data in the note (:mod:`medsyn.generation.pii`: names,
  dates, phone and document numbers). A synthetic note has no patient; a name or a policy number in it came from
  somewhere, so such a note is rejected. Recorded as the kinds, never the text found.

Records written before ``novelty`` and ``nonwords`` existed lack them; readers take a missing score as not measured.

>>> cfg = FilterConfig(min_recall=0.5, max_similarity=0.6)
>>> s = score_note("Головная боль и тошнота после еды, второй день.", ["головная боль", "тошнота"], "Боль в колене.")
>>> s.recall, decide(s, cfg)
(1.0, (True, ''))
>>> decide(score_note("Жалобы на головную боль и тошноту.", ["головная боль", "тошнота"], None), cfg)[1]
'restatement of the requested symptoms (novelty 0.00 <= 0.35)'
>>> score_note("Жалобы на головную боль, тошноты нет.", ["головная боль", "тошнота"], None).recall
0.5
"""

from __future__ import annotations

from collections.abc import Collection, Container, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from medsyn.errors import InputError
from medsyn.generation.fluency import nonwords, novelty, unseen_phrases
from medsyn.generation.mentions import symptom_recall
from medsyn.generation.pii import pii_kinds
from medsyn.textsim import containment, shingles, tokens


@dataclass(frozen=True)
class FilterConfig:
    min_recall: float = 0.5
    """Reject a note mentioning fewer than this share of the requested symptoms."""
    max_similarity: float = 0.6
    """Reject a note with more than this share of its 3-gram shingles copied from the example note."""
    min_words: int = 5
    """Reject notes shorter than this many words."""
    max_repetition: float = 0.3
    """Reject a note whose word 3-grams repeat earlier ones more often than this share (a generation loop)."""
    max_restatement: float = 0.35
    """Reject a note whose novelty (share of content words outside the requested symptoms) is at most this: it
    restates the requested list. Negative turns the check off. Chosen on tests/data/note_labels.tsv (the best
    Youden J of lists against plausible notes; docs/generation.md)."""
    max_nonword_rate: float = 0.05
    """Reject a note in which more than this share of the words are non-words (one in 20); negative turns the
    check off. A rate, not a count: real and GPT-4 notes carry typos and drug names the vocabulary lacks, and on
    the labelled table any count threshold rejected more plausible notes than nonsense ones."""
    max_unseen_phrases: float = -1.0
    """Reject a note more than this share of whose word pairs no real note of the graph holds; negative (the
    default) turns the check off. At 0.6 it rejects 3.6 % of the real notes, each measured against the others
    (docs/generation.md, "Word salad")."""
    reject_pii: bool = False
    """Reject a note holding personal data (``generate --reject-pii``)."""

    def __post_init__(self) -> None:
        for name in ("max_restatement", "max_nonword_rate", "max_unseen_phrases"):
            if getattr(self, name) > 1.0:
                raise InputError(f"--{name.replace('_', '-')} must be at most 1, got {getattr(self, name)}")
        for name in ("min_recall", "max_similarity", "max_repetition"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise InputError(f"--{name.replace('_', '-')} must be in [0, 1], got {v}")
        if self.min_words < 0:
            raise InputError(f"min_words must be >= 0, got {self.min_words}")

    def describe(self) -> dict[str, Any]:
        """The thresholds as a run's identity records them; ``reject_pii`` and ``max_unseen_phrases`` only when on,
        so that runs made before they existed keep their identity (and resume)."""
        out = asdict(self)
        if not self.reject_pii:
            del out["reject_pii"]
        if not self.checks_phrases:
            del out["max_unseen_phrases"]
        return out

    @property
    def checks_phrases(self) -> bool:
        return self.max_unseen_phrases >= 0


@dataclass(frozen=True)
class Scores:
    recall: float
    similarity: float
    words: int
    repetition: float = 0.0
    novelty: float | None = None
    """None: not measured (a Scores built by hand or read from an old record); such a note is no restatement."""
    nonwords: tuple[str, ...] = ()
    pii: tuple[str, ...] | None = None
    """Kinds of personal data found; None: not looked for."""
    unseen_phrases: float | None = None
    """None: not measured (no real notes' phrasing given)."""

    def to_dict(self) -> dict[str, float | int | list[str] | None]:
        d = asdict(self)
        d["nonwords"] = list(self.nonwords)
        if self.pii is None:
            del d["pii"]
        else:
            d["pii"] = list(self.pii)
        if self.unseen_phrases is None:
            del d["unseen_phrases"]
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}


def score_note(
    text: str,
    symptoms: Sequence[str],
    example: str | Sequence[str] | None,
    *,
    vocabulary: Collection[str] = (),
    phrases: Container[str] | None = None,
    pii: bool = False,
) -> Scores:
    """Symptom recall, copy-similarity to the example note(s) (0 without one), word count, repetition, novelty
    against the requested symptoms and the words no dictionary knows (``vocabulary``: extra known words, e.g.
    :func:`medsyn.generation.fluency.note_vocabulary` of the graph's real notes); with ``phrases`` (e.g.
    :func:`medsyn.generation.fluency.known_phrases` of the real notes), the share of word pairs they lack; with
    ``pii``, the kinds of personal data it holds."""
    examples = [example] if isinstance(example, str) else list(example or [])
    own = shingles(text)
    sim = max((containment(own, shingles(e)) for e in examples if e), default=0.0)
    return Scores(
        recall=symptom_recall(text, symptoms),
        similarity=sim,
        words=len(tokens(text)),
        repetition=repetition(text),
        novelty=novelty(text, symptoms),
        nonwords=tuple(nonwords(text, symptoms, vocabulary)),
        pii=tuple(sorted(pii_kinds(text))) if pii else None,
        unseen_phrases=unseen_phrases(text, phrases) if phrases is not None else None,
    )


def repetition(text: str, n: int = 3) -> float:
    """Share of word ``n``-grams that repeat an earlier one in the same text (0 for a text without loops).

    >>> repetition("боль в горле, кашель, температура 38")
    0.0
    >>> repetition("0, ОГК 0, ОАМ 0, ОГК 0, ОАМ 0, ОГК 0, ОАМ 0") > 0.5
    True
    """
    t = tokens(text)
    grams = [tuple(t[i : i + n]) for i in range(len(t) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def decide(scores: Scores, config: FilterConfig) -> tuple[bool, str]:
    """(accepted, reason of rejection or '')."""
    if scores.words < config.min_words:
        return False, f"too short ({scores.words} words < {config.min_words})"
    if scores.recall < config.min_recall:
        return False, f"symptom recall {scores.recall:.2f} < {config.min_recall}"
    if scores.repetition > config.max_repetition:
        return False, f"repetition loop (repetition {scores.repetition:.2f} > {config.max_repetition})"
    if scores.similarity > config.max_similarity:
        return False, f"copies the example note (similarity {scores.similarity:.2f} > {config.max_similarity})"
    if scores.novelty is not None and scores.novelty <= config.max_restatement:
        why = f"novelty {scores.novelty:.2f} <= {config.max_restatement}"
        return False, f"restatement of the requested symptoms ({why})"
    if scores.nonwords and 0 <= config.max_nonword_rate < len(scores.nonwords) / max(scores.words, 1):
        shown = ", ".join(scores.nonwords[:5])
        return False, f"non-word ({shown}; {len(scores.nonwords)} of {scores.words} words > {config.max_nonword_rate})"
    unseen = scores.unseen_phrases
    if config.checks_phrases and unseen is not None and unseen > config.max_unseen_phrases:
        why = f"{unseen:.2f} of its word pairs in no real note > {config.max_unseen_phrases}"
        return False, f"unfamiliar phrasing ({why})"
    if config.reject_pii and scores.pii:
        return False, f"personal data ({', '.join(scores.pii)})"
    return True, ""
