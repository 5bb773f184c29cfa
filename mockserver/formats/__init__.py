"""API formats: each renders a :class:`~mockserver._reply.Reply` as its API's frames.

A format knows one API's wire: how its requests look (parsing and validation into a request
record the pipeline reads), where a request carries its key and how the API refuses one, how a
reply plan becomes frames for each path (``sse``, ``ws``, ``json``), what its end marker,
in-stream errors, keep-alives and broken frames are (a :class:`~mockserver._faults.FrameKit` for
the fault machinery), how its errors are shaped, and how to read a reply plan back out of a
recording of it (so a cassette recorded in one API can be served in another).

| module | API | paths |
|---|---|---|
| :mod:`.chat` | OpenAI chat completions (``/v1/chat/completions``, ``/v1/ws/chat``) | sse ws json |
| :mod:`.responses` | OpenAI Responses (``/v1/responses``, SSE and WebSocket mode) | sse ws json |
| :mod:`.anthropic` | Anthropic Messages (``/v1/messages``) | sse json |
| :mod:`.gemini` | Gemini ``generateContent``, ``streamGenerateContent`` (SSE, array) | sse json |
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from holynb.sse import SSEDecoder  # the project's one SSE decoder (allowed in mockserver)

from .._errors import MockError
from .._faults import FrameKit
from .._frames import Frame
from .._reply import Reply

__all__ = [
    "APIRequest",
    "Format",
    "Request",
    "chat_view",
    "decoded",
    "derive_id",
    "dump_json",
    "objects",
    "json_str",
    "parse_json",
    "sse_event",
]


class Request(Protocol):
    """What the pipeline reads of a parsed request, whatever its API.

    ``messages`` is the conversation in chat-completions form (``role`` and text ``content``),
    so generated text, cassette matching and the shipped cassettes work the same for every API;
    ``chat`` is the request as a chat-completions body (what cassettes are matched on).
    """

    model: str
    messages: list[dict[str, Any]]
    stream: bool
    max_tokens: int | None
    include_usage: bool
    raw: dict[str, Any]

    @property
    def chat(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class APIRequest:
    """A request whose conversation the format has already read into chat ``messages``."""

    model: str
    messages: list[dict[str, Any]]
    stream: bool
    max_tokens: int | None
    raw: dict[str, Any]
    include_usage: bool = False

    @property
    def chat(self) -> dict[str, Any]:
        """As a chat-completions body, for cassette matching."""
        return chat_view(self.model, self.messages, self.max_tokens, self.raw)


class Format(Protocol):
    """One API's wire, as a module or an object (``formats.chat`` is a module): the pipeline
    parses requests and renders reply plans through it; the fault machinery reads its
    :class:`FrameKit`; cassettes read replies back through it."""

    API: str  # the name the journal and cassette files use: "chat", "responses", ...
    MAX_TOKENS_IS_BUDGET: bool  # the API requires max_tokens: it only cuts a generated reply
    SSE_HEADERS: Mapping[str, str]  # the head of a streamed HTTP answer

    def parse_request(self, body: Any, route: Mapping[str, str] | None = None) -> Request:
        """A decoded body (and what the URL says, e.g. Gemini's model) as this API's request;
        a 400 :class:`MockError` naming the bad field."""

    def api_key(self, headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
        """The key a request carries, where this API puts it (None when absent)."""

    def auth_error(self, key: str | None, *, placeholder: bool) -> MockError:
        """How this API refuses a missing (None), placeholder or unknown key."""

    def error_response(self, err: MockError) -> web.Response:
        """An error as this API's HTTP error response."""

    def reply_frames(self, r: Reply, path: str) -> Iterator[Frame]:
        """A reply plan as frames for ``path`` ("sse", "ws" or "json")."""

    def frame_kit(self, path: str, r: Reply | None) -> FrameKit:
        """What this API's end marker, in-stream error, keep-alive and broken frame look like
        (``r`` is the reply being sent, when known: some errors name its id)."""

    def read_reply(self, frames: Iterable[Frame], transport: str = "ws") -> Reply:
        """The reply plan a recording carries: its frames as recorded over ``transport`` ("ws":
        already one payload per frame, e.g. decoded SSE events; "json": one whole body)."""

    def ws_error(self, err: MockError) -> str:
        """An error as a WebSocket message."""

    def recorded_ws_error(self, raw: bytes, status: int) -> str:
        """A recorded HTTP error body as a WebSocket message."""


def parse_json(data: bytes | str, *, hint: str = "Send a JSON object.") -> Any:
    """Decode a JSON body or frame; raise a 400 :class:`MockError` saying what is wrong."""
    try:
        # Decode explicitly: json.loads(bytes) would guess UTF-16/32 from a BOM.
        return json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
    except UnicodeDecodeError:
        raise MockError(400, "The body is not valid UTF-8; send UTF-8 encoded JSON.") from None
    except json.JSONDecodeError as exc:
        raise MockError(
            400,
            f"We could not parse the JSON body of your request ({exc.msg} at line {exc.lineno} "
            f"column {exc.colno}). {hint}",
            code="invalid_json",
        ) from None
    except (ValueError, RecursionError):
        # Valid JSON the decoder refuses: nesting past the recursion limit, or an integer
        # longer than Python's int-conversion limit (4300 digits).
        raise MockError(
            400,
            "We could not parse the JSON body of your request: it is nested too deeply or holds "
            f"a number too long to read. {hint}",
            code="invalid_json",
        ) from None


#: ``json.dumps(value, ensure_ascii=False)`` without the per-call keyword handling.
dump_json = json.JSONEncoder(ensure_ascii=False).encode


@functools.lru_cache(maxsize=8192)
def json_str(text: str) -> str:
    """A JSON string literal (cached: generated text repeats a small vocabulary)."""
    return dump_json(text)


def sse_event(name: str, payload: str) -> bytes:
    """One SSE event with an ``event:`` line (Responses, Anthropic)."""
    return f"event: {name}\ndata: {payload}\n\n".encode()


def decoded(frames: Iterable[Frame], transport: str) -> list[Frame]:
    """A recording's payloads with their offsets: each SSE event's ``data`` at the offset of
    the write that completed it (an event cut off at the end is dropped, as a client would);
    WebSocket text messages and a JSON body as they are."""
    if transport != "sse":
        return [Frame(f.at, f.data if isinstance(f.data, str) else
                      f.data.decode("utf-8", "replace")) for f in frames
                if isinstance(f.data, str) or transport == "json"]
    decoder = SSEDecoder()
    out: list[Frame] = []
    for frame in frames:
        data = frame.data.encode("utf-8") if isinstance(frame.data, str) else frame.data
        out.extend(Frame(frame.at, event.data) for event in decoder.feed(data))
    decoder.close()
    return out


def objects(messages: Iterable[Frame]) -> Iterator[tuple[float, dict[str, Any]]]:
    """The payloads that are JSON objects, with their offsets (broken JSON, ``[DONE]`` and
    other non-objects are skipped, as a tolerant reader of a recording would)."""
    for message in messages:
        try:
            value = json.loads(message.data)
        except (TypeError, ValueError):
            continue
        if isinstance(value, dict):
            yield message.at, value


def derive_id(prefix: str, reply_id: str) -> str:
    """An id in an API's own form (``resp_…``, ``msg_…``) for a reply: the reply's own id when
    it has that form already, else the prefix and the hex part of a generated id (so a seeded
    reply keeps its id in every API), else a hash of it."""
    if prefix and reply_id.startswith(prefix):
        return reply_id
    _, sep, tail = reply_id.partition("-")
    if sep and tail and not tail.strip("0123456789abcdef"):  # all lowercase hex
        return prefix + tail
    return prefix + hashlib.sha256(reply_id.encode()).hexdigest()[:24]


def chat_view(model: str, messages: list[dict[str, Any]], max_tokens: int | None,
              params: Mapping[str, Any]) -> dict[str, Any]:
    """A request of any API as the chat-completions body cassettes are matched on."""
    body: dict[str, Any] = {"model": model, "messages": messages}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    for key in ("temperature", "top_p", "stop", "seed", "tools", "tool_choice"):
        if params.get(key) is not None:
            body[key] = params[key]
    return body
