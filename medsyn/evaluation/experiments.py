"""The paper's two missing experiments: codes the real training set lacks, and synthetic-only training.

* **Held-out codes** (:func:`held_out_codes`): ``n_codes`` codes with at least ``min_dev`` dev notes, of which
  every compared set holds at least ``min_notes``, are chosen with a seeded stream; every real train note of them is
  removed, and each set adds its own notes of those codes only, the same number per code for every set (the
  smallest any set holds, capped by ``per_code``). Scores are dev accuracy and Hit@3 on the held-out codes' notes.
  Two references bound them: no synthetic note (the codes can never be predicted: 0) and the same number of *real*
  train notes of those codes.
* **Synthetic-only** (:func:`synthetic_only`): a classifier trained on a set alone, beside one trained on real train
  notes with the same count per code (like for like: as many real notes of each code as the set has, or all there
  are), both scored on the dev notes of the codes the set covers.

Draws come from :func:`medsyn.seeding.stream`, keyed by the set (a graph-only control is keyed by the
set it controls), so a set and its control use the same samples, and no set's result depends on the others.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from medsyn.errors import ParameterError
from medsyn.evaluation.classifier import ClassifierConfig, evaluate
from medsyn.evaluation.classifiers import make_classifier
from medsyn.evaluation.data import Note, NoteSet
from medsyn.evaluation.upsampling import _by_code, mean_sd
from medsyn.seeding import stream

REAL_SAME_COUNT = "real notes, same count"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One fit of one experiment: scores x100 on the evaluated codes' dev notes, and on the whole dev set."""

    experiment: str
    set_name: str
    seed: int
    n_train: int
    accuracy: float
    hit3: float
    overall_accuracy: float
    control_of: str | None = None


def _key(s: NoteSet) -> str:
    return s.control_of or s.name


def choose_codes(
    dev: NoteSet, sets: Sequence[NoteSet], *, n_codes: int, min_dev: int, min_notes: int, seed: int
) -> list[str]:
    """``n_codes`` codes with ``min_dev`` or more dev notes of which every set holds ``min_notes`` or more, chosen
    with ``seed``'s stream."""
    dev_n = Counter(dev.codes)
    held = [Counter(s.codes) for s in sets]
    pool = sorted(c for c in dev_n if dev_n[c] >= min_dev and held and all(h[c] >= min_notes for h in held))
    if len(pool) < n_codes:
        raise ParameterError(
            f"{{n_codes}}: only {len(pool)} codes have {min_dev}+ dev notes and {min_notes}+ notes in every set; "
            f"asked for {n_codes}"
        )
    picked = stream(seed, "held-out codes").choice(pool, size=n_codes, replace=False)
    return sorted(str(c) for c in picked)


def _draw(notes: Sequence[Note], per_code: dict[str, int], rng: np.random.Generator) -> list[Note]:
    """``per_code[c]`` notes of each code c, without replacement, in code order."""
    out: list[Note] = []
    groups = _by_code([n.code for n in notes])  # one pass over the notes, not one per code
    for code, k in sorted(per_code.items()):
        pool = [notes[i] for i in groups.get(code, ())]
        out += [pool[i] for i in sorted(rng.choice(len(pool), size=min(k, len(pool)), replace=False))]
    return out


def _score(
    experiment: str,
    name: str,
    seed: int,
    notes: Sequence[Note],
    dev: NoteSet,
    codes: set[str],
    config: ClassifierConfig,
    control_of: str | None = None,
) -> Outcome:
    fit_seed = int(stream(seed, "fit", experiment, control_of or name).integers(2**31 - 1))
    clf = make_classifier(config).fit([n.text for n in notes], [n.code for n in notes], seed=fit_seed)
    mine = [n for n in dev.notes if n.code in codes]
    part, _ = evaluate(clf, [n.text for n in mine], [n.code for n in mine])
    whole, _ = evaluate(clf, dev.texts, dev.codes)
    return Outcome(experiment, name, seed, len(notes), part.accuracy, part.hit3, whole.accuracy, control_of)


def held_out_codes(
    train: NoteSet,
    dev: NoteSet,
    sets: Sequence[NoteSet],
    *,
    seeds: Sequence[int],
    n_codes: int = 10,
    min_dev: int = 5,
    min_notes: int = 10,
    per_code: int = 30,
    choice_seed: int = 0,
    config: ClassifierConfig | None = None,
    on_done: Callable[[Outcome], None] | None = None,
) -> tuple[list[str], dict[str, int], list[Outcome]]:
    """The held-out codes, the synthetic notes per code each set adds, and one outcome per (set, seed)."""
    cfg = config or ClassifierConfig()
    codes = choose_codes(dev, sets, n_codes=n_codes, min_dev=min_dev, min_notes=min_notes, seed=choice_seed)
    held = set(codes)
    counts = {c: min([per_code] + [Counter(s.codes)[c] for s in sets]) for c in codes}
    kept = [n for n in train.notes if n.code not in held]
    out: list[Outcome] = []
    for seed in seeds:
        real = _draw(train.notes, counts, stream(seed, "held-out", "real"))
        runs: list[tuple[str, list[Note], str | None]] = [(REAL_SAME_COUNT, real, None)]
        runs += [(s.name, _draw(s.notes, counts, stream(seed, "held-out", _key(s))), s.control_of) for s in sets]
        for name, added, control_of in runs:
            res = _score("held-out codes", name, seed, kept + added, dev, held, cfg, control_of)
            out.append(res)
            if on_done:
                on_done(res)
    return codes, counts, out


def synthetic_only(
    train: NoteSet,
    dev: NoteSet,
    sets: Sequence[NoteSet],
    *,
    seeds: Sequence[int],
    config: ClassifierConfig | None = None,
    on_done: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Per set and seed: the set alone, and real notes with the same count per code (``<set>: real, same count``)."""
    cfg = config or ClassifierConfig()
    out: list[Outcome] = []
    for seed in seeds:
        for s in sets:
            covered = set(s.codes)
            runs = [(s.name, list(s.notes), s.control_of)]
            if s.control_of is None:
                real = _draw(train.notes, dict(Counter(s.codes)), stream(seed, "like for like", s.name))
                runs.append((f"{s.name}: {REAL_SAME_COUNT}", real, None))
            for name, notes, control_of in runs:
                res = _score("synthetic only", name, seed, notes, dev, covered, cfg, control_of)
                out.append(res)
                if on_done:
                    on_done(res)
    return out


@dataclass(frozen=True, slots=True)
class Row:
    """Mean and standard deviation over seeds of one (experiment, set)."""

    set_name: str
    seeds: int
    n_train: float
    accuracy: tuple[float, float]
    hit3: tuple[float, float]
    overall_accuracy: tuple[float, float]
    control_of: str | None


def summarise_outcomes(outcomes: Sequence[Outcome]) -> list[Row]:
    """One row per set in first-seen order."""
    groups: dict[str, list[Outcome]] = {}
    for o in outcomes:
        groups.setdefault(o.set_name, []).append(o)

    return [
        Row(
            name,
            len(runs),
            float(np.mean([r.n_train for r in runs])),
            mean_sd([r.accuracy for r in runs]),
            mean_sd([r.hit3 for r in runs]),
            mean_sd([r.overall_accuracy for r in runs]),
            runs[0].control_of,
        )
        for name, runs in groups.items()
    ]
