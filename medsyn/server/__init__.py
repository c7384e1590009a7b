"""``medsyn serve``: a SPARQL 1.1 Protocol endpoint over one embedded Oxigraph store, as an ASGI app on uvicorn.

Routes: ``/sparql`` (alias ``/query``) answers queries by GET, form POST and direct POST, and describes the service
(SPARQL 1.1 Service Description) on a GET without a query; updates go to ``/update`` (or an ``update=`` form or an
``application/sparql-update`` body on ``/sparql``) and need ``Authorization: Bearer <token>`` on a server started
with a token; ``/store`` is the Graph Store Protocol (GET of a graph, the default graph or the whole dataset, streamed;
PUT/POST/DELETE with the token); ``/health`` reports the store and the workers; ``/`` is the YASGUI query page
(vendored, served from the package) with the files of ``sparql/`` as examples.

Why an ASGI app over pyoxigraph rather than the Oxigraph server behind a proxy: see docs/endpoint.md (measured: the
proxy hop cost 4-5x on small queries, and a proxy cannot cap rows nor fix Oxigraph's 200 answers cut by a timeout).

The process owns the store read-write (RocksDB allows one writer process) and runs updates; every update is one
transaction, flushed before it is answered. Queries run in worker processes (:class:`~medsyn.server.workers.Pool`)
that open the store read-only, each under an address-space limit (``worker_memory_mib``), and write the answer in
its format: a parser crash, a runaway aggregate or a query past its time limit costs one worker (killed and
replaced), never the server. A reader never sees half a write, and sees every write answered before it was admitted.

Default graph: the union of the named graphs (MedSyn keeps all data in named graphs, so SPARQLWrapper, rdflib and
YASGUI users see the data); ``union-default-graph=false`` on a request, or ``union_default_graph=False`` on the
server, gives the store's default graph instead.

Limits: two-level admission (:class:`Workers`). Every query starts in the fast lane (``fast_workers`` slots) with a
budget of ``fast_budget_s``; one still running past it needs a slow-lane slot (``workers``, shared with dumps) to go on
up to ``timeout_s``, and is answered 503 when none is free. So a fast slot frees within the budget and a small query is
answered, whatever long queries do. A query answered 503 (past ``timeout_s``, or demoted without a slow slot) is
stopped: its worker process is killed, so at most ``fast_workers + workers`` queries evaluate, and ``/health`` names
the lanes with no free slot (503 ``saturated`` when the fast lane has none). Bodies are refused before they are read
when over the limit (``max_query_bytes`` without a valid token, ``max_body_bytes`` with one).
uvicorn caps concurrent connections (``max_connections``; past it, 503) and closes idle keep-alive connections. SERVICE
and LOAD are refused unless their host is allowed; ``file:`` and other non-HTTP schemes always are.

Modules: :mod:`~medsyn.server.config` (options), :mod:`~medsyn.server.messages` (requests, answers, parsers),
:mod:`~medsyn.server.workers` (the two lanes and the worker processes), :mod:`~medsyn.server.querying` (what a
worker runs), :mod:`~medsyn.server.endpoint` (queries, updates, graphs, health), :mod:`~medsyn.server.results`
(result writers), :mod:`~medsyn.server.app` (ASGI) and :mod:`~medsyn.server.process` (uvicorn, :func:`make_server`).
"""

from medsyn.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(
    __name__,
    {
        "make_server": "process",
        "SparqlServer": "process",
        "ServerConfig": "config",
        "App": "app",
        "Endpoint": "endpoint",
        "Workers": "workers",
    },
)
