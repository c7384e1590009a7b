"""The per-note text scores of ``eval quality`` (symptom recall, restatement, non-words), in one pass a note and,
with ``jobs`` > 1, over forked worker processes.

These scores are pure Python (lemmas, negation scope, dictionary look-ups: ~3 ms a note together), so threads
would not run them side by side. Workers score chunks of notes and the results come back in note order: the
shares are the same numbers whatever ``jobs`` is.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Collection, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from medsyn.generation.filter import FilterConfig
from medsyn.generation.fluency import nonwords, novelty
from medsyn.generation.mentions import symptom_recall

_CHUNK = 500  # notes a worker scores per task


@dataclass(frozen=True, slots=True)
class NoteScores:
    """Per note, in order: recall and restatement (None for a note without a requested list), non-word flag."""

    recall: list[float | None]
    restated: list[bool | None]
    nonword: list[bool]

    def mean_recall(self) -> float | None:
        xs = [x for x in self.recall if x is not None]
        return float(np.mean(xs)) if xs else None

    def restatement_share(self) -> float | None:
        xs = [x for x in self.restated if x is not None]
        return float(np.mean(xs)) if xs else None

    def nonword_share(self) -> float:
        return float(np.mean(self.nonword))


def _score_chunk(
    notes: Sequence[tuple[str, tuple[str, ...]]], vocabulary: Collection[str], recall: bool
) -> list[tuple[float | None, bool | None, bool]]:
    limit = FilterConfig().max_restatement
    out: list[tuple[float | None, bool | None, bool]] = []
    for text, requested in notes:
        out.append(
            (
                symptom_recall(text, requested) if recall and requested else None,
                novelty(text, requested) <= limit if requested else None,
                bool(nonwords(text, requested, vocabulary)),
            )
        )
    return out


def score_notes(
    notes: Sequence[tuple[str, tuple[str, ...]]], vocabulary: Collection[str], *, recall: bool = True, jobs: int = 1
) -> NoteScores:
    """Scores of (text, requested symptoms) pairs; ``recall=False`` skips symptom recall (the real notes')."""
    chunks = [notes[a : a + _CHUNK] for a in range(0, len(notes), _CHUNK)]
    if jobs > 1 and len(chunks) > 1:
        # fork: the workers start with the parent's pymorphy3 dictionaries and word caches, nothing to pickle back
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork")) as pool:
            parts = list(pool.map(_score_chunk, chunks, [vocabulary] * len(chunks), [recall] * len(chunks)))
    else:
        parts = [_score_chunk(c, vocabulary, recall) for c in chunks]
    rows = [r for part in parts for r in part]
    return NoteScores([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
