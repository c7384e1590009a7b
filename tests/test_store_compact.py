"""The end of a generate run compacts the on-disk store: RocksDB's write-ahead log, which held every provenance
transaction of the run (~27 KB a note, most of the 51 KB a note measured at 10k notes in issue #24), is gone, the
store keeps its OS lock and answers as before."""

from __future__ import annotations

from pathlib import Path

import pytest

from medsyn.errors import StoreError
from medsyn.generation.backends import get_backend
from medsyn.generation.config import GenerationConfig
from medsyn.generation.engine import generate
from medsyn.kg.store import OxigraphStore
from medsyn.testing import demo_samples
from medsyn.testing.openai_server import FakeOpenAIServer


def _wal_bytes(store: Path) -> int:
    return sum(p.stat().st_size for p in store.glob("*.log"))


def _notes(store: OxigraphStore) -> int:
    q = "PREFIX ms: <https://w3id.org/medsyn/ontology#> SELECT (COUNT(*) AS ?n) WHERE { ?s a ms:SyntheticNote }"
    return int(store.query(q)[0]["n"].value)


def test_generate_leaves_no_write_ahead_log(tmp_path: Path) -> None:
    path = tmp_path / "store"
    store = OxigraphStore(path)
    try:
        with FakeOpenAIServer(latency=0.0) as srv:
            be = get_backend("openai", base_url=srv.base_url, concurrency=4)
            summary = generate(demo_samples(24), tmp_path / "out", store=store, backend=be, config=GenerationConfig())
        assert summary.attempts >= 24
        # Without the compaction the log holds every note's quads (hundreds of KB here); after it, an empty log.
        assert _wal_bytes(path) < 4096
        assert _notes(store) == summary.attempts - summary.failed
        with pytest.raises(StoreError, match="store"):
            OxigraphStore(path)  # the reopened store still holds the lock
        store.add_quads([])  # and still takes writes
    finally:
        store.close()
    reopened = OxigraphStore(path, read_only=True)
    try:
        assert _notes(reopened) == summary.attempts - summary.failed
    finally:
        reopened.close()


def test_without_compaction_the_log_holds_the_run(tmp_path: Path) -> None:
    """The measured problem, kept as a check of the test's premise: the same writes without ``compact`` leave a
    log that grows with the notes."""
    path = tmp_path / "store"
    store = OxigraphStore(path)
    store.compact = lambda: None  # type: ignore[method-assign]
    try:
        with FakeOpenAIServer(latency=0.0) as srv:
            be = get_backend("openai", base_url=srv.base_url, concurrency=4)
            generate(demo_samples(24), tmp_path / "out", store=store, backend=be, config=GenerationConfig())
        assert _wal_bytes(path) > 4096
    finally:
        store.close()


class FlushCountingStore(OxigraphStore):
    """A real on-disk store that counts its flushes."""

    flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


def test_a_long_run_flushes_the_store_as_it_goes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """RocksDB holds every write in memory until a flush: generate flushes every ``_STORE_FLUSH_NOTES`` notes of
    provenance (a peak RSS that grew with the run, issue #24), and the notes are all there."""
    import medsyn.generation.engine as engine

    monkeypatch.setattr(engine, "_STORE_FLUSH_NOTES", 4)
    monkeypatch.setattr(engine, "_PROV_BATCH", 4)
    batches: list[int] = []  # the sizes of the batches written, in order, the last one (at the end) included
    write = engine._Engine._write_batch
    monkeypatch.setattr(engine._Engine, "_write_batch", lambda self, b: batches.append(len(b)) or write(self, b))
    store = FlushCountingStore(tmp_path / "store")
    store.compact = lambda: None  # type: ignore[method-assign]  # count the run's own flushes only
    try:
        with FakeOpenAIServer(latency=0.0) as srv:
            be = get_backend("openai", base_url=srv.base_url, concurrency=2)
            summary = generate(demo_samples(40), tmp_path / "out", store=store, backend=be, config=GenerationConfig())
        expected, pending = 0, 0
        for n in batches:
            pending += n
            if pending >= 4:
                expected, pending = expected + 1, 0
        assert store.flushes == expected >= 1  # how many depends on how batches formed; the schedule does not
        assert _notes(store) == summary.attempts - summary.failed
    finally:
        store.close()
