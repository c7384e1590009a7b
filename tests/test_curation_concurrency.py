"""Concurrent curation through a real SPARQL server (`oxigraph serve`, `medsyn serve`): two changes to the same
group committed at the same moment still leave every normalised weight = weight / largest weight."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from mkg_small import build_store

from medsyn.curation import edits as curation
from medsyn.kg.queries import run_named
from medsyn.kg.remote_store import RemoteStore
from medsyn.kg.store import OxigraphStore, to_python
from medsyn.kg.vocab import code_iri, source_iri
from medsyn.testing.servers import RunningServer, medsyn_server, oxigraph_server

TOKEN = "curators-token"


@pytest.fixture(scope="module", params=["oxigraph", "medsyn"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    d = tmp_path_factory.mktemp(request.param)
    if request.param == "oxigraph":
        with oxigraph_server(d / "store") as srv:
            yield srv
    else:
        OxigraphStore(d / "store").close()
        with medsyn_server(d / "store", token=TOKEN, extra_args=["--quiet"]) as srv:
            yield srv


def fresh(srv: RunningServer) -> RemoteStore:
    remote = RemoteStore(srv.query_url, token=srv.token)
    remote.update("DROP SILENT ALL")
    remote.add_quads(list(build_store().raw.quads_for_pattern(None, None, None, None)))
    return remote


def weights(store: RemoteStore, code: str) -> dict[str, tuple[float, float]]:
    rows = run_named(store, "curation/group_weights", disease=code_iri(code), source=source_iri("curation"))
    return {r["assoc"].value: (to_python(r["weight"]), to_python(r["normalized"])) for r in rows}


def _change(
    server: RunningServer, barrier: threading.Barrier, errors: list[BaseException], label: str, weight: float
) -> None:
    mine = RemoteStore(server.query_url, token=server.token)
    barrier.wait()  # both plan on the same state, then commit at once
    try:
        curation.add_symptom(mine, "G43.0", label, weight=weight, by="curator")
    except BaseException as exc:  # reported by the assertion in the test
        errors.append(exc)


def test_two_concurrent_changes_to_one_group_keep_weights_normalised(server: RunningServer) -> None:
    for trial in range(3):
        remote = fresh(server)
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        threads = [
            threading.Thread(target=_change, args=(server, barrier, errors, f"аура {trial}", 5.0)),
            threading.Thread(target=_change, args=(server, barrier, errors, f"фотопсия {trial}", 10.0)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        got = weights(remote, "G43.0")
        assert sorted(got.values()) == [(5.0, 0.5), (10.0, 1.0)], got
        assert run_named(remote, "checks/weight_not_normalised") == []
        history = run_named(remote, "curation/history")
        assert len(history) == 2  # both changes are recorded


def test_concurrent_cli_changes_over_an_endpoint(server: RunningServer) -> None:
    remote = fresh(server)
    env = {**os.environ, **({"MEDSYN_ENDPOINT_TOKEN": server.token} if server.token else {})}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "medsyn",
                "onto",
                "add-symptom",
                "G43.0",
                label,
                "--weight",
                w,
                "--endpoint",
                server.query_url,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for label, w in (("мерцающая скотома", "5"), ("вспышки света", "10"), ("зигзаги", "2.5"))
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [o[1] for o in outs]
    assert sorted(weights(remote, "G43.0").values()) == [(2.5, 0.25), (5.0, 0.5), (10.0, 1.0)]
    assert run_named(remote, "checks/weight_not_normalised") == []
