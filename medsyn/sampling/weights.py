"""Code weights of the paper: how many notes each ICD-10 category gets.

``w(C) = J3(N_symp(C)) * J3(N_exmp(C))`` with ``J(x) = log(1 + x)`` applied three times. The triple logarithm
flattens the long tail, so a category with 10x more notes gets only a little more weight.

- ``N_exmp(C)``: real example notes of the category with at least ``min_words`` words (30 in the authors' code).
- ``N_symp(C)``: unique symptoms over the codes of the category that have symptoms, divided by the number of those
  codes (the authors' ``get_symptoms_mean``). A category with symptoms attached directly counts as its own code.

The counts come from the SPARQL tables of the sampler (``sparql/sampling/``); the logarithms are computed here
(SPARQL 1.1 has no ``log``).

>>> round(float(j3(10)), 6)
0.798928
>>> plan_counts([CodeWeight("A00", 1, 1, 1, 1.0, 1.0), CodeWeight("B00", 1, 1, 1, 1.0, 3.0)], 8)
{'A00': 2, 'B00': 6}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from medsyn.errors import InputError, ParameterError
from medsyn.kg.vocab import is_valid_code, normalize_code

DEFAULT_SOURCES: tuple[str, ...] = ("wikimed",)
AUTHORS_TOTAL = 2491
"""The total the authors shared by weight in make_taskgen.py (before forcing Z00 to 10): the default plan size."""
MIN_WORDS = 30
"""The authors' ``--min-sample-words``: shorter real notes are no style examples and do not count in N_exmp."""


def j3(x: ArrayLike) -> NDArray[np.float64]:
    """``log(1 + log(1 + log(1 + x)))``, elementwise."""
    return np.log1p(np.log1p(np.log1p(np.asarray(x, dtype=np.float64))))


@dataclass(frozen=True)
class CodeWeight:
    """The weight of one 3-character category and the counts it was computed from."""

    category: str
    n_examples: int
    n_codes: int
    n_symptoms: int
    n_symp: float
    weight: float

    @classmethod
    def of(cls, category: str, n_examples: int, n_codes: int, n_symptoms: int) -> CodeWeight:
        n_symp = n_symptoms / n_codes if n_codes else 0.0
        return cls(category, n_examples, n_codes, n_symptoms, n_symp, float(j3(n_symp) * j3(n_examples)))


def source_list(sources: str | Sequence[str]) -> tuple[str, ...]:
    """Normalise a source selection (``"wikimed,hsdn"`` or a sequence) to sorted unique names."""
    items = sources.replace(",", " ").split() if isinstance(sources, str) else [s.strip() for s in sources]
    names = tuple(sorted({s for s in items if s}))
    if not names:
        raise InputError("no symptom source given; expected e.g. 'wikimed'")
    for s in names:
        if not all(c.isalnum() or c in "-_." for c in s):
            raise InputError(f"invalid source name {s!r}")
    return names


def weights_from_counts(counts: Mapping[str, tuple[int, int, int]]) -> list[CodeWeight]:
    """``{category: (N_examples, codes with symptoms, unique symptoms)}`` -> weights sorted by category."""
    return [CodeWeight.of(cat, *counts[cat]) for cat in sorted(counts)]


def parse_overrides(items: Sequence[str]) -> dict[str, int]:
    """``["Z00=10", "M54=3"]`` -> ``{"Z00": 10, "M54": 3}``; a malformed item raises InputError."""
    out: dict[str, int] = {}
    for item in items:
        code, sep, count = item.partition("=")
        code = normalize_code(code)
        if not sep or not is_valid_code(code):
            raise InputError(f"invalid override {item!r}; expected CODE=COUNT, e.g. Z00=10")
        try:
            n = int(count)
        except ValueError:
            raise InputError(f"invalid override {item!r}: {count!r} is not an integer") from None
        if n < 0:
            raise InputError(f"invalid override {item!r}: the count must be >= 0")
        out[code] = n
    return out


def plan_counts(
    weights: Sequence[CodeWeight], total: int | None = None, *, overrides: Mapping[str, int] | None = None
) -> dict[str, int]:
    """Notes per category, in proportion to ``w / sum(w)``, summing to exactly ``total`` (None: the authors' 2491).

    ``overrides`` fix the count of some categories: they leave the normalisation (the authors zeroed Z00's weight,
    then forced it to 10) and take their count out of ``total``. The rest is shared by largest remainder (Hamilton):
    each category gets the floor of its quota, and the notes left go one each to the largest fractional parts (ties:
    larger weight first, then category order). Rounding each quota instead (the authors' ``np.round``) plans 0
    notes for ``total=20`` over the 87 weighted real categories. Categories planned at 0 are kept in the result.
    """
    if total is None:
        total = AUTHORS_TOTAL
    if total < 1:
        raise ParameterError(f"{{total}} must be >= 1, got {total}")
    fixed = {normalize_code(k): int(v) for k, v in (overrides or {}).items()}
    known = {w.category for w in weights}
    unknown = sorted(set(fixed) - known)
    if unknown:
        raise ParameterError(
            f"{{overrides}} names unknown category {unknown[0]}; known categories: {len(known)} (see `medsyn weights`)"
        )
    budget = total - sum(fixed.values())
    if budget < 0:
        raise ParameterError(f"{{overrides}} add up to {sum(fixed.values())}, more than {{total}} = {total}")
    rest = sorted((w for w in weights if w.category not in fixed), key=lambda w: (-w.weight, w.category))
    mass = sum(w.weight for w in rest)
    if mass <= 0 and budget > 0:
        raise ParameterError("every category without an override has weight 0; nothing to share {total} between")
    quotas = [w.weight / mass * budget if mass > 0 else 0.0 for w in rest]
    counts = [math.floor(q) for q in quotas]
    left = budget - sum(counts)
    # Python's sort is stable: equal remainders keep the (weight, category) order of ``rest``.
    for i in sorted(range(len(rest)), key=lambda i: counts[i] - quotas[i])[:left]:
        counts[i] += 1
    plan = {w.category: c for w, c in zip(rest, counts, strict=True)}
    plan.update(fixed)
    return dict(sorted(plan.items()))


def topup_counts(real_counts: Mapping[str, int], total: int) -> dict[str, int]:
    """Notes per category that top up the categories with the fewest real notes first (water-filling).

    Each of the ``total`` notes goes to the category whose real plus planned notes are fewest (ties by code), so
    the plan raises the rarest codes to a common level: the upsampling the paper's rare-code result rests on.
    The plan sums to ``total`` exactly; categories planned at 0 are kept in the result.

    >>> topup_counts({"A00": 1, "B00": 5, "C00": 10}, 6)
    {'A00': 5, 'B00': 1, 'C00': 0}
    """
    import heapq

    if total < 1:
        raise ParameterError(f"{{total}} must be >= 1, got {total}")
    if not real_counts:
        raise InputError("no categories to top up")
    planned = dict.fromkeys(sorted(real_counts), 0)
    heap = [(int(n), cat) for cat, n in sorted(real_counts.items())]
    heapq.heapify(heap)
    for _ in range(total):
        n, cat = heapq.heappop(heap)
        planned[cat] += 1
        heapq.heappush(heap, (n + 1, cat))
    return planned
