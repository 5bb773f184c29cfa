"""Server errors → the APIStatusError family: HTTP error replies and in-stream error objects.

Shared by every API module and transport: an HTTP status with its body, an ``{"error": {...}}``
payload (SSE data, ``event: error``, a WebSocket frame, or a JSON body sent with a 2xx status).
"""

from __future__ import annotations

from typing import Any

import orjson

from holynb._config import mask_key, scrub
from holynb._errors import APIStatusError, AuthenticationError, RateLimitError

__all__ = [
    "error_event_payload",
    "error_from_payload",
    "error_from_status",
    "one_line",
    "redirect_error",
]

# OpenAI error codes / types (as sent in-stream, without an HTTP status) -> the matching status.
_CODE_STATUS = {
    "invalid_api_key": 401,
    "forbidden": 403,
    "model_not_found": 404,
    "timeout": 408,
    "conflict": 409,
    "context_length_exceeded": 400,
    "request_too_large": 413,
    "rate_limit_exceeded": 429,
    "internal_error": 500,
    "bad_gateway": 502,
    "server_busy": 503,
    "gateway_timeout": 504,
}
_TYPE_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "timeout_error": 408,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "requests": 429,
    "tokens": 429,
    "server_error": 500,
    "api_error": 500,
    "overloaded_error": 529,  # Anthropic's "overloaded" status
}
# Advice for code users (``.hint``), by status.
_ADVICE = {
    400: "check the request (messages, max_tokens within the model's limit, parameters)",
    401: "check the API key (HOLYSHEEP_API_KEY or api_key=...)",
    403: "check that the key may use this model or endpoint",
    404: "check the model name (client.models() lists them) and the base URL",
    408: "the server timed out; retry",
    409: "retry the request",
    413: "send fewer or shorter messages (this is not retried)",
    422: "check the request parameters",
    429: "slow down or wait, then retry",
}


def advice(status: int) -> str:
    """What a code user can do about ``status``."""
    if status in _ADVICE:
        return _ADVICE[status]
    if status >= 500:
        return "the server failed; retry later"
    return "check the request"


def one_line(text: str, limit: int = 300) -> str:
    """``text`` on one line, cut to ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _status_for(err: dict[str, Any], default: int) -> int:
    # WebSocket error frames may carry the HTTP status they stand for.
    status = err.get("status")
    if isinstance(status, int) and 100 <= status <= 599:
        return status
    code = err.get("code")
    if isinstance(code, int) and 100 <= code <= 599:
        return code
    if isinstance(code, str):
        if code.isdigit() and 100 <= int(code) <= 599:
            return int(code)
        if code in _CODE_STATUS:
            return _CODE_STATUS[code]
    return _TYPE_STATUS.get(str(err.get("type")), default)


def _error_class(status: int) -> type[APIStatusError]:
    if status in (401, 403):
        return AuthenticationError
    if status == 429:
        return RateLimitError
    return APIStatusError


def _what(status: int) -> str:
    return "The request is too large" if status == 413 else "Server error"


def error_from_payload(
    payload: Any,
    *,
    secrets: tuple[str | None, ...],
    partial_text: str = "",
    where: str = "in the stream",
    default_status: int = 500,
) -> APIStatusError:
    """Map an ``{"error": {...}}`` payload to the APIStatusError family."""
    err = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(err, dict):
        err = {"message": str(err if err is not None else payload)}
    status = _status_for(err, default_status)
    raw_message = scrub(str(err.get("message") or "no message"), *secrets)
    code = err.get("code")
    label = f"{status} {code}" if code else str(status)
    hint = advice(status)
    if partial_text:
        hint += "; .partial_text holds the text received before the error"
    return _error_class(status)(
        f"{_what(status)} {where} ({label}): {one_line(raw_message)}",
        hint=hint,
        status_code=status,
        body=_scrub_body(payload, secrets),
        error_type=err.get("type"),
        code=None if code is None else str(code),
        retry_after=_number(err.get("retry_after")),
        partial_text=partial_text,
    )


def error_from_status(
    status: int,
    body: bytes,
    *,
    url: str,
    secrets: tuple[str | None, ...],
    retry_after: float | None,
    key: str | None = None,
) -> APIStatusError:
    """Map an HTTP error response (status >= 400) to the APIStatusError family."""
    text = scrub(body.decode("utf-8", "replace"), *secrets)
    parsed: Any = text
    error_type = code = None
    detail = one_line(text, 200) or "(empty body)"
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        err = parsed["error"]
        detail = one_line(str(err.get("message") or "no message"))
        error_type = err.get("type")
        code = None if err.get("code") is None else str(err.get("code"))
    elif isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        detail = one_line(parsed["error"])
    hint = advice(status)
    if status == 401:
        hint += f"; the key in use is {mask_key(key)}"
    prefix = "The request is too large: " if status == 413 else ""
    return _error_class(status)(
        f"{prefix}HTTP {status} from {url}: {detail}",
        hint=hint,
        status_code=status,
        body=parsed,
        error_type=error_type,
        code=code,
        retry_after=retry_after,
    )


def redirect_error(status: int, method: str, url: str, location: str, path: str) -> APIStatusError:
    """A 301/302/303 answer to a POST: following it would turn the request into a GET."""
    hint = "update the base URL"
    if location.endswith(path):
        hint = f"use base_url={location[: -len(path)]!r}"
    return APIStatusError(
        f"{url} moved to {location} (HTTP {status}); a {method} is not re-sent to a "
        f"{status} redirect",
        hint=hint,
        status_code=status,
        location=location,
    )


def error_event_payload(data: str) -> str:
    """``event: error`` data as an ``{"error": ...}`` payload (its data may be plain text)."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        obj = None
    if isinstance(obj, dict) and "error" in obj:
        return data
    message = obj if isinstance(obj, dict) else {"message": data or "error event"}
    return orjson.dumps({"error": message}).decode()


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None


def _scrub_body(payload: Any, secrets: tuple[str | None, ...]) -> Any:
    if not any(secrets):
        return payload
    text = orjson.dumps(payload).decode()
    scrubbed = scrub(text, *secrets)
    return orjson.loads(scrubbed) if scrubbed != text else payload
