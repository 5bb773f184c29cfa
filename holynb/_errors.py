"""Errors raised by holynb.

Every error has ``.message`` (what happened, one line, no advice) and ``.hint`` (what a caller
of the Python API can do about it, may be ""); ``str(error)`` is the message followed by
`` — hint``, as a sentence. Front ends (the notebook magic, the panel, the CLI) show
``.message`` with advice in their own words. Every error carries ``.partial_text``: the text
delivered before the failure ("" when none was).

    HolyError
    ├── ConfigError            bad or missing configuration (key, URL, option, header)
    ├── APIStatusError         the server answered with an error (.status_code, .body, .location)
    │   ├── AuthenticationError    401 / 403: the key was refused
    │   └── RateLimitError         429: too many requests (.retry_after)
    ├── StreamInterrupted      the stream ended early (connection dropped, no [DONE])
    │   └── ConnectError           no connection was made (.kind: dns|refused|tls|proxy|other)
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
    "ConnectError",
    "HolyError",
    "MalformedChunkError",
    "RateLimitError",
    "StreamInterrupted",
    "StreamTimeout",
]


class HolyError(Exception):
    """Base of every holynb error: ``.message``, ``.hint`` and ``.partial_text``."""

    def __init__(self, message: str, *, hint: str = "", partial_text: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.partial_text = partial_text

    def __str__(self) -> str:
        text = f"{self.message} — {self.hint}" if self.hint else self.message
        return text if text.endswith((".", "!", "?")) else f"{text}."

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class ConfigError(HolyError):
    """The configuration is missing or invalid (API key, base URL, an option, a header)."""


class APIStatusError(HolyError):
    """The server answered with an error status or sent an error in the stream.

    ``.location`` is the redirect target of a 301/302/303 answer to a POST (else None).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: Any = None,
        error_type: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        location: str | None = None,
        hint: str = "",
        partial_text: str = "",
    ) -> None:
        super().__init__(message, hint=hint, partial_text=partial_text)
        self.status_code = status_code
        self.body = body
        self.error_type = error_type
        self.code = code
        # The server's "wait this long" hint in seconds (Retry-After and friends), if any.
        self.retry_after = retry_after
        self.location = location


class AuthenticationError(APIStatusError):
    """The API key was refused (HTTP 401/403, WebSocket close 1008)."""


class RateLimitError(APIStatusError):
    """Too many requests (HTTP 429); ``.retry_after`` is the server's hint in seconds, if any."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        kwargs.setdefault("status_code", 429)
        super().__init__(message, **kwargs)


class StreamInterrupted(HolyError):
    """The stream ended before it was complete (connection dropped or closed without [DONE])."""


class ConnectError(StreamInterrupted):
    """No connection was established; ``.kind`` says why, ``.host`` names the host.

    ``.kind`` is ``"dns"`` (the name did not resolve), ``"refused"`` (nothing listens there),
    ``"tls"`` (certificate, hostname or protocol refused: never retried), ``"proxy"`` (the proxy
    failed; ``.host`` is the proxy's) or ``"other"``.
    """

    def __init__(self, message: str, *, kind: str, host: str, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.kind = kind
        self.host = host


class StreamTimeout(HolyError):
    """A timeout fired; ``.phase`` is ``connect``, ``first_token``, ``idle`` or ``total``."""

    def __init__(
        self,
        message: str,
        *,
        phase: str,
        timeout: float,
        hint: str = "",
        partial_text: str = "",
    ) -> None:
        super().__init__(message, hint=hint, partial_text=partial_text)
        self.phase = phase
        self.timeout = timeout


class MalformedChunkError(HolyError):
    """A stream chunk was not valid JSON; ``.raw`` holds its text (truncated to 200 chars)."""

    def __init__(self, message: str, *, raw: str, hint: str = "", partial_text: str = "") -> None:
        super().__init__(message, hint=hint, partial_text=partial_text)
        self.raw = raw
