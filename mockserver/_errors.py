"""OpenAI-format error bodies and responses.

Every error the mock sends, over HTTP, SSE or WebSocket, has the shape OpenAI uses::

    {"error": {"message": "...", "type": "...", "param": null, "code": "..."}}

so that any OpenAI-compatible client (the official SDK included) maps it to its own exception.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

__all__ = ["MockError", "error_body", "error_response", "status_error"]

# Default (type, code, message) per status, modelled on what api.openai.com returns.
_STATUS_DEFAULTS: dict[int, tuple[str, str | None, str]] = {
    400: (
        "invalid_request_error",
        "context_length_exceeded",
        "This model's maximum context length is 128000 tokens. However, your messages resulted "
        "in more tokens. Please reduce the length of the messages.",
    ),
    401: (
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided. You can find your API key in your account settings.",
    ),
    403: ("permission_error", "forbidden", "You are not allowed to access this resource."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    408: ("timeout_error", "timeout", "Request timed out."),
    409: ("invalid_request_error", "conflict", "The request conflicts with the server state."),
    413: ("invalid_request_error", "request_too_large", "The request body is too large."),
    422: ("invalid_request_error", "unprocessable_entity", "The request could not be processed."),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for requests. Please try again later.",
    ),
    500: ("server_error", "internal_error", "The server had an error processing your request."),
    502: ("server_error", "bad_gateway", "Bad gateway: the upstream returned an invalid reply."),
    503: ("server_error", "server_busy", "The server is overloaded or not ready yet."),
    504: ("server_error", "gateway_timeout", "Gateway timeout: the upstream did not answer."),
    529: ("server_error", "overloaded", "Overloaded"),  # Anthropic's overloaded_error
}


@dataclass(frozen=True, slots=True)
class MockError(Exception):
    """An error to answer with: HTTP status plus the OpenAI error fields."""

    status: int
    message: str
    type: str = "invalid_request_error"
    param: str | None = None
    code: str | None = None
    retry_after: float | None = None
    limit: int = 60  # nominal X-RateLimit-Limit when no limiter is configured

    def __str__(self) -> str:
        return self.message

    def body(self) -> dict[str, Any]:
        """The ``{"error": {...}}`` body."""
        return error_body(self.message, type=self.type, param=self.param, code=self.code)

    def headers(self) -> dict[str, str]:
        """Extra response headers (the rate-limit family for 429)."""
        if self.status != 429:
            return {}
        wait = self.retry_after if self.retry_after is not None else 1.0
        return rate_limit_headers(wait, limit=self.limit, remaining=0)

    def response(self) -> web.Response:
        """This error as an aiohttp JSON response."""
        return error_response(self)


def error_body(
    message: str, *, type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """Build an OpenAI error body."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def rate_limit_headers(wait_s: float, *, limit: int | None, remaining: int) -> dict[str, str]:
    """``Retry-After``, ``retry-after-ms`` and ``X-RateLimit-*`` headers for a 429."""
    headers = {
        # Retry-After is whole seconds by RFC 9110; the ms header carries the precise value
        # (the official SDK prefers it).
        "Retry-After": str(max(0, round(wait_s + 0.4999))),
        "retry-after-ms": str(max(0, round(wait_s * 1000))),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": str(int(time.time() + wait_s + 0.999)),
    }
    if limit is not None:
        headers["X-RateLimit-Limit"] = str(limit)
    return headers


def status_error(
    status: int, *, model: str | None = None, retry_after: float | None = None
) -> MockError:
    """The canonical error for an HTTP status (used by the ``status`` fault)."""
    type_, code, message = _STATUS_DEFAULTS.get(
        status,
        (
            "server_error" if status >= 500 else "invalid_request_error",
            None,
            f"Injected error with status {status}.",
        ),
    )
    param = None
    if status == 404 and model:
        message = f"The model `{model}` does not exist or you do not have access to it."
        param = "model"
    elif status == 400:
        param = "messages"
    return MockError(status, message, type_, param, code, retry_after)


def error_response(error: MockError) -> web.Response:
    """Serialise a :class:`MockError` as a JSON response with its headers."""
    return web.Response(
        status=error.status,
        body=json.dumps(error.body()).encode(),
        content_type="application/json",
        headers=error.headers(),
    )
