"""Privacy of a synthetic note set: membership inference from the synthetic set alone, and personal data.

**Membership inference.** An attacker holds the synthetic set and a real note, and asks whether the note was in
the generator's training data (the real notes the graph holds and the prompts showed: RuMedTop3 train). Members
are real train notes, non-members held-out real notes (RuMedTop3 dev), drawn so that both have the same size and
the same code mix: per code, as many of each as the scarcer side has (codes the synthetic set covers only, since a
set cannot leak notes of codes it never wrote). A real note's attack score is its highest similarity to any
synthetic note; the attack's ROC AUC says how well the score tells members from non-members (0.5: no signal).

Attacks (granularities):

* ``char``: char n-gram (3..5, within words) TF-IDF cosine, fitted on the synthetic set;
* ``word``: word 3-gram Jaccard (:func:`medsyn.evaluation.quality.overlap`, the shingles of :mod:`medsyn.textsim`);
* ``char_code``: the char cosine against the synthetic notes of the real note's own code only (an attacker who
  knows a candidate's diagnosis).

Populations: ``all`` (the balanced draw), ``rare`` (its notes of rare codes, where leakage is likeliest) and
``shown``: provenance-aware, the real train notes that a synthetic note's prompt showed as an example (its
``example_ids``: the run's records name them) against code-matched non-members. Sets without provenance (the
authors') have no ``shown`` row. Each AUC carries a seeded bootstrap 95 % interval (members and non-members
resampled separately).

**Personal data**: :mod:`medsyn.generation.pii`, the set's rate beside the real notes'.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from medsyn.evaluation.data import Note, NoteSet
from medsyn.evaluation.quality import overlap
from medsyn.generation.pii import PiiScan

ATTACKS: dict[str, str] = {
    "char": "char 3–5-gram TF-IDF cosine, nearest synthetic note",
    "word": "word 3-gram Jaccard, nearest synthetic note",
    "char_code": "char TF-IDF cosine, nearest synthetic note of the same code",
}
POPULATIONS: dict[str, str] = {
    "all": "train vs dev, balanced per code",
    "rare": "rare codes only",
    "shown": "train notes shown as prompt examples vs dev, balanced per code",
}
GOAL_AUC = 0.55
"""The issue's goal for MedSyn's own sets: no attack above this AUC on the whole balanced draw."""
CHUNK = 256
"""Real notes per block of the similarity product: the dense block is CHUNK x synthetic notes floats."""


def auc(members: np.ndarray, nonmembers: np.ndarray) -> float:
    """ROC AUC of scores (members positive) by the rank-sum formula, ties counted half.

    >>> auc(np.array([3.0, 4.0]), np.array([1.0, 2.0])), auc(np.array([1.0]), np.array([1.0]))
    (1.0, 0.5)
    """
    from scipy.stats import rankdata

    n1, n0 = len(members), len(nonmembers)
    if not n1 or not n0:
        return float("nan")
    ranks = rankdata(np.r_[members, nonmembers])
    return float((ranks[:n1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def bootstrap_interval(
    members: np.ndarray, nonmembers: np.ndarray, rng: np.random.Generator, *, n_boot: int = 1000
) -> tuple[float, float]:
    """95 % percentile interval of the AUC over ``n_boot`` resamples (each side resampled on its own)."""
    if len(members) < 2 or len(nonmembers) < 2:
        return float("nan"), float("nan")
    values = [
        auc(
            members[rng.integers(0, len(members), len(members))],
            nonmembers[rng.integers(0, len(nonmembers), len(nonmembers))],
        )
        for _ in range(n_boot)
    ]
    lo, hi = np.percentile(values, [2.5, 97.5])
    return float(lo), float(hi)


def char_scores(queries: Sequence[Note], synthetic: Sequence[Note]) -> dict[str, np.ndarray]:
    """Per query note: its highest char TF-IDF cosine to the synthetic notes (``char``) and to those of its own
    code (``char_code``, 0 when the set has none of that code). Sparse product in blocks of :data:`CHUNK` rows."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, dtype=np.float32)
    syn = vec.fit_transform([n.text for n in synthetic]).T.tocsr()
    q = vec.transform([n.text for n in queries])
    codes = {c: i for i, c in enumerate(sorted({n.code for n in (*queries, *synthetic)}))}
    syn_codes = np.array([codes[n.code] for n in synthetic])
    q_codes = np.array([codes[n.code] for n in queries])
    best = np.zeros(len(queries), dtype=np.float32)
    same = np.zeros(len(queries), dtype=np.float32)
    for start in range(0, len(queries), CHUNK):
        block = (q[start : start + CHUNK] @ syn).toarray()
        best[start : start + len(block)] = block.max(axis=1)
        mask = q_codes[start : start + len(block), None] == syn_codes[None, :]
        same[start : start + len(block)] = np.where(mask, block, 0.0).max(axis=1)
    return {"char": best, "char_code": same}


def word_scores(queries: Sequence[Note], synthetic: Sequence[Note]) -> np.ndarray:
    return overlap([n.text for n in queries], [n.text for n in synthetic], n=3).jaccard


def balanced_draw(
    members: Sequence[Note], nonmembers: Sequence[Note], codes: set[str], rng: np.random.Generator
) -> tuple[list[Note], list[Note]]:
    """Per code of ``codes``: as many members as non-members (the scarcer side's count), drawn with ``rng``."""
    by_m: dict[str, list[Note]] = defaultdict(list)
    by_n: dict[str, list[Note]] = defaultdict(list)
    for n in members:
        by_m[n.code].append(n)
    for n in nonmembers:
        by_n[n.code].append(n)
    out_m: list[Note] = []
    out_n: list[Note] = []
    for code in sorted(codes):
        k = min(len(by_m[code]), len(by_n[code]))
        if k == 0:
            continue
        out_m += [by_m[code][i] for i in sorted(rng.choice(len(by_m[code]), size=k, replace=False))]
        out_n += [by_n[code][i] for i in sorted(rng.choice(len(by_n[code]), size=k, replace=False))]
    return out_m, out_n


@dataclass(frozen=True, slots=True)
class AttackResult:
    attack: str
    population: str
    members: int
    nonmembers: int
    auc: float
    low: float
    high: float


@dataclass(slots=True)
class PrivacyResult:
    """One set's figures: the attacks, its personal-data scan and the goals it meets."""

    name: str
    path: str
    n: int
    attacks: list[AttackResult]
    pii: PiiScan | None = None
    shown: int = 0
    """Distinct real train notes that the set's prompts showed (0 without provenance)."""
    canaries: dict[str, Any] | None = None
    """Canary exposure of a fine-tuned generator (``eval privacy --adapter``; issue 25.2), when measured."""
    wall_s: float = 0.0

    def auc_of(self, attack: str, population: str = "all") -> AttackResult | None:
        return next((a for a in self.attacks if a.attack == attack and a.population == population), None)

    @property
    def worst_auc(self) -> float:
        """The highest AUC of any attack on the whole balanced draw (what the goal is checked on)."""
        values = [a.auc for a in self.attacks if a.population == "all" and not np.isnan(a.auc)]
        return max(values) if values else float("nan")

    def meets_auc(self, goal: float = GOAL_AUC) -> bool:
        return bool(self.worst_auc <= goal)

    def meets_pii(self, real: PiiScan | None) -> bool | None:
        if self.pii is None or real is None:
            return None
        return self.pii.rate <= real.rate

    def to_json(self, real: PiiScan | None = None, goal: float = GOAL_AUC) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "notes": self.n,
            "shown_real_notes": self.shown,
            "attacks": [{k: _num(v) for k, v in asdict(a).items()} for a in self.attacks],
            "worst_auc": _num(self.worst_auc),
            "goal_auc": goal,
            "meets_auc_goal": self.meets_auc(goal),
            "pii": None if self.pii is None else self.pii.to_json(),
            "meets_pii_goal": self.meets_pii(real),
            "canaries": self.canaries,
            "wall_s": round(self.wall_s, 2),
        }


def _num(v: Any) -> Any:
    """Floats rounded for JSON, NaN (a population too small to measure) as null."""
    if isinstance(v, float):
        return None if np.isnan(v) else round(v, 4)
    return v


def membership(
    synthetic: NoteSet,
    train: NoteSet,
    dev: NoteSet,
    rng: np.random.Generator,
    *,
    rare: set[str],
    n_boot: int = 1000,
) -> tuple[list[AttackResult], int]:
    """Every attack on every population (see the module text), and how many real notes the set's prompts showed."""
    covered = {n.code for n in synthetic.notes}
    members, nonmembers = balanced_draw(train.notes, dev.notes, covered, rng)
    shown_ids = {i for n in synthetic.notes for i in n.shots}
    shown_notes = [n for n in train.notes if n.id in shown_ids]
    shown_m, shown_n = balanced_draw(shown_notes, dev.notes, covered, rng) if shown_notes else ([], [])
    queries = list({id(n): n for n in (*members, *nonmembers, *shown_m, *shown_n)}.values())
    where = {id(n): i for i, n in enumerate(queries)}
    scores = char_scores(queries, synthetic.notes)
    scores["word"] = word_scores(queries, synthetic.notes)
    pops: dict[str, tuple[list[Note], list[Note]]] = {
        "all": (members, nonmembers),
        "rare": ([n for n in members if n.code in rare], [n for n in nonmembers if n.code in rare]),
    }
    if shown_m:
        pops["shown"] = (shown_m, shown_n)
    out: list[AttackResult] = []
    for pop, (m, nm) in pops.items():
        for attack in ATTACKS:
            s_m = scores[attack][[where[id(n)] for n in m]].astype(float)
            s_n = scores[attack][[where[id(n)] for n in nm]].astype(float)
            lo, hi = bootstrap_interval(s_m, s_n, rng, n_boot=n_boot)
            out.append(AttackResult(attack, pop, len(m), len(nm), auc(s_m, s_n), lo, hi))
    return out, len(shown_notes)


@dataclass(slots=True)
class PrivacyRun:
    """Everything ``eval privacy`` measured: per set, and the real notes' personal-data rate."""

    results: list[PrivacyResult]
    real_pii: PiiScan | None
    train: str
    dev: str
    rare: list[str]
    rare_rule: str
    seed: int
    n_boot: int
    goal_auc: float = GOAL_AUC
    notes: list[str] = field(default_factory=list)

    def failures(self) -> list[str]:
        """One line per set and goal it fails."""
        out = []
        for r in self.results:
            found = (r.canaries or {}).get("secrets_in_notes")
            if found:
                out.append(f"{r.name}: {found} note(s) hold a canary's secret (goal: none)")
            if not r.meets_auc(self.goal_auc):
                out.append(f"{r.name}: membership-inference AUC {r.worst_auc:.3f} > {self.goal_auc}")
            if r.meets_pii(self.real_pii) is False and r.pii is not None and self.real_pii is not None:
                out.append(
                    f"{r.name}: personal data in {100 * r.pii.rate:.2f}% of notes > real notes' "
                    f"{100 * self.real_pii.rate:.2f}%"
                )
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "train": self.train,
            "dev": self.dev,
            "seed": self.seed,
            "bootstrap": self.n_boot,
            "goal_auc": self.goal_auc,
            "rare_codes": self.rare,
            "rare_rule": self.rare_rule,
            "attacks": ATTACKS,
            "populations": POPULATIONS,
            "real_pii": None if self.real_pii is None else self.real_pii.to_json(),
            "sets": [r.to_json(self.real_pii, self.goal_auc) for r in self.results],
            "failures": self.failures(),
            "notes": self.notes,
        }


def assess_privacy(
    sets: Sequence[NoteSet],
    train: NoteSet,
    dev: NoteSet,
    seed: int,
    *,
    rare: set[str],
    n_boot: int = 1000,
    pii: bool = True,
    on_set: Callable[[str], None] | None = None,
) -> tuple[list[PrivacyResult], PiiScan | None]:
    """Membership inference and (with ``pii``) the personal-data scan of each set, and the real notes' scan (dev:
    the held-out real notes, which no set saw).

    Each set draws from its own stream of ``seed`` (keyed by its name), so its figures never depend on which other
    sets share the run or in what order."""
    import time

    from medsyn.generation.pii import scan
    from medsyn.seeding import stream

    real = scan(dev.texts, [n.id for n in dev.notes]) if pii else None
    results = []
    for s in sets:
        if on_set is not None:
            on_set(s.name)
        start = time.perf_counter()
        attacks, shown = membership(s, train, dev, stream(seed, "privacy", s.name), rare=rare, n_boot=n_boot)
        found = scan(s.texts, [n.id for n in s.notes]) if pii else None
        results.append(
            PrivacyResult(s.name, str(s.path), len(s.notes), attacks, found, shown, None, time.perf_counter() - start)
        )
    return results, real


def attach_canaries(
    results: Sequence[PrivacyResult],
    sets: Sequence[NoteSet],
    exposed: Sequence[Any],
    canaries: Sequence[Any],
    *,
    adapter: str | None,
) -> None:
    """Fill each set's ``canaries`` figures: the generator's exposures (measured once: the adapter is the same for
    every set) and the set's own notes scanned for the secrets (goal: none)."""
    from medsyn.evaluation.canaries import scan_secrets

    bits = [e.exposure for e in exposed]
    for r, s in zip(results, sets, strict=True):
        hits = scan_secrets([(n.id, f"{n.path}:{n.line}", n.text) for n in s.notes], list(canaries))
        r.canaries = {
            "adapter": adapter,
            "canaries": len(canaries),
            "candidates": exposed[0].candidates if exposed else None,
            "max_exposure_bits": round(max(bits), 3) if bits else None,
            "mean_exposure_bits": round(sum(bits) / len(bits), 3) if bits else None,
            "secrets_in_notes": len(hits),
            "hits": [f"{h.canary} in {h.where}" for h in hits[:20]],
        }
