"""One graph version: curation changes it, and `kg stats`, new samples, new notes and the server all report it."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from medsyn.kg.build import build_kg
from medsyn.kg.store import OxigraphStore
from medsyn.kg.version import graph_version
from medsyn.testing.commands import MEDSYN


@pytest.fixture
def store_dir(tmp_path: Path, shared_data: Path) -> Path:
    path = tmp_path / "store"
    build_kg(path, data=shared_data, sources=["wikimed", "rumedtop3"], progress=False)
    return path


def medsyn(*args: str, store: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "250"}
    return subprocess.run(
        [*MEDSYN, *args, "--store", str(store)], capture_output=True, text=True, env=env, timeout=300, check=False
    )


def stats_version(store: Path) -> str:
    done = medsyn("kg", "stats", store=store)
    assert done.returncode == 0, done.stderr
    m = re.search(r"^version (\S+) built", done.stdout, re.M)
    assert m, done.stdout
    return m.group(1)


def sample_versions(store: Path, out: Path) -> set[str]:
    done = medsyn("sample", "--out", str(out), "--n", "5", "--codes", "M54", store=store)
    assert done.returncode == 0, done.stderr
    return {json.loads(line)["kg_version"] for line in out.read_text(encoding="utf-8").splitlines()}


def test_curation_changes_the_version_that_stats_and_new_samples_cite(store_dir: Path, tmp_path: Path) -> None:
    before = stats_version(store_dir)
    assert before.startswith("sha256:") and "+curated" not in before
    assert sample_versions(store_dir, tmp_path / "before.jsonl") == {before}

    done = medsyn("onto", "add-symptom", "M54.5", "прострел в пояснице", "--source", "wikimed", store=store_dir)
    assert done.returncode == 0, done.stderr
    after = stats_version(store_dir)
    assert after != before and after.startswith(before + "+curated:1:")
    assert sample_versions(store_dir, tmp_path / "after.jsonl") == {after}

    # A second edit is a new version again, and the library reports the same string as the CLI.
    done = medsyn("onto", "remove", "прострел в пояснице", "--code", "M54.5", store=store_dir)
    assert done.returncode == 0, done.stderr
    third = stats_version(store_dir)
    assert third not in (before, after) and third.startswith(before + "+curated:2:")
    with OxigraphStore(store_dir, read_only=True) as s:
        assert graph_version(s) == third


def test_tables_cache_and_generation_follow_curation(store_dir: Path, tmp_path: Path) -> None:
    """In one process: the sampling table cache is keyed on the version, so an edit is seen by the next draw, and
    a run generated after the edit records the new version in its provenance."""
    from medsyn.curation.edits import add_symptom
    from medsyn.sampling.tables import load_tables

    with OxigraphStore(store_dir) as s:
        first = load_tables(s)
        assert first.kg_version == graph_version(s) and load_tables(s) is first
        add_symptom(s, "M54.5", "прострел в пояснице", source="wikimed", by="test")
        second = load_tables(s)
        assert second is not first and second.kg_version == graph_version(s) != first.kg_version
