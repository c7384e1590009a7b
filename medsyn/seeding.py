"""Named random streams: one draw's generator as a pure function of the run's seed and what it draws.

A run that draws several things (sets of an evaluation grid, canaries beside a dataset) gives each its own stream,
so adding, removing or reordering one never changes another's draws.

>>> int(stream(0, "real", 0.5).integers(100)) == int(stream(0, "real", 0.5).integers(100))
True
>>> int(stream(0, "a").integers(2**31)) != int(stream(0, "b").integers(2**31))
True
"""

from __future__ import annotations

import zlib

import numpy as np


def stream(seed: int, *key: object) -> np.random.Generator:
    """The generator of the draw named ``key`` (names and shares) under ``seed``."""
    words = [seed & 0xFFFFFFFF, *(zlib.crc32(repr(k).encode()) for k in key)]
    return np.random.default_rng(np.random.SeedSequence(words))
