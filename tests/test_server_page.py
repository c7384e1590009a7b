"""The YASGUI query page of `medsyn serve` in a real headless Chromium: one query of each kind (SELECT, ASK,
CONSTRUCT, DESCRIBE) runs from the page and its rendered result is checked; the example menu lists sparql/."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from sparql_cases import PREFIXES, load_dataset

from medsyn.kg.store import OxigraphStore
from medsyn.testing.servers import RunningServer, medsyn_server

M545 = "https://w3id.org/medsyn/id/icd10/M54.5"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    path = tmp_path_factory.mktemp("page") / "store"
    s = OxigraphStore(path)
    load_dataset(s)
    s.close()
    with medsyn_server(path, extra_args=["--quiet"]) as server:
        yield server


def _dump_dom(url: str, profile: Path) -> str:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is missing: run scripts/test-services.sh"
    proc = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            # Virtual time runs until the page is idle (the query and the rendering), then the DOM is dumped.
            "--virtual-time-budget=15000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _results_text(dom: str) -> str:
    """The text YASR rendered in the results pane (tags dropped, spaces squeezed)."""
    start = dom.find('class="yasr_results"')
    assert start > 0, dom[-2000:]
    return " ".join(re.sub(r"<[^>]+>", " ", dom[start : start + 200_000]).split())


def _run(srv: RunningServer, query: str, profile: Path) -> str:
    dom = _dump_dom(f"{srv.base_url}/?{urlencode({'query': query, 'run': '1'})}", profile)
    assert 'data-done="1"' in dom, "the page never rendered an answer"
    return _results_text(dom)


def test_select_renders_a_table(srv: RunningServer, tmp_path: Path) -> None:
    text = _run(srv, PREFIXES + "SELECT ?code ?label WHERE { ?c skos:notation ?code ; rdfs:label ?label }", tmp_path)
    assert "code label" in text and "M54.5" in text and "Боль внизу спины" in text


def test_ask_renders_the_boolean(srv: RunningServer, tmp_path: Path) -> None:
    yes = _run(srv, PREFIXES + 'ASK { ?c skos:notation "M54.5" }', tmp_path / "yes")
    no = _run(srv, PREFIXES + 'ASK { ?c skos:notation "no such code" }', tmp_path / "no")
    assert yes.split("> ", 1)[1].startswith("True") and no.split("> ", 1)[1].startswith("False")


def test_construct_renders_triples(srv: RunningServer, tmp_path: Path) -> None:
    text = _run(srv, PREFIXES + "CONSTRUCT { ?c skos:notation ?n } WHERE { ?c skos:notation ?n }", tmp_path)
    assert "subject predicate object" in text and "icd10/M54.5" in text and '"M54.5"' in text


def test_describe_renders_triples(srv: RunningServer, tmp_path: Path) -> None:
    text = _run(srv, f"DESCRIBE <{M545}>", tmp_path)
    assert "subject predicate object" in text and "ICD10Subcode" in text and "icd10/M54" in text


def test_example_menu_lists_the_query_files(srv: RunningServer, tmp_path: Path) -> None:
    dom = _dump_dom(srv.base_url + "/", tmp_path)
    assert re.search(r"<option value=\"\d+\">sampling/code_symptoms</option>", dom), dom[-2000:]
