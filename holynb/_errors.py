"""Errors raised by holynb.

Every error is one line that says what happened and what to do. Every error carries
``.partial_text``: the text delivered before the failure ("" when none was).

    HolyError
    ├── ConfigError            bad or missing configuration (key, URL, option)
    ├── APIStatusError         the server answered with an error (.status_code, .body)
    │   ├── AuthenticationError    401 / 403: the key was refused
    │   └── RateLimitError         429: too many requests (.retry_after)
    ├── StreamInterrupted      the stream ended early (connection dropped, no [DONE])
    ├── StreamTimeout          a timeout fired (.phase: connect | first_token | idle | total)
    └── MalformedChunkError    a chunk was not valid JSON (.raw)

An error reported by the server inside the stream (an ``{"error": ...}`` payload, an
``event: error`` event or a WebSocket error frame) raises the ``APIStatusError`` family with
``.status_code`` taken from the error's code (or from its type when the code is not numeric).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "APIStatusError",
    "AuthenticationError",
    "ConfigError",
    "HolyError",
    "MalformedChunkError",
    "RateLimitError",
    "StreamInterrupted",
    "StreamTimeout",
]


class HolyError(Exception):
    """Base of every holynb error; ``.partial_text`` holds text received before the failure."""

    def __init__(self, message: str, *, partial_text: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.partial_text = partial_text

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class ConfigError(HolyError):
    """The configuration is missing or invalid (API key, base URL, an option)."""


class APIStatusError(HolyError):
    """The server answered with an error status or sent an error in the stream."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: Any = None,
        error_type: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        partial_text: str = "",
    ) -> None:
        super().__init__(message, partial_text=partial_text)
        self.status_code = status_code
        self.body = body
        self.error_type = error_type
        self.code = code
        # The server's "wait this long" hint in seconds (Retry-After and friends), if any.
        self.retry_after = retry_after


class AuthenticationError(APIStatusError):
    """The API key was refused (HTTP 401/403, WebSocket close 1008)."""


class RateLimitError(APIStatusError):
    """Too many requests (HTTP 429); ``.retry_after`` is the server's hint in seconds, if any."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        kwargs.setdefault("status_code", 429)
        super().__init__(message, **kwargs)


class StreamInterrupted(HolyError):
    """The stream ended before it was complete (connection dropped or closed without [DONE])."""


class StreamTimeout(HolyError):
    """A timeout fired; ``.phase`` is ``connect``, ``first_token``, ``idle`` or ``total``."""

    def __init__(self, message: str, *, phase: str, timeout: float, partial_text: str = "") -> None:
        super().__init__(message, partial_text=partial_text)
        self.phase = phase
        self.timeout = timeout


class MalformedChunkError(HolyError):
    """A stream chunk was not valid JSON; ``.raw`` holds its text (truncated to 200 chars)."""

    def __init__(self, message: str, *, raw: str, partial_text: str = "") -> None:
        super().__init__(message, partial_text=partial_text)
        self.raw = raw
