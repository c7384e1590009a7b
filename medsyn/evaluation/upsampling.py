"""Upsampling experiments: real train subsampled by code, topped up with synthetic notes drawn by code.

Definitions (docs/evaluation.md repeats them):

* real share ``r``: of every code, ``max(1, round(r * n_code))`` real train notes are kept (so no code is lost);
* synthetic share ``s``: ``round(s * n_real_kept)`` synthetic notes are added (``share_of="real"``, the default) or
  ``round(s * n_synthetic_set)`` (``share_of="set"``); never more than the set holds, and never a note twice.
  They are allocated to codes in proportion to the synthetic set's own code counts (largest remainder, at least one
  per code while there are enough notes), then drawn without replacement;
* synthetic-only: the whole synthetic set, no real notes.

Every draw has its own seeded stream (:func:`stream`), keyed by what it draws: the real notes of a (seed, real
share), shared by every set and point with that share; the synthetic notes of a (seed, point, set); the fit's seed
of a (seed, point, set). So one set's result never depends on which other sets share the run, and a set and its
graph-only control (:mod:`medsyn.evaluation.control`, keyed by the set it controls) draw the same notes with the
same fit seed: their difference is the text alone. Everything is drawn before any model is fitted, so results do not
depend on how many fits run in parallel.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from medsyn.errors import ParameterError
from medsyn.evaluation.classifier import ClassifierConfig, Scores, evaluate
from medsyn.evaluation.classifiers import make_classifier
from medsyn.evaluation.data import NoteSet
from medsyn.seeding import stream

ShareOf = Literal["real", "set"]
REAL = "real"  # name of the set column for runs without synthetic notes

REAL_SHARES = (0.5, 0.75, 1.0)
SYN_SHARES = (0.0, 0.25, 0.5, 1.0)


@dataclass(frozen=True, slots=True)
class GridPoint:
    """One training-set recipe; ``real_share == 0`` means synthetic-only."""

    real_share: float
    syn_share: float

    @property
    def synthetic_only(self) -> bool:
        return self.real_share == 0

    @property
    def label(self) -> str:
        return "synthetic only" if self.synthetic_only else f"real {self.real_share:g} + syn {self.syn_share:g}"


def default_grid(
    real_shares: Sequence[float] = REAL_SHARES, syn_shares: Sequence[float] = SYN_SHARES
) -> list[GridPoint]:
    """Real x synthetic shares, then synthetic-only (13 points with the paper's shares)."""
    return [GridPoint(r, s) for r in real_shares for s in syn_shares] + [GridPoint(0.0, 1.0)]


def make_grid(
    real_shares: Sequence[float], syn_shares: Sequence[float], *, synthetic_only: bool = True
) -> list[GridPoint]:
    """The grid of one run: every real x synthetic share, the real-only reference (1 + 0) every gain is measured
    against when ``real_shares`` holds 1 but ``syn_shares`` lacks 0, then synthetic-only unless turned off.

    >>> [p.label for p in make_grid([1.0], [1.0])]
    ['real 1 + syn 1', 'real 1 + syn 0', 'synthetic only']
    """
    if 0 in real_shares:
        raise ParameterError("{real_shares}: 0 is the synthetic-only run, which is added on its own")
    grid = [GridPoint(r, s) for r in real_shares for s in syn_shares]
    if 1.0 in real_shares and 0.0 not in syn_shares:
        grid.append(GridPoint(1.0, 0.0))
    if synthetic_only:
        grid.append(GridPoint(0.0, 1.0))
    return grid


def rare_codes(train_codes: Sequence[str], *, quantile: float = 0.25) -> set[str]:
    """Codes whose train frequency is at or below the ``quantile`` of per-code train frequencies.

    >>> sorted(rare_codes(["A"] * 10 + ["B"] * 2 + ["C"] * 3 + ["D"] * 20))
    ['B']
    """
    counts: dict[str, int] = {}
    for c in train_codes:
        counts[c] = counts.get(c, 0) + 1
    cut = float(np.quantile(list(counts.values()), quantile))
    return {c for c, n in counts.items() if n <= cut}


def _by_code(codes: Sequence[str]) -> dict[str, np.ndarray]:
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(codes):
        groups.setdefault(c, []).append(i)
    return {c: np.asarray(ix) for c, ix in sorted(groups.items())}


def stratified_share(codes: Sequence[str], share: float, rng: np.random.Generator) -> np.ndarray:
    """Indices keeping ``max(1, round(share * n_code))`` notes of every code (sorted)."""
    if not 0 < share <= 1:
        raise ParameterError(f"{{share}} must be in (0, 1], got {share}")
    picked = [rng.choice(ix, size=max(1, round(share * ix.size)), replace=False) for ix in _by_code(codes).values()]
    return np.sort(np.concatenate(picked)) if picked else np.array([], dtype=int)


def allocate(available: dict[str, int], n: int, rng: np.random.Generator) -> dict[str, int]:
    """Split ``n`` draws over codes in proportion to ``available``, capped by it (largest remainder).

    >>> allocate({"A": 10, "B": 30}, 8, np.random.default_rng(0))
    {'A': 2, 'B': 6}
    """
    total = sum(available.values())
    n = min(n, total)
    if n <= 0:
        return dict.fromkeys(available, 0)
    quota = {c: n * a / total for c, a in available.items()}
    alloc = {c: min(available[c], math.floor(q)) for c, q in quota.items()}
    if n >= len(available):
        # A code drawn zero times would drop out of the synthetic half entirely; give each one note first.
        alloc = {c: max(1, k) for c, k in alloc.items()}
    # Ties in the remainder are broken at random so no code is favoured by its name.
    jitter = {c: rng.random() for c in available}
    while (left := n - sum(alloc.values())) != 0:
        if left > 0:
            room = [c for c in available if alloc[c] < available[c]]
            room.sort(key=lambda c: (-(quota[c] - alloc[c]), jitter[c]))
            for c in room[:left]:
                alloc[c] += 1
        else:
            over = [c for c in available if alloc[c] > 1]
            over.sort(key=lambda c: (quota[c] - alloc[c], jitter[c]))
            for c in over[:-left]:
                alloc[c] -= 1
    return alloc


def stratified_draw(codes: Sequence[str], n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``n`` notes drawn without replacement, stratified by code (see :func:`allocate`)."""
    groups = _by_code(codes)
    alloc = allocate({c: ix.size for c, ix in groups.items()}, n, rng)
    picked = [rng.choice(groups[c], size=k, replace=False) for c, k in alloc.items() if k]
    return np.sort(np.concatenate(picked)) if picked else np.array([], dtype=int)


@dataclass(frozen=True, slots=True)
class TrainingSet:
    """Indices into the real train set and into one synthetic set."""

    set_name: str
    point: GridPoint
    seed: int
    real_idx: np.ndarray
    syn_idx: np.ndarray
    fit_seed: int
    control_of: str | None = None
    """For a graph-only control, the set whose samples it holds as bare symptom lists."""


def mix(
    train: NoteSet,
    synthetic: NoteSet | None,
    point: GridPoint,
    *,
    seed: int = 0,
    share_of: ShareOf = "real",
) -> TrainingSet:
    """Draw one training set for ``point`` from the streams of ``seed`` (see the module's docstring)."""
    key = REAL if synthetic is None else synthetic.control_of or synthetic.name
    where = (point.real_share, point.syn_share)
    if point.synthetic_only:
        if synthetic is None:
            raise ParameterError(f"{{point}} {point.label} is synthetic-only and needs a {{synthetic}} set")
        real_idx = np.array([], dtype=int)
        syn_idx = np.arange(len(synthetic.notes))
    else:
        real_idx = stratified_share(train.codes, point.real_share, stream(seed, REAL, point.real_share))
        syn_idx = np.array([], dtype=int)
        if point.syn_share > 0:
            if synthetic is None:
                raise ParameterError(f"{{point}} {point.label} adds synthetic notes and needs a {{synthetic}} set")
            base = real_idx.size if share_of == "real" else len(synthetic.notes)
            syn_idx = stratified_draw(
                synthetic.codes, round(point.syn_share * base), stream(seed, "synthetic", key, *where)
            )
    name = synthetic.name if synthetic is not None else REAL
    fit_seed = int(stream(seed, "fit", key, *where).integers(2**31 - 1))
    control_of = synthetic.control_of if synthetic is not None else None
    return TrainingSet(name, point, seed, real_idx, syn_idx, fit_seed, control_of)


@dataclass(frozen=True, slots=True)
class RunResult:
    set_name: str
    point: GridPoint
    seed: int
    n_real: int
    n_syn: int
    scores: Scores
    control_of: str | None = None


def plan(
    train: NoteSet,
    synthetic_sets: Sequence[NoteSet],
    *,
    seeds: Sequence[int],
    grid: Sequence[GridPoint] | None = None,
    share_of: ShareOf = "real",
) -> list[TrainingSet]:
    """All training sets of the experiment; real-only points are drawn once per seed and shared by every set."""
    points = list(grid) if grid is not None else default_grid()
    out: list[TrainingSet] = []
    for seed in seeds:
        for p in points:
            if p.syn_share == 0 and not p.synthetic_only:
                out.append(mix(train, None, p, seed=seed))
        for syn in synthetic_sets:
            for p in points:
                if p.syn_share > 0 or p.synthetic_only:
                    out.append(mix(train, syn, p, seed=seed, share_of=share_of))
    return out


def fit_one(
    ts: TrainingSet, train: NoteSet, synthetic: NoteSet | None, dev: NoteSet, config: ClassifierConfig
) -> RunResult:
    texts = [train.notes[i].text for i in ts.real_idx]
    codes = [train.notes[i].code for i in ts.real_idx]
    if synthetic is not None:
        texts += [synthetic.notes[i].text for i in ts.syn_idx]
        codes += [synthetic.notes[i].code for i in ts.syn_idx]
    clf = make_classifier(config).fit(texts, codes, seed=ts.fit_seed)
    scores, _ = evaluate(clf, dev.texts, dev.codes)
    n_real, n_syn = int(ts.real_idx.size), int(ts.syn_idx.size)
    return RunResult(ts.set_name, ts.point, ts.seed, n_real, n_syn, scores, ts.control_of)


def run_grid(
    train: NoteSet,
    dev: NoteSet,
    synthetic_sets: Sequence[NoteSet],
    *,
    seeds: Sequence[int],
    grid: Sequence[GridPoint] | None = None,
    share_of: ShareOf = "real",
    config: ClassifierConfig | None = None,
    jobs: int = 1,
    on_done: Callable[[RunResult], None] | None = None,
) -> list[RunResult]:
    """Fit and score every training set of :func:`plan`; ``on_done`` is called after each fit (progress)."""
    cfg = config or ClassifierConfig()
    by_name = {s.name: s for s in synthetic_sets}
    if len(by_name) != len(synthetic_sets):
        dup = sorted({s.name for s in synthetic_sets if sum(t.name == s.name for t in synthetic_sets) > 1})
        raise ParameterError(f"{{synthetic_sets}} need distinct names; {', '.join(dup)} occurs more than once")
    todo = plan(train, synthetic_sets, seeds=seeds, grid=grid, share_of=share_of)
    results: list[RunResult] = []
    if jobs == 1:
        for ts in todo:
            res = fit_one(ts, train, by_name.get(ts.set_name), dev, cfg)
            results.append(res)
            if on_done:
                on_done(res)
        return results
    from joblib import Parallel, delayed

    run = Parallel(n_jobs=jobs, return_as="generator_unordered")
    for res in run(delayed(fit_one)(ts, train, by_name.get(ts.set_name), dev, cfg) for ts in todo):
        results.append(res)
        if on_done:
            on_done(res)
    order = {(t.set_name, t.point, t.seed): i for i, t in enumerate(todo)}
    return sorted(results, key=lambda r: order[(r.set_name, r.point, r.seed)])


@dataclass(frozen=True, slots=True)
class Summary:
    """Mean and standard deviation over seeds of one (set, point); gains are paired by seed against real 1 + syn 0."""

    set_name: str
    point: GridPoint
    seeds: int
    n_real: float
    n_syn: float
    accuracy: tuple[float, float]
    hit3: tuple[float, float]
    macro_f1: tuple[float, float]
    rare_accuracy: tuple[float, float]
    gain: tuple[float, float]
    rare_gain: tuple[float, float]
    text_adds: tuple[float, float] | None = None
    """Accuracy of this set minus its graph-only control at the same point, paired by seed (None: no control)."""
    rare_text_adds: tuple[float, float] | None = None
    control_of: str | None = None


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


BASELINE = GridPoint(1.0, 0.0)


def text_adds(runs: Sequence[RunResult], controls: Sequence[RunResult], rare: set[str]) -> list[tuple[float, float]]:
    """Per seed shared by both: (accuracy, rare accuracy) of the notes minus those of their graph-only control."""
    twin = {r.seed: r.scores for r in controls}
    return [
        (r.scores.accuracy - twin[r.seed].accuracy, r.scores.group_accuracy(rare) - twin[r.seed].group_accuracy(rare))
        for r in runs
        if r.seed in twin
    ]


def summarise(results: Sequence[RunResult], rare: set[str]) -> list[Summary]:
    """One row per (set, point) in first-seen order; without a real 1 + syn 0 run the gains are NaN.

    A set whose graph-only control ran at the same point gets ``text_adds``: what its text adds over the bare lists.
    """
    base = {r.seed: r.scores for r in results if r.point == BASELINE}
    groups: dict[tuple[str, GridPoint], list[RunResult]] = {}
    for r in results:
        groups.setdefault((r.set_name, r.point), []).append(r)
    controls = {(runs[0].control_of, point): runs for (_, point), runs in groups.items() if runs[0].control_of}
    out = []
    nan = float("nan")
    for (name, point), runs in groups.items():
        adds = text_adds(runs, controls.get((name, point), []), rare)
        acc = [r.scores.accuracy for r in runs]
        rare_acc = [r.scores.group_accuracy(rare) for r in runs]
        gain = [r.scores.accuracy - base[r.seed].accuracy if r.seed in base else nan for r in runs]
        rgain = [
            ra - base[r.seed].group_accuracy(rare) if r.seed in base else nan
            for r, ra in zip(runs, rare_acc, strict=True)
        ]
        out.append(
            Summary(
                name,
                point,
                len(runs),
                float(np.mean([r.n_real for r in runs])),
                float(np.mean([r.n_syn for r in runs])),
                mean_sd(acc),
                mean_sd([r.scores.hit3 for r in runs]),
                mean_sd([r.scores.macro_f1 for r in runs]),
                mean_sd(rare_acc),
                mean_sd(gain),
                mean_sd(rgain),
                mean_sd([a for a, _ in adds]) if adds else None,
                mean_sd([b for _, b in adds]) if adds else None,
                runs[0].control_of,
            )
        )
    return out


def best_per_set(summaries: Sequence[Summary]) -> dict[str, Summary]:
    """The mixed (real + synthetic) point with the highest mean accuracy, per synthetic set."""
    best: dict[str, Summary] = {}
    for s in summaries:
        if s.set_name == REAL or s.point.synthetic_only or s.control_of:
            continue
        if s.set_name not in best or s.accuracy[0] > best[s.set_name].accuracy[0]:
            best[s.set_name] = s
    return best


def per_code_gain(results: Sequence[RunResult], set_name: str, point: GridPoint) -> dict[str, float]:
    """Mean over seeds of per-code dev recall at ``point`` minus that of real 1 + syn 0 (same seed)."""
    base = {r.seed: r.scores for r in results if r.point == BASELINE}
    runs = [r for r in results if r.set_name == set_name and r.point == point and r.seed in base]
    if not runs:
        return {}
    codes = sorted(runs[0].scores.per_code_recall)
    return {
        c: float(np.mean([r.scores.per_code_recall[c] - base[r.seed].per_code_recall[c] for r in runs])) for c in codes
    }


def result_rows(results: Sequence[RunResult], rare: set[str]) -> list[dict[str, object]]:
    """One JSON-ready row per fit (the ``results.json`` of a report): shares, seed, sizes and every score."""
    return [
        {
            "set": r.set_name,
            "real_share": r.point.real_share,
            "syn_share": r.point.syn_share,
            "seed": r.seed,
            "n_real": r.n_real,
            "n_syn": r.n_syn,
            "accuracy": r.scores.accuracy,
            "hit3": r.scores.hit3,
            "macro_f1": r.scores.macro_f1,
            "rare_accuracy": r.scores.group_accuracy(rare),
            "control_of": r.control_of,
            "per_code_recall": r.scores.per_code_recall,
        }
        for r in results
    ]
