"""`generate --engine ray`: Ray Data maps the attempts over shards on a real local Ray (2 CPUs, started once for the
module), against the project's OpenAI-compatible test server (one, and a pool of two), and writes the same notes and
provenance as the single-machine engine; a run killed after a shard is written resumes without redoing it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray  # the optional extra `ray`, in the dev extra that `make test` installs
from pyoxigraph import Literal

from medsyn.generation.backends import BackendSpec, get_backend
from medsyn.generation.config import GenerationConfig
from medsyn.generation.engine import generate
from medsyn.generation.filter import FilterConfig
from medsyn.generation.provenance import association_iri, generation_iri, note_id
from medsyn.generation.ray_engine import PAUSE_SHARD_WRITTEN, SHARDS_DIR, generate_ray
from medsyn.generation.run_folder import FAILURES_FILE, NOTES_FILE, RUN_FILE, read_note_records
from medsyn.kg.store import OxigraphStore
from medsyn.kg.vocab import graph_iri, run_iri
from medsyn.testing import demo_samples
from medsyn.testing.commands import MEDSYN
from medsyn.testing.openai_server import FakeOpenAIServer

ROOT = Path(__file__).resolve().parent.parent
RUN_ONLY = {"id", "run_id", "started", "ended"}
"""Record fields that name the run or the wall clock: the only ones two runs of one command may differ in."""


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A local Ray with 2 CPUs for the whole module; CLI runs join it with --ray-address."""
    ctx = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        yield ctx.address_info["gcs_address"]
    finally:
        ray.shutdown()


def _records(out: Path) -> list[dict[str, Any]]:
    return read_note_records(out / NOTES_FILE) + read_note_records(out / FAILURES_FILE)


def _by_attempt(out: Path, *, drop: set[str] = RUN_ONLY) -> dict[tuple[str, int], dict[str, Any]]:
    return {(r["sample_id"], r["attempt"]): {k: v for k, v in r.items() if k not in drop} for r in _records(out)}


def _quads(store: OxigraphStore, out: Path) -> set[tuple[str, ...]]:
    """The run graph's quads with the run id, the note ids and the times written as placeholders (and the engine
    left out of the run's parameters), so two runs of one command compare equal."""
    run_id = json.loads((out / RUN_FILE).read_text(encoding="utf-8"))["run_id"]
    names = {r["id"]: f"{r['sample_id']}#{r['attempt']}" for r in _records(out)}
    # An association's IRI is a hash of its activity's: named after the activity too.
    names |= {association_iri(generation_iri(i)).value: f"assoc-{n}" for i, n in names.items()}
    names[association_iri(run_iri(run_id)).value] = "assoc-RUN"
    names[run_id] = "RUN"

    def term(t: Any) -> str:
        if isinstance(t, Literal) and t.datatype.value.endswith("#dateTime"):
            return "TIME"
        if isinstance(t, Literal) and t.value.startswith('{"adapter_hash"'):  # the run's parameters
            params = json.loads(t.value)
            params.pop("engine", None)
            return json.dumps(params, sort_keys=True)
        text = str(t)
        for old, new in names.items():
            text = text.replace(old, new)
        return text

    g = graph_iri("run", run_id)
    quads = store.raw.quads_for_pattern(None, None, None, g)
    return {(term(q.subject), term(q.predicate), term(q.object)) for q in quads}


def test_the_ray_engine_writes_the_single_machine_notes_and_provenance(cluster: str, tmp_path: Path) -> None:
    """Two notes per code over several rounds (a strict filter rejects about half the replies, and the retries go
    round by round through the shards): records, ids, content hashes and the provenance quads are those of the
    single-machine engine, up to the run id and the times."""
    samples = demo_samples(9)
    cfg = GenerationConfig(seed=7, target_per_code=2, max_attempts=3, filter=FilterConfig(max_restatement=0.8))
    store = OxigraphStore.in_memory()
    with FakeOpenAIServer() as srv:
        options = {"base_url": srv.base_url, "concurrency": 4}
        local = generate(samples, tmp_path / "local", store=store, backend=get_backend("openai", **options), config=cfg)
        spec = BackendSpec("openai", options=options)
        remote = generate_ray(samples, tmp_path / "ray", store=store, backend=spec, config=cfg, shard_rows=2)
    assert local.status == remote.status == "done" and local.accepted == remote.accepted == 6
    assert remote.rejected == local.rejected > 0 and remote.attempts == local.attempts
    a, b = _by_attempt(tmp_path / "local"), _by_attempt(tmp_path / "ray")
    assert a == b  # texts, content hashes, seeds, prompts, scores, verdicts: note for note
    for r in _records(tmp_path / "ray"):  # ids are the single-machine engine's function of run, sample, attempt
        assert r["id"] == note_id(remote.run_id, r["sample_id"], r["attempt"])
    assert _quads(store, tmp_path / "local") == _quads(store, tmp_path / "ray")
    rounds = sorted((tmp_path / "ray" / SHARDS_DIR).iterdir())
    assert len(rounds) >= 2 and len(list(rounds[0].glob("out-*.parquet"))) >= 2  # retries ran as later rounds
    again = generate_ray(samples, tmp_path / "ray", store=store, backend=spec, config=cfg)  # finished: nothing to do
    assert again.generated_now == 0 and again.accepted == 6
    run_doc = json.loads((tmp_path / "ray" / RUN_FILE).read_text(encoding="utf-8"))
    assert run_doc["identity"]["engine"] == "ray" and run_doc["status"] == "done"
    with pytest.raises(Exception, match="engine"):  # one folder, one engine: the other's resume would not know it
        generate(samples, tmp_path / "ray", store=store, backend=get_backend("openai", **options), config=cfg)


def _medsyn(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MEDSYN, *map(str, args)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def test_cli_on_a_pool_of_two_killed_after_a_shard_resumes_and_verifies(
    cluster: str, shared_data: Path, tmp_path: Path
) -> None:
    """`generate --engine ray --ray-address` with --base-url twice, samples drawn from a real graph: killed -9 at the
    first written shard, the same command finishes the run without redoing that shard; the notes are the
    single-machine run's, and `audit verify` and `export` take the folder as it is."""
    from sampling_graph import real_graph

    store_dir = tmp_path / "store"
    with OxigraphStore(store_dir) as st:
        real_graph(shared_data, version="kg-ray").into(st)
    out = tmp_path / "ray"
    with FakeOpenAIServer() as a, FakeOpenAIServer() as b:
        common = ["--n", "8", "--seed", "3", "--backend", "openai", "--base-url", a.base_url, "--base-url", b.base_url,
                  "--store", store_dir, "--no-progress"]  # fmt: skip
        ray_args = ["generate", *common, "--engine", "ray", "--ray-address", cluster, "--shard-rows", "3", "--out", out]
        flag = tmp_path / "paused"
        env = {**os.environ, "OPENAI_API_KEY": "", "MEDSYN_PAUSE_AT": PAUSE_SHARD_WRITTEN,
               "MEDSYN_PAUSE_FILE": str(flag)}  # fmt: skip
        proc = subprocess.Popen([*MEDSYN, *map(str, ray_args)], cwd=ROOT, env=env, text=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        deadline = time.monotonic() + 240
        while not flag.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "never reached the first written shard"
            time.sleep(0.05)
        proc.kill()
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        done = sorted(out.glob(f"{SHARDS_DIR}/round-*/out-*.parquet"))
        assert len(done) == 1 and read_note_records(out / NOTES_FILE) == []  # killed between the shard and its lines
        assert len(list(done[0].parent.glob("in-*.parquet"))) == 3  # 8 samples, 3 a shard
        stamp = done[0].stat().st_mtime_ns
        resumed = _medsyn(*ray_args, env={**os.environ, "OPENAI_API_KEY": ""})
        assert resumed.returncode == 0, resumed.stderr
        single = _medsyn("generate", *common, "--out", tmp_path / "local", env={**os.environ, "OPENAI_API_KEY": ""})
        assert single.returncode == 0, single.stderr
    summary = json.loads(resumed.stdout.strip().splitlines()[-1])
    notes = read_note_records(out / NOTES_FILE)
    from_shard = _shard_ids(done[0])
    assert summary["status"] == "done" and summary["accepted"] == len(notes) == 8
    assert summary["generated_now"] == summary["attempts"] - len(from_shard)  # the written shard was not redone
    assert done[0].stat().st_mtime_ns == stamp and set(from_shard) <= {r["id"] for r in _records(out)}
    assert {r["server"] for r in notes} == {a.base_url, b.base_url}  # both servers of the pool answered
    # Which server answered depends on load; everything else is the single-machine run's.
    drop = RUN_ONLY | {"server"}
    assert _by_attempt(out, drop=drop) == _by_attempt(tmp_path / "local", drop=drop)
    verify = _medsyn("audit", "verify", out, "--store", store_dir)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    exported = _medsyn("export", out, "--out", tmp_path / "export", "--store", store_dir)
    assert exported.returncode == 0, exported.stderr
    rows = (tmp_path / "export" / "data" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    assert sorted(json.loads(r)["idx"] for r in rows) == sorted(r["id"] for r in notes)
    with OxigraphStore(store_dir) as st:  # each note recorded once: 8 of this run, 8 of the single-machine run
        rows_q = st.query("PREFIX ms: <https://w3id.org/medsyn/ontology#> SELECT (COUNT(?n) AS ?c) WHERE { "
                          "GRAPH ?g { ?n a ms:SyntheticNote ; ms:accepted true } }")  # fmt: skip
        assert int(rows_q[0]["c"].value) == 16


def _shard_ids(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    return [str(x) for x in pq.read_table(path, columns=["id"]).column("id").to_pylist()]


def test_engine_flags_refused_in_one_line(tmp_path: Path) -> None:
    """A bad engine, a Ray flag without --engine ray, and --max-cost on Ray: exit 2, one line, nothing written."""
    from medsyn.sampling.samples import write_samples

    write_samples(tmp_path / "s.jsonl", demo_samples(2))
    OxigraphStore(tmp_path / "store").close()
    common = ["generate", "--samples", tmp_path / "s.jsonl", "--backend", "openai", "--base-url",
              "http://127.0.0.1:9/v1", "--store", tmp_path / "store", "--out", tmp_path / "o"]  # fmt: skip
    env = {**os.environ, "OPENAI_API_KEY": ""}
    for args, message in (
        (["--engine", "spark"], "--engine must be 'local' or 'ray'"),
        (["--ray-address", "auto", "--shard-rows", "4"], "--ray-address, --shard-rows: only with --engine ray"),
        (["--engine", "ray", "--max-cost", "1"], "--max-cost is not supported with --engine ray"),
    ):
        r = _medsyn(*common, *args, env=env)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o" / NOTES_FILE).exists()


def test_a_backend_error_in_a_ray_worker_is_the_users_one_line(cluster: str, tmp_path: Path) -> None:
    """A bad key fails the run in a Ray worker; the caller gets MedSyn's BackendError, not Ray's wrapper."""
    from medsyn.errors import BackendError

    with FakeOpenAIServer(api_key="right") as srv:
        spec = BackendSpec("openai", options={"base_url": srv.base_url, "api_key": "wrong"})
        with pytest.raises(BackendError, match="authentication failed") as info:
            generate_ray(demo_samples(2), tmp_path / "o", store=OxigraphStore.in_memory(), backend=spec)
    assert type(info.value).__module__ == "medsyn.errors" and "\n" not in str(info.value)
