"""Code weights w(C) = J3(N_symp) * J3(N_exmp): exact values on small graphs, the real category structure."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import pytest
from sampling_graph import GraphBuilder, real_graph

from medsyn.errors import InputError
from medsyn.kg.store import OxigraphStore
from medsyn.kg.vocab import normalize_label
from medsyn.sampling.tables import code_weights
from medsyn.sampling.weights import CodeWeight, parse_overrides, plan_counts


def J3(x: float) -> float:
    return math.log(1 + math.log(1 + math.log(1 + x)))


@pytest.fixture(scope="module")
def small() -> OxigraphStore:
    b = GraphBuilder()
    # A01: two sub-codes, 4 unique symptoms over 2 codes -> N_symp 2.0; 3 notes of >= 30 words, one of 29.
    for s in ("кашель", "жар", "слабость"):
        b.symptom("A01.0", s)
    for s in ("жар", "сыпь"):
        b.symptom("A01.1", s)
    b.symptom("A01.0", "TF-IDF only", source="hsdn", weight=3.5, lang="en")
    for i, words in enumerate((30, 31, 80, 29)):
        b.note(f"a{i}", "A01", words=words)
    # B02: symptoms attached to the category itself: it is its own code; one note of exactly 30 words.
    b.symptom("B02", "боль")
    b.note("b0", "B02", words=30)
    # C03: symptoms but only short notes -> weight 0. D04: notes but no symptoms -> not a sampled category.
    b.symptom("C03.1", "зуд")
    b.note("c0", "C03", words=5)
    b.note("d0", "D04", words=40)
    return b.store()


def test_exact_weights_on_a_small_graph(small: OxigraphStore) -> None:
    ws = {w.category: w for w in code_weights(small)}
    assert sorted(ws) == ["A01", "B02", "C03"]
    a = ws["A01"]
    assert (a.n_examples, a.n_codes, a.n_symptoms, a.n_symp) == (3, 2, 4, 2.0)
    assert a.weight == pytest.approx(J3(2.0) * J3(3), rel=1e-12)
    assert ws["B02"].weight == pytest.approx(J3(1) * J3(1), rel=1e-12)
    assert (ws["C03"].n_examples, ws["C03"].weight) == (0, 0.0)


def test_min_words_and_sources_change_the_counts(small: OxigraphStore) -> None:
    ws = {w.category: w for w in code_weights(small, min_words=31)}
    assert ws["A01"].n_examples == 2 and ws["B02"].n_examples == 0 and ws["B02"].weight == 0.0
    both = {w.category: w for w in code_weights(small, sources="wikimed,hsdn")}
    # The HSDN symptom joins A01.0: 5 unique symptoms over the same 2 codes.
    assert (both["A01"].n_symptoms, both["A01"].n_codes) == (5, 2)
    assert both["A01"].weight == pytest.approx(J3(2.5) * J3(3), rel=1e-12)


def test_empty_graph_and_unknown_source_are_one_line_errors(small: OxigraphStore) -> None:
    with pytest.raises(InputError, match="no ICD-10 categories with symptoms from source"):
        code_weights(OxigraphStore.in_memory())
    with pytest.raises(InputError, match=r"source\(s\) nosuch"):
        code_weights(small, sources="nosuch")
    with pytest.raises(InputError, match="invalid source name"):
        code_weights(small, sources="wiki med?")
    with pytest.raises(InputError, match="min_words"):
        code_weights(small, min_words=-1)


def W(cat: str, w: float) -> CodeWeight:
    return CodeWeight(cat, 1, 1, 1, 1.0, w)


def test_plan_counts_share_the_total_by_largest_remainder() -> None:
    # Quotas 2.5, 2.5, 5: the one note left goes to the first of the tied remainders (category order).
    assert plan_counts([W("A00", 1.0), W("B00", 1.0), W("C00", 2.0)], 10) == {"A00": 3, "B00": 2, "C00": 5}
    # Tied remainders: the larger weight first.
    assert plan_counts([W("A00", 1.0), W("B00", 3.0)], 10) == {"A00": 2, "B00": 8}
    # Quotas 1/3 each: rounding would plan 0 notes, the largest remainder plans exactly 1.
    assert plan_counts([W("A00", 1.0), W("B00", 1.0), W("C00", 1.0)], 1) == {"A00": 1, "B00": 0, "C00": 0}


@pytest.mark.parametrize("total", [1, 2, 7, 20, 50, 99, 100, 101, 1000, 2491])
def test_plan_counts_sum_to_the_total(total: int) -> None:
    ws = [W(f"A{i:02d}", w) for i, w in enumerate([0.9195, 0.8506, 0.8235, 0.8067, 0.8033, 0.31, 0.05, 0.0, 0.0001])]
    plan = plan_counts(ws, total)
    assert sum(plan.values()) == total
    exact = {w.category: w.weight / sum(x.weight for x in ws) * total for w in ws}
    assert all(abs(plan[c] - q) < 1 for c, q in exact.items())  # each within one note of its exact share
    assert plan["A07"] == 0  # weight 0 gets nothing
    with_z = plan_counts([*ws, W("Z00", 0.0)], total + 10, overrides={"Z00": 10})
    assert with_z["Z00"] == 10 and sum(with_z.values()) == total + 10


def test_overrides_leave_the_normalisation_and_the_budget() -> None:
    ws = [W("A00", 1.0), W("B00", 3.0), W("Z00", 0.0)]
    assert plan_counts(ws, 110, overrides={"Z00": 10}) == {"A00": 25, "B00": 75, "Z00": 10}
    assert plan_counts(ws, 110, overrides={"b00": 0}) == {"A00": 110, "B00": 0, "Z00": 0}
    with pytest.raises(InputError, match="unknown category Q99"):
        plan_counts(ws, 10, overrides={"Q99": 1})
    with pytest.raises(InputError, match="total must be >= 1"):
        plan_counts(ws, 0)
    with pytest.raises(InputError, match="weight 0"):
        plan_counts([W("Z00", 0.0)], 5)
    with pytest.raises(InputError, match="overrides add up to 12, more than total = 10"):
        plan_counts(ws, 10, overrides={"Z00": 12})


def test_parse_overrides() -> None:
    assert parse_overrides(["Z00=10", " m54 =3"]) == {"Z00": 10, "M54": 3}
    for bad in ("Z00", "Z00=x", "Z00=-1", "nonsense=3"):
        with pytest.raises(InputError, match="invalid override"):
            parse_overrides([bad])


@pytest.fixture(scope="module")
def real(shared_data: Path) -> OxigraphStore:
    return real_graph(shared_data).store()


def test_real_categories_match_the_source_files(real: OxigraphStore, shared_data: Path) -> None:
    """The counts through SPARQL equal the counts computed straight from the two source files."""
    symptoms = json.loads(
        (shared_data / "medsyn/mkg/rumedtop3_wikimed_symptoms_equipped_with_rumedprime.json").read_text()
    )
    codes: dict[str, set[str]] = defaultdict(set)
    unique: dict[str, set[str]] = defaultdict(set)
    for code, labels in symptoms.items():
        codes[code[:3]].add(code)
        unique[code[:3]].update(normalize_label(s) for s in labels)
    long_notes: dict[str, int] = defaultdict(int)
    with (shared_data / "rumedbench/RuMedTop3/train_v1.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            long_notes[row["code"]] += len(row["symptoms"].split()) >= 30
    ws = code_weights(real)
    assert len(ws) == 105
    for w in ws:
        assert (w.n_codes, w.n_symptoms, w.n_examples) == (
            len(codes[w.category]),
            len(unique[w.category]),
            long_notes[w.category],
        ), w.category
        assert w.weight == pytest.approx(
            J3(len(unique[w.category]) / len(codes[w.category])) * J3(long_notes[w.category]), rel=1e-12
        )
    positive = [w for w in ws if w.weight > 0]
    assert len(positive) == 87
    assert max(ws, key=lambda w: w.weight).category == "M54"
    plan = plan_counts(ws, 2491, overrides={"Z00": 10})
    assert plan["Z00"] == 10 and sum(plan.values()) == 2491
    for total in (20, 50, 100):  # rounding each share planned 0, 62 and 96 notes
        assert sum(plan_counts(ws, total).values()) == total
