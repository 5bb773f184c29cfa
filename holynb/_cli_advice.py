"""What the command line says when something fails: ``holynb: error: what happened — what to do``.

The client's errors carry ``.message`` (what happened) and ``.hint`` (advice for Python code:
``idle_timeout=``, ``.partial_text`` ...). The CLI user types commands, so the advice here names
``holynb`` commands and flags instead. The notebook faces have their own wording in
``holynb/notebook/messages.py``.
"""

from __future__ import annotations

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

__all__ = ["advice", "error_message"]


def advice(exc: BaseException) -> str:
    """What to do about ``exc`` from the command line ('' when there is nothing useful)."""
    if isinstance(exc, ConfigError):
        if "API key" in exc.message or "HOLYSHEEP_API_KEY" in exc.message:
            return "set HOLYSHEEP_API_KEY, or run offline: holynb chat --mock (or holynb demo)"
        if "no WebSocket mode" in exc.message:
            return "use --transport sse (or --api chat / responses over WebSocket)"
        return ""
    if isinstance(exc, AuthenticationError):
        return "check HOLYSHEEP_API_KEY"
    if isinstance(exc, RateLimitError):
        return "wait a little and try again"
    if isinstance(exc, APIStatusError):
        if exc.status_code == 404:
            return "check the model name: holynb models"
        if exc.status_code == 413:
            return "shorten the prompt"
        if exc.status_code >= 500:
            return "the server failed; try again"
        return ""
    if isinstance(exc, StreamTimeout):
        return "the server is slow or unreachable; try again"
    if isinstance(exc, MalformedChunkError):
        return "the server sent a broken chunk; try again"
    if isinstance(exc, ConnectError):
        return {
            "dns": "check --base-url and the network (offline? add --mock)",
            "refused": "is the server running? check --base-url",
            "tls": "trust its CA with --ca-bundle PATH (or skip checks with --insecure)",
            "proxy": "check the proxy (HTTPS_PROXY / NO_PROXY)",
        }.get(exc.kind, "check --base-url and try again")
    if isinstance(exc, StreamInterrupted):
        return "try again"
    return ""


def error_message(exc: BaseException) -> str:
    """``what happened — what to do`` on one line (no key masking: the caller does that)."""
    if isinstance(exc, HolyError):
        message = exc.message
    else:
        message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    message = " ".join(message.split())
    tip = advice(exc)
    return f"{message} — {tip}" if tip else message
