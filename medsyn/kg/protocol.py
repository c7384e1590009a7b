"""What ``medsyn serve`` and :class:`~medsyn.kg.remote_store.RemoteStore` agree on beyond SPARQL 1.1: one response
header and one request parameter. Both sides import them from here, the client never from the server."""

TRUNCATED_HEADER = "X-Medsyn-Truncated"
"""Response header of `medsyn serve` when a result hit the row cap; RemoteStore reports it."""
STORE_DEFAULT_GRAPH = "store-default-graph"
"""Request parameter of `medsyn serve` (which defaults to the union): answer from the store's default graph. Unlike
``union-default-graph=false`` (which the Oxigraph server reads as "union"), other servers ignore it."""
