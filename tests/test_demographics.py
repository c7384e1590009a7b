"""Demographics drawn from the Rosstat tables: the draws follow the tables and the documented priors."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import chisquare

from medsyn.errors import InputError
from medsyn.sampling.demographics import (
    MARRIAGE_MIN_AGE,
    SMOKING_MIN_AGE,
    SMOKING_PREVALENCE,
    Population,
    draw_demographics,
    load_population,
)


@pytest.fixture(scope="module")
def pop(shared_data: Path) -> Population:
    return load_population(shared_data / "medsyn" / "demographical")


@pytest.fixture(scope="module")
def table(shared_data: Path) -> list[dict[str, str]]:
    with (shared_data / "medsyn/demographical/EdgeGenderRU_2022.csv").open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_sex_and_age_follow_the_population_table(pop: Population, table: list[dict[str, str]]) -> None:
    people = draw_demographics(pop, np.random.default_rng(1), 40_000)
    adults = [r for r in table if int(r["Age"]) >= 9]
    males = sum(int(r["M_City"]) + int(r["M_Countryside"]) for r in adults)
    females = sum(int(r["F_City"]) + int(r["F_Countryside"]) for r in adults)
    n_male = sum(p["sex"] == "male" for p in people)
    p_male = males / (males + females)
    assert abs(n_male - p_male * 40_000) < 4 * (40_000 * p_male * (1 - p_male)) ** 0.5
    assert min(p["age"] for p in people) >= 9 and max(p["age"] for p in people) <= 99
    # Female ages by decade against the table's city + countryside counts.
    women = Counter(min(p["age"] // 10, 9) for p in people if p["sex"] == "female")
    expected = Counter()
    for r in adults:
        expected[min(int(r["Age"]) // 10, 9)] += int(r["F_City"]) + int(r["F_Countryside"])
    decades = sorted(expected)
    total = sum(women.values())
    exp = np.array([expected[d] for d in decades], dtype=float)
    assert chisquare([women[d] for d in decades], exp / exp.sum() * total).pvalue > 1e-3


def test_fixed_sex_is_kept(pop: Population) -> None:
    people = draw_demographics(pop, np.random.default_rng(2), 500, sex=["female"] * 250 + ["male"] * 250)
    assert [p["sex"] for p in people] == ["female"] * 250 + ["male"] * 250


def test_marriage_and_smoking_priors(pop: Population) -> None:
    people = draw_demographics(pop, np.random.default_rng(3), 40_000)
    assert not any(p["marital_status"] == "married" for p in people if p["age"] < MARRIAGE_MIN_AGE)
    assert not any(p["smoking"] for p in people if p["age"] < SMOKING_MIN_AGE)
    for sex in ("male", "female"):
        group = [p for p in people if p["sex"] == sex and p["age"] >= SMOKING_MIN_AGE]
        rate, n = SMOKING_PREVALENCE[sex], len(group)
        assert abs(sum(p["smoking"] for p in group) - rate * n) < 4 * (n * rate * (1 - rate)) ** 0.5
    ages = np.arange(0, 100)
    for sex in ("male", "female"):
        p = pop.married_probability(sex, ages)
        assert (np.diff(p) >= 0).all() and p.max() <= 1.0 and p[:MARRIAGE_MIN_AGE].max() == 0.0
    # Women marry younger than men in the table, so at 22 more women than men are drawn as married.
    assert pop.married_probability("female", 22) > pop.married_probability("male", 22) > 0


def test_same_generator_state_same_people(pop: Population) -> None:
    a = draw_demographics(pop, np.random.default_rng(7), 50)
    assert a == draw_demographics(pop, np.random.default_rng(7), 50)
    assert a != draw_demographics(pop, np.random.default_rng(8), 50)


def test_bad_input(pop: Population, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown sex 'x'"):
        draw_demographics(pop, np.random.default_rng(0), 1, sex=["x"])
    with pytest.raises(InputError, match="sex has 2 entries for 1 patients"):
        draw_demographics(pop, np.random.default_rng(0), 1, sex=["male", "female"])
    with pytest.raises(InputError, match="population table not found"):
        load_population(tmp_path)
    (tmp_path / "EdgeGenderRU_2022.csv").write_text("Age,M_City,F_City,M_Countryside\n1,2,3,4\n")
    with pytest.raises(InputError, match=r"EdgeGenderRU_2022\.csv:2: missing column F_Countryside"):
        load_population(tmp_path)
