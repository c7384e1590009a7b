"""Gathering whole rows of a CSR matrix without a Python loop, for the near-duplicate search and the fold counts."""

from __future__ import annotations

import numpy as np


def row_positions(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The positions in ``indices``/``data`` of the given rows' entries, row after row in the order given, and each
    row's entry count.

    >>> import numpy as np
    >>> at, lengths = row_positions(np.array([0, 2, 2, 5]), np.array([2, 0]))
    >>> at.tolist(), lengths.tolist()
    ([2, 3, 4, 0, 1], [3, 2])
    """
    starts = indptr[rows]
    lengths = indptr[rows + 1] - starts
    # each row's start, shifted by the entries before it in the output, plus a running index over the output
    at = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
    return at, lengths
