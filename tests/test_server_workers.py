"""Queries of `medsyn serve` run in worker processes (issue 23): a query that crashes the parser, runs out of memory
or past its time limit costs its worker, never the server; writes are seen by the next query. Spoken to the real
command over HTTP; states read from /health and /proc."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from sparql_cases import FILLER, dataset_store

from medsyn.server import workers as pool_module
from medsyn.server.workers import MALLOC_TUNABLES
from medsyn.testing.servers import RunningServer, medsyn_server

TOKEN = "workers-token"
NESTED = "SELECT * WHERE " + "{ " * 3000 + "}" * 3000  # 12 KB; pyoxigraph's parser overflows its stack on it
FILLER_SIZE = 300
# 27 million groups: grows without bound until the worker's memory limit stops it
GROUPS = (
    f"SELECT ?a ?d ?g (COUNT(*) AS ?n) WHERE {{ GRAPH <{FILLER.value}> {{ ?a ?b ?c . ?d ?e ?f . ?g ?h ?i }} }} "
    "GROUP BY ?a ?d ?g"
)
SLOW = f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH <{FILLER.value}> {{ ?a ?b ?c . ?d ?e ?f . ?g ?h ?i }} }}"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return dataset_store(tmp_path_factory.mktemp("workers") / "store", filler=FILLER_SIZE)


def _health(c: httpx.Client, ms: RunningServer) -> dict[str, object]:
    return dict(c.get(ms.base_url + "/health").json())


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def test_a_query_that_crashes_the_parser_costs_one_worker(store: Path) -> None:
    with medsyn_server(store, extra_args=["--quiet"]) as ms, httpx.Client(timeout=60) as c:
        r = c.get(ms.query_url, params={"query": NESTED})
        assert r.status_code == 400 and r.text == "the query crashed its worker (SIGSEGV); the server goes on\n"
        assert ms.process.poll() is None  # the server lives
        assert c.get(ms.query_url, params={"query": "ASK {}"}).json()["boolean"] is True
        doc = _health(c, ms)
        assert doc["status"] == "ok" and doc["crashedQueries"] == 1 and doc["busyQueryWorkers"] == []
        # the same by POST, twice: each crash is one answer, and the server keeps serving
        for _ in range(2):
            r = c.post(ms.query_url, content=NESTED, headers={"Content-Type": "application/sparql-query"})
            assert r.status_code == 400 and "crashed its worker" in r.text
        assert _health(c, ms)["crashedQueries"] == 3
        assert c.get(ms.query_url, params={"query": "ASK {}"}).json()["boolean"] is True
        workers = list(_health(c, ms)["queryWorkers"])  # type: ignore[call-overload]
        assert workers
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]  # a stopped server leaves no worker


def test_a_timed_out_query_is_stopped_with_its_worker(store: Path) -> None:
    args = ["--quiet", "--workers", "1", "--fast-workers", "1", "--fast-budget", "0.2", "--timeout", "1"]
    with medsyn_server(store, extra_args=args) as ms, httpx.Client(timeout=60) as c:
        busy: list[list[int]] = []

        def watch() -> None:
            with httpx.Client(timeout=30) as own:
                while not busy:
                    pids = list(_health(own, ms)["busyQueryWorkers"])  # type: ignore[call-overload]
                    if pids:
                        busy.append(pids)

        watcher = threading.Thread(target=watch)
        watcher.start()
        r = c.get(ms.query_url, params={"query": SLOW})
        watcher.join(timeout=30)
        assert r.status_code == 503 and "1 s time limit" in r.text
        assert len(busy) == 1 and len(busy[0]) == 1
        pid = busy[0][0]
        assert not Path(f"/proc/{pid}").exists()  # killed and reaped before the 503 was sent
        doc = _health(c, ms)
        assert doc["stoppedQueries"] == 1 and doc["busyQueryWorkers"] == [] and pid not in doc["queryWorkers"]  # type: ignore[operator]
        assert doc["busyWorkers"] == 0 and doc["busyFastWorkers"] == 0 and doc["status"] == "ok"
        # demoted without a slow-lane slot is stopped the same way: nothing runs on after its 503
        assert c.get(ms.query_url, params={"query": "ASK {}"}).json()["boolean"] is True


def test_heavy_aggregates_under_a_memory_limit_leave_small_queries_answered(store: Path) -> None:
    heavy = 6
    args = ["--quiet", "--workers", str(heavy), "--fast-workers", "2", "--fast-budget", "0.5"]
    args += ["--timeout", "120", "--worker-memory", "256"]
    with medsyn_server(store, extra_args=args) as ms, httpx.Client(timeout=150) as c:
        before = _rss_mib(ms.process.pid)
        answers: list[httpx.Response] = []

        def aggregate() -> None:
            with httpx.Client(timeout=150) as own:
                answers.append(own.get(ms.query_url, params={"query": GROUPS}))

        threads = [threading.Thread(target=aggregate) for _ in range(heavy)]
        for t in threads:
            t.start()
        small: list[int] = []
        while any(t.is_alive() for t in threads):
            r = c.get(ms.query_url, params={"query": "ASK { ?s ?p ?o }"})
            small.append(r.status_code)
            assert ms.process.poll() is None
        for t in threads:
            t.join()
        # every aggregate hit the 256 MiB limit in its own worker and was told so; none took the server down
        assert [a.status_code for a in answers] == [400] * heavy
        assert all("--worker-memory 256 MiB" in a.text for a in answers)
        assert small and set(small) == {200}
        assert ms.process.poll() is None and _rss_mib(ms.process.pid) < before + 100
        doc = _health(c, ms)
        assert doc["crashedQueries"] == heavy and doc["busyQueryWorkers"] == [] and doc["status"] == "ok"
        assert c.get(ms.query_url, params={"query": "ASK {}"}).json()["boolean"] is True


def test_every_worker_sees_a_write_before_the_next_query(store: Path, tmp_path: Path) -> None:
    """Workers read a snapshot as of their opening: after each write, the queries admitted next (on every idle
    worker, run concurrently so several are used) see it."""
    with medsyn_server(dataset_store(tmp_path / "s"), token=TOKEN, extra_args=["--quiet"]) as ms:
        auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/sparql-update"}
        count = "SELECT (COUNT(*) AS ?n) WHERE { GRAPH <urn:w> { ?s ?p ?o } }"
        with httpx.Client(timeout=60) as c:
            for i in range(1, 5):
                update = f"INSERT DATA {{ GRAPH <urn:w> {{ <urn:s{i}> <urn:p> {i} }} }}"
                assert c.post(ms.update_url, content=update, headers=auth).status_code == 204
                seen: list[str] = []
                readers = [threading.Thread(target=_read, args=(ms, count, seen)) for _ in range(4)]
                for t in readers:
                    t.start()
                for t in readers:
                    t.join()
                assert seen == [str(i)] * 4
            assert len(_health(c, ms)["queryWorkers"]) >= 2  # type: ignore[arg-type]


def _read(ms: RunningServer, query: str, into: list[str]) -> None:
    with httpx.Client(timeout=60) as own:
        r = own.get(ms.query_url, params={"query": query})
        into.append(r.json()["results"]["bindings"][0]["n"]["value"])


def test_worker_memory_option_is_checked(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "medsyn",
            "serve",
            "--store",
            str(dataset_store(tmp_path / "s")),
            "--worker-memory",
            "64",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["error: --worker-memory: 64 MiB is under the 256 MiB minimum"]


def test_a_killed_server_leaves_no_worker(store: Path) -> None:
    """kill -9 of the server while a worker runs an aggregate: the forkserver sees the server gone and exits, and the
    busy worker dies with it (an idle one would see its socket close; a busy one reads nothing until its query ends)."""
    with medsyn_server(store, extra_args=["--quiet", "--timeout", "300"]) as ms, httpx.Client(timeout=60) as c:
        thread = threading.Thread(target=_swallow, args=(ms.query_url, GROUPS))
        thread.start()
        deadline = time.monotonic() + 30
        while not (busy := list(_health(c, ms)["busyQueryWorkers"])):  # type: ignore[call-overload]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        workers = list(_health(c, ms)["queryWorkers"])  # type: ignore[call-overload]
        ms.process.kill()
        ms.process.wait(timeout=30)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in workers):
            assert time.monotonic() < deadline, f"workers outlived the killed server: {workers}, busy {busy}"
            time.sleep(0.1)
        thread.join(timeout=60)


def _swallow(url: str, query: str) -> None:
    with contextlib.suppress(httpx.HTTPError):
        httpx.get(url, params={"query": query}, timeout=120)


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (a zombie has ended, only its parent has not reaped it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_workers_start_with_the_malloc_tunables_and_the_operators_own_win(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The forkserver (so every worker) is started with glibc's larger free-block cache; a tunable the operator
    names in GLIBC_TUNABLES is theirs. Read from /proc/PID/environ of the running workers (which shows a list of
    tunables only up to its first ':': glibc splits the string where it lies; the merge is checked below)."""
    with medsyn_server(store, extra_args=["--quiet"]) as ms, httpx.Client(timeout=60) as c:
        workers = list(_health(c, ms)["queryWorkers"])  # type: ignore[call-overload]
        assert workers and {_environ(pid).get("GLIBC_TUNABLES") for pid in workers} == {MALLOC_TUNABLES}
        assert "GLIBC_TUNABLES" not in _environ(ms.process.pid)  # the server itself runs as it was started
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.tcache_count=3")
    with medsyn_server(store, extra_args=["--quiet"]) as ms, httpx.Client(timeout=60) as c:
        assert c.get(ms.query_url, params={"query": "ASK {}"}).json()["boolean"] is True
        workers = list(_health(c, ms)["queryWorkers"])  # type: ignore[call-overload]
        tunables = {_environ(pid).get("GLIBC_TUNABLES") for pid in workers}
        assert tunables == {"glibc.malloc.tcache_count=3"}


def test_the_operators_tunables_come_first_and_keep_their_own_values() -> None:
    assert pool_module._tunables(None) == pool_module._tunables("") == MALLOC_TUNABLES
    assert pool_module._tunables("glibc.malloc.mxfast=0") == "glibc.malloc.mxfast=0:" + MALLOC_TUNABLES
    assert pool_module._tunables("glibc.malloc.tcache_count=3:x=1") == "glibc.malloc.tcache_count=3:x=1"
