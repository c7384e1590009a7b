"""``medsyn serve``: run the SPARQL endpoint over a store until interrupted (Ctrl+C or SIGTERM)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from types import FrameType

import typer

from medsyn.paths import default_store_dir


def _stop(signum: int, frame: FrameType | None) -> None:
    # SIGTERM unwinds serve_forever like Ctrl+C does, so the store is flushed and closed on the way out.
    raise KeyboardInterrupt


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
        False,
        "--union-default-graph/--no-union-default-graph",
        help="Default graph = union of named graphs even without the union-default-graph request parameter.",
    ),
    workers: int = typer.Option(8, help="Query worker threads."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No per-request log lines."),
) -> None:
    """Serve the store as a SPARQL 1.1 endpoint: /sparql, /update, /store, /health and a query page at /."""
    from medsyn.server import make_server  # local import keeps `medsyn --help` fast

    path = store if store is not None else default_store_dir()
    server = make_server(
        path,
        host=host,
        port=port,
        token=token,
        timeout_s=timeout,
        max_rows=max_rows,
        cors_origin=cors_origin,
        union_default_graph=union_default_graph,
        workers=workers,
        quiet=quiet,
    )
    signal.signal(signal.SIGTERM, _stop)
    updates = "updates need the bearer token" if token else "read-only"
    print(f"serving {path} at {server.url}/ ({updates}); Ctrl+C stops", file=sys.stderr, flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    stuck = server.abandoned_queries
    if stuck:
        # Interpreter exit would join the pool's threads, i.e. wait for queries nobody reads any more; the store is
        # already flushed and closed, so leave now.
        print(f"stopped ({stuck} timed-out queries abandoned)", file=sys.stderr, flush=True)
        os._exit(0)
    print("stopped", file=sys.stderr, flush=True)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
