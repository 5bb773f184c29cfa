"""The APIs holynb speaks, one module each: request path, auth, body, stream parser.

An API module provides an :class:`~holynb._apis.base.APISpec`: the request path (and the
WebSocket path, if the API has one), the auth headers for a key, a body builder, a stream parser
(decoded SSE events or WebSocket frames → typed events, finish reason, usage, tool calls and
errors, see :class:`~holynb._apis.base.StreamParser`) and a parser for the non-streamed reply.
"""

from __future__ import annotations

import importlib

from holynb._apis.base import APISpec

__all__ = ["APISpec", "load_api"]

_MODULES = {
    "chat": "holynb._apis.chat",
    "responses": "holynb._apis.responses",
    "messages": "holynb._apis.messages",
}


def load_api(name: str) -> APISpec:
    """The spec of API ``name`` (``"chat"``, ``"responses"`` or ``"messages"``)."""
    return importlib.import_module(_MODULES[name]).API
