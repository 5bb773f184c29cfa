"""Turning chat-completion chunks into text deltas, tool calls, usage and errors.

Transport-neutral: the SSE and WebSocket transports hand :class:`ChunkParser` the data payloads
(JSON text) they received; it is the hot path, so it uses plain dict access, parses each payload
once and keeps per-chunk work to a few dict lookups.
"""

from __future__ import annotations

import json
from typing import Any

from holynb._config import mask_key, scrub
from holynb._errors import (
    APIStatusError,
    AuthenticationError,
    HolyError,
    MalformedChunkError,
    RateLimitError,
)
from holynb._stats import StreamStats

__all__ = ["ChunkParser", "ToolCalls", "error_from_payload", "error_from_status"]

_loads = json.loads
# The C scanner behind json.loads, called without its per-call Python layers (whitespace
# regexes); anything it does not take whole goes to json.loads, which decides.
_scan = json.JSONDecoder().scan_once

# OpenAI error codes / types (as sent in-stream, without an HTTP status) -> the matching status.
_CODE_STATUS = {
    "invalid_api_key": 401,
    "forbidden": 403,
    "model_not_found": 404,
    "timeout": 408,
    "conflict": 409,
    "context_length_exceeded": 400,
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
    "timeout_error": 408,
    "rate_limit_error": 429,
    "requests": 429,
    "tokens": 429,
    "server_error": 500,
}
_ADVICE = {
    400: "check the request (messages, max_tokens within the model's limit, parameters)",
    401: "check the API key (HOLYSHEEP_API_KEY or api_key=...)",
    403: "check that the key may use this model or endpoint",
    404: "check the model name (client.models() lists them) and the base URL",
    408: "the server timed out; retry",
    409: "retry the request",
    413: "send a shorter request",
    422: "check the request parameters",
    429: "slow down or wait, then retry",
}


def _advice(status: int) -> str:
    if status in _ADVICE:
        return _ADVICE[status]
    if status >= 500:
        return "the server failed; retry later"
    return "check the request"


def _status_for(err: dict[str, Any]) -> int:
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
    return _TYPE_STATUS.get(str(err.get("type")), 500)


def _make_error(
    status: int,
    message: str,
    *,
    body: Any,
    error_type: str | None,
    code: str | None,
    retry_after: float | None,
    partial_text: str,
) -> APIStatusError:
    cls: type[APIStatusError] = APIStatusError
    if status in (401, 403):
        cls = AuthenticationError
    elif status == 429:
        cls = RateLimitError
    return cls(
        message,
        status_code=status,
        body=body,
        error_type=error_type,
        code=code,
        retry_after=retry_after,
        partial_text=partial_text,
    )


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_from_payload(
    payload: Any, *, key: str | None, partial_text: str = "", where: str = "in the stream"
) -> APIStatusError:
    """Map an in-stream ``{"error": {...}}`` payload to the APIStatusError family."""
    err = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(err, dict):
        err = {"message": str(err if err is not None else payload)}
    status = _status_for(err)
    raw_message = scrub(str(err.get("message") or "no message"), key)
    code = err.get("code")
    message = (
        f"Server error {where} ({status}"
        + (f" {code}" if code else "")
        + f"): {_one_line(raw_message)} — {_advice(status)}"
        + (" (partial text kept in .partial_text)." if partial_text else ".")
    )
    return _make_error(
        status,
        message,
        body=_scrub_body(payload, key),
        error_type=err.get("type"),
        code=None if code is None else str(code),
        retry_after=_number(err.get("retry_after")),
        partial_text=partial_text,
    )


def error_from_status(
    status: int, body: bytes, *, url: str, key: str | None, retry_after: float | None
) -> APIStatusError:
    """Map an HTTP error response (status >= 400) to the APIStatusError family."""
    text = scrub(body.decode("utf-8", "replace"), key)
    parsed: Any = text
    error_type = code = None
    detail = _one_line(text, 200) or "(empty body)"
    try:
        parsed = _loads(text)
    except ValueError:
        pass
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        err = parsed["error"]
        detail = _one_line(str(err.get("message") or "no message"))
        error_type = err.get("type")
        code = None if err.get("code") is None else str(err.get("code"))
    elif isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        detail = _one_line(parsed["error"])
    advice = _advice(status)
    if status == 401:
        advice += f"; the key in use is {mask_key(key)}"
    message = f"HTTP {status} from {url}: {detail} — {advice}."
    return _make_error(
        status,
        message,
        body=parsed,
        error_type=error_type,
        code=code,
        retry_after=retry_after,
        partial_text="",
    )


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None


def _scrub_body(payload: Any, key: str | None) -> Any:
    if not key:
        return payload
    text = json.dumps(payload)
    return _loads(scrub(text, key)) if key in text else payload


class ToolCalls:
    """Accumulates streamed ``delta.tool_calls`` into OpenAI-format tool calls (by index)."""

    __slots__ = ("_calls",)

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, Any]] = {}

    def add(self, deltas: list[dict[str, Any]]) -> None:
        """Merge one chunk's tool-call deltas: ids and types set, names and arguments appended."""
        calls = self._calls
        for d in deltas:
            index = d.get("index")
            if not isinstance(index, int):
                index = len(calls)
            call = calls.get(index)
            if call is None:
                call = calls[index] = {
                    "id": None,
                    "type": "function",
                    "function": {"name": "", "arguments": ""},
                }
            if d.get("id"):
                call["id"] = d["id"]
            if d.get("type"):
                call["type"] = d["type"]
            fn = d.get("function")
            if fn:
                if fn.get("name"):
                    call["function"]["name"] += fn["name"]
                if fn.get("arguments"):
                    call["function"]["arguments"] += fn["arguments"]

    def result(self) -> list[dict[str, Any]]:
        """The tool calls so far, ordered by index (copies; safe to keep)."""
        return [
            {"id": c["id"], "type": c["type"], "function": dict(c["function"])}
            for _, c in sorted(self._calls.items())
        ]

    def __bool__(self) -> bool:
        return bool(self._calls)


class ChunkParser:
    """State of one stream's content: text parts, finish reason, usage, tool calls, model.

    :meth:`feed` processes a batch of payloads and returns the content deltas in it. An error
    payload or malformed chunk stops the batch and is left in ``.error`` for the caller to raise
    after delivering the deltas that came before it.
    """

    __slots__ = (
        "parts",
        "finish_reason",
        "usage",
        "model",
        "tools",
        "done",
        "started",
        "error",
        "stats",
        "t0",
        "_last",
        "_skip_malformed",
        "_key",
    )

    def __init__(
        self, stats: StreamStats, *, t0: float, skip_malformed: bool, key: str | None
    ) -> None:
        self.stats = stats
        self.t0 = t0
        self._skip_malformed = skip_malformed
        self._key = key
        self.reset()

    def reset(self) -> None:
        """Forget everything received (a retry before the first delta starts over)."""
        self.parts: list[str] = []
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.model: str | None = None
        self.tools = ToolCalls()
        self.done = False
        # True once content or a tool call arrived: from then on nothing is retried.
        self.started = False
        self.error: HolyError | None = None
        self._last: float | None = None

    def feed(self, batch: list[str], now: float) -> list[str]:
        """Process data payloads received at ``now`` (perf_counter); return the text deltas."""
        out: list[str] = []
        emit = out.append
        keep = self.parts.append
        stats = self.stats
        itl = stats.itl_s.append
        last = self._last
        scan = _scan
        chunks = 0
        for data in batch:
            if data == "[DONE]":
                self.done = True
                break
            try:
                try:
                    obj, end = scan(data, 0)
                except StopIteration:
                    obj = _loads(data)  # leading whitespace, or not JSON at all
                else:
                    if end != len(data):
                        obj = _loads(data)  # trailing whitespace or extra data
            except ValueError:
                if self._malformed(data, chunks):
                    break
                continue
            try:
                choice = obj["choices"][0]
                delta = choice["delta"]
                content = delta.get("content")
            except (KeyError, IndexError, TypeError, AttributeError):
                if not isinstance(obj, dict):
                    # Valid JSON but not a chunk object: as unusable as broken JSON.
                    if self._malformed(data, chunks):
                        break
                    continue
                chunks += 1
                if self._other(obj):
                    break
                continue
            chunks += 1
            if content:
                if last is None:
                    stats.ttft_s = now - self.t0
                    self.started = True
                else:
                    itl(now - last)
                last = now
                keep(content)
                emit(content)
            tool_calls = delta.get("tool_calls")
            if tool_calls:
                self.tools.add(tool_calls)
                self.started = True
            reason = choice.get("finish_reason")
            if reason:
                self.finish_reason = reason
            usage = obj.get("usage")
            if usage:
                self._usage(usage)
            if self.model is None:
                self.model = obj.get("model")
        self._last = last
        stats.chunks += chunks
        if last is not None:
            stats.tokens = len(self.parts)
        return out

    def _malformed(self, data: str, chunks: int) -> bool:
        if self._skip_malformed:
            self.stats.skipped_chunks += 1
            return False
        raw = scrub(data[:200], self._key)
        number = self.stats.chunks + chunks + self.stats.skipped_chunks + 1
        self.error = MalformedChunkError(
            f"Chunk {number} of the stream is not valid JSON ({_one_line(raw, 60)!r}); "
            "pass skip_malformed=True to skip such chunks.",
            raw=raw,
            partial_text="".join(self.parts),
        )
        return True

    def _other(self, obj: dict[str, Any]) -> bool:
        """A chunk off the fast path: an error, usage only or a finish reason without delta."""
        if "error" in obj:
            self.error = error_from_payload(
                obj, key=self._key, partial_text="".join(self.parts)
            )
            return True
        usage = obj.get("usage")
        if usage:
            self._usage(usage)
        choices = obj.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            reason = choices[0].get("finish_reason")
            if reason:
                self.finish_reason = reason
        if self.model is None:
            self.model = obj.get("model")
        return False

    def _usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        self.usage = usage
        prompt = usage.get("prompt_tokens")
        completion = usage.get("completion_tokens")
        if isinstance(prompt, int):
            self.stats.prompt_tokens = prompt
        if isinstance(completion, int):
            self.stats.completion_tokens = completion
