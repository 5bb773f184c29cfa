"""What the notebook faces say when something fails: one line, what happened and what to do.

The client's errors carry ``.message`` (what happened, in plain words) and ``.hint`` (advice for
code that calls the client: ``idle_timeout=``, ``.partial_text`` ...). A notebook user is in a
cell or a chat panel, not in that code, so the faces show ``.message`` with advice written here
for their own controls: cell flags and ``%holy`` subcommands for ``%%holy``, the Retry button
and constructor arguments for ``ChatPanel``. One hint per line, never a Python field name.
"""

from __future__ import annotations

import re
from typing import Literal

from holynb import _config
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

__all__ = ["LINE_WIDTH", "Face", "advice", "error_line", "scrub", "what_happened"]

Face = Literal["magic", "panel"]

# The error line fits one line of a notebook output at this many columns.
LINE_WIDTH = 100
_HTTP_FROM_URL = re.compile(r"^HTTP (\d{3}) from \S+: ")
_TIMEOUT_WORDS = {
    "connect": "Could not connect within {seconds:g} s",
    "first_token": "No first token within {seconds:g} s",
    "idle": "Stalled: no data for {seconds:g} s",
    "total": "The reply took longer than {seconds:g} s",
}

_MAGIC_TIMEOUT_ADVICE = {
    "connect": "check the base URL, or allow longer: --connect-timeout 30",
    "first_token": "allow longer: --first-token-timeout 120",
    "idle": "allow longer pauses: --idle-timeout 60",
    "total": "allow longer: --timeout 1200",
}


def what_happened(exc: BaseException) -> str:
    """The failure in one line: the client's message (never its code-level hint), key masked.

    The endpoint URL of an HTTP error is left out (``HTTP 401: …``): the user knows where the
    cell sends its requests, and the line has room for the server's words instead.
    """
    if isinstance(exc, StreamTimeout) and exc.phase in _TIMEOUT_WORDS:
        # Said from the error's fields: the client's message names its keyword arguments.
        text = _TIMEOUT_WORDS[exc.phase].format(seconds=exc.timeout)
    elif isinstance(exc, MalformedChunkError):
        text = "A chunk of the reply was not valid JSON"
    elif (
        isinstance(exc, APIStatusError)
        and f"HTTP {exc.status_code} from " in exc.message  # an HTTP error status, not an event
        and (said := _server_says(exc))
    ):
        text = f"HTTP {exc.status_code}: {said}"
    elif isinstance(exc, HolyError):
        text = exc.message
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    text = _HTTP_FROM_URL.sub(r"HTTP \1: ", " ".join(text.split()))
    return scrub(text)


def _server_says(exc: APIStatusError) -> str:
    """The server's own error message, from the error body ('' if it gave none)."""
    error = exc.body.get("error") if isinstance(exc.body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"].strip()
    return error.strip() if isinstance(error, str) else ""


def advice(exc: BaseException, face: Face, *, api: str = "chat") -> str:
    """What the user can do about ``exc`` with the controls of ``face``, when it spoke ``api``."""
    magic = face == "magic"
    again = "run the cell again" if magic else "press Retry"
    if isinstance(exc, ConfigError):
        if "API key" in exc.message or "HOLYSHEEP_API_KEY" in exc.message:
            offline = "%holy mock start" if magic else "ChatPanel(mock=True)"
            return f"set HOLYSHEEP_API_KEY, or try offline: {offline}"
        return "check this cell's options: %holy config" if magic else "check the panel's settings"
    if isinstance(exc, AuthenticationError):
        if magic:
            return "check the key: %env HOLYSHEEP_API_KEY=sk-…"
        return "check HOLYSHEEP_API_KEY or the api_key given to the panel"
    if isinstance(exc, RateLimitError):
        return f"wait a little, then {again}"
    if isinstance(exc, APIStatusError):
        code = exc.status_code
        if code in (404, 405) and api != "chat":
            # A server that does not speak the API answers its path with 404 (or 405) too.
            return "check the model (%holy models) or the API (--api chat)" if magic else (
                "pick another model, or another API"
            )
        if code == 404:
            return "check the model name: %holy models" if magic else "pick another model"
        if code == 413:
            return "shorten the prompt or start afresh: --new" if magic else "shorten it, or Clear"
        if code == 529 or exc.error_type == "overloaded_error":  # Anthropic's "Overloaded"
            return f"the server is overloaded; wait a little, then {again}"
        if code >= 500:
            return f"the server failed; {again}"
        return "check this cell's options" if magic else "check the panel's settings"
    if isinstance(exc, StreamTimeout):
        if magic:
            return _MAGIC_TIMEOUT_ADVICE.get(exc.phase, again)
        return f"the server is slow; {again}"
    if isinstance(exc, MalformedChunkError):
        return again
    if isinstance(exc, ConnectError):
        return _connect_advice(exc, magic)
    if isinstance(exc, StreamInterrupted):
        return again
    return "details: %holy error" if magic else again


def _connect_advice(exc: ConnectError, magic: bool) -> str:
    """No connection was made: say what to check, by why it failed."""
    if exc.kind == "dns":
        offline = "%holy mock start" if magic else "ChatPanel(mock=True)"
        return f"check the base URL and the network (offline? {offline})"
    if exc.kind == "refused":
        return "is the server running? check the base URL"
    if exc.kind == "tls":
        if magic:
            return "trust its CA: %config HolyMagics.verify = '/path/to/ca.pem'"
        return "trust its CA: ChatPanel(verify='/path/to/ca.pem')"
    if exc.kind == "proxy":
        return "check the proxy (HTTPS_PROXY / NO_PROXY)"
    return "check the base URL, then " + ("run the cell again" if magic else "press Retry")


def error_line(
    exc: BaseException, face: Face, *, partial: bool = False, api: str | None = None
) -> str:
    """``⚠ what happened — what to do``, within :data:`LINE_WIDTH` columns (``api``: the API
    the request spoke, when known)."""
    tip = advice(exc, face, api=api or "chat")
    suffix = f" — {tip}"
    if partial:
        suffix += " · partial answer kept"
    message = what_happened(exc)
    room = LINE_WIDTH - len("⚠ ") - len(suffix)
    if len(message) > room:
        cut = message[: max(room - 1, 0)]
        # End at a word, never inside one, unless that would drop most of the message.
        space = cut.rfind(" ")
        if space > room * 0.6:
            cut = cut[:space]
        message = cut.rstrip(" .,;:") + "…"
    return f"⚠ {message}{suffix}"


def scrub(text: str) -> str:
    """Mask the configured API key wherever it might appear (a server may echo it back)."""
    try:
        key = _config.resolve_api_key()
    except ConfigError:
        return text
    return _config.scrub(text, key)
