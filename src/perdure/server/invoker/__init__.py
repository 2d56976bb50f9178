"""The invoker: runs invocation attempts against service deployments.

HTTP layer, bottom up: ``http2`` (h2c client connection and streams), ``http2_pool``
(connections per origin), ``http1`` (HTTP/1.1 via aiohttp), ``transport`` (one attempt as an
`InvocationStream`, whatever the HTTP version, and `TransportPool`), ``transport_discovery``
(``GET /discover``); errors and status rules in ``transport_errors``.
"""
