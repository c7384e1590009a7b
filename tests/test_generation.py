"""The generation engine end to end against a real local OpenAI-compatible server: filtering, retries, per-code
targets, budgets, resume after kill -9, and the CLI's one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from medsyn.errors import InputError
from medsyn.generation.backends import Completion, get_backend
from medsyn.generation.config import GenerationConfig
from medsyn.generation.engine import generate
from medsyn.generation.filter import FilterConfig, decide, score_note
from medsyn.generation.replies import parse_reply
from medsyn.generation.run_folder import (
    FAILURES_FILE,
    NOTES_FILE,
    RUN_FILE,
    SAMPLES_FILE,
    cut_torn_line,
    read_note_records,
)
from medsyn.kg.store import OxigraphStore
from medsyn.kg.vocab import RDF_TYPE, code_iri, example_note_iri, graph_iri, ms
from medsyn.sampling.samples import write_samples
from medsyn.testing import demo_samples
from medsyn.testing.commands import MEDSYN
from medsyn.testing.openai_server import FakeOpenAIServer
from medsyn.textsim import normalised

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(latency=0.0) as srv:
        yield srv


def run(srv: FakeOpenAIServer, samples: list, out: Path, store: OxigraphStore | None = None, **cfg: object):
    be = get_backend(
        "openai", base_url=srv.base_url, concurrency=4, backoff_base=0.01, max_retries=3, price=cfg.pop("price", None)
    )
    return generate(samples, out, store=store or OxigraphStore.in_memory(), backend=be, config=GenerationConfig(**cfg))  # type: ignore[arg-type]


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


# ------------------------------------------------------------------------------------------ replies and filter
def test_reply_classification() -> None:
    assert parse_reply("").status == "empty"
    assert parse_reply(None, refusal="no").status == "refused"
    assert parse_reply("I'm sorry, but I can't help with that.").status == "refused"
    assert parse_reply("```\nЖалобы на кашель.\n```").text == "Жалобы на кашель."
    assert parse_reply("x", finish_reason="content_filter").status == "filtered"
    long_note = "Пациент жалуется на кашель. " * 30 + "Извините, но я не могу сказать точнее."
    assert parse_reply(long_note).ok  # a note that merely contains an apology is a note


def test_filter_rejects_copies_and_missing_symptoms() -> None:
    example = "Боли в поясничном отделе позвоночника после подъёма тяжести, усиливаются при ходьбе."
    cfg = FilterConfig(min_recall=0.5, max_similarity=0.6, min_words=3)
    copy = score_note(example, ["боль в пояснице"], example)
    assert copy.similarity == 1.0 and decide(copy, cfg)[0] is False
    off = score_note("Жалобы на сыпь на коже рук и зуд в течение недели.", ["кашель", "лихорадка"], example)
    assert off.recall == 0.0 and "recall" in decide(off, cfg)[1]
    good = score_note("Беспокоят кашель и лихорадка до 38 градусов третий день.", ["кашель", "лихорадка"], example)
    assert decide(good, cfg) == (True, "")
    with pytest.raises(InputError):
        FilterConfig(min_recall=1.5)


# ------------------------------------------------------------------------------------------ engine
def test_generates_exactly_n_notes_despite_failures(server: FakeOpenAIServer, tmp_path: Path) -> None:
    server.configure(script=["429", "500", "refusal", "empty", "truncated", "refusal_field"])
    samples = demo_samples(12)
    s = run(server, samples, tmp_path / "out")
    notes, fails = lines(tmp_path / "out" / NOTES_FILE), lines(tmp_path / "out" / FAILURES_FILE)
    assert s.status == "done" and s.accepted == 12 == len(notes)
    assert sorted(n["sample_id"] for n in notes) == sorted(x.id for x in samples)
    assert sorted(f["status"] for f in fails) == ["empty", "refused", "refused", "truncated"]
    n0 = notes[0]
    for key in ("id", "code", "model", "prompt", "symptoms", "example_id", "response", "scores"):
        assert key in n0
    assert n0["model"] == "gpt-4" and n0["scores"]["recall"] == 1.0 and n0["accepted"] is True
    assert all(sym.lower() in n0["response"].lower() for sym in n0["symptoms"])
    run_doc = json.loads((tmp_path / "out" / RUN_FILE).read_text())
    assert run_doc["status"] == "done" and run_doc["totals"]["accepted"] == 12
    assert run_doc["totals"]["cost_usd"] == pytest.approx(s.cost_usd) and s.cost_usd > 0


def test_rejected_notes_go_to_failures_and_give_up_after_max_attempts(server: FakeOpenAIServer, tmp_path: Path) -> None:
    samples = demo_samples(3)
    s = run(server, samples, tmp_path / "o", filter=FilterConfig(min_words=10_000), max_attempts=2)
    assert s.status == "incomplete" and s.accepted == 0 and s.rejected == 6
    fails = lines(tmp_path / "o" / FAILURES_FILE)
    assert {f["status"] for f in fails} == {"rejected"} and all("too short" in f["reason"] for f in fails)
    # Each sample got exactly its two attempts (0 and 1), no more, none twice.
    assert sorted((f["sample_id"], f["attempt"]) for f in fails) == sorted((x.id, a) for x in samples for a in (0, 1))


def _with_real_notes(store: OxigraphStore, shared_data: Path, n: int) -> list[str]:
    """The first ``n`` real RuMedTop3 train notes as the graph's example notes; their texts."""
    from pyoxigraph import Literal, Quad

    train = (shared_data / "rumedbench/RuMedTop3/train_v1.jsonl").read_text(encoding="utf-8").split("\n")[:n]
    g, texts = graph_iri("source", "rumedtop3"), []
    for row in map(json.loads, train):
        note = example_note_iri(row["idx"])
        store.add_quads(
            [
                Quad(note, RDF_TYPE, ms("ExampleNote"), g),
                Quad(note, ms("noteId"), Literal(row["idx"]), g),
                Quad(note, ms("text"), Literal(row["symptoms"]), g),
                Quad(note, ms("code"), code_iri(row["code"]), g),
                Quad(code_iri(row["code"]), ms("category"), Literal(row["code"][:3]), g),
            ]
        )
        texts.append(row["symptoms"])
    return texts


def test_the_phrasing_check_judges_replies_against_the_graphs_real_notes(
    server: FakeOpenAIServer, shared_data: Path, tmp_path: Path
) -> None:
    """With --max-unseen-phrases the run scores each reply's word pairs against the real notes in the graph and
    records the share; without it nothing is measured and the run's identity is what it was before the check."""
    from medsyn.generation.fluency import known_phrases, unseen_phrases

    store = OxigraphStore.in_memory()
    real = _with_real_notes(store, shared_data, 200)
    samples = demo_samples(3)
    strict = FilterConfig(min_recall=0.0, max_unseen_phrases=0.0)
    s = run(server, samples, tmp_path / "on", store=store, max_attempts=1, filter=strict)
    assert s.accepted == 0 and s.rejected == 3
    fails = lines(tmp_path / "on" / FAILURES_FILE)
    known = known_phrases(real)
    for f in fails:
        assert f["reason"].startswith("unfamiliar phrasing")
        share = f["scores"]["unseen_phrases"]
        assert share > 0 and share == pytest.approx(unseen_phrases(f["response"], known), abs=1e-4)
    run_doc = json.loads((tmp_path / "on" / RUN_FILE).read_text())
    assert run_doc["identity"]["filter"]["max_unseen_phrases"] == 0.0
    off = run(
        server, samples, tmp_path / "off", store=store, max_attempts=1, filter=replace(strict, max_unseen_phrases=-1)
    )
    assert off.accepted == 3
    assert all("unseen_phrases" not in n["scores"] for n in lines(tmp_path / "off" / NOTES_FILE))
    assert "max_unseen_phrases" not in json.loads((tmp_path / "off" / RUN_FILE).read_text())["identity"]["filter"]
    # Without real notes every pair would be unfamiliar: the run is refused rather than rejecting every note.
    with pytest.raises(InputError, match="needs real notes in the graph"):
        run(server, samples, tmp_path / "empty", max_attempts=1, filter=strict)


def test_a_reply_that_copies_a_real_note_is_not_kept(
    server: FakeOpenAIServer, shared_data: Path, tmp_path: Path
) -> None:
    """A model that writes a real note back word for word (here the example of its prompt, with the example
    similarity check turned off) gets no note: the attempt fails with status ``copy``, and the real text is in neither
    notes.jsonl nor failures.jsonl (both are shared, docs/export.md)."""
    from pyoxigraph import Literal, Quad

    first = json.loads((shared_data / "rumedbench/RuMedTop3/train_v1.jsonl").read_text(encoding="utf-8").split("\n")[0])
    nid, text, code = first["idx"], first["symptoms"], first["code"]
    store = OxigraphStore.in_memory()
    note, g = example_note_iri(nid), graph_iri("source", "rumedtop3")
    store.add_quads(
        [
            Quad(note, RDF_TYPE, ms("ExampleNote"), g),
            Quad(note, ms("noteId"), Literal(nid), g),
            Quad(note, ms("text"), Literal(text), g),
            Quad(note, ms("code"), code_iri(code), g),
            Quad(code_iri(code), ms("category"), Literal(code[:3]), g),
        ]
    )
    sample = replace(demo_samples(1)[0], example_id=nid, example_text=text)
    server.configure(script=["copy", "copy", "ok"])
    lenient = FilterConfig(max_similarity=1.0, min_recall=0.0)
    s = run(server, [sample], tmp_path / "o", store=store, max_attempts=3, filter=lenient)
    assert s.accepted == 1 and s.failed == 2  # the third attempt, an own note, is kept
    fails = lines(tmp_path / "o" / FAILURES_FILE)
    assert [f["status"] for f in fails] == ["copy", "copy"]
    assert all(f["response"] is None and nid in f["reason"] and "content_hash" not in f for f in fails)
    real = normalised(text)
    for name in (NOTES_FILE, FAILURES_FILE, RUN_FILE):  # samples.jsonl keeps the samples as drawn, examples included
        assert real not in normalised((tmp_path / "o" / name).read_text(encoding="utf-8")), name


def test_target_per_code_keeps_generating_until_k(server: FakeOpenAIServer, tmp_path: Path) -> None:
    server.configure(script=["refusal", "empty", "refusal", "truncated"])
    samples = demo_samples(4, categories=("M54", "J06"))  # 2 samples per code, cycled
    s = run(server, samples, tmp_path / "o", target_per_code=5)
    notes = lines(tmp_path / "o" / NOTES_FILE)
    assert s.status == "done"
    assert sorted(n["code"] for n in notes) == ["J06"] * 5 + ["M54"] * 5
    assert len({n["id"] for n in notes}) == 10


def test_max_cost_stops_cleanly_and_a_bigger_budget_resumes(server: FakeOpenAIServer, tmp_path: Path) -> None:
    samples = demo_samples(30)
    out = tmp_path / "o"
    s = run(server, samples, out, price=(1.0, 1.0), max_cost=2.0)  # each note costs ~0.3 USD
    assert s.status == "budget" and 0 < s.accepted < 30
    assert s.cost_usd <= 2.0 + 0.5  # at most the notes already in flight beyond the estimate
    s2 = run(server, samples, out, price=(1.0, 1.0), max_cost=100.0)
    assert s2.status == "done" and s2.accepted == 30 == len(lines(out / NOTES_FILE))


def test_torn_last_line_is_cut_and_resume_completes(server: FakeOpenAIServer, tmp_path: Path) -> None:
    samples = demo_samples(6)
    out = tmp_path / "o"
    store = OxigraphStore.in_memory()
    run(server, samples, out, store=store)
    notes_path = out / NOTES_FILE
    kept = notes_path.read_text(encoding="utf-8").splitlines(keepends=True)
    notes_path.write_text("".join(kept[:4]) + kept[4][: len(kept[4]) // 2], encoding="utf-8")  # torn 5th line
    torn = notes_path.read_bytes()
    # A reader leaves the file alone (a run may be appending to it): it only skips the torn line.
    assert [r["id"] for r in read_note_records(notes_path)] == [json.loads(x)["id"] for x in kept[:4]]
    assert notes_path.read_bytes() == torn
    # The repair writes, so it runs only under the folder's lock: without it, it refuses and changes nothing.
    with pytest.raises(RuntimeError, match="without the lock of its folder"):
        cut_torn_line(notes_path)
    assert notes_path.read_bytes() == torn
    s = run(server, samples, out, store=store)  # the run that holds the folder's lock cuts the torn line
    notes = lines(notes_path)
    assert s.status == "done" and len(notes) == 6 and len({n["sample_id"] for n in notes}) == 6
    assert s.generated_now == 2


def test_a_line_separator_inside_a_note_does_not_break_resume(server: FakeOpenAIServer, tmp_path: Path) -> None:
    """U+2028 is legal inside a JSON string and json.dumps(ensure_ascii=False) writes it raw; it is no line end."""
    from medsyn.evaluation.data import read_notes

    samples, out, store = demo_samples(3), tmp_path / "o", OxigraphStore.in_memory()
    run(server, samples, out, store=store)
    notes_path = out / NOTES_FILE
    recs = read_note_records(notes_path)
    recs[1]["response"] = "Жалобы на боль\u2028в пояснице.\u2029Анамнез: давно."
    notes_path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs), encoding="utf-8")
    assert "\u2028" in notes_path.read_text(encoding="utf-8")
    assert [r["id"] for r in read_note_records(notes_path)] == [r["id"] for r in recs]
    s = run(server, samples, out, store=store)  # resumes: nothing left to do
    assert s.status == "done" and s.generated_now == 0 and s.accepted == 3
    texts = {n.id: n.text for n in read_notes(out).notes}
    assert texts[recs[1]["id"]] == recs[1]["response"]


def test_other_parameters_on_the_same_dir_are_refused(server: FakeOpenAIServer, tmp_path: Path) -> None:
    samples = demo_samples(2)
    run(server, samples, tmp_path / "o")
    with pytest.raises(InputError, match="other parameters"):
        run(server, samples, tmp_path / "o", temperature=0.2)
    with pytest.raises(InputError, match="other parameters"):
        run(server, demo_samples(3), tmp_path / "o")


def test_corrupt_middle_line_is_reported(tmp_path: Path) -> None:
    p = tmp_path / NOTES_FILE
    p.write_text('{"id": "a", "sample_id": "s"}\nnot json\n{"id": "b", "sample_id": "t"}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"corrupt output: .*notes.jsonl:2: invalid JSON"):
        read_note_records(p)
    p.write_text('{"id": "a", "sample_id": "s"}\n{"id": "b"}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"notes.jsonl:2: not a note record"):
        read_note_records(p)


# ------------------------------------------------------------------------------------------ CLI and kill -9


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPENAI_API_KEY": ""}
    return subprocess.run(
        [*MEDSYN, "generate", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_cli_bad_input_is_one_line(tmp_path: Path) -> None:
    r = _cli(
        "--samples",
        str(tmp_path / "missing.jsonl"),
        "--out",
        str(tmp_path / "o"),
        "--store",
        str(tmp_path / "st"),
        "--base-url",
        "http://127.0.0.1:9/v1",
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().startswith("error:") and "samples file not found" in r.stderr
    r = _cli("--n", "3", "--samples", "x", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "exactly one of" in r.stderr and "Traceback" not in r.stderr
    r = _cli("--n", "3", "--max-unseen-phrases", "2", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "--max-unseen-phrases must be at most 1" in r.stderr and "Traceback" not in r.stderr


def test_kill_9_then_same_command_resumes_to_exactly_n(tmp_path: Path) -> None:
    n = 30
    samples_file = tmp_path / "samples.jsonl"
    write_samples(samples_file, demo_samples(n))
    out, store_dir = tmp_path / "out", tmp_path / "store"
    OxigraphStore(store_dir).close()  # generate writes provenance into an existing store; it never creates one
    with FakeOpenAIServer(latency=0.15, rates={"refusal": 0.1}) as srv:
        args = [
            "--samples",
            str(samples_file),
            "--backend",
            "openai",
            "--base-url",
            srv.base_url,
            "--out",
            str(out),
            "--store",
            str(store_dir),
            "--concurrency",
            "3",
            "--no-progress",
        ]
        env = {**os.environ, "OPENAI_API_KEY": ""}
        proc = subprocess.Popen(
            [*MEDSYN, "generate", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                p = out / NOTES_FILE
                if p.exists() and p.read_bytes().count(b"\n") >= 5:
                    break
                time.sleep(0.02)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        before = len(read_note_records(out / NOTES_FILE))
        assert 5 <= before < n
        r = _cli(*args)
        assert r.returncode == 0, r.stderr
    notes = lines(out / NOTES_FILE)  # every line parses: no torn line left
    assert len(notes) == n and len({x["sample_id"] for x in notes}) == n and len({x["id"] for x in notes}) == n
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["status"] == "done" and summary["generated_now"] < n + 10
    with OxigraphStore(store_dir) as st:
        rows = st.query(
            "PREFIX ms: <https://w3id.org/medsyn/ontology#> SELECT (COUNT(?n) AS ?c) WHERE { ?n a ms:SyntheticNote ; "
            "ms:accepted true }"
        )
        assert int(rows[0]["c"].value) == n


def test_cli_samples_from_the_graph_and_records_its_version(shared_data: Path, tmp_path: Path) -> None:
    from sampling_graph import real_graph

    store_dir = tmp_path / "store"
    with OxigraphStore(store_dir) as st:
        real_graph(shared_data, version="kg-test").into(st)
    with FakeOpenAIServer() as srv:
        common = ["--backend", "openai", "--base-url", srv.base_url, "--store", str(store_dir), "--no-progress"]
        r = _cli("--n", "4", "--seed", "3", "--out", str(tmp_path / "a"), *common)
        assert r.returncode == 0, r.stderr
        r2 = _cli("--plan", "weights", "--total", "200", "--concurrency", "16", "--out", str(tmp_path / "b"), *common)
        assert r2.returncode == 0, r2.stderr
        assert json.loads(r2.stdout.splitlines()[-1])["requested"] == 200  # the plan sums to --total
        # The sampling options are those of `medsyn sample`: --codes restricts a plan, the softmax T is settable.
        plan = ["--plan", "weights", "--total", "20", "--codes", "M54", "--strategy", "softmax"]
        r3 = _cli(*plan, "--softmax-temperature", "1e6", "--out", str(tmp_path / "c"), *common)
        assert r3.returncode == 0, r3.stderr
        again = _cli("--n", "4", "--seed", "3", "--out", str(tmp_path / "a"), *common)  # finished run: no-op
        assert json.loads(again.stdout.splitlines()[-1])["generated_now"] == 0
        # --strategy-option reaches generate's draw and its run identity; the same options resume the same run.
        chosen = ["--n", "6", "--codes", "M54", "--strategy", "softmax", "--strategy-option", "temperature=2"]
        r4 = _cli(*chosen, "--out", str(tmp_path / "d"), *common)
        assert r4.returncode == 0, r4.stderr
        again = _cli(*chosen, "--out", str(tmp_path / "d"), *common)
        assert again.returncode == 0 and json.loads(again.stdout.splitlines()[-1])["generated_now"] == 0, again.stderr
    sampling = json.loads((tmp_path / "d" / RUN_FILE).read_text(encoding="utf-8"))["identity"]["sampling"]
    assert sampling["strategy"] == "softmax" and sampling["softmax_temperature"] == 2.0  # not generate's default 10
    assert {d["extra"]["temperature"] for d in lines(tmp_path / "d" / SAMPLES_FILE)} == {2.0}
    a = lines(tmp_path / "a" / NOTES_FILE)
    assert len(a) == 4 and all(n["kg_version"] == "kg-test" for n in a)
    drawn = lines(tmp_path / "c" / SAMPLES_FILE)
    assert len(drawn) == 20 and {d["category"] for d in drawn} == {"M54"}
    assert {d["extra"]["temperature"] for d in drawn} == {1e6}
    (tmp_path / "s.jsonl").unlink(missing_ok=True)
    same = subprocess.run(
        [
            *MEDSYN,
            "sample",
            *plan,
            "--softmax-temperature",
            "1e6",
            "--store",
            str(store_dir),
            "--out",
            str(tmp_path / "s.jsonl"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert same.returncode == 0, same.stderr
    assert lines(tmp_path / "s.jsonl") == drawn  # one sampling path: the same samples from both commands
    with OxigraphStore(store_dir) as st:
        rows = st.query(
            "PREFIX ms: <https://w3id.org/medsyn/ontology#> SELECT DISTINCT ?v WHERE { ?r a ms:GenerationRun ; "
            "ms:graphVersion ?v }"
        )
    assert [x["v"].value for x in rows] == ["kg-test"]


def test_cli_generate_refuses_a_misspelt_strategy_option(tmp_path: Path) -> None:
    # Refused in one line naming the declared option, before any store or server is used.
    bad = _cli("--n", "2", "--strategy", "softmax", "--strategy-option", "temprature=2", "--out", str(tmp_path / "x"),
               "--store", str(tmp_path / "no-store"), "--base-url", "http://127.0.0.1:9/v1")  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
    assert "strategy 'softmax' has no option 'temprature'; did you mean 'temperature'?" in bad.stderr


class _FailingBackend:
    """Fails every request with an error, permanent ("prompt too long") or transient (a transport failure)."""

    name, model, adapter_hash, batch_size, max_concurrency = "failing", "m", None, 1, 1

    def __init__(self, *, permanent: bool) -> None:
        self.permanent, self.calls = permanent, 0

    async def complete(self, requests: list) -> list[Completion]:
        self.calls += len(requests)
        return [Completion(error="prompt too long", permanent=self.permanent) for _ in requests]

    def describe(self) -> dict:
        return {"backend": self.name}

    async def aclose(self) -> None:
        return None


@pytest.mark.parametrize(("permanent", "retried"), [(True, 0), (False, 1)])
def test_resume_retries_transport_errors_but_not_permanent_ones(tmp_path: Path, permanent: bool, retried: int) -> None:
    samples, store = demo_samples(1), OxigraphStore.in_memory()
    cfg = GenerationConfig(max_attempts=1)
    first = generate(samples, tmp_path / "o", store=store, backend=_FailingBackend(permanent=permanent), config=cfg)
    assert first.status == "incomplete" and first.failed == 1 and first.generated_now == 1
    again = _FailingBackend(permanent=permanent)
    s = generate(samples, tmp_path / "o", store=store, backend=again, config=cfg)
    assert again.calls == retried == s.generated_now and s.status == "incomplete"
    assert [f.get("permanent", False) for f in lines(tmp_path / "o" / FAILURES_FILE)] == [permanent] * (1 + retried)


def test_a_pool_of_two_servers_survives_one_killed_mid_run(tmp_path: Path) -> None:
    """Two real server processes behind repeated --base-url; one is killed -9 mid-run: every note exactly once,
    counts per server in run.json and in the run's provenance."""
    from medsyn.testing.servers import openai_server

    n = 24
    samples_file = tmp_path / "samples.jsonl"
    write_samples(samples_file, demo_samples(n))
    out, store_dir = tmp_path / "out", tmp_path / "store"
    OxigraphStore(store_dir).close()
    with (
        # 0.3 s a reply: the run outlasts the wait for a's sixth request even when this machine is slow to poll
        # (at 0.1 s a fast client could finish before the kill, leaving no request on a to fail).
        openai_server(tmp_path / "a.log", latency=0.3) as a,
        openai_server(tmp_path / "b.log", latency=0.3) as b,
    ):
        args = ["--samples", str(samples_file), "--backend", "openai", "--out", str(out), "--store", str(store_dir)]
        args += ["--base-url", a.base_url, "--base-url", b.base_url, "--concurrency", "4", "--no-progress"]
        env = {**os.environ, "OPENAI_API_KEY": ""}
        proc = subprocess.Popen(
            [*MEDSYN, "generate", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and int(a.stats()["requests"]) < 6:
            time.sleep(0.01)
        os.kill(a.process.pid, signal.SIGKILL)  # mid-run, with requests in flight on it
        stdout, stderr = proc.communicate(timeout=120)
        served_by_b = int(b.stats()["requests"])
    assert proc.returncode == 0, stderr
    notes = lines(out / NOTES_FILE)
    assert len(notes) == n and len({x["id"] for x in notes}) == n and len({x["sample_id"] for x in notes}) == n
    assert lines(out / FAILURES_FILE) == []  # the killed server's requests went to the other one, none was lost
    by_server = {x["server"] for x in notes}
    assert by_server == {a.base_url, b.base_url}
    run_doc = json.loads((out / RUN_FILE).read_text(encoding="utf-8"))
    counts = run_doc["totals"]["by_server"]
    assert sum(counts.values()) == n and counts[a.base_url] >= 1 and counts[b.base_url] == served_by_b
    assert run_doc["servers"][a.base_url]["failed"] >= 1 and run_doc["servers"][a.base_url]["taken_out"] >= 1
    assert json.loads(stdout.strip().splitlines()[-1])["accepted"] == n
    with OxigraphStore(store_dir) as st:
        rows = st.query(
            "PREFIX ms: <https://w3id.org/medsyn/ontology#> SELECT ?c WHERE { GRAPH ?g { ?r a ms:GenerationRun ; "
            "ms:serverCounts ?c } }"
        )
        assert json.loads(rows[0]["c"].value) == counts
        per_note = st.query(
            "PREFIX ms: <https://w3id.org/medsyn/ontology#> SELECT ?s (COUNT(?act) AS ?k) WHERE { GRAPH ?g { "
            "?act a ms:NoteGeneration ; ms:server ?s } } GROUP BY ?s"
        )
        assert {r["s"].value: int(r["k"].value) for r in per_note} == counts
    audit = subprocess.run([*MEDSYN, "audit", "verify", str(out), "--store", str(store_dir)], capture_output=True)
    assert audit.returncode == 0, audit.stderr
