"""OpenAI chat completions: requests, reply frames (SSE, WebSocket, JSON) and error frames.

Streamed replies are ``chat.completion.chunk`` objects — ``data: {...}\n\n`` events ending with
``data: [DONE]`` over SSE, one per text message ending with ``[DONE]`` over WebSocket — and a
non-streaming reply is one ``chat.completion`` body. Reasoning streams first as
``delta.reasoning_content`` (DeepSeek's field) and is ``message.reasoning_content`` in a body.
Chunks are built from string templates, not ``json.dumps`` of a dict per token: per-chunk
encoding is on the hot path of every stream.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .._config import mask_key
from .._errors import MockError, status_error
from .._errors import error_response as _error_response
from .._faults import FrameKit
from .._frames import Frame
from .._reply import Reply, ToolCall
from . import decoded, json_str, objects

__all__ = [
    "API",
    "DONE_SSE",
    "DONE_WS",
    "MAX_TOKENS_LIMIT",
    "SSE_HEADERS",
    "ChatRequest",
    "api_key",
    "auth_error",
    "bearer_key",
    "chunk_tails",
    "completion_body",
    "encode_event",
    "error_response",
    "frame_kit",
    "json_body",
    "parse_request",
    "read_reply",
    "recorded_ws_error",
    "reply_frames",
    "ws_error",
]

API = "chat"
MAX_TOKENS_IS_BUDGET = False  # max_tokens, when given, is the generated reply's length

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "Connection": "keep-alive",
    "X-Accel-Buffering": "no",
}
DONE_SSE = b"data: [DONE]\n\n"
DONE_WS = "[DONE]"

MAX_TOKENS_LIMIT = 100_000
_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """The parts of a chat-completions request the mock acts on, plus the raw JSON (the fields
    every format's request has: see :class:`~mockserver.formats.Format`)."""

    model: str
    messages: list[dict[str, Any]]
    stream: bool
    max_tokens: int | None
    include_usage: bool
    raw: dict[str, Any]

    @property
    def chat(self) -> dict[str, Any]:
        """The body itself: cassettes are matched on chat-completions requests."""
        return self.raw


def _bad(message: str, param: str | None = None, code: str | None = None) -> MockError:
    return MockError(400, message, "invalid_request_error", param, code)


def parse_request(body: Any, route: Mapping[str, str] | None = None) -> ChatRequest:
    """Check a decoded request body; raise a 400 :class:`MockError` naming the bad field."""
    if not isinstance(body, dict):
        raise _bad(
            f"The request body must be a JSON object, got {type(body).__name__}.",
            code="invalid_type",
        )
    model = body.get("model")
    if model is None:
        raise _bad("you must provide a model parameter", "model", "missing_required_parameter")
    if not isinstance(model, str) or not model.strip():
        raise _bad("'model' must be a non-empty string.", "model", "invalid_type")
    messages = body.get("messages")
    if messages is None:
        raise _bad(
            "Missing required parameter: 'messages'.", "messages", "missing_required_parameter"
        )
    if not isinstance(messages, list) or not messages:
        raise _bad("'messages' must be a non-empty array of message objects.", "messages",
                   "invalid_type")
    for i, msg in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise _bad(f"'{param}' must be an object with 'role' and 'content'.", param,
                       "invalid_type")
        role = msg.get("role")
        if not isinstance(role, str) or role not in _ROLES:
            raise _bad(
                f"'{param}.role' must be one of {sorted(_ROLES)}, got {role!r}.",
                f"{param}.role",
                "invalid_value",
            )
        content = msg.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise _bad(f"'{param}.content' must be a string or an array of parts.",
                       f"{param}.content", "invalid_type")
        for j, part in enumerate(content if isinstance(content, list) else ()):
            # Cassette matching joins the text parts: a non-string text must be refused here.
            if not isinstance(part, dict) or (
                part.get("type") == "text" and not isinstance(part.get("text"), str)
            ):
                raise _bad(f"'{param}.content[{j}]' must be an object; a text part needs a "
                           "string 'text'.", f"{param}.content[{j}]", "invalid_type")
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise _bad("'stream' must be a boolean.", "stream", "invalid_type")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    param = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    if max_tokens is not None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
            raise _bad(f"'{param}' must be an integer.", param, "invalid_type")
        if not 1 <= max_tokens <= MAX_TOKENS_LIMIT:
            raise _bad(
                f"'{param}' must be between 1 and {MAX_TOKENS_LIMIT}, got {max_tokens}.",
                param,
                "invalid_value",
            )
    options = body.get("stream_options")
    include_usage = False
    if options is not None:
        if not isinstance(options, dict):
            raise _bad("'stream_options' must be an object.", "stream_options", "invalid_type")
        include_usage = options.get("include_usage", False)
        if not isinstance(include_usage, bool):
            raise _bad("'stream_options.include_usage' must be a boolean.",
                       "stream_options.include_usage", "invalid_type")
    for name in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise _bad(f"'{name}' must be a number.", name, "invalid_type")
    return ChatRequest(model, messages, stream, max_tokens, include_usage, body)


# -- replies --------------------------------------------------------------------------------------

def _head(r: Reply) -> str:
    """The chunk's opening fields, without the closing brace."""
    head: dict[str, Any] = {"id": r.id, "object": "chat.completion.chunk", "created": r.created,
                            "model": r.model}
    if r.fingerprint:
        head["system_fingerprint"] = r.fingerprint
    return json.dumps(head, ensure_ascii=False)[:-1]


@functools.lru_cache(maxsize=16384)
def _tail(delta: str, role: bool, finish: str) -> str:
    """A chunk's JSON after its head: the one choice with this delta (cached: generated replies
    repeat a small vocabulary, so most chunks cost a lookup and a concatenation)."""
    return (f', "choices": [{{"index": 0, "delta": {{{_ROLE if role else ""}{delta}}}, '
            f'"logprobs": null, "finish_reason": {finish}}}]}}')


@functools.lru_cache(maxsize=16384)
def _sse_tail(tail: str) -> bytes:
    return f"{tail}\n\n".encode()


def chunk_tails(r: Reply) -> Iterator[str]:
    """Each chunk's JSON after the head: one per delta, then the usage chunk if asked for.

    The first chunk carries ``role``; the last delta's chunk carries ``finish_reason``.
    """
    last = len(r.reasoning) + len(r.content) + sum(1 + len(c.arguments) for c in r.tool_calls) - 1
    finish = json_str(r.finish_reason) if r.finish_reason else "null"
    i = 0
    for token in r.reasoning:
        yield _tail(f'"content": null, "reasoning_content": {json_str(token)}', i == 0,
                    finish if i == last else "null")
        i += 1
    for token in r.content:
        yield _tail(f'"content": {json_str(token)}', i == 0, finish if i == last else "null")
        i += 1
    for n, call in enumerate(r.tool_calls):
        opening = {"index": n, "id": call.id, "type": "function",
                   "function": {"name": call.name, "arguments": ""}}
        pieces = [json.dumps(opening, ensure_ascii=False)]
        pieces += [json.dumps({"index": n, "function": {"arguments": a}}, ensure_ascii=False)
                   for a in call.arguments]
        for piece in pieces:
            yield _tail(f'"tool_calls": [{piece}]', i == 0, finish if i == last else "null")
            i += 1
    if i == 0:  # nothing to say: one empty chunk still carries the role and finish reason
        yield _tail('"content": ""', True, finish)
    if r.include_usage:
        yield f', "choices": [], "usage": {json.dumps(r.usage_body())}}}'


_ROLE = '"role": "assistant", '


def encode_event(payload: str) -> bytes:
    """One SSE ``data:`` event carrying a JSON payload."""
    return f"data: {payload}\n\n".encode()


def reply_frames(r: Reply, path: str) -> Iterator[Frame]:
    """The reply's frames for ``path`` ("sse" bytes, "ws" text messages or one "json" body),
    made one at a time as the writer asks for them."""
    end = r.end
    if path == "json":
        yield Frame(end, json_body(r))
        return
    tails = chunk_tails(r)
    head = _head(r)
    if path == "sse":
        prefix = f"data: {head}".encode()
        frames: Iterator[bytes | str] = (prefix + _sse_tail(t) for t in tails)
    else:
        frames = (head + t for t in tails)
    # zip stops at the shorter ``times`` without consuming a frame: the rest (the usage
    # chunk) goes out with the last delta.
    for t, data in zip(r.times, frames):  # noqa: B905
        yield Frame(t, data)
    for data in frames:
        yield Frame(end, data)
    yield Frame(end, DONE_SSE if path == "sse" else DONE_WS)


def completion_body(r: Reply) -> dict[str, Any]:
    """The non-streaming ``chat.completion`` object."""
    message: dict[str, Any] = {"role": "assistant", "content": r.text if r.content else None}
    if r.reasoning:
        message["reasoning_content"] = "".join(r.reasoning)
    if r.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function",
             "function": {"name": c.name, "arguments": "".join(c.arguments)}}
            for c in r.tool_calls
        ]
    message["refusal"] = None
    body: dict[str, Any] = {"id": r.id, "object": "chat.completion", "created": r.created,
                            "model": r.model}
    if r.fingerprint:
        body["system_fingerprint"] = r.fingerprint
    body["choices"] = [{"index": 0, "message": message, "logprobs": None,
                        "finish_reason": r.finish_reason}]
    body["usage"] = r.usage_body()
    return body


def json_body(r: Reply) -> bytes:
    """The non-streaming body, encoded."""
    return json.dumps(completion_body(r), ensure_ascii=False).encode()


# -- auth and errors ---------------------------------------------------------------------------


def bearer_key(headers: Mapping[str, str]) -> str | None:
    """The key from ``Authorization: Bearer <key>`` (None when absent)."""
    scheme, _, token = headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def api_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """``Authorization: Bearer``, or ``?key=`` (WebSocket clients that cannot set headers)."""
    return bearer_key(headers) or query.get("key") or None


def auth_error(key: str | None, *, placeholder: bool) -> MockError:
    """OpenAI's 401 for a missing, placeholder or unknown key."""
    if key is None or not key.strip():
        message = ("You didn't provide an API key. You need to provide your API key in an "
                   "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")
        return MockError(401, message, "invalid_request_error", None, "missing_api_key")
    if placeholder:
        message = (f"The API key {key.strip()!r} is a placeholder. Set HOLYSHEEP_API_KEY to a "
                   "real key (the mock accepts any other key, e.g. sk-holynb-mock).")
    else:
        message = f"Incorrect API key provided: {mask_key(key)}."
    return MockError(401, message, "invalid_request_error", None, "invalid_api_key")


# -- errors and what faults need -------------------------------------------------------------


def error_response(err: MockError) -> web.Response:
    """OpenAI's error JSON with its headers."""
    return _error_response(err)


def ws_error(err: MockError) -> str:
    """An error as a WebSocket frame: OpenAI's error body plus the HTTP ``status`` it stands for
    (a WebSocket client has no status line) and ``retry_after`` when there is one."""
    body = err.body()
    body["error"]["status"] = err.status
    if err.retry_after is not None:
        body["error"]["retry_after"] = err.retry_after
    return json.dumps(body)


def recorded_ws_error(raw: bytes, status: int) -> str:
    """A recorded HTTP error body as a WebSocket error frame (with its status)."""
    try:
        body = json.loads(raw)
        body["error"]["status"] = status
    except (ValueError, TypeError, KeyError):
        body = {"error": {"message": raw.decode("utf-8", "replace"), "type": "server_error",
                          "param": None, "code": None, "status": status}}
    return json.dumps(body)


def _error_payload(code: int, _index: int = 0) -> str:
    """The JSON of an in-stream error (``error-event`` fault)."""
    err = status_error(code)
    body = err.body()
    body["error"]["message"] = f"Injected stream error ({code}): {err.message}"
    body["error"]["status"] = code  # the HTTP status this in-stream error stands for
    return json.dumps(body)


def _strip_done_sse(data: bytes | str) -> bytes | str:
    if isinstance(data, bytes) and DONE_SSE in data:
        return data.replace(DONE_SSE, b"")
    return data


def _strip_done_ws(data: bytes | str) -> bytes | str:
    return "" if data == DONE_WS else data


HEARTBEAT = b": heartbeat\n\n"
_KITS = {
    "sse": FrameKit(
        strip_done=_strip_done_sse,
        error_frames=lambda code, _i: (
            f"event: error\ndata: {_error_payload(code)}\n\n".encode(),),
        malformed=b'data: {"id": "chatcmpl-malformed", "choices": [{"delta": {"content": "\n\n',
        heartbeat=HEARTBEAT,
    ),
    "ws": FrameKit(
        strip_done=_strip_done_ws,
        error_frames=lambda code, _i: (_error_payload(code),),
        malformed='{"id": "chatcmpl-malformed", "choices": [{"delta": {"content": "',
    ),
    "json": FrameKit(),  # a body: only break_body applies
}


def frame_kit(path: str, r: Reply | None = None) -> FrameKit:
    """What this format's frames look like over ``path``, for the fault machinery."""
    return _KITS[path]


# -- reading a recording back --------------------------------------------------------------------


def read_reply(frames: Iterable[Frame], transport: str = "ws") -> Reply:
    """The reply plan a recorded chat stream carries — its reasoning, text, tool calls, usage,
    finish reason and the offset of every delta (malformed and error chunks carry none) — or,
    for a recorded ``chat.completion`` body, its whole message at the body's offset."""
    head: dict[str, Any] = {}
    parts: dict[str, list[tuple[float, str]]] = {"reasoning": [], "content": []}
    calls: dict[int, dict[str, Any]] = {}
    call_times: list[float] = []
    finish: str | None = None
    usage: Any = None
    for at, chunk in objects(decoded(frames, transport)):
        if "error" in chunk:
            continue
        for key in ("id", "created", "model", "system_fingerprint"):
            if key in chunk and key not in head:
                head[key] = chunk[key]
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or choice.get("message") or {}
            for field, key in (("reasoning", "reasoning_content"), ("content", "content")):
                if isinstance(delta.get(key), str) and delta[key]:
                    parts[field].append((at, delta[key]))
            for call in delta.get("tool_calls") or []:
                slot = calls.setdefault(call.get("index", len(calls)),
                                        {"id": "", "name": "", "args": []})
                slot["id"] = call.get("id") or slot["id"]
                fn = call.get("function") or {}
                slot["name"] += fn.get("name") or ""
                if fn.get("arguments"):
                    slot["args"].append(fn["arguments"])
                call_times.append(at)
            finish = choice.get("finish_reason") or finish
    times = [at for at, _ in parts["reasoning"]] + [at for at, _ in parts["content"]]
    return Reply(
        id=head.get("id", "chatcmpl-cassette"),
        created=head.get("created", 0),
        model=head.get("model", ""),
        content=[t for _, t in parts["content"]],
        reasoning=[t for _, t in parts["reasoning"]],
        tool_calls=[ToolCall(c["id"], c["name"], c["args"]) for _, c in sorted(calls.items())],
        finish_reason=finish,
        times=times + call_times,
        fingerprint=head.get("system_fingerprint"),
        usage=usage if isinstance(usage, dict) else None,
    )
