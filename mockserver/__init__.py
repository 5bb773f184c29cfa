"""mockserver: an offline upstream for holynb and any streaming client, in every major API.

Serves OpenAI chat completions (``POST /v1/chat/completions``, SSE and JSON; the WebSocket
``/v1/ws/chat``), OpenAI Responses (``POST /v1/responses``; WebSocket mode on the same path),
Anthropic Messages (``POST /v1/messages``) and Gemini (``POST /v1beta/models/{model}:
streamGenerateContent`` / ``:generateContent``), and their model lists, with realistic per-model
latency, replayed cassettes and injectable faults, from one process or several (``workers``).
See ``docs/mockserver.md``.
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
