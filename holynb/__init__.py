"""holynb: stream OpenAI-compatible chat completions into Jupyter.

The public names live in private modules and are imported lazily on first use, so that
``import holynb`` stays cheap (aiohttp and IPython load only when needed).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> private module that defines it
_EXPORTS: dict[str, str] = {
    "APIStatusError": "holynb._errors",
    "AsyncClient": "holynb._client",
    "AuthenticationError": "holynb._errors",
    "ChatPanel": "holynb.notebook.panel",
    "Client": "holynb._sync",
    "ConfigError": "holynb._errors",
    "ConnectError": "holynb._errors",
    "ContentDelta": "holynb._events",
    "HolyError": "holynb._errors",
    "HolyMagics": "holynb.notebook.magic",
    "MalformedChunkError": "holynb._errors",
    "RateLimitError": "holynb._errors",
    "ReasoningDelta": "holynb._events",
    "StreamEvent": "holynb._events",
    "StreamInterrupted": "holynb._errors",
    "StreamStats": "holynb._stats",
    "StreamTimeout": "holynb._errors",
    "ToolCallDelta": "holynb._events",
}

__all__ = [
    "APIStatusError",
    "AsyncClient",
    "AuthenticationError",
    "ChatPanel",
    "Client",
    "ConfigError",
    "ConnectError",
    "ContentDelta",
    "HolyError",
    "HolyMagics",
    "MalformedChunkError",
    "RateLimitError",
    "ReasoningDelta",
    "StreamEvent",
    "StreamInterrupted",
    "StreamStats",
    "StreamTimeout",
    "ToolCallDelta",
    "__version__",
    "load_ipython_extension",
    "unload_ipython_extension",
]

if TYPE_CHECKING:
    from holynb._client import AsyncClient
    from holynb._errors import (
        APIStatusError,
        AuthenticationError,
        ConfigError,
        ConnectError,
        HolyError,
        MalformedChunkError,
        RateLimitError,
        StreamInterrupted,
        StreamTimeout,
    )
    from holynb._events import ContentDelta, ReasoningDelta, StreamEvent, ToolCallDelta
    from holynb._stats import StreamStats
    from holynb._sync import Client
    from holynb.notebook.magic import HolyMagics
    from holynb.notebook.panel import ChatPanel


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'holynb' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return __all__


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%%holy`` / ``%holy`` (called by ``%load_ext holynb``)."""
    from holynb.notebook.magic import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Undo :func:`load_ipython_extension` (called by ``%unload_ext holynb``)."""
    from holynb.notebook.magic import unload_ipython_extension as _unload

    _unload(ipython)
