"""``overlap`` scores note pairs block by block (a set compared with itself at 41k notes is 1.7e9 pairs): the
figures do not depend on the block size, and a note's best match may lie in another block."""

from __future__ import annotations

import numpy as np
import pytest

from medsyn.evaluation import quality


def _texts() -> list[str]:
    rng = np.random.default_rng(3)
    words = ["боль", "кашель", "спина", "слева", "справа", "грудь", "тошнота", "рвота", "жар", "озноб"]
    return [" ".join(rng.choice(words, size=int(rng.integers(0, 12)))) for _ in range(60)]


@pytest.mark.parametrize("kw", [{}, {"skip_self": True}, {"allowed": True}])
def test_block_size_changes_nothing(monkeypatch: pytest.MonkeyPatch, kw: dict) -> None:
    syn, ref = _texts(), _texts()[::-1]
    if kw.get("allowed"):
        kw = {"allowed": np.random.default_rng(0).random((len(syn), len(ref))) > 0.5}
    if kw.get("skip_self"):
        ref = syn
    whole = quality.overlap(syn, ref, **kw)
    monkeypatch.setattr(quality, "_PAIRS_PER_BLOCK", 7 * len(ref))  # blocks of 7 rows
    blocked = quality.overlap(syn, ref, **kw)
    assert np.array_equal(whole.jaccard, blocked.jaccard)
    assert np.array_equal(whole.containment, blocked.containment)
    assert np.array_equal(whole.best, blocked.best)


def test_best_match_across_blocks_and_no_self_match(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quality, "_PAIRS_PER_BLOCK", 2 * 3)  # blocks of two rows of a 3-note set
    notes = ["боль в спине слева сильная", "кашель сухой ночью", "боль в спине слева сильная"]
    o = quality.overlap(notes, notes, skip_self=True)
    assert o.jaccard.tolist() == [1.0, 0.0, 1.0]
    assert o.best.tolist() == [2, -1, 0]  # found in the other block; the lone note has none, not itself
