"""Anthropic Messages (``POST /v1/messages``; ``x-api-key`` and ``anthropic-version`` headers).

A streamed reply is SSE with an ``event:`` line naming each event (the anthropic SDK skips
data without one)::

    message_start                      (the message with empty content and input usage)
    per content block — thinking, then text, then one tool_use per call:
      content_block_start · content_block_delta … · content_block_stop
      (thinking_delta … then one signature_delta; text_delta; input_json_delta with partial_json)
    ping                               (once, after the first block starts; the heartbeat fault
                                        sends more)
    message_delta                      (stop_reason, stop_sequence, cumulative usage)
    message_stop

A non-streaming reply is the ``message`` object. Errors are
``{"type": "error", "error": {"type": ..., "message": ...}, "request_id": ...}`` with Anthropic's
error types (``invalid_request_error``, ``authentication_error``, ``rate_limit_error``,
``overloaded_error`` for 529, ...); an in-stream error is ``event: error`` with that body. Event
names and fields follow the Messages streaming reference and the anthropic SDK's types.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from aiohttp import web

from .._config import mask_key
from .._errors import MockError, status_error
from .._faults import FrameKit
from .._frames import Frame
from .._reply import Reply, ToolCall
from . import APIRequest, chat, decoded, derive_id, json_str, objects, sse_event

__all__ = [
    "API",
    "SSE_HEADERS",
    "VERSION",
    "api_key",
    "auth_error",
    "error_body",
    "error_response",
    "frame_kit",
    "parse_request",
    "read_reply",
    "recorded_ws_error",
    "reply_frames",
    "ws_error",
]

API = "anthropic"
# The API requires max_tokens, so it is a budget, not a wish for a long answer: a generated
# reply has its natural length unless the budget cuts it (stop_reason "max_tokens").
MAX_TOKENS_IS_BUDGET = True
VERSION = "2023-06-01"
SSE_HEADERS = {**chat.SSE_HEADERS}
MAX_TOKENS_LIMIT = chat.MAX_TOKENS_LIMIT
_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
         "content_filter": "refusal"}
_FINISH = {v: k for k, v in _STOP.items()} | {"stop_sequence": "stop", "pause_turn": "stop"}
# HTTP status -> Anthropic error type (https://docs.anthropic.com/en/api/errors)
_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
          403: "permission_error", 404: "not_found_error", 413: "request_too_large",
          429: "rate_limit_error", 500: "api_error", 504: "timeout_error",
          529: "overloaded_error"}
_HEARTBEAT = sse_event("ping", '{"type": "ping"}')


def _bad(message: str) -> MockError:
    return MockError(400, message, "invalid_request_error")


def _text(content: Any, where: str) -> str:
    """The text of a message's content: a string, or the text of its blocks."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _bad(f"{where}: Input should be a valid string or a list of content blocks")
    texts = []
    for j, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise _bad(f"{where}.{j}: Input should be an object with a 'type'")
        if block["type"] == "text":
            if not isinstance(block.get("text"), str):
                raise _bad(f"{where}.{j}.text: Field required")
            texts.append(block["text"])
        elif block["type"] == "tool_result":
            inner = block.get("content")
            texts.append(inner if isinstance(inner, str) else json.dumps(inner))
    return "".join(texts)


def parse_request(body: Any, route: Mapping[str, str] | None = None) -> APIRequest:
    """Check a Messages body (``route`` holds the ``anthropic-version`` header the API
    requires); raise a 400 ``invalid_request_error`` naming the bad field (the API words these
    ``field: problem``)."""
    if route is not None and not route.get("anthropic-version", "").strip():
        raise _bad("anthropic-version: header is required")
    if not isinstance(body, dict):
        raise _bad(f"Input should be a valid dictionary, got {type(body).__name__}")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _bad("model: Field required" if model is None else
                   "model: Input should be a non-empty string")
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise _bad("max_tokens: Field required")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not (
            1 <= max_tokens <= MAX_TOKENS_LIMIT):
        raise _bad(f"max_tokens: Input should be an integer from 1 to {MAX_TOKENS_LIMIT}")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("messages: Field required" if messages is None else
                   "messages: Input should be a non-empty list")
    out: list[dict[str, Any]] = []
    system = body.get("system")
    if system is not None:
        out.append({"role": "system", "content": _text(system, "system")})
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ("user", "assistant"):
            raise _bad(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        out.append({"role": msg["role"], "content": _text(msg.get("content"),
                                                          f"messages.{i}.content")})
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise _bad("stream: Input should be a valid boolean")
    for name in ("temperature", "top_p", "top_k"):
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise _bad(f"{name}: Input should be a valid number")
    return APIRequest(model, out, stream, max_tokens, body)


def api_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """``x-api-key`` (or ``Authorization: Bearer``, as the API takes OAuth tokens)."""
    key = headers.get("x-api-key", "").strip()
    return key or chat.bearer_key(headers)


def auth_error(key: str | None, *, placeholder: bool) -> MockError:
    """Anthropic's 401 ``authentication_error``."""
    if key is None or not key.strip():
        return MockError(401, "x-api-key header is required", "authentication_error")
    if placeholder:
        return MockError(401, f"invalid x-api-key: {key.strip()!r} is a placeholder; the mock "
                              "accepts any other key, e.g. sk-holynb-mock",
                         "authentication_error")
    return MockError(401, f"invalid x-api-key ({mask_key(key)})", "authentication_error")


def _type(status: int) -> str:
    return _TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def error_body(err: MockError) -> dict[str, Any]:
    """``{"type": "error", "error": {"type", "message"}, "request_id"}``."""
    request_id = "req_" + hashlib.sha256(err.message.encode()).hexdigest()[:24]
    return {"type": "error", "error": {"type": _type(err.status), "message": err.message},
            "request_id": request_id}


def error_response(err: MockError) -> web.Response:
    """Anthropic's error JSON (a 429 with ``retry-after`` and the rate-limit headers)."""
    headers = dict(err.headers())
    if err.status == 429:
        headers["anthropic-ratelimit-requests-remaining"] = "0"
    return web.Response(status=err.status, body=json.dumps(error_body(err)).encode(),
                        content_type="application/json", headers=headers)


# -- replies ------------------------------------------------------------------------------------


def message_id(r: Reply) -> str:
    """The ``msg_…`` id of a reply."""
    return derive_id("msg_", r.id)


def _signature(thinking: str) -> str:
    """A stand-in thinking signature (the real one is an opaque encrypted blob)."""
    return base64.b64encode(hashlib.sha256(thinking.encode()).digest() * 2).decode()


def _usage(r: Reply, output: int | None = None) -> dict[str, Any]:
    prompt, completion, _reasoning = r.counts()
    return {"input_tokens": prompt, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": completion if output is None else output}


def _tool_id(call: ToolCall) -> str:
    return call.id if call.id.startswith("toolu_") else derive_id("toolu_", call.id or call.name)


def _input(call: ToolCall) -> Any:
    try:
        return json.loads("".join(call.arguments) or "{}")
    except ValueError:
        return {}


def _message(r: Reply, content: list[dict[str, Any]], *, done: bool) -> dict[str, Any]:
    return {"id": message_id(r), "type": "message", "role": "assistant", "model": r.model,
            "content": content,
            "stop_reason": _STOP.get(r.finish_reason or "stop", "end_turn") if done else None,
            "stop_sequence": None, "usage": _usage(r, None if done else 1)}


def _blocks(r: Reply) -> list[dict[str, Any]]:
    """The finished content blocks."""
    blocks: list[dict[str, Any]] = []
    if r.reasoning:
        thinking = "".join(r.reasoning)
        blocks.append({"type": "thinking", "thinking": thinking,
                       "signature": _signature(thinking)})
    if r.content:
        blocks.append({"type": "text", "text": r.text})
    blocks += [{"type": "tool_use", "id": _tool_id(c), "name": c.name, "input": _input(c)}
               for c in r.tool_calls]
    return blocks


def _events(r: Reply) -> Iterator[tuple[float, str, str]]:
    """``(offset, event name, data JSON)`` of every event, in order."""
    yield 0.0, "message_start", json.dumps(
        {"type": "message_start", "message": _message(r, [], done=False)}, ensure_ascii=False)
    blocks = _blocks(r)
    order = {"reasoning": 0 if r.reasoning else -1,
             "content": int(bool(r.reasoning)) if r.content else -1}
    first_call = int(bool(r.reasoning)) + int(bool(r.content))
    open_block: int | None = None
    last_at = 0.0
    pinged = False
    for at, kind, n, text in r.deltas():
        index = order.get(kind, first_call + n)
        if index != open_block:
            if open_block is not None:
                yield from _stop(blocks, open_block, last_at)
            start = dict(blocks[index])
            start.update({"thinking": "", "signature": ""} if start["type"] == "thinking" else
                         {"text": ""} if start["type"] == "text" else {"input": {}})
            yield at, "content_block_start", json.dumps(
                {"type": "content_block_start", "index": index, "content_block": start},
                ensure_ascii=False)
            if not pinged:
                pinged = True
                yield at, "ping", '{"type": "ping"}'
            open_block = index
            head = f'{{"type": "content_block_delta", "index": {index}, "delta": {{"type": '
        last_at = at
        if kind == "reasoning":
            yield at, "content_block_delta", (
                f'{head}"thinking_delta", "thinking": {json_str(text)}}}}}')
        elif kind == "content":
            yield at, "content_block_delta", f'{head}"text_delta", "text": {json_str(text)}}}}}'
        elif kind == "args":
            yield at, "content_block_delta", (
                f'{head}"input_json_delta", "partial_json": {json_str(text)}}}}}')
    if open_block is not None:
        yield from _stop(blocks, open_block, last_at)
    stop = _STOP.get(r.finish_reason or "stop", "end_turn")
    yield r.end, "message_delta", json.dumps(
        {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
         "usage": _usage(r)})
    yield r.end, "message_stop", '{"type": "message_stop"}'


def _stop(blocks: list[dict[str, Any]], index: int, at: float) -> Iterator[tuple[float, str, str]]:
    block = blocks[index]
    if block["type"] == "thinking":
        yield at, "content_block_delta", json.dumps(
            {"type": "content_block_delta", "index": index,
             "delta": {"type": "signature_delta", "signature": block["signature"]}})
    yield at, "content_block_stop", f'{{"type": "content_block_stop", "index": {index}}}'


def reply_frames(r: Reply, path: str) -> Iterator[Frame]:
    """The reply as SSE events, one per frame ("sse"), or the message object ("json")."""
    if path == "json":
        body = _message(r, _blocks(r), done=True)
        yield Frame(r.end, json.dumps(body, ensure_ascii=False).encode())
        return
    for at, name, data in _events(r):
        yield Frame(at, sse_event(name, data))


# -- errors and what faults need --------------------------------------------------------------


def _error_event(code: int) -> bytes:
    body = {"type": "error", "error": {"type": _type(code), "message": status_error(code).message}}
    return sse_event("error", json.dumps(body))


def _strip_done(data: bytes | str) -> bytes | str:
    marker = b'event: message_stop\ndata: {"type": "message_stop"}\n\n'
    return data.replace(marker, b"") if isinstance(data, bytes) else data


_KITS = {
    "sse": FrameKit(
        strip_done=_strip_done,
        error_frames=lambda code, _i: (_error_event(code),),
        malformed=b'event: content_block_delta\ndata: {"type": "content_block_delta", '
                  b'"index": 0, "delta": {"type": "text_delta", "text": "\n\n',
        heartbeat=_HEARTBEAT,
    ),
    "json": FrameKit(),
}


def frame_kit(path: str, r: Reply | None = None) -> FrameKit:
    """The end marker is ``message_stop``; an in-stream error is ``event: error``; the
    keep-alive is a ``ping`` event."""
    return _KITS[path]


def ws_error(err: MockError) -> str:
    """Never used: the Messages API has no WebSocket."""
    return json.dumps(error_body(err))


def recorded_ws_error(raw: bytes, status: int) -> str:
    """Never used: the Messages API has no WebSocket."""
    return raw.decode("utf-8", "replace")


# -- reading a recording back --------------------------------------------------------------------


def read_reply(frames: Iterable[Frame], transport: str = "ws") -> Reply:
    """The reply plan a recorded Messages stream (event payloads) or message body carries."""
    head: dict[str, Any] = {}
    kinds: dict[int, str] = {}
    reasoning: list[tuple[float, str]] = []
    content: list[tuple[float, str]] = []
    calls: dict[int, dict[str, Any]] = {}
    call_times: list[float] = []
    stop: str | None = None
    usage: dict[str, Any] = {}
    for at, event in objects(decoded(frames, transport)):
        kind = event.get("type")
        if kind == "message":  # a whole non-streaming body
            head, stop = event, event.get("stop_reason")
            usage.update(event.get("usage") or {})
            for block in event.get("content") or []:
                _whole_block(block, at, reasoning, content, calls, call_times)
        elif kind == "message_start":
            head = event.get("message") or {}
            usage.update(head.get("usage") or {})
        elif kind == "content_block_start":
            block = event.get("content_block") or {}
            kinds[event.get("index", 0)] = block.get("type", "")
            if block.get("type") == "tool_use":
                calls[event.get("index", 0)] = {"id": block.get("id", ""),
                                                "name": block.get("name", ""), "args": []}
                call_times.append(at)
        elif kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "thinking_delta":
                reasoning.append((at, delta.get("thinking", "")))
            elif delta.get("type") == "text_delta":
                content.append((at, delta.get("text", "")))
            elif delta.get("type") == "input_json_delta" and event.get("index", 0) in calls:
                if delta.get("partial_json"):
                    calls[event.get("index", 0)]["args"].append(delta["partial_json"])
                    call_times.append(at)
        elif kind == "message_delta":
            stop = (event.get("delta") or {}).get("stop_reason") or stop
            usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
    prompt, completion = usage.get("input_tokens", 0), usage.get("output_tokens", 0)
    return Reply(
        id=head.get("id", "msg_cassette"), created=0, model=head.get("model", ""),
        content=[t for _, t in content], reasoning=[t for _, t in reasoning],
        tool_calls=[ToolCall(c["id"], c["name"], c["args"]) for _, c in sorted(calls.items())],
        finish_reason=_FINISH.get(stop or "end_turn", "stop"),
        times=[at for at, _ in reasoning] + [at for at, _ in content] + call_times,
        usage={"prompt_tokens": prompt, "completion_tokens": completion,
               "total_tokens": prompt + completion} if usage else None,
    )


def _whole_block(block: Any, at: float, reasoning: list[tuple[float, str]],
                 content: list[tuple[float, str]], calls: dict[int, dict[str, Any]],
                 call_times: list[float]) -> None:
    if not isinstance(block, dict):
        return
    if block.get("type") == "thinking" and block.get("thinking"):
        reasoning.append((at, block["thinking"]))
    elif block.get("type") == "text" and block.get("text"):
        content.append((at, block["text"]))
    elif block.get("type") == "tool_use":
        calls[len(calls)] = {"id": block.get("id", ""), "name": block.get("name", ""),
                             "args": [json.dumps(block.get("input", {}))]}
        call_times += [at, at]
