"""Store builds and openings that lose nothing: the build holds the store's lock from start to swap, leftovers of a
killed build are recovered, a rebuild keeps provenance and curation, only `kg build` / `onto restore` create a
store, and a damaged store is one line. Everything runs the real `medsyn` entry point in subprocesses."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from pyoxigraph import Literal, NamedNode, Quad

from medsyn.kg.build import build_kg
from medsyn.kg.store import OxigraphStore
from medsyn.kg.version import graph_version
from medsyn.kg.vocab import CURATION_GRAPH, GRAPH
from medsyn.testing.commands import MEDSYN
from medsyn.testing.servers import free_port

SMALL = ["wikimed"]


def medsyn(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MEDSYN, *args], capture_output=True, text=True, timeout=timeout)


def one_line_error(p: subprocess.CompletedProcess[str], *fragments: str, code: int = 2) -> str:
    assert p.returncode == code, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    path = tmp_path_factory.mktemp("small") / "store"
    build_kg(path, data=shared_data, sources=SMALL, progress=False)
    return path


def copy_store(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("LOCK"))
    return dst


def wait_for(pred: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached")


def start_build(store: Path, data: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*MEDSYN, "kg", "build", "-q", "--store", str(store), "--data", str(data)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def building(store: Path) -> list[Path]:
    return list(store.parent.glob(f".{store.name}.building-*"))


# ------------------------------------------------------------------------------------------------ 1: the lock
def test_build_holds_the_lock_until_the_swap(small: Path, tmp_path: Path, shared_data: Path) -> None:
    store = copy_store(small, tmp_path / "store")
    proc = start_build(store, shared_data)
    try:
        wait_for(lambda: building(store))  # the build is working in its own folder now
        serve = medsyn("serve", "--store", str(store), "--port", str(free_port()), timeout=60)
        one_line_error(serve, f"store {store}", f"locked by process {proc.pid}")
        add = medsyn("onto", "add-symptom", "M54.5", "боль", "--store", str(store))
        one_line_error(add, f"locked by process {proc.pid}")
        assert proc.poll() is None, "the build must still be running for this test to mean anything"
    finally:
        proc.wait(timeout=300)
    assert proc.returncode == 0, proc.stderr.read().decode() if proc.stderr else ""
    stats = medsyn("kg", "stats", "--store", str(store))
    assert stats.returncode == 0 and "source/hsdn" in stats.stdout


# ------------------------------------------------------------------------------------------------ 2: recovery
def test_kill_between_the_renames_is_recovered_by_the_next_command(small: Path, tmp_path: Path) -> None:
    store = copy_store(small, tmp_path / "store")
    # What a kill -9 after the first rename of the swap leaves: the old store set aside, the new one not yet in.
    aside = copy_store(small, tmp_path / ".store.old-999-deadbeef")
    shutil.rmtree(store)
    half = copy_store(small, tmp_path / ".store.building-999-cafebabe")
    assert not store.exists()
    r = medsyn("kg", "stats", "--store", str(store))
    assert r.returncode == 0, r.stderr
    assert "recovered store" in r.stderr and "source/wikimed" in r.stdout
    assert store.is_dir() and not aside.exists() and not half.exists()


def test_kill_9_during_a_build_leaves_nothing_behind(small: Path, tmp_path: Path, shared_data: Path) -> None:
    store = copy_store(small, tmp_path / "store")
    version = _version(store)
    proc = start_build(store, shared_data)
    wait_for(lambda: building(store))
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert building(store), "a kill -9 leaves the build folder (nothing can remove it)"
    r = medsyn("onto", "history", "--store", str(store))  # any command that opens the store
    assert r.returncode == 0, r.stderr
    assert not building(store) and _version(store) == version


# ------------------------------------------------------------------------------------------------ 3: history
def test_rebuild_keeps_runs_and_curation_or_drops_them_on_request(
    small: Path, tmp_path: Path, shared_data: Path
) -> None:
    store = copy_store(small, tmp_path / "store")
    add = medsyn("onto", "add-symptom", "M54.5", "тянущая боль в спине", "--weight", "2", "--store", str(store))
    assert add.returncode == 0, add.stderr
    run_graph = NamedNode(GRAPH + "run/r1")
    with OxigraphStore(store) as s:
        s.add_quads([Quad(NamedNode("urn:note"), NamedNode("urn:p"), Literal("x"), run_graph)])
        curated = graph_version(s)
        history = len(list(s.raw.quads_for_pattern(None, None, None, CURATION_GRAPH)))
    assert curated is not None and "+curated:1:" in curated
    r = medsyn("kg", "build", "-q", "--store", str(store), "--data", str(shared_data), "--sources", "wikimed")
    assert r.returncode == 0, r.stderr
    assert f"kept {history + 1:,} quads" in r.stdout
    with OxigraphStore(store, read_only=True) as s:
        assert len(list(s.raw.quads_for_pattern(None, None, None, run_graph))) == 1
        assert len(list(s.raw.quads_for_pattern(None, None, None, CURATION_GRAPH))) == history
        # The kept record describes edits of the replaced graph: the fresh build's version is the pristine one.
        assert graph_version(s) == curated.split("+")[0]
    r = medsyn("kg", "build", "-q", "--discard-provenance", "--store", str(store), "--data", str(shared_data))
    assert r.returncode == 0, r.stderr
    assert f"dropped {history + 1:,} quads" in r.stdout
    with OxigraphStore(store, read_only=True) as s:
        assert run_graph not in s.named_graphs() and CURATION_GRAPH not in s.named_graphs()


# ------------------------------------------------------------------------------------------------ 4: no new stores
def test_only_build_and_restore_create_a_store(small: Path, tmp_path: Path) -> None:
    typo = tmp_path / "st-typo"
    samples = tmp_path / "samples.jsonl"
    from medsyn.sampling.samples import write_samples
    from medsyn.testing import demo_samples

    write_samples(samples, demo_samples(1))
    runs = [
        (
            "generate",
            "--samples",
            str(samples),
            "--out",
            str(tmp_path / "o"),
            "--store",
            str(typo),
            "--base-url",
            "http://127.0.0.1:9/v1",
        ),
        ("serve", "--store", str(typo), "--port", str(free_port())),
        ("onto", "add-symptom", "M54.5", "боль", "--store", str(typo)),
        ("kg", "stats", "--store", str(typo)),
        ("sample", "--n", "1", "--out", str(tmp_path / "s.jsonl"), "--store", str(typo)),
    ]
    for args in runs:
        one_line_error(medsyn(*args, timeout=60), f"store {typo} does not exist", "kg build")
        assert not typo.exists(), args
    snap = tmp_path / "snap.nq"
    assert medsyn("onto", "snapshot", "--out", str(snap), "--store", str(small)).returncode == 0
    r = medsyn("onto", "restore", str(snap), "--store", str(typo))
    assert r.returncode == 0, r.stderr
    assert medsyn("kg", "stats", "--store", str(typo)).returncode == 0


# ------------------------------------------------------------------------------------------------ 5: damage
@pytest.mark.parametrize("damage", ["sst", "manifest"])
def test_a_damaged_store_is_one_line(small: Path, tmp_path: Path, damage: str) -> None:
    store = copy_store(small, tmp_path / "store")
    if damage == "sst":
        for f in store.glob("*.sst"):
            b = bytearray(f.read_bytes())
            for i in range(100, len(b) - 200, 97):
                b[i] ^= 0xFF
            f.write_bytes(bytes(b))
    else:
        for f in store.glob("MANIFEST-*"):
            f.write_bytes(b"")
    for args in (
        ("kg", "stats"),
        ("kg", "validate", "--no-reasoner"),
        ("onto", "check"),
        ("onto", "add-symptom", "M54.5", "боль"),
        ("serve", "--port", str(free_port())),
    ):
        one_line_error(medsyn(*args, "--store", str(store), timeout=60), f"store {store} is damaged", "kg build")


def _version(store: Path) -> str | None:
    with OxigraphStore(store, read_only=True) as s:
        return graph_version(s)
