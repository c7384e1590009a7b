"""Few-shot completion prompts: K real example notes of the sampled code from the graph, seeded, recorded in
provenance; the top-up plan; completion prompts over the OpenAI ``/v1/completions`` API."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from medsyn.errors import InputError
from medsyn.generation.backends import get_backend
from medsyn.generation.config import GenerationConfig
from medsyn.generation.engine import generate
from medsyn.generation.prompts import load_template, parse_template
from medsyn.generation.run_folder import FAILURES_FILE, NOTES_FILE, SAMPLES_FILE, read_note_records
from medsyn.kg.store import OxigraphStore
from medsyn.sampling.draw import SamplingRequest, add_examples, draw_samples
from medsyn.sampling.tables import real_note_counts
from medsyn.sampling.weights import topup_counts
from medsyn.testing import demo_samples
from medsyn.testing.openai_server import FakeOpenAIServer

MEDSYN = str(Path(sys.executable).with_name("medsyn"))


@pytest.fixture(scope="module")
def graph(shared_data: Path) -> OxigraphStore:
    from sampling_graph import real_graph

    st = OxigraphStore.in_memory()
    real_graph(shared_data, version="fewshot-test").into(st)
    return st


def test_fewshot_template_is_a_completion_prompt_with_k_shots() -> None:
    t = load_template("paper_fewshot_ru")
    assert (t.mode, t.shots, t.stop) == ("completion", 5, ("\n",))
    assert t.content_hash != load_template("paper_ru").content_hash
    s = demo_samples(1)[0]
    s = dataclasses.replace(
        s, extra={"examples": [{"id": "a", "text": "Боль в горле, кашель."}, {"id": "b", "text": "Насморк, чихание."}]}
    )
    text = t.render_text(s)
    # The shots come in order, each after cues taken from its own text, then the sample's symptoms and an open line.
    assert text.index("Жалобы: Боль в горле, кашель.") < text.index("Жалобы: Насморк, чихание.")
    assert "Симптомы: боль в горле; кашель\n" in text
    assert text.endswith(f"Симптомы: {'; '.join(s.symptoms)}\nЖалобы:")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"shots": 0}, "few-shot template needs"),
        ({"shot_format": "{example} {code}"}, "placeholder {code} is not allowed"),
        ({"messages": [["system", "x"], ["user", "{examples}"]]}, "user messages only"),
        ({"mode": "stream"}, "'mode' must be one of"),
        ({"stop": [""]}, "'stop' must be a list"),
    ],
)
def test_bad_fewshot_templates_are_refused_with_the_field(change: dict, message: str) -> None:
    data = {
        "name": "t",
        "mode": "completion",
        "shots": 2,
        "shot_format": "Жалобы: {example}\n",
        "messages": [["user", "{examples}Симптомы: {symptoms}\nЖалобы:"]],
        **change,
    }
    with pytest.raises(InputError, match=message):
        parse_template(data, where="t.json")


def test_examples_are_seeded_distinct_and_of_the_sampled_category(graph: OxigraphStore) -> None:
    samples = draw_samples(graph, n=40, seed=3)
    a = add_examples(graph, samples, 5, seed=1)
    assert add_examples(graph, samples, 5, seed=1) == a  # same seed, same examples
    assert add_examples(graph, samples, 5, seed=2) != a
    train = {
        json.loads(line)["idx"]: json.loads(line)
        for line in (Path(__file__).resolve().parents[2] / "shared/data/rumedbench/RuMedTop3/train_v1.jsonl")
        .read_text(encoding="utf-8")
        .splitlines()
    }
    for s in a:
        shots = s.extra["examples"]
        ids = [x["id"] for x in shots]
        assert 1 <= len(ids) <= 5 and len(set(ids)) == len(ids)
        assert all(train[x["id"]]["code"] == s.category and train[x["id"]]["symptoms"] == x["text"] for x in shots)
        assert all(5 <= len(x["text"].split()) <= 80 for x in shots)
        if s.example_text and len(s.example_text.split()) <= 80:
            assert ids[0] == s.example_id  # the sampler's own example leads
    # A sample's examples do not depend on the other samples of the run.
    assert add_examples(graph, samples[5:6], 5, seed=1) == a[5:6]


def test_examples_come_from_the_sources_the_samples_were_drawn_with(tmp_path: Path) -> None:
    # Z99 has symptoms only in a second source: the default source's tables do not know it, so its samples used to
    # get no shot at all (silently), whatever --sources the run was drawn with.
    from sampling_graph import GraphBuilder

    b = GraphBuilder()
    b.symptom("J06", "кашель")
    b.note("j1", "J06", words=6, text="Кашель и насморк третий день, слабость.")
    for label in ("слабость", "головная боль", "тошнота"):
        b.symptom("Z99", label, source="hsdn")
    for i in range(6):
        b.note(f"z{i}", "Z99", words=6, text=f"Слабость и тошнота {i} дня, головная боль.")
    b.version("fewshot-sources")
    store = b.store()
    request = SamplingRequest(n=3, codes=("Z99",), sources="hsdn", seed=1, min_words=1)
    samples = request.draw(store)
    with FakeOpenAIServer() as srv:
        be = get_backend("openai", base_url=srv.base_url, concurrency=2, max_retries=0)
        cfg = GenerationConfig(template="paper_fewshot_ru", shots=3, seed=4, max_attempts=1)
        generate(samples, tmp_path / "run", store=store, backend=be, config=cfg, sampling=request.to_dict())
    kept = [json.loads(x) for x in (tmp_path / "run" / SAMPLES_FILE).read_text().splitlines()]
    assert len(kept) == 3 and all(len(k["extra"]["examples"]) == 3 for k in kept)
    assert {x["id"] for k in kept for x in k["extra"]["examples"]} <= {f"z{i}" for i in range(6)}
    # Without the sources (a sample file drawn elsewhere): one line naming the category, not fewer shots.
    with pytest.raises(InputError, match=r"^few-shot examples: category Z99 has no symptoms in source\(s\) wikimed"):
        add_examples(store, samples, 3, seed=4)


def test_topup_plan_fills_the_rarest_categories_first(graph: OxigraphStore) -> None:
    real = real_note_counts(graph)
    plan = SamplingRequest(plan="topup", total=120, seed=0).counts(graph)
    assert plan is not None and sum(plan.values()) == 120
    level = max(real[c] + k for c, k in plan.items() if k)
    # Every category below the level reached was topped up; none above it got a note.
    assert all(real[c] + plan[c] >= level - 1 for c in plan if real[c] < level - 1)
    assert all(plan[c] == 0 for c in plan if real[c] >= level)
    assert topup_counts({"A00": 0, "B00": 0}, 3) == {"A00": 2, "B00": 1}


def test_fewshot_run_goes_to_the_completions_api_and_names_its_examples(graph: OxigraphStore, tmp_path: Path) -> None:
    samples = draw_samples(graph, n=6, seed=5)
    with FakeOpenAIServer() as srv:
        be = get_backend("openai", base_url=srv.base_url, concurrency=2, max_retries=0)
        cfg = GenerationConfig(template="paper_fewshot_ru", seed=4, max_attempts=1)
        summary = generate(samples, tmp_path / "run", store=graph, backend=be, config=cfg)
        assert srv.stats()["requests"] == 6
    records = read_note_records(tmp_path / "run" / NOTES_FILE) + read_note_records(tmp_path / "run" / FAILURES_FILE)
    assert summary.accepted == 6 and len(records) == 6
    kept = {json.loads(x)["id"]: json.loads(x) for x in (tmp_path / "run" / SAMPLES_FILE).read_text().splitlines()}
    for r in records:
        shots = [x["id"] for x in kept[r["sample_id"]]["extra"]["examples"]]
        assert r["example_ids"] == shots and len(shots) >= 1
        assert r["prompt"][0]["content"].endswith("\nЖалобы:")  # the completion prompt is what was recorded
    rows = graph.query(
        "PREFIX ms: <https://w3id.org/medsyn/ontology#> SELECT ?a (COUNT(?e) AS ?k) WHERE { ?a ms:exampleNote ?e } "
        "GROUP BY ?a"
    )
    assert sorted(int(r["k"].value) for r in rows) == sorted(len(r["example_ids"]) for r in records)


def test_cli_topup_sample_plan_and_fewshot_default_template(shared_data: Path, tmp_path: Path) -> None:
    from sampling_graph import real_graph

    store_dir = tmp_path / "store"
    with OxigraphStore(store_dir) as st:
        real_graph(shared_data, version="kg-fewshot").into(st)
    out = tmp_path / "s.jsonl"
    r = subprocess.run(
        [MEDSYN, "sample", "--plan", "topup", "--total", "30", "--store", str(store_dir), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    cats = Counter(json.loads(x)["category"] for x in out.read_text().splitlines())
    with OxigraphStore(store_dir) as st:
        real = real_note_counts(st)
    assert sum(cats.values()) == 30 and max(real[c] for c in cats) < sorted(real.values())[len(real) // 2]
    bad = subprocess.run(
        [MEDSYN, "sample", "--plan", "rarest", "--total", "3", "--store", str(store_dir), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "weights, topup" in bad.stderr and "Traceback" not in bad.stderr


def test_a_run_that_accepts_nothing_exits_1_and_says_why(shared_data: Path, tmp_path: Path) -> None:
    from sampling_graph import real_graph

    store_dir = tmp_path / "store"
    with OxigraphStore(store_dir) as st:
        real_graph(shared_data, version="kg-none").into(st)
    with FakeOpenAIServer(script=["empty"] * 3 + ["truncated"]) as srv:
        r = subprocess.run(
            [
                MEDSYN,
                "generate",
                "--backend",
                "openai",
                "--base-url",
                srv.base_url,
                "--n",
                "2",
                "--max-attempts",
                "2",
                "--max-retries",
                "0",
                "--store",
                str(store_dir),
                "--out",
                str(tmp_path / "run"),
                "--no-progress",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert r.returncode == 1 and "Traceback" not in r.stderr
    line = next(x for x in r.stderr.splitlines() if "no note was accepted" in x)
    assert "in 4 attempts" in line and "3 empty reply" in line and "1 reply cut off" in line


def test_shots_and_stop_override_the_template_and_its_hash(graph: OxigraphStore, tmp_path: Path) -> None:
    samples = draw_samples(graph, n=3, seed=8)
    with FakeOpenAIServer() as srv:
        be = get_backend("openai", base_url=srv.base_url, max_retries=0)
        base = GenerationConfig(template="paper_fewshot_ru", max_attempts=1)
        two = GenerationConfig(template="paper_fewshot_ru", max_attempts=1, shots=2, stop=("\n\n",))
        generate(samples, tmp_path / "two", store=graph, backend=be, config=two)
    recs = read_note_records(tmp_path / "two" / NOTES_FILE) + read_note_records(tmp_path / "two" / FAILURES_FILE)
    assert len(recs) == 3 and all(len(r["example_ids"]) == 2 for r in recs)
    assert all(r["prompt"][0]["content"].count("Жалобы:") == 3 for r in recs)  # two shots + the open line
    assert recs[0]["template_hash"] == two.load_template().content_hash != base.load_template().content_hash
    with pytest.raises(InputError, match="few-shot template"):
        GenerationConfig(template="paper_ru", shots=2).load_template()
