"""Keys out of recordings: the secrets a request carried and anything key-shaped."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from .._frames import Frame

__all__ = ["QUERY_KEYS", "REDACTED", "Scrubber", "secrets_of"]

REDACTED = "[REDACTED]"
QUERY_KEYS = ("key", "api_key", "api-key", "apikey", "access_token", "token")
_GENERIC = (
    rb"(?P<q>[?&](?:" + b"|".join(re.escape(k.encode()) for k in QUERY_KEYS) + rb")=)"
    rb"[^&\s\"'\\<>]+"
    rb"|(?P<b>Bearer\s+)[A-Za-z0-9._~+/=-]{8,}"
    rb"|\bsk-[A-Za-z0-9_-]{16,}"
)


class Scrubber:
    """Replaces API keys (the given secrets and anything key-shaped) with ``[REDACTED]``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        exact = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)
        alternatives = [re.escape(s.encode()) for s in exact] + [_GENERIC]
        self._re = re.compile(b"|".join(alternatives))

    def _sub(self, m: re.Match[bytes]) -> bytes:
        prefix = m.group("q") or m.group("b") or b""
        return prefix + REDACTED.encode()

    def bytes(self, data: bytes) -> bytes:
        """Scrub raw bytes."""
        return self._re.sub(self._sub, data)

    def text(self, text: str) -> str:
        """Scrub a string."""
        return self.bytes(text.encode("utf-8", "surrogatepass")).decode("utf-8", "surrogatepass")

    def value(self, value: Any) -> Any:
        """Scrub every string inside a JSON value."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {self.text(k): self.value(v) for k, v in value.items()}
        return value

    def frames(self, frames: list[Frame]) -> list[Frame]:
        """Scrub a byte stream cut into writes, keeping every write boundary outside a key."""
        blobs = [f.data for f in frames if isinstance(f.data, bytes)]
        if len(blobs) != len(frames):  # WebSocket messages: each one is whole
            return [Frame(f.at, self.text(f.data) if isinstance(f.data, str) else
                          self.bytes(f.data)) for f in frames]
        joined = b"".join(blobs)
        spans = [(m.start(), m.end(), self._sub(m)) for m in self._re.finditer(joined)]
        if not spans:
            return list(frames)
        out: list[Frame] = []
        pos = 0
        for frame in frames:
            start, end = pos, pos + len(frame.data)
            pos = end
            piece = bytearray()
            i = start
            for s, e, repl in spans:
                if e <= i or s >= end:
                    continue
                if s >= i:
                    piece += joined[i:s]
                    piece += repl  # the replacement goes where the key began
                i = max(i, min(e, end))
            piece += joined[i:end]
            out.append(Frame(frame.at, bytes(piece)))
        return out


def secrets_of(request: web.Request) -> list[str]:
    """The keys a request carries: ``Authorization``, ``x-api-key``, ``x-goog-api-key`` and
    key-like URL parameters."""
    found = []
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    found.append(token.strip() if scheme.lower() == "bearer" else auth.strip())
    found += [request.headers.get(name, "").strip() for name in ("x-api-key", "x-goog-api-key")]
    found += [v for k, v in request.query.items() if k.lower() in QUERY_KEYS]
    return [s for s in found if s]
