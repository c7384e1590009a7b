"""Draw samples from the knowledge graph: the entry point of sampling.

Categories are drawn with probability ``w(C) / sum(w)`` (``n=``), or laid out exactly by a plan of counts per
category (``plan=``, see :func:`medsyn.sampling.weights.plan_counts`); a strategy (by name) draws the rest of each
sample.

Reproducibility: sample ``i`` reads only its own row of uniforms, made by a counter-based Philox generator keyed by
the seed and positioned at row ``i``. The same seed therefore gives the same samples for any number of workers or
chunk size, and sample ``i`` of a longer run equals sample ``i`` of a shorter one.

>>> from medsyn.kg.store import OxigraphStore
>>> draw_samples(OxigraphStore.in_memory(), n=1)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
medsyn.errors.InputError: the graph has no ICD-10 categories with symptoms from source(s) wikimed; build it ...
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from medsyn.errors import InputError, ParameterError
from medsyn.kg.store import Store
from medsyn.kg.vocab import normalize_code
from medsyn.sampling.samples import MAX_SAMPLES, Sample
from medsyn.sampling.strategies import Strategy, get_strategy, resolve_strategy_options
from medsyn.sampling.strategies.base import FloatArray, IntArray
from medsyn.sampling.tables import (
    SamplingTables,
    code_weights,
    load_tables,
    real_note_counts,
    restrict,
)
from medsyn.sampling.weights import (
    AUTHORS_TOTAL,
    DEFAULT_SOURCES,
    MIN_WORDS,
    parse_overrides,
    plan_counts,
    source_list,
    topup_counts,
)

PLANS = ("weights", "topup")
"""``weights``: the paper's w(C) shares; ``topup``: the categories with the fewest real notes first."""

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


def _check(n: int | None, plan: Mapping[str, int] | None, seed: int, workers: int) -> None:
    if (n is None) == (plan is None):
        raise ParameterError("give either {n} (categories drawn by weight) or {plan} (counts per category), not both")
    if n is not None and n < 1:
        raise ParameterError(f"{{n}} must be >= 1, got {n}")
    wanted = n if n is not None else sum(int(v) for v in (plan or {}).values())
    if wanted > MAX_SAMPLES:
        raise InputError(f"{wanted:,} samples asked for; at most {MAX_SAMPLES:,} per call (split the run)")
    if not isinstance(seed, int) or seed < 0:
        raise ParameterError(f"{{seed}} must be an integer >= 0, got {seed!r}")
    if workers < 1:
        raise ParameterError(f"{{workers}} must be >= 1, got {workers}")


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
    strategy_options: Mapping[str, Any] | None = None,
    sources: str | Sequence[str] = DEFAULT_SOURCES,
    min_words: int = MIN_WORDS,
    lang: str = "ru",
    cache: bool = True,
    progress: Callable[[int], None] | None = None,
) -> list[Sample]:
    """Draw ``n`` samples (categories by weight) or the samples of ``plan`` ({category: count}), in index order.

    ``store`` may also be tables already loaded with :func:`medsyn.sampling.tables.load_tables`.
    ``codes`` restricts sampling to categories (``M54``) or codes (``M54.5``); a ``plan`` may then only name their
    categories. ``strategy_options`` are the strategy's own declared options (e.g. ``{"temperature": 5}`` for
    softmax); an option it does not declare is refused. ``progress`` is called with the number of samples of each
    finished chunk.
    """
    _check(n, plan, seed, workers)
    strat = get_strategy(strategy, strategy_options)
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
        if plan is not None:
            selected = {normalize_code(c)[:3] for c in codes}
            outside = sorted(c for c, k in plan.items() if k and normalize_code(c) not in selected)
            if outside:
                raise ParameterError(f"{{plan}} names category {outside[0]}, which {{codes}} leave out")
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


@dataclass(frozen=True)
class SamplingRequest:
    """What to sample, as ``medsyn sample`` and ``medsyn generate`` both take it: one path from options to samples.

    Either ``n`` samples with categories drawn by weight, or a plan of ``total`` notes: ``plan="weights"`` shares
    them between categories by weight (:func:`medsyn.sampling.weights.plan_counts`), ``plan="topup"`` gives them to the
    categories with the fewest real notes first (:func:`medsyn.sampling.weights.topup_counts`); ``overrides``
    (``CODE=COUNT``)
    fix some categories' counts. ``codes`` restricts all of them to those categories or codes. Recorded as is in a
    generation run's identity (:meth:`to_dict`).
    """

    n: int | None = None
    plan: str | None = None
    total: int | None = None
    """None: the authors' total, :data:`medsyn.sampling.weights.AUTHORS_TOTAL`."""
    overrides: tuple[str, ...] = ()
    codes: tuple[str, ...] = ()
    strategy: str = "paper"
    seed: int = 0
    strategy_options: Mapping[str, Any] = field(default_factory=dict)
    """The strategy's own options as given (values or their text), checked against its declaration."""
    sources: str = ",".join(DEFAULT_SOURCES)
    min_words: int = MIN_WORDS

    def __post_init__(self) -> None:
        if self.plan is not None and self.plan not in PLANS:
            raise ParameterError(f"unknown plan {self.plan!r} for {{plan}}; expected one of {', '.join(PLANS)}")
        if self.plan is not None and self.n is not None:
            raise ParameterError("give either {n} or {plan} weights, not both")
        if self.plan is None and self.n is None:
            raise ParameterError("give {n} N (categories drawn by weight) or {plan} weights {total} T")
        if self.plan is None and self.overrides:
            raise ParameterError("{overrides} applies to {plan} weights only")
        if self.n is not None and self.n < 1:
            raise ParameterError(f"{{n}} must be >= 1, got {self.n}")
        # An unknown strategy or option, or a value its constructor refuses, is reported before any store opens.
        get_strategy(self.strategy, self.strategy_options)

    def resolved_options(self) -> dict[str, Any]:
        """The options given, converted to their declared types (defaults left out), in name order."""
        resolved = resolve_strategy_options(self.strategy, self.strategy_options)
        return {k: resolved[k] for k in sorted(resolved)}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["overrides"], d["codes"] = sorted(self.overrides), list(self.codes)
        del d["strategy_options"]
        options = self.resolved_options()
        # A run's identity is this dict: runs made when the softmax T was the only strategy option recorded it as
        # softmax_temperature (10.0 when not given), and they must still resume, so that form is kept for them.
        if set(options) <= {"temperature"}:
            d["softmax_temperature"] = float(options.get("temperature", 10.0))
        else:
            d["strategy_options"] = options
        return d

    def counts(self, store: Store) -> dict[str, int] | None:
        """The plan's notes per category (None for ``n``), over the categories that ``codes`` select."""
        if self.plan is None:
            return None
        weights = code_weights(store, sources=self.sources, min_words=self.min_words)
        if self.codes:
            known = {w.category for w in weights}
            cats = {normalize_code(c)[:3] for c in self.codes}
            for c in sorted(cats - known):
                raise ParameterError(
                    f"unknown code {c} in {{codes}}: no category with symptoms from {self.sources}; "
                    "see `medsyn weights`"
                )
            weights = [w for w in weights if w.category in cats]
        if self.plan == "topup":
            known = {w.category for w in weights}
            real = {c: k for c, k in real_note_counts(store, sources=self.sources).items() if c in known}
            fixed = parse_overrides(self.overrides)
            free = {c: k for c, k in real.items() if c not in fixed}
            budget = (self.total if self.total is not None else AUTHORS_TOTAL) - sum(fixed.values())
            if budget < 0:
                raise ParameterError(f"{{overrides}} add up to more than {{total}} = {self.total}")
            return dict(sorted({**topup_counts(free, budget), **fixed}.items())) if budget else dict(fixed)
        return plan_counts(weights, self.total, overrides=parse_overrides(self.overrides))

    def draw(self, store: Store, *, workers: int = 1, progress: Callable[[int], None] | None = None) -> list[Sample]:
        """The samples of this request, in index order (:func:`draw_samples`)."""
        return self.draw_planned(store, self.counts(store), workers=workers, progress=progress)

    def draw_planned(
        self,
        store: Store,
        counts: Mapping[str, int] | None,
        *,
        workers: int = 1,
        progress: Callable[[int], None] | None = None,
    ) -> list[Sample]:
        """:meth:`draw` with the plan already made by :meth:`counts` (to size a progress bar)."""
        return draw_samples(
            store,
            n=self.n if counts is None else None,
            plan=counts,
            strategy=self.strategy,
            seed=self.seed,
            codes=list(self.codes) or None,
            workers=workers,
            strategy_options=self.strategy_options,
            sources=self.sources,
            min_words=self.min_words,
            progress=progress,
        )


SHOT_SELECTIONS = ("random", "overlap")
"""How :func:`add_examples` picks the real notes of a category: ``random`` (uniform, seeded) or ``overlap`` (the notes
whose matched symptoms share most with the sample's, ties and the rest in seeded random order)."""

Matcher = Callable[[str, Sequence[str]], list[str]]
"""``(note, symptoms) -> the symptoms the note states``: the generation layer's lemma matcher
(:func:`medsyn.generation.mentions.mentioned_symptoms`), passed in because sampling sits below generation."""


_Note = tuple[str | None, str]
"""A real note as (id, text); a sample's own example may lack an id."""


class _ShotPool:
    """The real notes one :func:`add_examples` call may show, and (with a matcher) the graph symptoms of their
    category that each note states, computed once per note."""

    def __init__(self, tables: SamplingTables, matcher: Matcher | None, min_words: int, max_words: int) -> None:
        self.tables, self.matcher = tables, matcher
        self.min_words, self.max_words = min_words, max_words
        self._vocab: dict[int, tuple[list[str], list[str]]] = {}
        self._found: dict[str, list[int]] = {}

    def fits(self, text: str | None) -> bool:
        return bool(text) and self.min_words <= len(str(text).split()) <= self.max_words

    def vocab(self, ci: int) -> tuple[list[str], list[str]]:
        """The category's graph symptoms (labels, IRIs): those of all its codes."""
        if ci not in self._vocab:
            t = self.tables
            ids = sorted({v for c in t.cat_codes[ci] for v in t.code_symptoms[c]})
            self._vocab[ci] = ([t.sym_label[v] for v in ids], [t.sym_iri[v] for v in ids])
        return self._vocab[ci]

    def found(self, ci: int, note: _Note) -> list[int]:
        """Positions in :meth:`vocab` of the symptoms the note ``(id, text)`` states (cached per note id)."""
        if self.matcher is None:
            return []
        key = note[0] or note[1]
        if key not in self._found:
            labels = self.vocab(ci)[0]
            said = set(self.matcher(note[1], labels))
            self._found[key] = [p for p, label in enumerate(labels) if label in said]
        return self._found[key]

    def shot(self, ci: int, note: _Note) -> dict[str, Any]:
        out: dict[str, Any] = {"id": note[0], "text": note[1]}
        if self.matcher is not None:
            out["symptoms"] = [self.vocab(ci)[0][p] for p in self.found(ci, note)]
        return out


def _pick(pool: _ShotPool, s: Sample, ci: int, k: int, selection: str, rng: np.random.Generator) -> list[_Note]:
    """The notes ``(id, text)`` to show, in prompt order, for one sample."""
    t = pool.tables
    own: list[_Note] = [(s.example_id, str(s.example_text))] if pool.fits(s.example_text) else []
    rest: list[_Note] = [(t.note_id[j], t.note_text[j]) for j in t.cat_notes[ci] if t.note_id[j] != s.example_id]
    rest = [n for n in rest if pool.fits(n[1])]
    if pool.matcher is None:  # the original draw, unchanged: the same seed gives the same shots as before
        want = k - len(own)
        picks = rng.choice(len(rest), size=min(want, len(rest)), replace=False).tolist() if want > 0 and rest else []
        return own + [rest[p] for p in picks]
    shuffled = own + [rest[p] for p in rng.permutation(len(rest)).tolist()]
    if selection == "overlap":
        wanted = set(s.symptom_iris)
        iris = pool.vocab(ci)[1]

        def shared(n: _Note) -> int:
            return len(wanted & {iris[p] for p in pool.found(ci, n)})

        # Most shared symptoms first; the stable sort keeps the seeded order (own example first) among ties.
        shuffled.sort(key=lambda n: -shared(n))
    # Notes that state none of the category's graph symptoms go last (a stable sort: the order above stays): a shot
    # with an empty symptom line cannot show a list becoming a note; they fill in only when too few others exist.
    shuffled.sort(key=lambda n: not pool.found(ci, n))
    return shuffled[:k]


def add_examples(
    store: Store | SamplingTables,
    samples: Sequence[Sample],
    k: int,
    *,
    seed: int = 0,
    min_words: int = 5,
    max_words: int = 80,
    sources: str | Sequence[str] = DEFAULT_SOURCES,
    selection: str = "random",
    matcher: Matcher | None = None,
) -> list[Sample]:
    """Give each sample up to ``k`` distinct real example notes of its category, for few-shot prompts.

    ``selection="random"``: the sample's own example comes first when it has ``min_words`` to ``max_words`` words;
    the others are drawn uniformly without replacement from the category's notes of that length, by a generator
    keyed by (seed, sample id), so the same sample always gets the same examples whatever else is in the run. The
    word bounds keep K shots inside a small model's context (a few real notes run to hundreds of words).

    ``matcher`` (the lemma matcher, see :data:`Matcher`) gives each example the graph symptoms of its category that
    the note states (``"symptoms"``, for the ``example_symptoms`` shot placeholder) and prefers notes that state at
    least one: a shot whose symptom line is empty cannot show a list becoming a note. ``selection="overlap"``
    (needs ``matcher``) ranks the category's notes by how many of the sample's symptoms they state, ties and the
    rest in the seeded random order.

    Examples go to ``sample.extra["examples"]`` as ``{"id", "text"[, "symptoms"]}`` (the run's samples.jsonl keeps
    them, and each note's provenance names them). Samples that already have examples are returned unchanged.
    ``sources``: the symptom sources the samples were drawn from (the categories they know); a sample of a category
    outside them is an :class:`InputError`, not a prompt with fewer shots.
    """
    import dataclasses
    import hashlib

    if k < 1:
        raise ParameterError(f"{{k}} (few-shot examples) must be >= 1, got {k}")
    if selection not in SHOT_SELECTIONS:
        raise ParameterError(f"unknown shot selection {selection!r}; expected one of {', '.join(SHOT_SELECTIONS)}")
    if selection == "overlap" and matcher is None:
        raise ParameterError("shot selection 'overlap' needs a symptom matcher")
    tables = store if isinstance(store, SamplingTables) else load_tables(store, sources=sources, min_words=0)
    index = tables.category_index()
    outside = sorted({s.category for s in samples if "examples" not in s.extra and s.category not in index})
    if outside:
        raise InputError(
            f"few-shot examples: categor{'y' if len(outside) == 1 else 'ies'} {', '.join(outside[:5])}"
            f"{' ...' if len(outside) > 5 else ''} ha{'s' if len(outside) == 1 else 've'} no symptoms in source(s) "
            f"{', '.join(source_list(sources))}; give the --sources the samples were drawn with"
        )
    pool = _ShotPool(tables, matcher, min_words, max_words)
    out: list[Sample] = []
    for s in samples:
        if "examples" in s.extra:
            out.append(s)
            continue
        ci = index[s.category]
        key = int(hashlib.sha256(f"{seed}\x1f{s.id}".encode()).hexdigest()[:32], 16)
        rng = np.random.Generator(np.random.Philox(key=key))
        chosen = [pool.shot(ci, n) for n in _pick(pool, s, ci, k, selection, rng)]
        out.append(dataclasses.replace(s, extra={**s.extra, "examples": chosen}))
    return out
