"""What ``medsyn serve`` is started with: :class:`ServerConfig` and the body limits."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_BODY = 64 * 1024 * 1024
MAX_QUERY_BODY = 2 * 1024 * 1024
DUMP_CHUNK = 5000  # quads per streamed piece of a Graph Store GET
WORKER_MEMORY_MIB = 2048  # address space of one query worker process (see Pool)
MIN_WORKER_MEMORY_MIB = 256  # a worker maps ~130 MiB before its first query
BAD_TOKEN_LIMIT = 10  # wrong bearer tokens per client address and minute before 429 (the right one always passes)


@dataclass(frozen=True)
class ServerConfig:
    """Options of one endpoint. ``token=None`` disables updates; ``cors_origin=None`` sends no CORS headers.

    ``allow_hosts``: Host header values accepted besides the bound address (and the loopback names when bound to
    loopback); ``"*"`` turns the check off. ``service_hosts``/``load_hosts``: hosts that SERVICE and LOAD may reach
    (empty: SERVICE and LOAD are refused).
    """

    token: str | None = None
    timeout_s: float = 30.0
    max_rows: int = 100_000
    cors_origin: str | None = None
    union_default_graph: bool = True
    workers: int = 8  # the slow lane (see Workers)
    fast_workers: int = 8
    fast_budget_s: float = 0.5
    worker_memory_mib: int = WORKER_MEMORY_MIB
    max_connections: int = 256
    max_connections_per_client: int = 64  # per peer address (trusted proxies excepted): one address cannot fill the cap
    trusted_proxies: tuple[str, ...] = ()  # peers (addresses or networks) whose X-Forwarded-For is believed
    max_body_bytes: int = MAX_BODY
    max_query_bytes: int = MAX_QUERY_BODY
    host: str = "127.0.0.1"
    allow_hosts: tuple[str, ...] = ()
    service_hosts: tuple[str, ...] = ()
    load_hosts: tuple[str, ...] = ()
    client_timeout_s: float = 15.0  # for a request head after the connection (or the last answer), and for a body
    quiet: bool = False
    log: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr, flush=True))
