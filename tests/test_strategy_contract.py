"""The contract every sampling strategy keeps (pykeen's pattern): one suite, run against each registered strategy.

A strategy added as one module and one registry line (or through the ``medsyn.strategies`` entry point) is picked up
here without touching this file.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sampling_graph import real_graph

from medsyn.component_options import REQUIRED
from medsyn.errors import InputError
from medsyn.kg.store import OxigraphStore
from medsyn.sampling.draw import SamplingRequest, draw_samples
from medsyn.sampling.samples import sample_id
from medsyn.sampling.strategies import available_strategies, describe_options, get_strategy

STRATEGIES = available_strategies()
N = 300


@pytest.fixture(scope="module")
def real(shared_data: Path) -> OxigraphStore:
    return real_graph(shared_data, version="contract-test").store()


def test_the_built_in_strategies_are_registered() -> None:
    assert {"paper", "softmax"} <= set(STRATEGIES)


@pytest.mark.parametrize("name", STRATEGIES)
def test_same_seed_same_samples_other_seed_other_samples(real: OxigraphStore, name: str) -> None:
    a = draw_samples(real, n=N, strategy=name, seed=7)
    assert len(a) == N
    assert draw_samples(real, n=N, strategy=name, seed=7) == a
    # Sample i of a run does not depend on the chunking or the run's length.
    assert draw_samples(real, n=N // 3, strategy=name, seed=7) == a[: N // 3]
    b = draw_samples(real, n=N, strategy=name, seed=8)
    assert [s.symptoms for s in b] != [s.symptoms for s in a]
    assert [s.code for s in b] != [s.code for s in a]


@pytest.mark.parametrize("name", STRATEGIES)
def test_samples_carry_their_provenance(real: OxigraphStore, name: str) -> None:
    for i, s in enumerate(draw_samples(real, n=50, strategy=name, seed=3)):
        assert (s.index, s.strategy, s.seed, s.kg_version) == (i, name, 3, "contract-test")
        assert s.id == sample_id(3, name, i)
        assert s.code and s.code[:3] == s.category
        assert s.symptoms and len(s.symptoms) == len(s.symptom_iris) == len(set(s.symptom_iris))
        assert all(iri.startswith("https://w3id.org/medsyn/") for iri in s.symptom_iris)


@pytest.mark.parametrize("name", STRATEGIES)
def test_declared_options_are_typed_documented_and_their_defaults_change_nothing(
    real: OxigraphStore, name: str
) -> None:
    options = describe_options(name)
    for o in options:  # a type the command line can read, a default, and a one-line help
        assert o.type_text != "any" and o.default is not REQUIRED and o.help.strip() and "\n" not in o.help, o
        assert o.coerce(str(o.default)) == o.default if o.default is not None else o.coerce("none") is None, o
    explicit = {o.name: o.default for o in options if o.default is not None}
    assert draw_samples(real, n=40, strategy=name, seed=2, strategy_options=explicit) == draw_samples(
        real, n=40, strategy=name, seed=2
    )


@pytest.mark.parametrize("name", STRATEGIES)
def test_an_unknown_option_is_refused_in_one_line_naming_the_nearest(name: str) -> None:
    options = [o.name for o in describe_options(name)]
    typo = options[0][:-1] if options else "temperature"
    for attempt in (
        lambda: get_strategy(name, {typo: "1"}),
        lambda: SamplingRequest(n=5, strategy=name, strategy_options={typo: "1"}),
    ):
        with pytest.raises(InputError) as caught:
            attempt()
        message = str(caught.value)
        assert "\n" not in message and f"strategy {name!r} has no option {typo!r}" in message
        assert (f"did you mean {options[0]!r}" in message) if options else message.endswith("it takes no options")
