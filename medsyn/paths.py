"""Where the project's files live: ontology, SPARQL queries, shared data, default store.

``ontology/`` and ``sparql/`` sit at the top of the repository; a built wheel carries them as ``medsyn/_data/``
(``setup.py`` copies them at build time). A checkout (or an editable install of one) uses the top-level folders,
an installed wheel its own copy.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
ROOT = PACKAGE_DIR.parent


def _resource(name: str) -> Path:
    in_checkout = ROOT / name
    # pyproject.toml beside the package tells a checkout from site-packages (where a stray "sparql" could exist).
    if in_checkout.is_dir() and (ROOT / "pyproject.toml").is_file():
        return in_checkout
    return PACKAGE_DIR / "_data" / name


ONTOLOGY_DIR = _resource("ontology")
SPARQL_DIR = _resource("sparql")


def data_dir() -> Path:
    """The shared real-data folder: ``$MEDSYN_DATA`` or ``../shared/data`` beside the checkout."""
    env = os.environ.get("MEDSYN_DATA")
    return Path(env) if env else ROOT.parent / "shared" / "data"


def default_store_dir() -> Path:
    """``$MEDSYN_STORE`` or ``.medsyn/store`` in the working directory."""
    env = os.environ.get("MEDSYN_STORE")
    return Path(env) if env else Path(".medsyn") / "store"
