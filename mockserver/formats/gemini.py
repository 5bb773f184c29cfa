"""Gemini (``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent``).

The key comes in ``x-goog-api-key`` or ``?key=``; the model in the URL. A streamed reply is one
``GenerateContentResponse`` per chunk — with ``?alt=sse`` as ``data: <json>`` events (no
``[DONE]``: the last chunk carries ``finishReason`` and the full ``usageMetadata``), without it
as the elements of one JSON array written as they come (``[{…}``, ``,\\r\\n{…}``, …, ``]``). A
chunk's parts are thinking (``{"text": …, "thought": true}``), text, or a whole
``functionCall`` (Gemini sends a call's arguments at once, not in fragments). A non-streaming
reply is one ``GenerateContentResponse`` with every part. Errors are Google's
``{"error": {"code", "message", "status", "details"}}``; an in-stream error is such an object
as a chunk. Field names follow the REST reference and the google-genai SDK's parser.

:data:`ARRAY` is the JSON-array flavour of the stream (its own ``API`` name, "gemini-array", so
cassettes keep the two apart).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .._errors import MockError, status_error
from .._faults import FrameKit
from .._frames import Frame
from .._reply import Reply, ToolCall
from . import APIRequest, chat, chat_view, decoded, derive_id, json_str, objects

__all__ = [
    "API",
    "ARRAY",
    "SSE_HEADERS",
    "GeminiRequest",
    "api_key",
    "auth_error",
    "error_response",
    "frame_kit",
    "parse_request",
    "read_reply",
    "recorded_ws_error",
    "reply_frames",
    "ws_error",
]

API = "gemini"
MAX_TOKENS_IS_BUDGET = False  # max_tokens, when given, is the generated reply's length
SSE_HEADERS = {**chat.SSE_HEADERS}
_ARRAY_HEADERS = {"Content-Type": "application/json; charset=UTF-8", "Cache-Control": "no-cache",
                  "X-Accel-Buffering": "no"}
# HTTP status -> google.rpc.Code name
_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
           404: "NOT_FOUND", 409: "ABORTED", 413: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED",
           499: "CANCELLED", 500: "INTERNAL", 501: "UNIMPLEMENTED", 503: "UNAVAILABLE",
           504: "DEADLINE_EXCEEDED"}
_FINISH = {"length": "MAX_TOKENS", "content_filter": "SAFETY"}
_KEY_INVALID = "API_KEY_INVALID"


@dataclass(frozen=True, slots=True)
class GeminiRequest(APIRequest):
    """A ``generateContent`` request: the model and whether to stream come from the URL."""

    @property
    def chat(self) -> dict[str, Any]:
        """As a chat-completions body, for cassette matching."""
        config = self.raw.get("generationConfig") or {}
        params = {"temperature": config.get("temperature"), "top_p": config.get("topP"),
                  "stop": config.get("stopSequences"), "seed": config.get("seed"),
                  "tools": self.raw.get("tools")}
        return chat_view(self.model, self.messages, self.max_tokens, params)


def _bad(message: str) -> MockError:
    return MockError(400, message, "INVALID_ARGUMENT")


def _parts_text(parts: Any, where: str) -> str:
    if not isinstance(parts, list):
        raise _bad(f"Invalid value at '{where}' (type.googleapis.com/google.ai.generativelanguage"
                   ".v1beta.Part), expected a list of parts")
    texts = []
    for j, part in enumerate(parts):
        if not isinstance(part, dict):
            raise _bad(f"Invalid value at '{where}[{j}]': a part is an object")
        if "text" in part:
            if not isinstance(part["text"], str):
                raise _bad(f"Invalid value at '{where}[{j}].text' (TYPE_STRING)")
            if not part.get("thought"):
                texts.append(part["text"])
        elif "functionResponse" in part:
            texts.append(json.dumps((part["functionResponse"] or {}).get("response")))
    return "".join(texts)


def _config(body: dict[str, Any]) -> dict[str, Any]:
    config = body.get("generationConfig", body.get("generation_config")) or {}
    if not isinstance(config, dict):
        raise _bad("Invalid value at 'generation_config': expected an object")
    return config


def parse_request(body: Any, route: Mapping[str, str] | None = None) -> GeminiRequest:
    """Check a ``generateContent`` body (``route`` holds the model and ``stream`` from the
    URL); a 400 ``INVALID_ARGUMENT`` naming the bad field otherwise."""
    route = route or {}
    if not isinstance(body, dict):
        raise _bad(f"Invalid JSON payload received. Expected an object, got "
                   f"{type(body).__name__}.")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise _bad("* GenerateContentRequest.contents: contents is not specified")
    messages: list[dict[str, Any]] = []
    system = body.get("systemInstruction", body.get("system_instruction"))
    if isinstance(system, dict):
        messages.append({"role": "system",
                         "content": _parts_text(system.get("parts"), "system_instruction.parts")})
    for i, item in enumerate(contents):
        if not isinstance(item, dict):
            raise _bad(f"Invalid value at 'contents[{i}]': expected a Content object")
        role = item.get("role", "user")
        if role not in ("user", "model", "function"):
            raise _bad(f"Please use a valid role: user, model. (contents[{i}].role: {role!r})")
        messages.append({"role": "assistant" if role == "model" else "user",
                         "content": _parts_text(item.get("parts"), f"contents[{i}].parts")})
    config = _config(body)
    max_tokens = config.get("maxOutputTokens", config.get("max_output_tokens"))
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int)
                                   or not 1 <= max_tokens <= chat.MAX_TOKENS_LIMIT):
        raise _bad(f"Invalid value at 'generation_config.max_output_tokens' (TYPE_INT32), "
                   f"{max_tokens!r}: expected 1 to {chat.MAX_TOKENS_LIMIT}")
    for name in ("temperature", "topP"):
        value = config.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise _bad(f"Invalid value at 'generation_config.{name}' (TYPE_FLOAT), {value!r}")
    model = route.get("model", "")
    return GeminiRequest(model, messages, route.get("stream") == "1", max_tokens, body)


def api_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """``x-goog-api-key``, or the ``key`` query parameter."""
    return headers.get("x-goog-api-key", "").strip() or query.get("key") or None


def auth_error(key: str | None, *, placeholder: bool) -> MockError:
    """Google's answers: no key is a 403 ``PERMISSION_DENIED``; a bad one a 400
    ``INVALID_ARGUMENT`` with reason ``API_KEY_INVALID``."""
    if key is None or not key.strip():
        return MockError(403, "Method doesn't allow unregistered callers (callers without "
                              "established identity). Please use API Key or other form of API "
                              "consumer identity to call this API.", "PERMISSION_DENIED")
    return MockError(400, "API key not valid. Please pass a valid API key.", "INVALID_ARGUMENT",
                     code=_KEY_INVALID)


def _error(err: MockError) -> dict[str, Any]:
    error: dict[str, Any] = {"code": err.status, "message": err.message,
                             "status": _STATUS.get(err.status,
                                                   "INTERNAL" if err.status >= 500 else
                                                   "FAILED_PRECONDITION")}
    if err.code == _KEY_INVALID:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                             "reason": _KEY_INVALID, "domain": "googleapis.com",
                             "metadata": {"service": "generativelanguage.googleapis.com"}}]
    elif err.status == 429:
        wait = err.retry_after if err.retry_after is not None else 1.0
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                             "retryDelay": f"{max(0, round(wait))}s"}]
    return {"error": error}


def error_response(err: MockError) -> web.Response:
    """Google's error JSON (a 429 also with ``Retry-After``)."""
    return web.Response(status=err.status, body=json.dumps(_error(err), indent=2).encode(),
                        content_type="application/json", headers=err.headers())


# -- replies ------------------------------------------------------------------------------------


def _usage(r: Reply, final: bool) -> str:
    prompt, completion, reasoning = r.counts()
    if not final:
        return f'{{"promptTokenCount": {prompt}, "totalTokenCount": {prompt}}}'
    usage = {"promptTokenCount": prompt, "candidatesTokenCount": completion - reasoning,
             "totalTokenCount": prompt + completion}
    if reasoning:
        usage["thoughtsTokenCount"] = reasoning
    return json.dumps(usage)


def _call_part(call: ToolCall) -> str:
    try:
        args = json.loads("".join(call.arguments) or "{}")
    except ValueError:
        args = {}
    return json.dumps({"functionCall": {"name": call.name, "args": args}}, ensure_ascii=False)


def _parts(r: Reply) -> Iterator[tuple[float, str]]:
    """``(offset, part JSON)`` per chunk: one per text piece, one per whole function call (at
    its last fragment)."""
    pending: tuple[float, int] | None = None  # a call waiting for its last fragment
    for at, kind, n, text in r.deltas():
        if pending is not None and kind != "args":
            yield pending[0], _call_part(r.tool_calls[pending[1]])
            pending = None
        if kind == "reasoning":
            yield at, f'{{"text": {json_str(text)}, "thought": true}}'
        elif kind == "content":
            yield at, f'{{"text": {json_str(text)}}}'
        else:
            pending = (at, n)
    if pending is not None:
        yield pending[0], _call_part(r.tool_calls[pending[1]])


def response_id(r: Reply) -> str:
    """The ``responseId`` of a reply."""
    return derive_id("", r.id) if "-" in r.id else r.id


def _chunks(r: Reply) -> Iterator[tuple[float, str]]:
    """Each streamed ``GenerateContentResponse`` JSON with its offset."""
    tail = f', "modelVersion": {json_str(r.model)}, "responseId": {json_str(response_id(r))}}}'
    finish = _FINISH.get(r.finish_reason or "stop", "STOP")
    head = '{"candidates": [{"content": {"parts": ['
    middle = f'], "role": "model"}}, "index": 0}}], "usageMetadata": {_usage(r, False)}'
    last = (f'], "role": "model"}}, "finishReason": "{finish}", "index": 0}}], '
            f'"usageMetadata": {_usage(r, True)}')
    parts = _parts(r)
    current = next(parts, (r.end, '{"text": ""}'))
    for following in parts:
        yield current[0], head + current[1] + middle + tail
        current = following
    yield current[0], head + current[1] + last + tail


def reply_frames(r: Reply, path: str) -> Iterator[Frame]:
    """The reply as ``data:`` events ("sse") or one whole response ("json")."""
    if path == "json":
        yield Frame(r.end, _whole(r))
        return
    for at, chunk in _chunks(r):
        yield Frame(at, f"data: {chunk}\r\n\r\n".encode())


def _whole(r: Reply) -> bytes:
    parts: list[dict[str, Any]] = []
    if r.reasoning:
        parts.append({"text": "".join(r.reasoning), "thought": True})
    if r.content:
        parts.append({"text": r.text})
    parts += [json.loads(_call_part(c)) for c in r.tool_calls]
    body = {"candidates": [{"content": {"parts": parts or [{"text": ""}], "role": "model"},
                            "finishReason": _FINISH.get(r.finish_reason or "stop", "STOP"),
                            "index": 0}],
            "usageMetadata": json.loads(_usage(r, True)), "modelVersion": r.model,
            "responseId": response_id(r)}
    return json.dumps(body, ensure_ascii=False).encode()


def _array_frames(r: Reply) -> Iterator[Frame]:
    first = True
    for at, chunk in _chunks(r):
        yield Frame(at, (("[" if first else "\r\n,\r\n") + chunk).encode())
        first = False
    yield Frame(r.end, b"\r\n]")


# -- errors and what faults need --------------------------------------------------------------


def _error_chunk(code: int) -> str:
    err = status_error(code)
    return json.dumps(_error(MockError(code, f"Injected stream error ({code}): {err.message}")))


_NO_MARKER = ("Gemini's SSE stream has no end marker to drop (its last chunk carries "
              "finishReason); use disconnect or error-event")
_ARRAY_WIRE = "a Gemini JSON-array stream has {}; use ?alt=sse for an SSE stream"
_KITS = {
    "sse": FrameKit(
        error_frames=lambda code, _i: (f"data: {_error_chunk(code)}\r\n\r\n".encode(),),
        malformed=b'data: {"candidates": [{"content": {"parts": [{"text": "\r\n\r\n',
        heartbeat=chat.HEARTBEAT,
        unsupported={"no-done": _NO_MARKER},
    ),
    "json": FrameKit(),
}
_ARRAY_KIT = FrameKit(
    strip_done=lambda data: b"" if data == b"\r\n]" else data,
    error_frames=lambda code, _i: (f"\r\n,\r\n{_error_chunk(code)}\r\n]".encode(),),
    malformed=b'\r\n,\r\n{"candidates": [{"content": {"parts": [{"text": "',
    unsupported={"heartbeat": _ARRAY_WIRE.format("no keep-alive lines"),
                 "crlf": _ARRAY_WIRE.format("no SSE line ends")},
)


def frame_kit(path: str, r: Reply | None = None) -> FrameKit:
    """No end marker over SSE; an in-stream error is an ``{"error": {...}}`` chunk."""
    return _KITS[path]


def ws_error(err: MockError) -> str:
    """Never used: this API has no WebSocket here."""
    return json.dumps(_error(err))


def recorded_ws_error(raw: bytes, status: int) -> str:
    """Never used: this API has no WebSocket here."""
    return raw.decode("utf-8", "replace")


# -- reading a recording back --------------------------------------------------------------------


def _array_elements(frames: Iterable[Frame]) -> list[Frame]:
    """The objects of a JSON-array stream, each at the offset of the write that completed it."""
    decoder = json.JSONDecoder()
    out: list[Frame] = []
    buffer = ""
    for frame in frames:
        buffer += frame.data if isinstance(frame.data, str) else frame.data.decode(
            "utf-8", "replace")
        while True:
            start = len(buffer) - len(buffer.lstrip("[,\r\n \t"))
            try:
                value, end = decoder.raw_decode(buffer, start)
            except ValueError:
                buffer = buffer[start:]
                break
            out.append(Frame(frame.at, json.dumps(value, ensure_ascii=False)))
            buffer = buffer[end:]
    return out


def read_reply(frames: Iterable[Frame], transport: str = "ws") -> Reply:
    """The reply plan a recorded Gemini stream (SSE events or JSON-array elements) or body
    carries."""
    frames = list(frames)
    first = next((f.data for f in frames), b"")
    text = first.decode("utf-8", "replace") if isinstance(first, bytes) else first
    if transport == "sse" and text.lstrip().startswith("["):
        messages = _array_elements(frames)
    else:
        messages = decoded(frames, transport)
    head: dict[str, Any] = {}
    reasoning: list[tuple[float, str]] = []
    content: list[tuple[float, str]] = []
    calls: list[ToolCall] = []
    call_times: list[float] = []
    finish = "STOP"
    usage: dict[str, Any] = {}
    for at, chunk in objects(messages):
        if "error" in chunk:
            continue
        head = head or chunk
        usage.update(chunk.get("usageMetadata") or {})
        for candidate in chunk.get("candidates") or []:
            finish = candidate.get("finishReason") or finish
            for part in (candidate.get("content") or {}).get("parts") or []:
                if isinstance(part.get("text"), str) and part["text"]:
                    (reasoning if part.get("thought") else content).append(
                        (at, part["text"]))
                elif isinstance(part.get("functionCall"), dict):
                    call = part["functionCall"]
                    name = call.get("name", "")
                    call_id = call.get("id") or "call_" + hashlib.sha256(
                        f"{name}{len(calls)}".encode()).hexdigest()[:24]
                    calls.append(ToolCall(call_id, name,
                                          [json.dumps(call.get("args", {}), ensure_ascii=False)]))
                    call_times += [at, at]
    prompt = usage.get("promptTokenCount", 0)
    completion = usage.get("candidatesTokenCount", 0) + usage.get("thoughtsTokenCount", 0)
    chat_usage: dict[str, Any] | None = None
    if usage:
        chat_usage = {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion}
        if usage.get("thoughtsTokenCount"):
            chat_usage["completion_tokens_details"] = {
                "reasoning_tokens": usage["thoughtsTokenCount"]}
    return Reply(
        id=head.get("responseId", "gemini-cassette"), created=0,
        model=head.get("modelVersion", ""),
        content=[t for _, t in content], reasoning=[t for _, t in reasoning], tool_calls=calls,
        finish_reason="length" if finish == "MAX_TOKENS" else "tool_calls" if calls else "stop",
        times=[at for at, _ in reasoning] + [at for at, _ in content] + call_times,
        usage=chat_usage,
    )


class _Array:
    """The JSON-array flavour of the stream (``:streamGenerateContent`` without ``alt=sse``)."""

    API = "gemini-array"
    MAX_TOKENS_IS_BUDGET = MAX_TOKENS_IS_BUDGET
    SSE_HEADERS = _ARRAY_HEADERS

    parse_request = staticmethod(parse_request)
    api_key = staticmethod(api_key)
    auth_error = staticmethod(auth_error)
    error_response = staticmethod(error_response)
    read_reply = staticmethod(read_reply)
    ws_error = staticmethod(ws_error)
    recorded_ws_error = staticmethod(recorded_ws_error)

    @staticmethod
    def reply_frames(r: Reply, path: str) -> Iterator[Frame]:
        """The chunks as the elements of one JSON array ("sse"), or one body ("json")."""
        return _array_frames(r) if path == "sse" else reply_frames(r, path)

    @staticmethod
    def frame_kit(path: str, r: Reply | None = None) -> FrameKit:
        """The end marker is the closing ``]``."""
        return _ARRAY_KIT if path == "sse" else _KITS[path]


ARRAY = _Array()
