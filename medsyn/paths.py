"""Where the project's files live: ontology, SPARQL queries, shared data, default store."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ONTOLOGY_DIR = ROOT / "ontology"
SPARQL_DIR = ROOT / "sparql"


def data_dir() -> Path:
    """The shared real-data folder: ``$MEDSYN_DATA`` or ``../shared/data`` beside the checkout."""
    env = os.environ.get("MEDSYN_DATA")
    return Path(env) if env else ROOT.parent / "shared" / "data"


def default_store_dir() -> Path:
    """``$MEDSYN_STORE`` or ``.medsyn/store`` in the working directory."""
    env = os.environ.get("MEDSYN_STORE")
    return Path(env) if env else Path(".medsyn") / "store"
