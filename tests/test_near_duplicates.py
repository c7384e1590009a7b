"""Within-set near-duplicates by prefix filtering find exactly the notes the all-pairs ``overlap`` finds, on real
notes (sets with and without near-duplicates) and at several thresholds; prompt-note overlap scored on the linked
pairs alone equals ``overlap`` over the mask that allows only them."""

from __future__ import annotations

import numpy as np
import pytest

from medsyn.evaluation.data import default_synthetic, default_train, read_notes
from medsyn.evaluation.near_duplicates import near_duplicates
from medsyn.evaluation.quality import linked_overlap, overlap, shingle_sets


@pytest.fixture(scope="module")
def sets() -> dict[str, list[str]]:
    llama = next(p for p in default_synthetic() if "7b" in p.name)
    return {
        "train": read_notes(default_train()).texts[:900],
        # the 7B model's notes repeat themselves: identical and near-identical notes
        "llama7b": read_notes(llama).texts[:900],
    }


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.8, 1.0])
def test_same_notes_as_all_pairs(sets: dict[str, list[str]], threshold: float) -> None:
    for name, texts in sets.items():
        texts = [*texts, "", "", "боль", "боль"]  # empty notes are nobody's duplicate; a repeated word is
        want = overlap(texts, texts, skip_self=True).jaccard >= threshold
        got = near_duplicates(shingle_sets(texts), threshold)
        assert np.array_equal(got, want), (name, threshold, int(want.sum()), int(got.sum()))
    assert 0 < want.sum() < len(want)  # llama7b at 1.0: some notes repeated, not all


def test_threshold_out_of_range() -> None:
    with pytest.raises(ValueError, match="threshold"):
        near_duplicates(shingle_sets(["а б в"]), 0.0)


def test_linked_overlap_is_overlap_with_one_pair_a_row(sets: dict[str, list[str]]) -> None:
    syn, real = sets["llama7b"][:300], sets["train"]
    rng = np.random.default_rng(0)
    linked = [int(rng.integers(len(real))) if rng.random() < 0.8 else None for _ in syn]
    linked[:5] = [0, 0, None, 3, 3]
    syn[0] = real[0]  # a copy of its prompt note
    allowed = np.zeros((len(syn), len(real)), dtype=bool)
    for i, j in enumerate(linked):
        if j is not None:
            allowed[i, j] = True
    want, got = overlap(syn, real, allowed=allowed), linked_overlap(syn, real, linked)
    for field in ("jaccard", "containment", "best"):
        assert np.array_equal(getattr(got, field), getattr(want, field)), field
    assert got.jaccard[0] == 1.0 and got.best[2] == -1
