"""The query page of `medsyn serve` in a real headless Chromium: it runs a query and renders the table."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from sparql_cases import PREFIXES, load_dataset

from medsyn.store import OxigraphStore
from medsyn.testing.servers import RunningServer, medsyn_server


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
            # Virtual time runs until the page is idle (the fetch and the rendering), then the DOM is dumped.
            "--virtual-time-budget=10000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_page_runs_a_query_and_shows_a_table(srv: RunningServer, tmp_path: Path) -> None:
    query = PREFIXES + "SELECT ?code ?label WHERE { ?c skos:notation ?code ; rdfs:label ?label } ORDER BY ?code ?label"
    dom = _dump_dom(f"{srv.base_url}/?{urlencode({'query': query, 'run': '1'})}", tmp_path / "profile")
    assert 'data-done="1"' in dom, dom[-2000:]
    assert "<th>code</th><th>label</th>" in dom
    assert "<td>M54.5</td>" in dom
    assert "Боль внизу спины" in dom and '<span class="lang"> @ru</span>' in dom
    assert "row(s) in" in dom


def test_page_shows_the_parser_message(srv: RunningServer, tmp_path: Path) -> None:
    dom = _dump_dom(f"{srv.base_url}/?{urlencode({'query': 'SELECT ?x WHERE {', 'run': '1'})}", tmp_path / "profile")
    assert "400: SPARQL syntax error: error at 1:" in dom
