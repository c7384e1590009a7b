"""Patient demographics drawn from Russian population tables: sex, city/countryside, age, marital status, smoking.

Sources (``shared/data/medsyn/demographical/``, from the MedSyn authors, who took them from Rosstat):

- ``EdgeGenderRU_2022.csv``: population by single year of age (0..99) x sex x city/countryside, Rosstat 2022.
  Sex, location and age are drawn jointly from these counts (ages below ``min_age`` left out; 9 in the authors'
  sampler config); a sex-restricted ICD-10 code fixes the sex and the rest is drawn given it.
- ``FamilyStatusRU.csv``: marriages registered per year by age group and sex. It holds no marital-status
  prevalence, so, as the authors did, the latest year's cumulative share of marriages by age stands in for
  "married by this age": ``P(married | sex, age) = min(1, 1.25 * F_sex(age))``, where ``F_sex`` interpolates the
  cumulative share linearly inside each age group (the 0-17 group spread over ages 16-17, the youngest legal age
  in Russia) and 1.25 is the authors' factor ("heuristic to increase marriage prob"). It overstates marriage at
  old ages (widowhood is not in the table).
- Smoking has no table in the data; :data:`SMOKING_PREVALENCE` cites the one used.

>>> pop = load_population()
>>> d = draw_demographics(pop, np.random.default_rng(0), 2, sex=["female", None])
>>> d[0]["sex"], sorted(d[1])
('female', ['age', 'location', 'marital_status', 'sex', 'smoking'])
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medsyn.errors import InputError
from medsyn.paths import data_dir

SEXES = ("male", "female")
LOCATIONS = ("city", "countryside")
MIN_AGE = 9
"""The authors' ``min_age`` (scripts/sampler/cfg.yaml): no notes of younger patients."""

MARRIAGE_FACTOR = 1.25
"""The authors' ``merige_temp``: scales the cumulative share of marriages up to a marriage probability."""
MARRIAGE_MIN_AGE = 16

SMOKING_PREVALENCE = {"male": 0.498, "female": 0.145}
"""Current tobacco smoking, adults 15+, Russian Federation: WHO Global Adult Tobacco Survey (GATS) 2016 fact sheet
(30.9 % overall; men 49.8 %, women 14.5 %). The authors' released samples carry a smoking flag but no source."""
SMOKING_MIN_AGE = 15
"""GATS surveys ages 15 and over; younger patients are drawn as non-smokers."""


@dataclass(frozen=True)
class Population:
    """Counts and probabilities the draws use; build it with :func:`load_population`."""

    ages: NDArray[np.int64]
    counts: dict[str, NDArray[np.float64]]
    """Per sex: counts of shape (2 locations, len(ages)), ages below ``min_age`` zeroed."""
    p_male: float
    marriage_edges: NDArray[np.float64]
    marriage_cdf: dict[str, NDArray[np.float64]]

    def married_probability(self, sex: str, age: int | NDArray[np.int64]) -> NDArray[np.float64]:
        f = np.interp(np.asarray(age, dtype=np.float64) + 0.5, self.marriage_edges, self.marriage_cdf[sex])
        return np.minimum(1.0, MARRIAGE_FACTOR * f)

    def from_uniforms(self, u: NDArray[np.float64], sex: Sequence[str | None]) -> list[dict[str, Any]]:
        """Demographics of ``len(u)`` patients from 4 uniforms each (sex, location+age, marriage, smoking).

        ``sex[i]`` fixes the sex of patient ``i`` (a sex-restricted code) or is None.
        """
        n = len(u)
        male = np.array([s == "male" if s else bool(x < self.p_male) for s, x in zip(sex, u[:, 0], strict=True)])
        flat = {s: np.cumsum(self.counts[s].ravel()) for s in SEXES}
        cell = np.empty(n, dtype=np.int64)
        for s, mask in (("male", male), ("female", ~male)):
            c = flat[s]
            cell[mask] = np.minimum(np.searchsorted(c, u[mask, 1] * c[-1], side="right"), len(c) - 1)
        loc, age = np.divmod(cell, len(self.ages))
        ages = self.ages[age]
        p_married = np.where(male, self.married_probability("male", ages), self.married_probability("female", ages))
        p_smoke = np.where(male, SMOKING_PREVALENCE["male"], SMOKING_PREVALENCE["female"]) * (ages >= SMOKING_MIN_AGE)
        married = u[:, 2] < p_married
        smoking = u[:, 3] < p_smoke
        return [
            {
                "sex": "male" if male[i] else "female",
                "location": LOCATIONS[loc[i]],
                "age": int(ages[i]),
                "marital_status": "married" if married[i] else "unmarried",
                "smoking": bool(smoking[i]),
            }
            for i in range(n)
        ]


def draw_demographics(
    population: Population, rng: np.random.Generator, n: int = 1, *, sex: Sequence[str | None] | None = None
) -> list[dict[str, Any]]:
    """``n`` patients drawn with ``rng``; ``sex`` optionally fixes the sex per patient."""
    fixed = list(sex) if sex is not None else [None] * n
    if len(fixed) != n:
        raise InputError(f"sex has {len(fixed)} entries for {n} patients")
    for s in fixed:
        if s is not None and s not in SEXES:
            raise InputError(f"unknown sex {s!r}; expected 'male' or 'female'")
    return population.from_uniforms(rng.random((n, 4)), fixed)


def _number(cell: str, path: Path, line: int) -> float:
    try:
        return float(cell.replace(" ", "").replace("\u00a0", ""))
    except ValueError:
        raise InputError(f"not a number: {cell!r}", path=path, line=line) from None


def _rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            return [(n, row) for n, row in enumerate(csv.DictReader(fh), 2)]
    except FileNotFoundError:
        raise InputError("population table not found", path=path) from None


@lru_cache(maxsize=4)
def load_population(folder: Path | None = None, *, min_age: int = MIN_AGE) -> Population:
    """Read the tables in ``folder`` (default ``<data>/medsyn/demographical``); cached per folder."""
    base = folder if folder is not None else data_dir() / "medsyn" / "demographical"
    if not 0 <= min_age < 100:
        raise InputError(f"min_age must be in 0..99, got {min_age}")
    ages_path = base / "EdgeGenderRU_2022.csv"
    ages, cols = [], {k: [] for k in ("M_City", "M_Countryside", "F_City", "F_Countryside")}
    for line, row in _rows(ages_path):
        missing = [k for k in ("Age", *cols) if k not in row]
        if missing:
            raise InputError(f"missing column {missing[0]}", path=ages_path, line=line)
        ages.append(int(_number(row["Age"], ages_path, line)))
        for k in cols:
            cols[k].append(_number(row[k], ages_path, line))
    if not ages:
        raise InputError("no rows", path=ages_path)
    age_arr = np.array(ages, dtype=np.int64)
    keep = (age_arr >= min_age).astype(np.float64)
    counts = {
        "male": np.array([cols["M_City"], cols["M_Countryside"]]) * keep,
        "female": np.array([cols["F_City"], cols["F_Countryside"]]) * keep,
    }
    males, females = counts["male"].sum(), counts["female"].sum()
    if males + females <= 0:
        raise InputError(f"no population aged {min_age}+", path=ages_path)

    fam_path = base / "FamilyStatusRU.csv"
    fam = _rows(fam_path)
    if not fam:
        raise InputError("no rows", path=fam_path)
    # The latest year; "20141)" carries a footnote mark.
    line, latest = max(fam, key=lambda r: int("".join(ch for ch in r[1]["year"][:4] if ch.isdigit()) or 0))
    groups = ("0-17", "18-24", "25-34", "35-99")
    cdf = {}
    for sex, prefix in (("male", "m"), ("female", "f")):
        per_group = np.array([_number(latest[f"{prefix}_age_{g}"], fam_path, line) for g in groups])
        if per_group.sum() <= 0:
            raise InputError(f"no marriages of {sex} persons in the latest year", path=fam_path, line=line)
        cdf[sex] = np.concatenate([[0.0], np.cumsum(per_group) / per_group.sum()])
    return Population(
        ages=age_arr,
        counts=counts,
        p_male=float(males / (males + females)),
        marriage_edges=np.array([MARRIAGE_MIN_AGE, 18, 25, 35, 100], dtype=np.float64),
        marriage_cdf=cdf,
    )
