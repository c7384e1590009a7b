"""Sampling from the graph: weighted category draws, distinct symptoms, determinism, restrictions, strategies."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from sampling_graph import GraphBuilder, real_graph
from scipy.stats import chisquare

import medsyn.sampling.strategies
from medsyn.errors import InputError
from medsyn.kg.store import OxigraphStore
from medsyn.kg.vocab import code_iri, source_iri
from medsyn.sampling.draw import CHUNK, SamplingRequest, draw_samples, uniform_rows
from medsyn.sampling.samples import Sample, sample_id
from medsyn.sampling.strategies import available_strategies, get_strategy, register_strategy
from medsyn.sampling.strategies.paper import PaperStrategy
from medsyn.sampling.tables import SamplingTables, code_weights, load_tables


@pytest.fixture(scope="module")
def real(shared_data: Path) -> OxigraphStore:
    return real_graph(shared_data).store()


@pytest.fixture(scope="module")
def tables(real: OxigraphStore) -> SamplingTables:
    return load_tables(real)


def test_category_frequencies_match_the_weights(tables: SamplingTables) -> None:
    n = 60_000
    samples = draw_samples(tables, n=n, seed=11)
    counts = Counter(s.category for s in samples)
    w = tables.cat_weight
    positive = [c for c, x in zip(tables.cat_notation, w, strict=True) if x > 0]
    assert set(counts) == set(positive)  # zero-weight categories (e.g. Z00) are never drawn
    observed = np.array([counts[c] for c in positive])
    expected = np.array([x for x in w if x > 0]) / w.sum() * n
    assert chisquare(observed, expected).pvalue > 1e-3
    # The same test rejects a distribution the sampler does not follow (uniform over the categories).
    assert chisquare(observed, np.full(len(positive), n / len(positive))).pvalue < 1e-6


def test_paper_samples_hold_2_to_5_distinct_symptoms_of_their_code(tables: SamplingTables) -> None:
    samples = draw_samples(tables, n=20_000, seed=3)
    code_syms = {
        tables.code_notation[c]: {tables.sym_iri[s] for s in tables.code_symptoms[c]}
        for c in range(len(tables.code_notation))
    }
    sizes = Counter()
    for s in samples:
        assert len(set(s.symptom_iris)) == len(s.symptom_iris), s
        assert set(s.symptom_iris) <= code_syms[s.code]
        assert s.code[:3] == s.category
        assert 2 <= len(s.symptoms) <= 5 or len(s.symptoms) == len(code_syms[s.code]) < 2
        if len(code_syms[s.code]) >= 5:
            sizes[len(s.symptoms)] += 1
    # k is uniform in 2..5 where the code has enough symptoms.
    assert chisquare([sizes[k] for k in range(2, 6)]).pvalue > 1e-3


def test_subcodes_are_uniform_within_a_category(tables: SamplingTables) -> None:
    samples = draw_samples(tables, n=6_000, seed=5, codes=["G90"])
    counts = Counter(s.code for s in samples)
    g90 = tables.cat_codes[tables.category_index()["G90"]]
    assert len(counts) == len(g90) == 6
    assert chisquare(list(counts.values())).pvalue > 1e-3


def test_symptom_order_is_shuffled(tables: SamplingTables) -> None:
    """Each symptom of a code is equally likely to come first (selection order carries no bias)."""
    c = tables.code_notation.index("I11")
    first = Counter(s.symptom_iris[0] for s in draw_samples(tables, n=8_000, seed=9, codes=["I11"]))
    assert len(first) == len(tables.code_symptoms[c])
    assert chisquare(list(first.values())).pvalue > 1e-3


def test_example_notes_come_from_the_category_and_are_long_enough(tables: SamplingTables) -> None:
    note_cat = {}
    for ci, notes in enumerate(tables.cat_notes):
        for i in notes:
            note_cat[tables.note_id[i]] = tables.cat_notation[ci]
    for s in draw_samples(tables, n=3_000, seed=2):
        assert note_cat[s.example_id] == s.category
        assert len(s.example_text.split()) >= 30


def test_same_seed_same_samples_whatever_the_workers(tables: SamplingTables) -> None:
    n = 2 * CHUNK + 17
    one = draw_samples(tables, n=n, seed=42)
    assert draw_samples(tables, n=n, seed=42, workers=2) == one
    assert draw_samples(tables, n=100, seed=42) == one[:100]  # a prefix of a longer run
    assert draw_samples(tables, n=100, seed=43) != one[:100]
    assert [s.id for s in one[:3]] == [sample_id(42, "paper", i) for i in range(3)]
    assert len({s.id for s in one}) == n and [s.index for s in one] == list(range(n))


def test_uniform_rows_do_not_depend_on_chunking() -> None:
    full = uniform_rows(7, 12, 0, 300)
    parts = np.vstack([uniform_rows(7, 12, a, b) for a, b in ((0, 1), (1, 129), (129, 300))])
    assert np.array_equal(full, parts)


def test_samples_carry_the_graph_version_and_round_trip_as_json(tables: SamplingTables) -> None:
    s = draw_samples(tables, n=1, seed=1)[0]
    assert s.kg_version == "real-test"
    assert Sample.from_json(s.to_json()) == s


def test_plan_gives_exact_counts_and_overrides_reach_zero_weight_categories(tables: SamplingTables) -> None:
    plan = {"M54": 7, "Z00": 3, "G44": 0}
    samples = draw_samples(tables, plan=plan, seed=1)
    assert Counter(s.category for s in samples) == {"M54": 7, "Z00": 3}
    # Z00 has no note of 30+ words: its example falls back to its shorter notes.
    assert all(s.example_id is not None for s in samples if s.category == "Z00")


def test_codes_restrict_categories_and_pin_subcodes(tables: SamplingTables) -> None:
    assert {s.category for s in draw_samples(tables, n=300, seed=1, codes=["M54", "g44"])} == {"M54", "G44"}
    pinned = draw_samples(tables, n=200, seed=1, codes=["G90.0", "M54"])
    assert {s.code for s in pinned if s.category == "G90"} == {"G90.0"}
    assert len({s.code for s in pinned if s.category == "M54"}) > 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0}, "n must be >= 1"),
        ({"n": 5, "plan": {"M54": 1}}, "either n"),
        ({}, "either n"),
        ({"n": 5, "strategy": "nope"}, "unknown strategy 'nope'"),
        (
            {"n": 5, "strategy": "softmax", "strategy_options": {"temperature": 0}},
            "option 'temperature' must be a positive number",
        ),
        (
            {"n": 5, "strategy": "softmax", "strategy_options": {"temperature": -1.0}},
            "option 'temperature' must be a positive number",
        ),
        ({"n": 5, "strategy_options": {"temperature": 5}}, "strategy 'paper' has no option 'temperature'"),
        ({"n": 5, "seed": -1}, "seed must be an integer >= 0"),
        ({"n": 5, "workers": 0}, "workers must be >= 1"),
        ({"n": 5, "codes": ["Q99"]}, "unknown code Q99"),
        ({"n": 5, "codes": ["xyz"]}, "invalid ICD-10 code"),
        ({"n": 5, "codes": ["Z00"]}, "weight 0"),
        ({"plan": {"Q99": 3}}, "unknown category Q99"),
        ({"plan": {"M54": 0}}, "no samples"),
        ({"plan": {"M54": 2, "G44": 1}, "codes": ["M54"]}, "plan names category G44, which codes leave out"),
    ],
)
def test_bad_input_is_one_clear_error(tables: SamplingTables, kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message) as err:
        draw_samples(tables, **kwargs)
    assert "\n" not in str(err.value)


def test_empty_graph_is_an_error() -> None:
    with pytest.raises(InputError, match="no ICD-10 categories with symptoms"):
        draw_samples(OxigraphStore.in_memory(), n=3)


def test_tables_are_cached_per_graph_version(real: OxigraphStore) -> None:
    assert load_tables(real) is load_tables(real)
    assert load_tables(real, cache=False) is not load_tables(real)


# ---------------------------------------------------------------- softmax strategy (demographics, drugs)


@pytest.fixture(scope="module")
def clinic() -> OxigraphStore:
    b = GraphBuilder()
    # N76 (female only), sub-code N40.1 restricted to male persons under an unrestricted category.
    b.code("N76", sex="female")
    b.code("N40.1", sex="male")
    for code in ("N76.0", "N40.1", "M54.5", "J06.9"):
        for s in ("a", "b", "c", "d", "e"):
            b.symptom(code, f"{code} {s}")
        b.note(f"note-{code}", code[:3], words=35)
    # M54.5: HSDN weights 0, 0, 10*ln(8): the third symptom has softmax probability 0.8 for a first pick.
    for s, w in (("ache", 0.0), ("stiffness", 0.0), ("back pain", 10 * math.log(8))):
        b.symptom("M54.5", s, source="hsdn", weight=w, lang="en")
    b.drug("DB1", "Ibuprofen", "M54", kind="SYM")
    b.drug("DB2", "Placebo", "M54.5", kind="NOT")
    for i, f in enumerate((0.5, 0.2, 0.1, 0.05, 0.0)):
        b.side_effect("DB1", f"C{i}", f"effect {i}", f)
    return b.store()


def test_sex_restricted_codes_never_get_the_wrong_sex(clinic: OxigraphStore) -> None:
    samples = draw_samples(clinic, n=4_000, strategy="softmax", seed=4)
    by_code = Counter((s.code, s.demographics["sex"]) for s in samples)
    assert by_code[("N76.0", "male")] == 0 and by_code[("N76.0", "female")] > 500
    assert by_code[("N40.1", "female")] == 0 and by_code[("N40.1", "male")] > 500
    assert by_code[("J06.9", "male")] > 300 and by_code[("J06.9", "female")] > 300


def test_softmax_follows_the_temperature(clinic: OxigraphStore) -> None:
    samples = draw_samples(clinic, n=12_000, strategy="softmax", seed=8, codes=["M54"])
    single = [s.symptoms[0] for s in samples if len(s.symptoms) == 1]
    assert all(s.extra["symptom_weighting"] == "hsdn" for s in samples)
    assert all(1 <= len(s.symptoms) <= 3 and len(set(s.symptoms)) == len(s.symptoms) for s in samples)
    counts = Counter(single)
    assert (
        chisquare(
            [counts["back pain"], counts["ache"] + counts["stiffness"]], np.array([0.8, 0.2]) * len(single)
        ).pvalue
        > 1e-3
    )
    # A high temperature flattens the weights towards uniform.
    hot = draw_samples(
        clinic, n=12_000, strategy="softmax", seed=8, codes=["M54"], strategy_options={"temperature": 1e6}
    )
    hot_single = Counter(s.symptoms[0] for s in hot if len(s.symptoms) == 1)
    assert chisquare(list(hot_single.values())).pvalue > 1e-3


def test_softmax_falls_back_to_uniform_without_weights(clinic: OxigraphStore) -> None:
    samples = draw_samples(clinic, n=2_000, strategy="softmax", seed=1, codes=["J06"])
    assert {s.extra["symptom_weighting"] for s in samples} == {"uniform"}
    assert all(1 <= len(s.symptoms) <= 4 and len(set(s.symptoms)) == len(s.symptoms) for s in samples)
    first = Counter(s.symptoms[0] for s in samples)
    assert len(first) == 5 and chisquare(list(first.values())).pvalue > 1e-3


def test_drugs_and_side_effects(clinic: OxigraphStore) -> None:
    samples = draw_samples(clinic, n=3_000, strategy="softmax", seed=6)
    m54 = [s for s in samples if s.category == "M54"]
    assert m54 and all(s.drug is not None and s.drug["name"] == "Ibuprofen" for s in m54)  # never the NOT drug
    assert all(s.drug is None for s in samples if s.category != "M54")
    n_effects = Counter()
    for s in m54:
        effects = s.drug["side_effects"]
        names = [e["name"] for e in effects]
        assert len(names) == len(set(names)) <= 3
        assert "effect 4" not in names  # frequency 0 is never drawn
        assert all(
            e["frequency"] == {"effect 0": 0.5, "effect 1": 0.2, "effect 2": 0.1, "effect 3": 0.05}[e["name"]]
            for e in effects
        )
        assert all(e["iri"].endswith(f"/side-effect/C{e['name'][-1]}") for e in effects)
        n_effects[len(names)] += 1
    assert set(n_effects) == {0, 1, 2, 3}
    with_one = Counter(s.drug["side_effects"][0]["name"] for s in m54 if len(s.drug["side_effects"]) == 1)
    assert with_one.most_common(1)[0][0] == "effect 0"


def test_softmax_samples_are_reproducible(clinic: OxigraphStore) -> None:
    a = draw_samples(clinic, n=500, strategy="softmax", seed=12)
    assert a == draw_samples(clinic, n=500, strategy="softmax", seed=12)
    assert a[0].id == sample_id(12, "softmax", 0)
    assert all(s.demographics is not None for s in a)


def test_a_run_identity_keeps_the_form_earlier_runs_recorded() -> None:
    # A generation run resumes only when this text equals its run.json's: the same options, however given, give
    # the same text, and a lone temperature keeps the softmax_temperature form of the runs made before options.
    def text(**options: object) -> str:
        return json.dumps(SamplingRequest(n=5, strategy="softmax", strategy_options=options).to_dict())

    head = '{"n": 5, "plan": null, "total": null, "overrides": [], "codes": [], "strategy": "softmax", "seed": 0, '
    head += '"sources": "wikimed", "min_words": 30, '
    assert {text(), text(temperature=10), text(temperature="10"), text(temperature=10.0)} == {
        head + '"softmax_temperature": 10.0}'
    }
    assert text(weighted_source="hsdn", temperature=3) == text(temperature="3", weighted_source="hsdn")
    assert text(weighted_source="hsdn", temperature=3) == (
        head + '"strategy_options": {"temperature": 3.0, "weighted_source": "hsdn"}}'
    )


# ---------------------------------------------------------------- registry


class OnlyFirstSymptom(PaperStrategy):
    name = "first-only"

    def draw(self, tables, cats, u, start, seed):  # type: ignore[no-untyped-def]
        return [
            Sample(**{**s.__dict__, "symptoms": s.symptoms[:1], "symptom_iris": s.symptom_iris[:1]})
            for s in super().draw(tables, cats, u, start, seed)
        ]


def test_strategies_are_pluggable_by_name_class_or_instance(
    tables: SamplingTables, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert {"paper", "softmax"} <= set(available_strategies())
    # A registry copy for this test, so the test strategy does not leak into the rest of the session.
    monkeypatch.setattr(medsyn.sampling.strategies, "_REGISTRY", dict(medsyn.sampling.strategies._REGISTRY))
    register_strategy("first-only", OnlyFirstSymptom)
    by_name = draw_samples(tables, n=50, strategy="first-only", seed=1)
    assert all(len(s.symptoms) == 1 for s in by_name)
    assert draw_samples(tables, n=50, strategy=OnlyFirstSymptom, seed=1) == by_name
    assert draw_samples(tables, n=50, strategy=OnlyFirstSymptom(), seed=1) == by_name
    assert get_strategy("paper").width % 4 == 0
    with pytest.raises(InputError, match="not a sampling strategy"):
        get_strategy(42)  # type: ignore[arg-type]


def test_sample_code_iris_follow_the_data_model(tables: SamplingTables) -> None:
    s = draw_samples(tables, n=1, seed=1)[0]
    assert code_iri(s.code).value in tables.code_iris


# ---------------------------------------------------------------- the real built graph


def _pairs(kg: OxigraphStore, sparql: str) -> set[tuple[str, ...]]:
    """Rows of an independent check query (written here, not the sampler's .rq files) as tuples of strings."""
    prefix = "PREFIX ms: <https://w3id.org/medsyn/ontology#>\n"
    return {tuple(t.value for t in row.values()) for row in kg.query(prefix + sparql)}


@pytest.mark.slow
def test_both_strategies_sample_real_facts_from_the_built_graph(kg_store_dir: Path) -> None:
    kg = OxigraphStore(kg_store_dir, read_only=True)
    try:
        weights = code_weights(kg)
        assert len(weights) == 105  # the RuMedTop3 categories of the WikiMed map
        assert 0 < sum(w.weight > 0 for w in weights) < 105
        # What the graph itself says, queried without the sampler's tables.
        notes = _pairs(
            kg,
            "SELECT ?id ?cat ?text WHERE { ?n a ms:ExampleNote ; ms:noteId ?id ; ms:text ?text ;"
            " ms:code/ms:category ?cat }",
        )
        links = _pairs(
            kg,
            "SELECT ?code ?sym ?src WHERE { ?a a ms:SymptomAssociation ; ms:disease ?code ; ms:symptom ?sym ;"
            " ms:source ?src }",
        )
        sex = dict(_pairs(kg, "SELECT ?code ?sex WHERE { ?code ms:sexRestriction ?sex }"))
        wikimed, hsdn = (source_iri(s).value for s in ("wikimed", "hsdn"))
        for strategy in ("paper", "softmax"):
            samples = draw_samples(kg, n=400, strategy=strategy, seed=7)
            assert samples == draw_samples(kg, n=400, strategy=strategy, seed=7, workers=2)
            for s in samples:
                assert (s.example_id, code_iri(s.category).value, s.example_text) in notes, s
                code = code_iri(s.code).value
                source = hsdn if s.extra.get("symptom_weighting") == "hsdn" else wikimed
                assert all((code, iri, source) in links for iri in s.symptom_iris), s
                assert len(set(s.symptom_iris)) == len(s.symptom_iris) >= 1
                assert s.code[:3] == s.category and s.kg_version is not None
                if strategy == "softmax":
                    assert code not in sex or s.demographics["sex"] == sex[code], s
            if strategy == "softmax":  # the real graph has HSDN weights and drugs for some of the categories
                assert {s.extra["symptom_weighting"] for s in samples} == {"hsdn", "uniform"}
                assert any(s.drug is not None for s in samples)
    finally:
        kg.close()
