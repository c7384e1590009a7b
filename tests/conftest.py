"""Shared fixtures. Tests use the real data in ../shared/data and real stores; nothing is mocked but GPT-4."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from medsyn.kg.store import OxigraphStore
from medsyn.paths import ROOT, data_dir


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = data_dir()
    assert d.is_dir(), f"real data folder missing: {d}"
    return d


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def kg_store_dir(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """A full knowledge graph built once per session from the real data (closed again: open it yourself)."""
    from medsyn.kg.build import build_kg

    path = tmp_path_factory.mktemp("kg") / "store"
    build_kg(path, data=shared_data, progress=False)
    return path


@pytest.fixture(scope="module")
def embedded() -> Iterator[OxigraphStore]:
    """The shared SPARQL query-case dataset (tests/sparql_cases.py) in an embedded store: the reference answers."""
    from sparql_cases import load_dataset

    s = OxigraphStore.in_memory()
    load_dataset(s)
    yield s
    s.close()
