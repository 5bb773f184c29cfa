"""OpenAI Responses (``POST /v1/responses``; WebSocket mode on the same path).

A streamed reply is a sequence of typed events, each JSON with ``type`` and an increasing
``sequence_number`` (from 0) — over SSE as ``event: <type>`` + ``data: <json>`` (no ``[DONE]``),
over WebSocket one event per text message::

    response.created · response.in_progress
    [reasoning]  response.output_item.added · response.reasoning_summary_part.added ·
                 response.reasoning_summary_text.delta … · response.reasoning_summary_text.done ·
                 response.reasoning_summary_part.done · response.output_item.done
    [message]    response.output_item.added · response.content_part.added ·
                 response.output_text.delta … · response.output_text.done ·
                 response.content_part.done · response.output_item.done
    [each call]  response.output_item.added (function_call) ·
                 response.function_call_arguments.delta … · response.function_call_arguments.done ·
                 response.output_item.done
    response.completed (or response.incomplete when the reply was cut by max_output_tokens)

``created``/``in_progress`` go out at once; an item's ``added`` events at its first delta and its
``done`` events with its last; the terminal event at the reply's end. A non-streaming reply is
the ``response`` object. Errors are OpenAI's error body over HTTP; an in-stream error (the
``error-event`` fault) is an ``error`` event followed by ``response.failed``; over WebSocket an
error is ``{"type": "error", "status": N, "error": {...}}``. Event names and fields follow the
API reference and the openai SDK's types (``openai.types.responses``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .._errors import MockError, status_error
from .._faults import FrameKit
from .._frames import Frame
from .._reply import Reply, ToolCall
from . import chat, chat_view, decoded, derive_id, dump_json, json_str, objects, sse_event

__all__ = [
    "API",
    "SSE_HEADERS",
    "ResponsesRequest",
    "api_key",
    "auth_error",
    "error_response",
    "frame_kit",
    "parse_request",
    "read_reply",
    "recorded_ws_error",
    "reply_frames",
    "response_id",
    "ws_error",
]

API = "responses"
MAX_TOKENS_IS_BUDGET = False  # max_tokens, when given, is the generated reply's length
SSE_HEADERS = chat.SSE_HEADERS
MIN_OUTPUT_TOKENS = 16  # the API refuses a smaller max_output_tokens
_ROLES = {"user", "assistant", "system", "developer"}
_TEXT_PARTS = {"input_text", "output_text", "text", "summary_text"}
TERMINAL = ("response.completed", "response.incomplete", "response.failed")

api_key = chat.api_key
auth_error = chat.auth_error
error_response = chat.error_response


@dataclass(frozen=True, slots=True)
class ResponsesRequest:
    """A Responses request: ``history`` is its input as chat messages (continued from
    ``previous_response_id`` by the pipeline), ``echo`` what the response object repeats."""

    model: str
    history: list[dict[str, Any]]
    instructions: str | None
    stream: bool
    max_tokens: int | None
    raw: dict[str, Any]
    previous_response_id: str | None = None
    store: bool = True
    echo: dict[str, Any] = field(default_factory=dict)
    include_usage: bool = False

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The conversation: the instructions as a system message, then the history."""
        system = [{"role": "system", "content": self.instructions}] if self.instructions else []
        return system + self.history

    @property
    def chat(self) -> dict[str, Any]:
        """As a chat-completions body, for cassette matching."""
        return chat_view(self.model, self.messages, self.max_tokens, self.raw)

    def continued(self, prior: list[dict[str, Any]]) -> ResponsesRequest:
        """This request after the conversation it continues."""
        return replace(self, history=prior + self.history)


def _bad(message: str, param: str | None = None, code: str | None = None) -> MockError:
    return MockError(400, message, "invalid_request_error", param, code)


def _text(content: Any, param: str) -> str | None:
    """The text of an input item's content (a string, or the text of its parts)."""
    if content is None or isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _bad(f"Invalid type for '{param}': expected a string or an array of content parts.",
                   param, "invalid_type")
    texts = []
    for j, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise _bad(f"Invalid value for '{param}[{j}]': a content part is an object with a "
                       "'type'.", f"{param}[{j}]", "invalid_type")
        if part["type"] in _TEXT_PARTS:
            if not isinstance(part.get("text"), str):
                raise _bad(f"Missing required parameter: '{param}[{j}].text'.",
                           f"{param}[{j}].text", "missing_required_parameter")
            texts.append(part["text"])
    return "".join(texts)


def _history(items: Any) -> list[dict[str, Any]]:
    """``input`` as chat messages."""
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    if not isinstance(items, list):
        raise _bad("Invalid type for 'input': expected a string or an array of input items.",
                   "input", "invalid_type")
    out: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        param = f"input[{i}]"
        if not isinstance(item, dict):
            raise _bad(f"Invalid type for '{param}': expected an object.", param, "invalid_type")
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in _ROLES:
                raise _bad(f"Invalid value for '{param}.role': expected one of "
                           f"{', '.join(sorted(_ROLES))}, got {role!r}.", f"{param}.role",
                           "invalid_value")
            out.append({"role": role, "content": _text(item.get("content"), f"{param}.content")})
        elif kind == "function_call":
            out.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": item.get("call_id"), "type": "function",
                 "function": {"name": item.get("name"), "arguments": item.get("arguments")}}]})
        elif kind == "function_call_output":
            output = item.get("output")
            out.append({"role": "tool", "tool_call_id": item.get("call_id"),
                        "content": output if isinstance(output, str) else json.dumps(output)})
        # reasoning items and built-in tool items carry no conversation text
    return out


def _number(body: dict[str, Any], name: str) -> None:
    value = body.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise _bad(f"Invalid type for '{name}': expected a number.", name, "invalid_type")


def parse_request(body: Any, route: Mapping[str, str] | None = None) -> ResponsesRequest:
    """Check a Responses body — or a WebSocket ``response.create`` event (its ``type`` and
    ``stream``/``stream_id`` are transport fields); 400 naming the bad field otherwise."""
    if not isinstance(body, dict):
        raise _bad(f"The request body must be a JSON object, got {type(body).__name__}.",
                   code="invalid_type")
    kind = body.get("type")
    if kind is not None and kind != "response.create":
        raise _bad(f"Invalid value for 'type': expected 'response.create', got {kind!r}.",
                   "type", "invalid_value")
    model = body.get("model")
    if model is None:
        raise _bad("Missing required parameter: 'model'.", "model", "missing_required_parameter")
    if not isinstance(model, str) or not model.strip():
        raise _bad("Invalid type for 'model': expected a non-empty string.", "model",
                   "invalid_type")
    previous = body.get("previous_response_id")
    if previous is not None and not isinstance(previous, str):
        raise _bad("Invalid type for 'previous_response_id': expected a string.",
                   "previous_response_id", "invalid_type")
    if body.get("input") is None and previous is None:
        raise _bad("Missing required parameter: 'input'.", "input", "missing_required_parameter")
    history = _history(body["input"]) if body.get("input") is not None else []
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise _bad("Invalid type for 'instructions': expected a string.", "instructions",
                   "invalid_type")
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise _bad("Invalid type for 'stream': expected a boolean.", "stream", "invalid_type")
    max_tokens = body.get("max_output_tokens")
    if max_tokens is not None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
            raise _bad("Invalid type for 'max_output_tokens': expected an integer.",
                       "max_output_tokens", "invalid_type")
        if not MIN_OUTPUT_TOKENS <= max_tokens <= chat.MAX_TOKENS_LIMIT:
            raise _bad(f"Invalid 'max_output_tokens': expected a value from {MIN_OUTPUT_TOKENS} "
                       f"to {chat.MAX_TOKENS_LIMIT}, but got {max_tokens} instead.",
                       "max_output_tokens", "integer_out_of_range")
    for name in ("temperature", "top_p"):
        _number(body, name)
    store = body.get("store")
    if store is not None and not isinstance(store, bool):
        raise _bad("Invalid type for 'store': expected a boolean.", "store", "invalid_type")
    echo = {
        "instructions": instructions,
        "max_output_tokens": max_tokens,
        "metadata": body.get("metadata") or {},
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": previous,
        "reasoning": body.get("reasoning") or _NO_REASONING,
        "store": store is not False,
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or _TEXT_FORMAT,
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "user": body.get("user"),
    }
    return ResponsesRequest(model, history, instructions, stream, max_tokens, body, previous,
                            store is not False, echo)


# -- JSON text -----------------------------------------------------------------------------------
# Every object is written as text: byte for byte what ``json.dumps(obj, ensure_ascii=False)``
# writes (the same separators, key order and escaping), built from per-request pieces around
# constant parts, so that a reply costs no encoding of the whole response object (twice at its
# start, in ``response.created`` and ``response.in_progress``) nor of its items.

_dump = dump_json
# The defaults a request's echo shares (read only): their JSON is written once.
_NO_REASONING: dict[str, Any] = {"effort": None, "summary": None}
_TEXT_FORMAT: dict[str, Any] = {"format": {"type": "text"}, "verbosity": "medium"}
_ENCODED = {id(_NO_REASONING): _dump(_NO_REASONING), id(_TEXT_FORMAT): _dump(_TEXT_FORMAT)}


def _json(value: Any) -> str:
    """``value`` as JSON, as ``json.dumps(value, ensure_ascii=False)`` writes it: the scalars,
    empty containers and shared defaults a response echoes without the encoder."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    kind = type(value)
    if kind is str:
        return _dump(value)
    if kind is int:
        return int.__repr__(value)
    if kind is float and value - value == 0:  # finite (NaN and infinities as the encoder has them)
        return float.__repr__(value)
    if not value and (kind is dict or kind is list):
        return "{}" if kind is dict else "[]"
    return _ENCODED.get(id(value)) or _dump(value)


# -- the response object -------------------------------------------------------------------------


def response_id(r: Reply) -> str:
    """The ``resp_…`` id of a reply (a seeded reply keeps its id)."""
    return derive_id("resp_", r.id)


def _usage(r: Reply) -> str:
    prompt, completion, reasoning = r.counts()
    return (f'{{"input_tokens": {prompt}, "input_tokens_details": {{"cached_tokens": 0}}, '
            f'"output_tokens": {completion}, '
            f'"output_tokens_details": {{"reasoning_tokens": {reasoning}}}, '
            f'"total_tokens": {prompt + completion}}}')


@dataclass(frozen=True, slots=True)
class _Head:
    """What every state of a reply's response object shares, as JSON: its id and
    ``created_at``, then the members around ``output`` and ``usage`` (the model and the
    request's echo), encoded once per reply."""

    id: str
    created: str
    before_output: str
    before_usage: str
    after_usage: str


def _head(r: Reply) -> _Head:
    get = r.echo.get
    return _Head(
        _dump(response_id(r)), _json(r.created),
        f'"instructions": {_json(get("instructions"))}, '
        f'"max_output_tokens": {_json(get("max_output_tokens"))}, "max_tool_calls": null, '
        f'"model": {_json(r.model)}',
        f'"parallel_tool_calls": {_json(get("parallel_tool_calls", True))}, '
        f'"previous_response_id": {_json(get("previous_response_id"))}, '
        f'"reasoning": {_json(get("reasoning", _NO_REASONING))}, "service_tier": "default", '
        f'"store": {_json(get("store", True))}, "temperature": {_json(get("temperature", 1.0))}, '
        f'"text": {_json(get("text", _TEXT_FORMAT))}, '
        f'"tool_choice": {_json(get("tool_choice", "auto"))}, '
        f'"tools": {_json(get("tools", []))}, "top_logprobs": 0, '
        f'"top_p": {_json(get("top_p", 1.0))}, '
        f'"truncation": {_json(get("truncation", "disabled"))}',
        f'"user": {_json(get("user"))}, "metadata": {_json(get("metadata", {}))}',
    )


def _response(r: Reply, head: _Head, status: str, output: str = "[]", *, usage: bool = False,
              error: dict[str, Any] | None = None) -> str:
    """The ``response`` object in a given state, as JSON (``output``: its items, as JSON)."""
    completed = f', "completed_at": {head.created}' if status in ("completed", "incomplete") else ""
    incomplete = '{"reason": "max_output_tokens"}' if status == "incomplete" else "null"
    return (
        f'{{"id": {head.id}, "object": "response", "created_at": {head.created}, '
        f'"status": "{status}", "background": false, "error": {_json(error)}, '
        f'"incomplete_details": {incomplete}, {head.before_output}, "output": {output}, '
        f'{head.before_usage}, "usage": {_usage(r) if usage else "null"}, '
        f'{head.after_usage}{completed}}}'
    )


def _final_status(r: Reply) -> str:
    return "incomplete" if r.finish_reason == "length" else "completed"


def _call_id(call: ToolCall) -> str:
    return call.id or derive_id("call_", call.name)


@dataclass(slots=True)
class _Item:
    """One output item of a reply: its ``type``, its id and a call's ``call_id`` and ``name``
    as JSON, and the pieces of its text (summary, answer or arguments)."""

    type: str
    id: str
    pieces: Sequence[str]
    call_id: str = ""
    name: str = ""
    _text: str | None = None

    @property
    def text(self) -> str:
        """The whole text, as JSON (encoded when first asked: when the item closes)."""
        if self._text is None:
            self._text = _dump("".join(self.pieces))
        return self._text

    def part(self) -> str:
        """The finished summary or content part."""
        kind = "summary_text" if self.type == "reasoning" else "output_text"
        extra = "" if self.type == "reasoning" else '"annotations": [], "logprobs": [], '
        return f'{{"type": "{kind}", {extra}"text": {self.text}}}'

    def state(self, status: str | None) -> str:
        """The item as ``response.output_item.added`` has it (``status`` None: empty, in
        progress) or finished (a message with the reply's final ``status``)."""
        done = status is not None
        if self.type == "reasoning":
            summary = self.part() if done else ""
            return f'{{"id": {self.id}, "type": "reasoning", "summary": [{summary}]}}'
        if self.type == "message":
            content = self.part() if done else ""
            return (f'{{"id": {self.id}, "type": "message", "status": "{status or "in_progress"}", '
                    f'"content": [{content}], "role": "assistant"}}')
        progress, arguments = ("completed", self.text) if done else ("in_progress", '""')
        return (f'{{"id": {self.id}, "type": "function_call", "status": "{progress}", '
                f'"arguments": {arguments}, "call_id": {self.call_id}, "name": {self.name}}}')


def _items(r: Reply) -> list[_Item]:
    """The output items of a reply, in order."""
    items: list[_Item] = []
    if r.reasoning:
        items.append(_Item("reasoning", _dump(derive_id("rs_", r.id)), r.reasoning))
    if r.content:
        items.append(_Item("message", _dump(derive_id("msg_", r.id)), r.content))
    for call in r.tool_calls:
        call_id = _call_id(call)
        items.append(_Item("function_call", _dump(derive_id("fc_", call_id)), call.arguments,
                           _json(call_id), _json(call.name)))
    return items


def _output(items: list[_Item], status: str) -> str:
    return "[" + ", ".join(item.state(status) for item in items) + "]"


# -- streamed events ------------------------------------------------------------------------------

_EMPTY_TEXT_PART = '{"type": "output_text", "annotations": [], "logprobs": [], "text": ""}'


def _events(r: Reply) -> Iterator[tuple[float, str, str]]:
    """``(offset, type, JSON after the sequence number)`` of every event, in order.

    Each JSON is an object's members after ``"type"`` and ``"sequence_number"``, so the
    sequence number is placed by the caller (one format string per delta: no dict per token).
    """
    items = _items(r)
    status = _final_status(r)
    head = _head(r)
    start = f'"response": {_response(r, head, "in_progress")}}}'
    yield 0.0, "response.created", start
    yield 0.0, "response.in_progress", start
    open_item: int | None = None
    last_at = 0.0

    def close(index: int, at: float) -> Iterator[tuple[float, str, str]]:
        item = items[index]
        where = f'"item_id": {item.id}, "output_index": {index}'
        if item.type == "reasoning":
            yield at, "response.reasoning_summary_text.done", (
                f'{where}, "summary_index": 0, "text": {item.text}}}')
            yield at, "response.reasoning_summary_part.done", (
                f'{where}, "summary_index": 0, "part": {item.part()}}}')
        elif item.type == "message":
            yield at, "response.output_text.done", (
                f'{where}, "content_index": 0, "text": {item.text}, "logprobs": []}}')
            yield at, "response.content_part.done", (
                f'{where}, "content_index": 0, "part": {item.part()}}}')
        else:
            yield at, "response.function_call_arguments.done", (
                f'{where}, "name": {item.name}, "arguments": {item.text}}}')
        yield at, "response.output_item.done", (
            f'"output_index": {index}, "item": {item.state(status)}}}')

    def begin(index: int, at: float) -> Iterator[tuple[float, str, str]]:
        item = items[index]
        yield at, "response.output_item.added", (
            f'"output_index": {index}, "item": {item.state(None)}}}')
        where = f'"item_id": {item.id}, "output_index": {index}'
        if item.type == "reasoning":
            yield at, "response.reasoning_summary_part.added", (
                f'{where}, "summary_index": 0, '
                f'"part": {{"type": "summary_text", "text": ""}}}}')
        elif item.type == "message":
            yield at, "response.content_part.added", (
                f'{where}, "content_index": 0, "part": {_EMPTY_TEXT_PART}}}')

    kinds = [item.type for item in items]
    index_of = {"reasoning": kinds.index("reasoning") if "reasoning" in kinds else -1,
                "content": kinds.index("message") if "message" in kinds else -1}
    first_call = kinds.index("function_call") if "function_call" in kinds else len(kinds)
    prefix = ""
    for at, kind, n, text in r.deltas():
        index = index_of.get(kind, first_call + n)
        if index != open_item:
            if open_item is not None:
                yield from close(open_item, last_at)
            yield from begin(index, at)
            open_item = index
            prefix = f'"item_id": {items[index].id}, "output_index": {index}, '
            if kind == "call":
                last_at = at
                continue
        last_at = at
        if kind == "reasoning":
            yield at, "response.reasoning_summary_text.delta", (
                f'{prefix}"summary_index": 0, "delta": {json_str(text)}}}')
        elif kind == "content":
            yield at, "response.output_text.delta", (
                f'{prefix}"content_index": 0, "delta": {json_str(text)}, "logprobs": []}}')
        elif kind == "args":
            yield at, "response.function_call_arguments.delta", (
                f'{prefix}"delta": {json_str(text)}}}')
    if open_item is not None:
        yield from close(open_item, last_at)
    final = _response(r, head, status, _output(items, status), usage=True)
    yield r.end, f"response.{status}", f'"response": {final}}}'


def _payload(kind: str, seq: int, rest: str) -> str:
    return f'{{"type": "{kind}", "sequence_number": {seq}, {rest}'


def reply_frames(r: Reply, path: str) -> Iterator[Frame]:
    """The reply's frames for ``path``: one event per frame ("sse" bytes with ``event:`` lines,
    "ws" text messages) or one "json" body (the response object)."""
    if path == "json":
        status = _final_status(r)
        body = _response(r, _head(r), status, _output(_items(r), status), usage=True)
        yield Frame(r.end, body.encode())
        return
    for seq, (at, kind, rest) in enumerate(_events(r)):
        payload = _payload(kind, seq, rest)
        yield Frame(at, sse_event(kind, payload) if path == "sse" else payload)


# -- errors and what faults need --------------------------------------------------------------


def _failure(code: int) -> tuple[str, str]:
    """The Responses error ``code`` and message an HTTP status stands for, in a stream."""
    err = status_error(code)
    kind = ("rate_limit_exceeded" if code == 429 else "server_error" if code >= 500
            else "invalid_prompt")
    return kind, f"Injected stream error ({code}): {err.message}"


def _error_events(r: Reply | None, code: int, index: int) -> list[tuple[str, str]]:
    kind, message = _failure(code)
    error = _payload("error", index, f'"code": {json_str(kind)}, "message": '
                                     f'{json_str(message)}, "param": null}}')
    events = [("error", error)]
    if r is not None:
        failed = _response(r, _head(r), "failed", error={"code": kind, "message": message})
        events.append(("response.failed",
                       _payload("response.failed", index + 1, f'"response": {failed}}}')))
    return events


_TERMINAL_SSE = re.compile(rb"event: response\.(?:completed|incomplete)\r?\ndata: [^\n]*\n\r?\n")
_TERMINAL_WS = re.compile(r'^\{"type": ?"response\.(?:completed|incomplete)"')


def _strip_sse(data: bytes | str) -> bytes | str:
    return _TERMINAL_SSE.sub(b"", data) if isinstance(data, bytes) else data


def _strip_ws(data: bytes | str) -> bytes | str:
    return "" if isinstance(data, str) and _TERMINAL_WS.match(data) else data


def _kit(path: str, r: Reply | None) -> FrameKit:
    if path == "sse":
        return FrameKit(
            strip_done=_strip_sse,
            error_frames=lambda code, i: [sse_event(k, p) for k, p in _error_events(r, code, i)],
            malformed=b'event: response.output_text.delta\ndata: {"type": '
                      b'"response.output_text.delta", "delta": "\n\n',
            heartbeat=chat.HEARTBEAT,
        )
    if path == "ws":
        return FrameKit(
            strip_done=_strip_ws,
            error_frames=lambda code, i: [p for _, p in _error_events(r, code, i)],
            malformed='{"type": "response.output_text.delta", "delta": "',
        )
    return FrameKit()


_KITS = {path: _kit(path, None) for path in ("sse", "ws", "json")}


def frame_kit(path: str, r: Reply | None = None) -> FrameKit:
    """The end marker is the terminal ``response.completed``/``incomplete`` event; an
    in-stream error is ``error`` + ``response.failed`` (numbered where it stands; without a
    reply, the ``error`` alone). Made once per path when no reply is given."""
    return _KITS[path] if r is None else _kit(path, r)


def ws_error(err: MockError) -> str:
    """A WebSocket-mode error event: ``{"type": "error", "status": N, "error": {...}}`` (with
    the rate-limit headers of a 429 in ``error.headers``)."""
    error: dict[str, Any] = err.body()["error"]
    headers = err.headers()
    if headers:
        error["headers"] = {k.lower(): v for k, v in headers.items()}
    return json.dumps({"type": "error", "status": err.status, "error": error})


def recorded_ws_error(raw: bytes, status: int) -> str:
    """A recorded HTTP error body as a WebSocket-mode error event."""
    try:
        error = json.loads(raw)["error"]
        if not isinstance(error, dict):
            raise TypeError
    except (ValueError, TypeError, KeyError):
        error = {"message": raw.decode("utf-8", "replace"), "type": "server_error",
                 "param": None, "code": None}
    return json.dumps({"type": "error", "status": status, "error": error})


# -- reading a recording back --------------------------------------------------------------------


def _chat_usage(usage: Any) -> dict[str, Any] | None:
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("input_tokens", 0), usage.get("output_tokens", 0)
    out: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                           "total_tokens": usage.get("total_tokens", prompt + completion)}
    reasoning = (usage.get("output_tokens_details") or {}).get("reasoning_tokens")
    if reasoning:
        out["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return out


def read_reply(frames: Iterable[Frame], transport: str = "ws") -> Reply:
    """The reply plan a recorded Responses stream (event payloads) or ``response`` body
    carries."""
    head: dict[str, Any] = {}
    reasoning: list[tuple[float, str]] = []
    content: list[tuple[float, str]] = []
    calls: dict[str, dict[str, Any]] = {}
    call_times: list[float] = []
    final: dict[str, Any] | None = None
    last_at = 0.0
    for at, event in objects(decoded(frames, transport)):
        last_at = at
        kind = event.get("type")
        if event.get("object") == "response":  # a whole non-streaming body
            event = {"type": "response.completed", "response": event}
            kind = event["type"]
        response = event.get("response")
        if isinstance(response, dict) and not head:
            head = response
        if kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            reasoning.append((at, event.get("delta") or ""))
        elif kind == "response.output_text.delta":
            content.append((at, event.get("delta") or ""))
        elif kind == "response.output_item.added" and (event.get("item") or {}).get(
                "type") == "function_call":
            item = event["item"]
            calls[item.get("id") or str(len(calls))] = {
                "id": item.get("call_id", ""), "name": item.get("name", ""), "args": []}
            call_times.append(at)
        elif kind == "response.function_call_arguments.delta":
            slot = calls.get(event.get("item_id", ""))
            if slot is not None and event.get("delta"):
                slot["args"].append(event["delta"])
                call_times.append(at)
        elif kind in TERMINAL and isinstance(response, dict):
            final = response
    if final is not None and not (reasoning or content or calls):
        _from_body(final, last_at, reasoning, content, calls, call_times)
    finish = "stop"
    if final is not None and final.get("status") == "incomplete":
        finish = "length"
    elif calls:
        finish = "tool_calls"
    return Reply(
        id=head.get("id", "resp_cassette"),
        created=int(head.get("created_at") or 0),
        model=head.get("model", ""),
        content=[t for _, t in content],
        reasoning=[t for _, t in reasoning],
        tool_calls=[ToolCall(c["id"], c["name"], c["args"]) for c in calls.values()],
        finish_reason=finish,
        times=[at for at, _ in reasoning] + [at for at, _ in content] + call_times,
        usage=_chat_usage((final or {}).get("usage")),
    )


def _from_body(body: dict[str, Any], at: float, reasoning: list[tuple[float, str]],
               content: list[tuple[float, str]], calls: dict[str, dict[str, Any]],
               call_times: list[float]) -> None:
    """Fill the reply's parts from a finished response's ``output`` items."""
    for item in body.get("output") or []:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "reasoning":
            text = "".join(s.get("text", "") for s in item.get("summary") or [])
            if text:
                reasoning.append((at, text))
        elif item.get("type") == "message":
            text = "".join(p.get("text", "") for p in item.get("content") or []
                           if isinstance(p, dict) and p.get("type") == "output_text")
            if text:
                content.append((at, text))
        elif item.get("type") == "function_call":
            calls[item.get("id") or str(len(calls))] = {
                "id": item.get("call_id", ""), "name": item.get("name", ""),
                "args": [item.get("arguments", "")]}
            call_times += [at, at]
