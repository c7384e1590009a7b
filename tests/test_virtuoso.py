"""The remote-store path (``--endpoint``) end to end against a second real SPARQL store: Virtuoso Open Source
(Debian's ``virtuoso-opensource``, installed by ``scripts/test-services.sh``), a fresh instance in a temporary folder
on a free 127.0.0.1 port (:func:`medsyn.testing.servers.virtuoso_server`).

``kg build`` publishes into it, then sampling, ``generate`` with its provenance, ``audit verify``/``audit run``,
``export`` and curation run over it as users run them, and each gives what the same commands give on an embedded
Oxigraph store built from the same sources. What differs from Oxigraph is in docs/endpoint.md ("Virtuoso")."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from medsyn.kg.remote_store import RemoteStore
from medsyn.kg.store import OxigraphStore, Store
from medsyn.testing.commands import MEDSYN
from medsyn.testing.servers import RunningServer, openai_server, virtuoso_server

SOURCES = "icd10-minzdrav,wikimed,rumedtop3"  # the fewest that sampling and few-shot generation need
MS = "https://w3id.org/medsyn/"


@pytest.fixture(scope="module")
def virtuoso(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with virtuoso_server(tmp_path_factory.mktemp("virtuoso") / "db") as server:
        yield server
    assert server.process.poll() is not None  # stopped: no server left behind


def command(*args: str, server: RunningServer | None = None, data: Path | None = None) -> tuple[list[str], dict]:
    env = dict(os.environ)
    if server is not None:
        # What a user of Virtuoso sets (docs/endpoint.md): updates go to /sparql, its default graph is already the
        # union, and its SPARQL compiler wants INSERT DATA requests under ~5,000 lines.
        env.update(MEDSYN_UPDATE_ENDPOINT=server.update_url, MEDSYN_ENDPOINT_UNION="", MEDSYN_ENDPOINT_BATCH="1000")
    if data is not None:
        env["MEDSYN_DATA"] = str(data)
    where = ["--endpoint", server.query_url] if server is not None else []
    return [*MEDSYN, *args, *where], env


def medsyn(*args: str, server: RunningServer | None = None, data: Path | None = None) -> subprocess.CompletedProcess:
    argv, env = command(*args, server=server, data=data)
    r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    assert "Traceback" not in r.stderr, r.stderr
    return r


@pytest.fixture(scope="module")
def local(virtuoso: RunningServer, shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same sources built into Virtuoso (the command under test) and into an embedded store (the reference),
    the two builds at once."""
    store = tmp_path_factory.mktemp("local") / "store"
    argv, env = command("kg", "build", "-q", "--sources", SOURCES, "--store", str(store), data=shared_data)
    reference = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        r = medsyn("kg", "build", "-q", "--sources", SOURCES, server=virtuoso, data=shared_data)
        assert r.returncode == 0 and f"built {virtuoso.query_url}" in r.stdout, r.stderr
    finally:
        _, err = reference.communicate(timeout=600)
    assert reference.returncode == 0, err
    return store


def graph_sizes(store: Store) -> dict[str, int]:
    """Triples per MedSyn named graph (Virtuoso keeps system graphs of its own beside them)."""
    rows = store.query("SELECT ?g (COUNT(*) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } } GROUP BY ?g", union=False)
    return {r["g"].value: int(r["n"].value) for r in rows if r["g"].value.startswith(MS)}


def test_kg_build_publishes_every_graph_whole(virtuoso: RunningServer, local: Path) -> None:
    remote = RemoteStore(virtuoso.query_url, update_endpoint=virtuoso.update_url, union_parameter="")
    with OxigraphStore(local, read_only=True) as st:
        expected = graph_sizes(st)
    assert len(expected) >= 5 and graph_sizes(remote) == expected
    # The ontology's OWL lists are blank-node chains: they arrive connected (one INSERT template).
    ask = "ASK { GRAPH <https://w3id.org/medsyn/graph/ontology> { ?l <http://www.w3.org/1999/02/22-rdf-syntax-ns#rest> ?m . ?m <http://www.w3.org/1999/02/22-rdf-syntax-ns#first> ?x } }"  # noqa: E501
    assert remote.query(ask) is True


def test_sampling_draws_what_the_embedded_store_draws(virtuoso: RunningServer, local: Path, tmp_path: Path) -> None:
    args = ("sample", "--n", "6", "--codes", "J06,K29", "--seed", "4")
    assert medsyn(*args, "--out", str(tmp_path / "v.jsonl"), server=virtuoso).returncode == 0
    assert medsyn(*args, "--out", str(tmp_path / "l.jsonl"), "--store", str(local)).returncode == 0
    remote = (tmp_path / "v.jsonl").read_text().splitlines()
    assert len(remote) == 6 and remote == (tmp_path / "l.jsonl").read_text().splitlines()


def links(store: Store, code: str) -> dict[tuple[str, str], tuple[float, float]]:
    """A code's symptom links keyed by (label, source): one symptom may be linked by several sources (J06's
    «першение в горле» comes from wikimed, then from curation), and a key of the label alone kept whichever row the
    store returned last: that is why this comparison once failed under load (Virtuoso's row order varies). DISTINCT:
    a symptom that curation links again is declared in the curation graph too, and Oxigraph's union default graph
    then returns each row once per graph holding the label. Six significant digits: what Virtuoso 7.2 writes of a
    double in its results (2/3 reads back as 0.666667)."""
    q = f"""PREFIX ms: <https://w3id.org/medsyn/ontology#>
    SELECT DISTINCT ?label ?src ?w ?n WHERE {{ ?a a ms:SymptomAssociation ; ms:disease <{MS}id/icd10/{code}> ;
      ms:source ?src ;
      ms:symptom/<http://www.w3.org/2000/01/rdf-schema#label> ?label ; ms:weight ?w ; ms:normalizedWeight ?n }}"""
    rows = [
        ((r["label"].value, r["src"].value), (float(r["w"].value), float(f"{float(r['n'].value):.6g}")))
        for r in store.query(q)
    ]
    table = dict(rows)
    assert len(table) == len(rows), "two weights on one link"
    return table


def test_generate_audit_and_export_over_virtuoso(virtuoso: RunningServer, local: Path, tmp_path: Path) -> None:
    gen = ("generate", "--backend", "openai", "--n", "4", "--codes", "J06", "--seed", "3", "--no-progress")
    with openai_server(tmp_path / "openai.log") as api:
        r = medsyn(*gen, "--base-url", api.base_url, "--out", str(tmp_path / "v"), server=virtuoso)
        assert r.returncode == 0, r.stderr
        summary = json.loads(r.stdout.splitlines()[-1])
        r = medsyn(*gen, "--base-url", api.base_url, "--out", str(tmp_path / "l"), "--store", str(local))
        assert r.returncode == 0, r.stderr

    def notes(run: str) -> list[tuple]:
        rows = [json.loads(x) for x in (tmp_path / run / "notes.jsonl").read_text().splitlines()]
        return sorted((x["sample_id"], x["seed"], x["response"], tuple(x["symptoms"]), x["kg_version"]) for x in rows)

    assert summary["accepted"] == 4 and notes("v") == notes("l")

    r = medsyn("audit", "verify", str(tmp_path / "v"), "--json", server=virtuoso)
    report = json.loads(r.stdout)
    assert r.returncode == 0 and report["checked"] == 4 and report["ok"] == 4 and not report["failed"]
    r = medsyn("audit", "run", summary["run_id"], "--json", server=virtuoso)
    assert r.returncode == 0, r.stderr
    facts = json.loads(r.stdout)
    # The totals written when the run finished (Virtuoso once dropped them: see provenance.finish_run).
    assert int(facts["promptTokens"]) == summary["prompt_tokens"] > 0

    r = medsyn("export", str(tmp_path / "v"), "--out", str(tmp_path / "export"), server=virtuoso)
    assert r.returncode == 0 and "exported 4 notes" in r.stdout, r.stderr
    exported = [json.loads(x) for x in (tmp_path / "export/data/train.jsonl").read_text().splitlines()]
    assert sorted(x["symptoms"] for x in exported) == sorted(n[2] for n in notes("v"))


CURATION = (
    ("onto", "add-symptom", "J06", "першение в горле", "--weight", "3"),  # an existing symptom, a new source's link
    ("onto", "add-symptom", "J06", "саднение за грудиной", "--weight", "2"),  # a new symptom
    ("onto", "add-symptom", "J06", "першение в горле", "--weight", "4"),  # the same link, a new weight
    ("onto", "relabel", "саднение за грудиной", "саднение в горле"),
    ("onto", "remove", "жалобы на першение в горле", "--code", "J06"),
    ("onto", "merge-symptoms", "першение в горле", "саднение в горле"),
)


def test_curation_changes_virtuoso_as_it_changes_the_embedded_store(virtuoso: RunningServer, local: Path) -> None:
    remote = RemoteStore(virtuoso.query_url, update_endpoint=virtuoso.update_url, union_parameter="")
    with OxigraphStore(local, read_only=True) as st:
        before = links(st, "J06")
    assert links(remote, "J06") == before
    for change in CURATION:
        r = medsyn(*change, server=virtuoso)
        assert r.returncode == 0, (change, r.stderr)
        r = medsyn(*change, "--store", str(local))
        assert r.returncode == 0, (change, r.stderr)
        with OxigraphStore(local, read_only=True) as st:
            expected = links(st, "J06")
        assert links(remote, "J06") == expected, change  # the same links, weights renormalised alike
    assert expected != before and ("першение в горле", f"{MS}id/source/curation") in expected
    assert not any(label == "жалобы на першение в горле" for label, _ in expected)
    history = "SELECT (COUNT(DISTINCT ?a) AS ?n) WHERE { GRAPH <https://w3id.org/medsyn/graph/curation> { ?a a <http://www.w3.org/ns/prov#Activity> } }"  # noqa: E501
    with OxigraphStore(local, read_only=True) as st:
        recorded = int(next(iter(st.query(history)))["n"].value)
    assert recorded == len(CURATION) and int(next(iter(remote.query(history)))["n"].value) == recorded
