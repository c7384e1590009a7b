"""The one way to open a store: the embedded Oxigraph store by path, or a remote SPARQL endpoint by URL.

It sits above both implementations (:mod:`medsyn.kg.store`, :mod:`medsyn.kg.remote_store`), so neither imports the
other's module to be opened.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medsyn.kg.store import OxigraphStore, Store
from medsyn.paths import default_store_dir


def open_store(
    store: str | Path | None = None,
    *,
    endpoint: str | None = None,
    read_only: bool = False,
    create: bool = False,
    **endpoint_options: Any,
) -> Store:
    """Open the embedded store at ``store`` (default ``.medsyn/store``) or a remote SPARQL ``endpoint``.

    A missing store is refused unless ``create`` (only ``kg build`` and ``onto restore`` create stores).

    ``endpoint_options`` (update_endpoint, user, password, token) go to the remote store.
    """
    if endpoint:
        from medsyn.kg.remote_store import RemoteStore  # local import: only the remote path needs SPARQLWrapper

        return RemoteStore(endpoint, **endpoint_options)
    return OxigraphStore(Path(store) if store is not None else default_store_dir(), read_only=read_only, create=create)
