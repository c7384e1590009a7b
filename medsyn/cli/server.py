"""``medsyn serve``: run the SPARQL endpoint over a store until interrupted (Ctrl+C or SIGTERM)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from medsyn.paths import default_store_dir

if TYPE_CHECKING:
    from medsyn.server.process import SparqlServer


def serve(
    store: Path = typer.Option(None, "--store", help="Store directory (default: $MEDSYN_STORE or .medsyn/store)."),
    host: str = typer.Option("127.0.0.1", help="Address to bind; anything but loopback exposes the graph."),
    port: int = typer.Option(7879, help="TCP port (0 picks a free one)."),
    token: str = typer.Option(
        None, envvar="MEDSYN_SERVE_TOKEN", help="Enable SPARQL Update for requests with 'Authorization: Bearer TOKEN'."
    ),
    timeout: float = typer.Option(30.0, "--timeout", help="Per-query time limit in seconds (503 past it)."),
    max_rows: int = typer.Option(100_000, "--max-rows", help="Result-size cap (rows or triples) per query."),
    cors_origin: str = typer.Option(None, "--cors-origin", help="Allow browser calls from this origin ('*': any)."),
    union_default_graph: bool = typer.Option(
        True,
        "--union-default-graph/--no-union-default-graph",
        help="Default graph = union of named graphs (per request: union-default-graph=false turns it off).",
    ),
    workers: int = typer.Option(
        8, help="Slow lane: queries past the fast budget, and dumps, evaluated at once (503 past it)."
    ),
    fast_workers: int = typer.Option(
        None, "--fast-workers", help="Fast lane: queries within their first --fast-budget (default: --workers)."
    ),
    fast_budget: float = typer.Option(
        0.5, "--fast-budget", help="Seconds a query runs in the fast lane before it needs a slow-lane worker."
    ),
    worker_memory: int = typer.Option(
        2048, "--worker-memory", help="Address space of one query worker process, MiB (a query past it gets 400)."
    ),
    max_connections: int = typer.Option(256, "--max-connections", help="Concurrent connections (503 past it)."),
    max_connections_per_client: int = typer.Option(
        64, "--max-connections-per-client", help="Open connections per client address (503 and closed past it)."
    ),
    trusted_proxy: list[str] = typer.Option(
        [],
        "--trusted-proxy",
        help="Reverse proxy address or network whose X-Forwarded-For names the client (repeatable; default: none).",
    ),
    max_body_mib: int = typer.Option(64, "--max-body-mib", help="Largest request body with a valid token, MiB."),
    max_query_kib: int = typer.Option(2048, "--max-query-kib", help="Largest request body without a token, KiB."),
    allow_host: list[str] = typer.Option(
        [], "--allow-host", help="Host header accepted besides --host (repeatable; '*' turns the check off)."
    ),
    allow_service: list[str] = typer.Option(
        [], "--allow-service", help="Host that SPARQL SERVICE may query (repeatable; default: SERVICE refused)."
    ),
    allow_load: list[str] = typer.Option(
        [], "--allow-load", help="Host that SPARQL LOAD may fetch (repeatable; default: LOAD refused)."
    ),
    client_timeout: float = typer.Option(
        15.0, "--client-timeout", help="Seconds a client has to send a request head (or a body) before it is cut off."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No per-request log lines."),
) -> None:
    """Serve the store as a SPARQL 1.1 endpoint: /sparql, /update, /store, /health and the YASGUI page at /."""
    from medsyn.server.process import make_server  # local import keeps `medsyn --help` fast

    path = store if store is not None else default_store_dir()
    server = make_server(
        path, host=host, port=port, token=token, timeout_s=timeout, max_rows=max_rows, cors_origin=cors_origin,
        union_default_graph=union_default_graph, workers=workers, fast_workers=fast_workers,
        fast_budget_s=fast_budget, worker_memory_mib=worker_memory, max_connections=max_connections,
        max_connections_per_client=max_connections_per_client, trusted_proxies=tuple(trusted_proxy),
        max_body_bytes=max_body_mib * 1024 * 1024, max_query_bytes=max_query_kib * 1024,
        allow_hosts=tuple(allow_host), service_hosts=tuple(allow_service), load_hosts=tuple(allow_load),
        client_timeout_s=client_timeout, quiet=quiet,
    )  # fmt: skip
    _run(server, path, token is not None)


def _run(server: SparqlServer, path: Path, updates: bool) -> None:
    """Serve until SIGINT/SIGTERM, then free the store."""
    mode = "updates need the bearer token" if updates else "read-only"
    print(f"serving {path} at {server.url}/ ({mode}); Ctrl+C stops", file=sys.stderr, flush=True)
    try:
        server.serve_forever()  # uvicorn handles SIGINT/SIGTERM: stops accepting, finishes answers in flight
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    print("stopped", file=sys.stderr, flush=True)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
