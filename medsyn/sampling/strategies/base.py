"""What a sampling strategy is, and the draws every strategy shares.

A strategy turns, for a chunk of sample indices, the chosen category of each sample and a fixed-width row of
uniforms per sample into :class:`~medsyn.sampling.samples.Sample` objects. Column 0 of a row chose the category; the
strategy owns the rest. Because a sample reads only its own row, and rows come from a counter-based generator
indexed by sample number (see ``medsyn.sampling.draw.uniform_rows``), samples do not depend on chunking or workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from medsyn.sampling.samples import Sample
from medsyn.sampling.tables import SamplingTables

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
ObjectArray = NDArray[np.object_]


@runtime_checkable
class Strategy(Protocol):
    name: str
    width: int
    """Uniforms per sample, a multiple of 4 (the generator yields them in blocks of 4)."""
    weighted_source: str | None
    """Weighted symptom source the tables must hold, or None."""
    drugs: bool
    """Whether the tables must hold drugs and side effects."""
    # Options are the constructor's keyword-only parameters, documented by ``name: text`` lines of the class
    # docstring (medsyn.component_options.declared_options); a strategy without options takes none.

    def draw(self, tables: SamplingTables, cats: IntArray, u: FloatArray, start: int, seed: int) -> list[Sample]:
        """Samples ``start .. start + len(cats) - 1``."""
        ...


def flat_lists(lists: Sequence[Sequence[int]]) -> tuple[IntArray, IntArray, IntArray]:
    """``lists`` as one flat array with the offset and length of each list, for vectorised lookups.

    >>> [a.tolist() for a in flat_lists([[7, 8], [], [9]])]
    [[7, 8, 9, -1], [0, 2, 2], [2, 0, 1]]

    A trailing -1 gives empty lists a harmless position to read.
    """
    lengths = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
    offsets = np.zeros(len(lists), dtype=np.int64)
    np.cumsum(lengths[:-1], out=offsets[1:])
    flat = np.fromiter((v for x in lists for v in x), dtype=np.int64, count=int(lengths.sum()))
    return np.append(flat, -1), offsets, lengths


def pick_from(lists: Sequence[Sequence[int]], which: IntArray, u: FloatArray) -> IntArray:
    """``lists[which[i]][floor(u[i] * len)]`` for every i, vectorised; -1 where the list is empty."""
    flat, offsets, lengths = flat_lists(lists)
    n = lengths[which]
    pos = offsets[which] + np.minimum((u * n).astype(np.int64), np.maximum(n - 1, 0))
    return np.where(n > 0, flat[np.where(n > 0, pos, len(flat) - 1)], -1)


def lookup(values: Sequence[Any], index: NDArray[np.int64]) -> ObjectArray:
    """``values[index]`` elementwise for an index array of any shape, with -1 giving None.

    Gathering the strings of a whole chunk with one numpy take replaces a Python lookup per sample and field.

    >>> lookup(["a", "b"], np.array([[1, -1], [0, 0]])).tolist()
    [['b', None], ['a', 'a']]
    """
    table = np.empty(len(values) + 1, dtype=object)  # the last slot, None, is what index -1 reads
    table[: len(values)] = values
    return table[index]


def distinct_uniform(steps: IntArray) -> IntArray:
    """Partial Fisher-Yates over ``range(m)`` for many samples at once: ``steps[:, j]`` is the swap target of
    step ``j``, in ``j .. m-1``. Returns the picked positions, one row per sample.

    The picks of a row are a uniform random subset in uniform random order, so no shuffle is needed afterwards.
    Only the first ``k <= m`` picks of a row are meaningful when the row has ``m`` items.

    >>> distinct_uniform(np.array([[4, 4, 2], [0, 1, 2]])).tolist()
    [[4, 0, 2], [0, 1, 2]]
    """
    n, k = steps.shape
    stored = np.empty_like(steps)  # stored[:, i]: the value swapped into position steps[:, i] at step i
    picks = np.empty_like(steps)
    for j in range(k):
        target = steps[:, j]
        here = np.full(n, j, dtype=steps.dtype)  # value currently at position j
        value = target.copy()  # value currently at position target
        for i in range(j):  # later swaps overwrite earlier ones: scan in step order
            hit = steps[:, i] == target
            value = np.where(hit, stored[:, i], value)
            here = np.where(steps[:, i] == j, stored[:, i], here)
        picks[:, j] = value
        stored[:, j] = here
    return picks


def distinct_weighted(p: FloatArray, u: FloatArray) -> list[int]:
    """Weighted draws without replacement (each step renormalises over the items left), one uniform per step.

    Stops early when only zero-probability items are left.

    >>> distinct_weighted(np.array([0.0, 1.0, 3.0]), np.array([0.5, 0.5, 0.5]))
    [2, 1]
    """
    left = np.array(p, dtype=np.float64)
    out: list[int] = []
    for x in u:
        c = np.cumsum(left)
        total = c[-1] if len(c) else 0.0
        if total <= 0:
            break
        i = min(int(np.searchsorted(c, x * total, side="right")), len(left) - 1)
        while left[i] <= 0:  # x * total rounded up to the end: take the last item still in play
            i -= 1
        out.append(i)
        left[i] = 0.0
    return out


def shuffled(items: list[int], u: FloatArray) -> list[int]:
    """Fisher-Yates shuffle of a short list with ``len(items) - 1`` uniforms."""
    out = list(items)
    for j in range(len(out) - 1, 0, -1):
        r = min(int(u[j - 1] * (j + 1)), j)
        out[j], out[r] = out[r], out[j]
    return out
