"""``medsyn serve``: the SPARQL 1.1 Protocol endpoint over one embedded store (ASGI on uvicorn), its result
writers, limits and the YASGUI page.
"""

from medsyn.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(
    __name__,
    {
        "make_server": "app",
        "ServerConfig": "app",
        "SparqlServer": "app",
        "App": "app",
        "Endpoint": "app",
    },
)
