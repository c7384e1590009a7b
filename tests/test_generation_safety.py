"""Generation that loses nothing: one process per output folder, lines on disk before their provenance, and a
resume after a power loss that never gives a recorded note id to another text."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from medsyn.audit import verify
from medsyn.errors import StoreError
from medsyn.generation.backends import get_backend
from medsyn.generation.config import GenerationConfig
from medsyn.generation.engine import generate
from medsyn.generation.run_folder import FAILURES_FILE, LOST, NOTES_FILE
from medsyn.kg.store import OxigraphStore
from medsyn.kg.vocab import run_iri
from medsyn.sampling.samples import write_samples
from medsyn.testing import demo_samples
from medsyn.testing.commands import MEDSYN
from medsyn.testing.openai_server import FakeOpenAIServer

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPENAI_API_KEY": ""}
    return subprocess.run(
        [*MEDSYN, "generate", *args], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def test_a_second_generate_on_the_same_folder_is_refused(tmp_path: Path) -> None:
    n = 12
    samples = tmp_path / "samples.jsonl"
    write_samples(samples, demo_samples(n))
    out = tmp_path / "out"
    stores = [tmp_path / "st1", tmp_path / "st2"]  # two stores: only the folder is shared
    for s in stores:
        OxigraphStore(s).close()
    with FakeOpenAIServer(latency=0.3) as srv:

        def args(store: Path) -> list[str]:
            return ["--samples", str(samples), "--base-url", srv.base_url, "--out", str(out), "--store", str(store),
                    "--concurrency", "2", "--no-progress"]  # fmt: skip

        first = subprocess.Popen(
            [*MEDSYN, "generate", *args(stores[0])],
            cwd=ROOT,
            env={**os.environ, "OPENAI_API_KEY": ""},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 60
            while not (out / NOTES_FILE).exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            second = cli(*args(stores[1]))
            assert first.poll() is None, "the first run must still be running for this test to mean anything"
        finally:
            first.wait(timeout=120)
        assert first.returncode == 0
        assert second.returncode == 2 and "Traceback" not in second.stderr
        msg = second.stderr.strip().splitlines()
        assert len(msg) == 1 and f"output folder {out} is locked by process {first.pid}" in msg[0], msg
        assert srv.stats()["requests"] == n  # the second run sent nothing
    notes = lines(out / NOTES_FILE)
    assert len(notes) == n and len({x["id"] for x in notes}) == n


def test_resume_after_lost_lines_never_reuses_a_recorded_id(tmp_path: Path) -> None:
    samples, out, store = demo_samples(8), tmp_path / "out", OxigraphStore.in_memory()
    with FakeOpenAIServer() as srv:
        be = get_backend("openai", base_url=srv.base_url, concurrency=2, max_retries=1)
        first = generate(samples, out, store=store, backend=be, config=GenerationConfig())
        assert first.status == "done" and first.accepted == 8
        # A power loss took the last two lines (what fsync ordering now prevents, but an old copy can still do).
        kept = (out / NOTES_FILE).read_text(encoding="utf-8").splitlines(keepends=True)
        (out / NOTES_FILE).write_text("".join(kept[:-2]), encoding="utf-8")
        lost_ids = {json.loads(x)["id"] for x in kept[-2:]}
        be = get_backend("openai", base_url=srv.base_url, concurrency=2, max_retries=1)
        again = generate(samples, out, store=store, backend=be, config=GenerationConfig())
    assert again.lost == 2 and again.status == "done" and again.generated_now == 2
    notes = lines(out / NOTES_FILE)
    assert len(notes) == 8 and len({x["sample_id"] for x in notes}) == 8
    assert not lost_ids & {x["id"] for x in notes}, "a lost id was given to a new note"
    assert sorted(x["id"] for x in lines(out / FAILURES_FILE) if x["status"] == LOST) == sorted(lost_ids)
    report = verify(store, out)
    assert report.altered == [] and report.unrecorded == [] and sorted(report.missing) == sorted(lost_ids)
    # A third start finds nothing new to report and generates nothing.
    with FakeOpenAIServer() as srv:
        be = get_backend("openai", base_url=srv.base_url, concurrency=2, max_retries=1)
        third = generate(samples, out, store=store, backend=be, config=GenerationConfig())
    assert third.lost == 0 and third.generated_now == 0 and third.status == "done"


def test_lines_are_fsynced_before_their_provenance(tmp_path: Path, monkeypatch: object) -> None:
    events: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        events.append("fsync " + os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    class Recording(OxigraphStore):
        def add_quads(self, quads: object) -> None:
            events.append("provenance")
            super().add_quads(quads)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "fsync", spy)  # type: ignore[attr-defined]
    with FakeOpenAIServer() as srv:
        be = get_backend("openai", base_url=srv.base_url, concurrency=2, max_retries=1)
        generate(demo_samples(3), tmp_path / "out", store=Recording(None), backend=be, config=GenerationConfig())
    first = events.index("provenance")
    assert "fsync notes.jsonl" in events[:first]
    assert "fsync out" in events  # run.json's rename made durable: the folder itself is fsynced


class DownAtTheEnd(OxigraphStore):
    """A store that stops answering when the run writes its end record (as a remote endpoint going down would)."""

    down = True

    def update(self, sparql: str, **kw: object) -> None:
        if self.down and "endedAtTime" in sparql:
            raise StoreError("connection to http://127.0.0.1:9/update failed: [Errno 111] Connection refused")
        super().update(sparql, **kw)  # type: ignore[arg-type]


def test_a_store_that_fails_the_end_record_fails_the_run_and_a_rerun_records_it(tmp_path: Path) -> None:
    # The end record's failure used to be swallowed: the store kept no end time nor totals, and the CLI said success.
    store, out = DownAtTheEnd(None), tmp_path / "out"
    with FakeOpenAIServer() as srv:
        be = get_backend("openai", base_url=srv.base_url, concurrency=2, max_retries=1)
        with pytest.raises(StoreError) as err:
            generate(demo_samples(3), out, store=store, backend=be, config=GenerationConfig())
        assert str(err.value).startswith(f"the run's notes are safe in {out}, but the store did not take")
        assert str(err.value).endswith("Connection refused); rerun the same command to record them")
        run = json.loads((out / "run.json").read_text())
        assert run["status"] == "done" and run["totals"]["accepted"] == 3 == len(lines(out / NOTES_FILE))
        prov_ended = "<http://www.w3.org/ns/prov#endedAtTime>"
        ended = f"SELECT ?t WHERE {{ GRAPH ?g {{ {run_iri(run['run_id'])} {prov_ended} ?t }} }}"
        assert len(list(store.query(ended))) == 0
        store.down = False
        again = generate(demo_samples(3), out, store=store, backend=be, config=GenerationConfig())
    assert again.status == "done" and again.generated_now == 0 and len(list(store.query(ended))) == 1


def test_bad_output_folders_are_one_line(tmp_path: Path) -> None:
    samples = tmp_path / "samples.jsonl"
    write_samples(samples, demo_samples(1))
    store = tmp_path / "st"
    OxigraphStore(store).close()
    a_file = tmp_path / "taken"
    a_file.write_text("mine")
    for out, fragment in ((a_file, "is not a folder"), (Path("/proc/1/medsyn-out"), "cannot create output folder")):
        r = cli(
            "--samples", str(samples), "--out", str(out), "--store", str(store), "--base-url", "http://127.0.0.1:9/v1"
        )
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        msg = r.stderr.strip().splitlines()
        assert len(msg) == 1 and fragment in msg[0] and str(out) in msg[0], msg
    assert a_file.read_text() == "mine"


def test_atomic_writes_fsync_the_data_and_the_folder(tmp_path: Path, monkeypatch: object) -> None:
    from medsyn.atomic import atomic_dir, atomic_write_text

    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)  # type: ignore[attr-defined]
    atomic_write_text(tmp_path / "run.json", "{}")
    assert synced[-1] == str(tmp_path)  # the rename is made durable after the data
    assert any(p.startswith(str(tmp_path / ".run.json.")) for p in synced[:-1])
    synced.clear()
    with atomic_dir(tmp_path / "model") as d:
        (d / "sub").mkdir()
        (d / "sub" / "weights.bin").write_bytes(b"w")
    assert synced[-1] == str(tmp_path)
    assert any(p.endswith("/sub/weights.bin") for p in synced) and any(p.endswith("/sub") for p in synced)
