"""mockserver: an offline OpenAI-compatible upstream for holynb and any streaming client.

Serves ``POST /v1/chat/completions`` (SSE and JSON), ``GET /v1/models`` and the WebSocket
``/v1/ws/chat`` with realistic per-model latency, replayed cassettes and injectable faults, from
one process or several (``workers``). See ``docs/mockserver.md``.
"""

from ._app import create_app
from ._config import MockConfig
from ._errors import MockError
from ._faults import FaultError, FaultSpec, parse_faults
from ._frames import Frame
from ._latency import PROFILES, LatencyProfile
from ._server import MOCK_KEY, MockServer

__all__ = [
    "MOCK_KEY",
    "PROFILES",
    "FaultError",
    "FaultSpec",
    "Frame",
    "LatencyProfile",
    "MockConfig",
    "MockError",
    "MockServer",
    "create_app",
    "parse_faults",
]
