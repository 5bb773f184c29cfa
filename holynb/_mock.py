"""The one way holynb's faces start the bundled mock server (offline, no key needed).

``%holy mock start``, ``ChatPanel(mock=...)``, ``holynb demo`` / ``--mock`` and ``holynb bench``
all start ``mockserver.MockServer`` through here, with the same options and the same account
of what they do. ``mockserver`` is imported only when a mock is asked for.

Pace: ``tps`` / ``ttft_ms`` / ``jitter_ms`` shape *generated* replies. Replies replayed from a
cassette keep the pace they were recorded at, scaled by ``speed`` only (a recording has its own
timing; re-timing it per token would no longer replay what was recorded). :func:`describe`
says so whenever ``tps`` is given, so nobody expects a cassette to follow it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mockserver import MockServer

__all__ = ["MOCK_OPTIONS", "describe", "mock_key", "running_mock", "start_mock"]

# The options every face passes through (MockServer keywords of the same names).
MOCK_OPTIONS = (
    "tps", "ttft_ms", "jitter_ms", "seed", "speed", "fault", "cassettes", "reasoning_tokens",
)


def _options(options: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(MOCK_OPTIONS))
    if unknown:
        raise TypeError(
            f"unknown mock option(s) {', '.join(unknown)}; known: {', '.join(MOCK_OPTIONS)}"
        )
    return {name: value for name, value in options.items() if value is not None}


def mock_key() -> str:
    """The API key the bundled mock accepts."""
    from mockserver import MOCK_KEY

    return MOCK_KEY


def start_mock(**options: Any) -> MockServer:
    """Start the bundled mock on its own daemon thread; stop it with ``.stop()``."""
    from mockserver import MockServer

    return MockServer(**_options(options)).start()


@contextlib.asynccontextmanager
async def running_mock(**options: Any) -> AsyncIterator[MockServer]:
    """The bundled mock running on the current event loop for the ``async with`` block."""
    from mockserver import MockServer

    async with MockServer(**_options(options)) as server:
        yield server


def describe(server: MockServer, **options: Any) -> str:
    """One line: where the mock runs and how fast it answers (and what ``tps`` does not do)."""
    opts = _options(options)
    pace = []
    if opts.get("ttft_ms") is not None:
        pace.append(f"first token after {opts['ttft_ms']:g} ms")
    if opts.get("tps") is not None:
        pace.append(f"{opts['tps']:g} tok/s" if opts["tps"] else "tokens as fast as possible")
    if opts.get("reasoning_tokens"):
        pace.append(f"{opts['reasoning_tokens']} reasoning tokens first")
    line = f"Mock server at {server.url}"
    line += " · generated replies: " + (", ".join(pace) if pace else "each model's own pace")
    speed = opts.get("speed", 1.0)
    if "tps" in opts or speed != 1.0:
        replay = f"their recorded pace × {speed:g}" if speed else "full speed"
        line += f" · cassettes replay at {replay} (set by speed, not tps)"
    return line
