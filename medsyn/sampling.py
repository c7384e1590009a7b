"""Draw samples from the knowledge graph: the entry point of sampling.

Categories are drawn with probability ``w(C) / sum(w)`` (``n=``), or laid out exactly by a plan of counts per
category (``plan=``, see :func:`medsyn.weights.plan_counts`); a strategy (by name) draws the rest of each sample.

Reproducibility: sample ``i`` reads only its own row of uniforms, made by a counter-based Philox generator keyed by
the seed and positioned at row ``i``. The same seed therefore gives the same samples for any number of workers or
chunk size, and sample ``i`` of a longer run equals sample ``i`` of a shorter one.

>>> from medsyn.store import OxigraphStore
>>> draw_samples(OxigraphStore.in_memory(), n=1)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
medsyn.errors.InputError: the graph has no ICD-10 categories with symptoms from source(s) wikimed; build it ...
"""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from medsyn.errors import InputError
from medsyn.samples import MAX_SAMPLES, Sample
from medsyn.store import Store
from medsyn.strategies import Strategy, StrategyOptions, get_strategy
from medsyn.strategies.base import FloatArray, IntArray
from medsyn.strategies.tables import WEIGHTED_SOURCE, SamplingTables, load_tables, restrict
from medsyn.vocab import normalize_code
from medsyn.weights import DEFAULT_SOURCES, MIN_WORDS

CHUNK = 4096
"""Samples per unit of work; any value gives the same samples."""


def uniform_rows(seed: int, width: int, start: int, stop: int) -> FloatArray:
    """Rows ``start .. stop-1`` of the seed's uniform stream, ``width`` (a multiple of 4) uniforms per row.

    Philox yields 4 numbers per counter step, so row ``i`` starts at counter ``i * width / 4``.

    >>> bool((uniform_rows(1, 8, 0, 10)[3:5] == uniform_rows(1, 8, 3, 5)).all())
    True
    """
    bits = np.random.Philox(key=seed)
    bits.advance(start * (width // 4))
    return np.random.Generator(bits).random((stop - start, width))


def choose_categories(weights: FloatArray, u: FloatArray) -> IntArray:
    """Category index per uniform, with probability proportional to ``weights`` (zero weights never chosen)."""
    c = np.cumsum(weights)
    i = np.searchsorted(c, u * c[-1], side="right")
    last = int(np.flatnonzero(weights > 0)[-1])
    return np.minimum(i, last).astype(np.int64)


def _check(n: int | None, plan: Mapping[str, int] | None, seed: int, workers: int, temperature: float) -> None:
    if (n is None) == (plan is None):
        raise InputError("give either n (categories drawn by weight) or plan (counts per category), not both")
    if n is not None and n < 1:
        raise InputError(f"n must be >= 1, got {n}")
    wanted = n if n is not None else sum(int(v) for v in (plan or {}).values())
    if wanted > MAX_SAMPLES:
        raise InputError(f"{wanted:,} samples asked for; at most {MAX_SAMPLES:,} per call (split the run)")
    if not isinstance(seed, int) or seed < 0:
        raise InputError(f"seed must be an integer >= 0, got {seed!r}")
    if workers < 1:
        raise InputError(f"workers must be >= 1, got {workers}")
    if not (isinstance(temperature, int | float) and math.isfinite(temperature) and temperature > 0):
        raise InputError(f"temperature must be a positive number, got {temperature}")


def _plan_layout(tables: SamplingTables, plan: Mapping[str, int]) -> IntArray:
    index = tables.category_index()
    cats, counts = [], []
    for raw, count in sorted((normalize_code(k), v) for k, v in plan.items()):
        if raw not in index:
            raise InputError(f"plan names unknown category {raw} (see `medsyn weights`)")
        if tables.cat_weight[index[raw]] == 0 and not tables.cat_codes[index[raw]]:
            raise InputError(f"plan names category {raw}, which has no codes with symptoms")
        if int(count) < 0:
            raise InputError(f"plan count of {raw} must be >= 0, got {count}")
        cats.append(index[raw])
        counts.append(int(count))
    layout = np.repeat(np.array(cats, dtype=np.int64), counts)
    if len(layout) == 0:
        raise InputError("the plan has no samples (all counts are 0)")
    return layout


def _chunks(total: int, size: int) -> Iterator[tuple[int, int]]:
    for a in range(0, total, size):
        yield a, min(a + size, total)


def _draw_chunk(
    tables: SamplingTables, strategy: Strategy, layout: IntArray | None, seed: int, start: int, stop: int
) -> list[Sample]:
    u = uniform_rows(seed, strategy.width, start, stop)
    cats = layout[start:stop] if layout is not None else choose_categories(tables.cat_weight, u[:, 0])
    return strategy.draw(tables, cats, u, start, seed)


_WORKER: dict[str, object] = {}


def _init_worker(tables: SamplingTables, strategy: Strategy, layout: IntArray | None, seed: int) -> None:
    _WORKER.update(tables=tables, strategy=strategy, layout=layout, seed=seed)


def _worker_chunk(bounds: tuple[int, int]) -> list[Sample]:
    w = _WORKER
    return _draw_chunk(w["tables"], w["strategy"], w["layout"], w["seed"], *bounds)  # type: ignore[arg-type]


def draw_samples(
    store: Store | SamplingTables,
    *,
    n: int | None = None,
    plan: Mapping[str, int] | None = None,
    strategy: str | Strategy | type = "paper",
    seed: int = 0,
    codes: Sequence[str] | None = None,
    workers: int = 1,
    temperature: float = 10.0,
    sources: str | Sequence[str] = DEFAULT_SOURCES,
    weighted_source: str | None = WEIGHTED_SOURCE,
    min_words: int = MIN_WORDS,
    lang: str = "ru",
    population_dir: str | None = None,
    cache: bool = True,
    progress: Callable[[int], None] | None = None,
) -> list[Sample]:
    """Draw ``n`` samples (categories by weight) or the samples of ``plan`` ({category: count}), in index order.

    ``store`` may also be tables already loaded with :func:`medsyn.strategies.tables.load_tables`.
    ``codes`` restricts sampling to categories (``M54``) or codes (``M54.5``). ``progress`` is called with the
    number of samples of each finished chunk.
    """
    _check(n, plan, seed, workers, temperature)
    strat = get_strategy(
        strategy,
        StrategyOptions(temperature=float(temperature), weighted_source=weighted_source, population_dir=population_dir),
    )
    if isinstance(store, SamplingTables):
        tables = store
    else:
        tables = load_tables(
            store,
            sources=sources,
            min_words=min_words,
            lang=lang,
            weighted_source=strat.weighted_source,
            drugs=strat.drugs,
            cache=cache,
        )
    if codes:
        tables = restrict(tables, codes)
    layout = _plan_layout(tables, plan) if plan is not None else None
    if layout is None and not (tables.cat_weight > 0).any():
        raise InputError(
            "every selected category has weight 0 (no example notes with enough words); "
            "use a plan with an override, e.g. --plan weights --override Z00=10"
        )
    total = len(layout) if layout is not None else int(n or 0)
    bounds = list(_chunks(total, CHUNK))
    out: list[Sample] = []
    if workers == 1 or len(bounds) == 1:
        for a, b in bounds:
            out.extend(_draw_chunk(tables, strat, layout, seed, a, b))
            if progress:
                progress(b - a)
        return out
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(tables, strat, layout, seed)
    ) as pool:
        for (a, b), chunk in zip(bounds, pool.map(_worker_chunk, bounds), strict=True):
            out.extend(chunk)
            if progress:
                progress(b - a)
    return out
