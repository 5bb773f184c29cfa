"""The unit of a mock response: what is sent, and when.

Both sources of a reply — a replayed cassette and the deterministic generator — produce a list of
:class:`Frame`; faults transform that list; the SSE and WebSocket writers send it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Frame:
    """One write on the wire.

    ``at`` is the offset in seconds from the start of the response body (before speed scaling).
    For SSE, ``data`` is the exact bytes of one ``transport.write``; for WebSocket it is the text
    of one message (``str``) or a binary message (``bytes``).
    """

    at: float
    data: bytes | str


def join_frames(frames: Iterable[Frame]) -> bytes:
    """The frames' payloads as one body (text frames encoded as UTF-8)."""
    return b"".join(f.data if isinstance(f.data, bytes) else f.data.encode() for f in frames)
