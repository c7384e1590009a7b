"""The cheaper per-attempt paths of a run (docs/scale.md) record what the reference paths gave: the prompt rendered
with ``str.format`` and its redacted copy as LangChain rendered them, the filter's cached per-word and per-symptom-list
work as a cold computation, and the backend's direct HTTP requests as the OpenAI API expects them."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from medsyn.errors import StoreError
from medsyn.generation import fluency
from medsyn.generation.backends import get_backend
from medsyn.generation.backends.openai_backend import _error_message
from medsyn.generation.config import GenerationConfig
from medsyn.generation.engine import generate
from medsyn.generation.filter import score_note
from medsyn.generation.prompts import PromptTemplate, load_template, messages_hash, sample_examples
from medsyn.generation.run_folder import FAILURES_FILE, NOTES_FILE
from medsyn.kg.store import OxigraphStore
from medsyn.sampling.samples import Sample
from medsyn.testing import demo_samples
from medsyn.testing.openai_server import FakeOpenAIServer


def _langchain(t: PromptTemplate, s: Sample, redact: bool) -> list[dict[str, str]]:
    roles = {"system": "system", "human": "user", "ai": "assistant"}
    msgs = t.as_langchain().format_messages(**t.variables_for(s, redact=redact))
    return [{"role": roles[m.type], "content": str(m.content)} for m in msgs]


def test_records_hold_the_prompts_and_scores_of_the_reference_paths(tmp_path: Path) -> None:
    samples = demo_samples(24, seed=5)
    by_id = {s.id: s for s in samples}
    with FakeOpenAIServer(latency=0.0, rates={"truncated": 0.2}, seed=3) as srv:
        be = get_backend("openai", base_url=srv.base_url, concurrency=8, max_retries=0)
        generate(samples, tmp_path, store=OxigraphStore.in_memory(), backend=be, config=GenerationConfig(seed=2))
        bodies = srv.stats()["requests"]
    recs = [json.loads(x) for f in (NOTES_FILE, FAILURES_FILE) for x in (tmp_path / f).read_text().splitlines()]
    assert len(recs) >= len(samples) and sum(r["accepted"] for r in recs) >= len(samples) // 2
    t = load_template("paper_ru")
    fluency._requested_keys.cache_clear()
    fluency._symptom_stems.cache_clear()
    for rec in recs:
        s = by_id[rec["sample_id"]]
        sent = _langchain(t, s, redact=False)
        assert rec["prompt"] == _langchain(t, s, redact=True) != sent
        assert rec["prompt_sha256"] == messages_hash(sent)
        if rec["scores"] is not None:  # the same scores computed cold, one note at a time
            shown = [x for _, x in sample_examples(s)[:1]]
            assert rec["scores"] == score_note(rec["response"], list(s.symptoms), shown).to_dict()
    assert bodies >= len(recs)


def test_per_symptom_list_caches_do_not_carry_over_between_samples() -> None:
    note = "Избытокое потоотделение, головная боль, тошнота, рвота."
    assert fluency.nonwords(note, ["избытокое потоотделение"]) == []
    assert fluency.nonwords(note, ["потоотделение"]) == ["избытокое"]
    assert fluency.novelty(note, ["тошнота", "головная боль"]) == 0.5
    assert fluency.novelty(note, ["рвота"]) == 5 / 6
    assert fluency.novelty(note, ("тошнота", "головная боль")) == 0.5


def test_requests_are_the_openai_api_and_errors_read_as_one_line(tmp_path: Path) -> None:
    import asyncio

    from medsyn.generation.backends import ChatRequest

    msgs = [{"role": "user", "content": "Симптомы: кашель; лихорадка."}]
    with FakeOpenAIServer(latency=0.0, api_key="sk-test") as srv:
        be = get_backend("openai", base_url=srv.base_url, api_key="sk-test", concurrency=2, max_retries=0)

        async def run() -> list:
            try:
                req = ChatRequest(key="a", messages=msgs, seed=7, temperature=0.5, max_tokens=64, stop=("###",))
                return await be.complete([req])
            finally:
                await be.aclose()

        (c,) = asyncio.run(run())
        assert c.error is None and "кашель" in (c.text or "") and c.prompt_tokens > 0
    assert _error_message(400, b'{"error": {"message": "bad\\n  field", "type": "x"}}') == "bad field"
    assert _error_message(502, b"<html>Bad\ngateway</html>") == "Error code: 502 - <html>Bad gateway</html>"
    assert _error_message(500, b'{"detail": "boom"}') == "Error code: 500 - {'detail': 'boom'}"


class _SlowFirstBatch(OxigraphStore):
    """Holds its first provenance batch until the server has seen more requests (or 5 s pass): what the run did
    while a batch was being written."""

    def __init__(self, srv: FakeOpenAIServer) -> None:
        super().__init__(None)
        self.srv, self.sent_meanwhile = srv, -1

    def add_quads(self, quads: object) -> None:
        if self.sent_meanwhile < 0:
            before = int(self.srv.stats()["requests"])
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and int(self.srv.stats()["requests"]) < before + 4:
                time.sleep(0.01)
            self.sent_meanwhile = int(self.srv.stats()["requests"]) - before
        super().add_quads(quads)  # type: ignore[arg-type]


def test_requests_go_on_while_a_provenance_batch_is_written(tmp_path: Path) -> None:
    # Written on the event loop, a batch stalled every request for its whole write (~0.5 ms a note).
    samples = demo_samples(80, seed=9)
    with FakeOpenAIServer(latency=0.05) as srv:
        store = _SlowFirstBatch(srv)
        be = get_backend("openai", base_url=srv.base_url, concurrency=4, max_retries=0)
        s = generate(samples, tmp_path, store=store, backend=be, config=GenerationConfig())
    assert store.sent_meanwhile >= 4
    recs = [json.loads(x) for f in (NOTES_FILE, FAILURES_FILE) for x in (tmp_path / f).read_text().splitlines()]
    assert len(recs) == s.attempts and s.accepted >= 40
    q = "SELECT (COUNT(?n) AS ?c) WHERE { GRAPH ?g { ?n a <https://w3id.org/medsyn/ontology#SyntheticNote> } }"
    (row,) = list(store.query(q))
    assert int(row["c"].value) == sum("content_hash" in r for r in recs)  # every note recorded once


class _FailsSecondBatch(OxigraphStore):
    batches = 0

    def add_quads(self, quads: object) -> None:
        self.batches += 1
        if self.batches == 2:
            raise StoreError("write failed: disk full")
        super().add_quads(quads)  # type: ignore[arg-type]


def test_a_provenance_batch_that_fails_in_the_background_stops_the_run(tmp_path: Path) -> None:
    with FakeOpenAIServer(latency=0.02) as srv:
        be = get_backend("openai", base_url=srv.base_url, concurrency=4, max_retries=0)
        with pytest.raises(StoreError, match="disk full"):
            generate(demo_samples(200, seed=4), tmp_path, store=_FailsSecondBatch(None), backend=be)
    assert (tmp_path / NOTES_FILE).read_text().count("\n") >= 1  # the lines written before it are kept
