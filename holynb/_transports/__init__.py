"""The network layer: one aiohttp session per client for SSE, JSON and WebSocket requests.

``config`` resolves TLS and proxy settings once, when a client is created (no aiohttp import);
``session`` owns the aiohttp ``ClientSession`` (one connector, one SSL context, one proxy policy),
follows redirects and maps every network failure to holynb's errors; ``sse`` and ``ws`` read
streams over it.
"""
