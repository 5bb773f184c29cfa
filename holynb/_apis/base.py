"""What every API module shares: its spec, the stream parser's state, tool-call accumulation,
and the chat-form conversation helpers the other APIs convert from.

Conversations are given in chat-completions form whatever the API (system/user/assistant/tool
messages, assistant ``tool_calls``); a reply's :func:`assistant_message` is in the same form, with
the API's own reasoning blocks (Anthropic thinking blocks with their signatures, Responses
reasoning items) under ``"thinking_blocks"`` so that the next turn can send them back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from holynb._apis.errors import error_event_payload, one_line
from holynb._config import scrub
from holynb._errors import ConfigError, HolyError, MalformedChunkError
from holynb._events import ContentDelta, ReasoningDelta, StreamEvent, ToolCallDelta
from holynb._stats import StreamStats
from holynb.sse import ServerSentEvent

__all__ = [
    "APISpec",
    "Completion",
    "StreamParser",
    "ToolCalls",
    "TypedEventParser",
    "WSProtocol",
    "apply_params",
    "assistant_message",
    "build_messages",
    "function_tools",
    "map_parts",
    "split_system",
    "text_of",
    "usage_stats",
]

# The key of an assistant message that carries the API's own reasoning blocks.
THINKING_BLOCKS = "thinking_blocks"


@dataclass(frozen=True, slots=True)
class Completion:
    """The parts of a non-streamed reply."""

    text: str
    reasoning: str
    finish_reason: str | None
    usage: dict[str, Any] | None
    tool_calls: list[dict[str, Any]]
    model: str | None
    raw_finish_reason: str | None = None
    raw_usage: dict[str, Any] | None = None
    blocks: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class WSProtocol:
    """How an API streams over a WebSocket.

    ``request`` makes the request frame from the body; ``ends`` tells whether a batch of frames
    ends the stream (then the socket may carry the next one); ``error`` returns the
    ``{"error": {...}}`` payload of a frame that refuses the request (None otherwise). Control
    frames the API has (None: it has none; without ``cancel`` a stream is stopped by closing its
    socket, without ``ping`` idle sockets are kept alive with WebSocket pings).
    """

    request: Callable[[dict[str, Any]], str]
    ends: Callable[[list[str]], bool]
    error: Callable[[str], dict[str, Any] | None]
    ping: str | None = None
    pause: str | None = None
    resume: str | None = None
    cancel: str | None = None


@dataclass(frozen=True, slots=True)
class APISpec:
    """One API: where requests go, how they authenticate, how bodies and replies look."""

    name: str
    label: str
    path: str
    auth_headers: Callable[[str], dict[str, str]]
    build_body: Callable[..., dict[str, Any]]
    parser: Callable[..., StreamParser]
    parse_reply: Callable[[Any, StreamStats], Completion]
    ws_path: str | None = None
    ws: WSProtocol | None = None
    models_path: str = "/models"


def build_messages(
    messages_or_prompt: str | Sequence[Mapping[str, Any]], *, items: bool = False
) -> list[dict[str, Any]]:
    """A prompt string becomes one user message; a message list is checked and copied.

    With ``items``, entries with a ``type`` and no ``role`` (an API's own input items) pass too.
    """
    if isinstance(messages_or_prompt, str):
        if not messages_or_prompt.strip():
            raise ConfigError("The prompt is empty: pass some text or a list of messages.")
        return [{"role": "user", "content": messages_or_prompt}]
    if not isinstance(messages_or_prompt, Sequence) or not messages_or_prompt:
        raise ConfigError(
            "Pass a prompt string or a non-empty list of messages like "
            '[{"role": "user", "content": "Hi"}].'
        )
    messages: list[dict[str, Any]] = []
    for i, message in enumerate(messages_or_prompt):
        if items and isinstance(message, Mapping) and "type" in message:
            messages.append(dict(message))
            continue
        if not isinstance(message, Mapping) or "role" not in message:
            raise ConfigError(
                f"Message {i} must be a dict with a 'role' (and 'content'), got {message!r:.80}."
            )
        messages.append(dict(message))
    return messages


class ToolCalls:
    """Accumulates streamed tool-call fragments into OpenAI-format tool calls (by index).

    With ``stats``, every fragment that carries a name or arguments counts in ``stats.tokens``
    (what the model generated, until usage says otherwise).
    """

    __slots__ = ("_calls", "_stats")

    def __init__(self, stats: StreamStats | None = None) -> None:
        self._calls: dict[int, dict[str, Any]] = {}
        self._stats = stats

    def add(self, deltas: list[dict[str, Any]], events: list[Any] | None = None) -> None:
        """Merge OpenAI-form fragments (ids and types set, names and arguments appended).

        With ``events``, each fragment is also appended to it as a :class:`ToolCallDelta`.
        """
        calls = self._calls
        for d in deltas:
            if not isinstance(d, dict):
                continue
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
            fn = d.get("function") or {}
            name = fn.get("name") or None
            arguments = fn.get("arguments") or ""
            if name:
                call["function"]["name"] += name
            if arguments:
                call["function"]["arguments"] += arguments
            if (name or arguments) and self._stats is not None:
                self._stats.tokens += 1
            if events is not None:
                events.append(ToolCallDelta(index, d.get("id") or None, name, arguments))

    def arguments(self, index: int) -> str:
        """The arguments of call ``index`` so far ('' if there is no such call)."""
        call = self._calls.get(index)
        return call["function"]["arguments"] if call is not None else ""

    def finish(
        self,
        index: int,
        *,
        id: str | None,
        name: str | None,
        arguments: str | None,
        events: list[Any] | None = None,
    ) -> None:
        """Set a call's final id, name and arguments (an API's "done" event replaces what the
        deltas said). Arguments that extend the streamed ones are delivered as one more
        fragment, so that ``events()`` readers see them too."""
        if index not in self._calls:
            self.add([{"index": index, "id": id, "function": {"name": name or ""}}], events)
        call = self._calls[index]
        if id:
            call["id"] = id
        if name:
            call["function"]["name"] = name
        if arguments is not None:
            streamed = call["function"]["arguments"]
            if arguments.startswith(streamed) and arguments != streamed:
                self.add([{"index": index, "function": {"arguments": arguments[len(streamed):]}}],
                         events)
            call["function"]["arguments"] = arguments

    def __len__(self) -> int:
        return len(self._calls)

    def result(self) -> list[dict[str, Any]]:
        """The tool calls so far, ordered by index (copies; safe to keep)."""
        return [
            {"id": c["id"], "type": c["type"], "function": dict(c["function"])}
            for _, c in sorted(self._calls.items())
        ]

    def __bool__(self) -> bool:
        return bool(self._calls)


class StreamParser:
    """The state of one stream's reply, filled by an API's ``feed_sse`` / ``feed_ws``.

    Both feed methods take one network read's worth of events (SSE) or frames (WebSocket) and
    return the content deltas in it (``str``); with ``events`` on (``want_events()``), every
    content, reasoning and tool-call delta is also appended to ``.events`` in wire order. An
    error payload or malformed chunk stops the batch and is left in ``.error`` for the caller to
    raise after delivering what came before it. ``started`` turns True with the first content,
    reasoning or tool-call delta: from then on nothing is retried, and the idle timeout applies.
    """

    __slots__ = (
        "parts",
        "reasoning_parts",
        "finish_reason",
        "raw_finish_reason",
        "usage",
        "raw_usage",
        "blocks",
        "model",
        "tools",
        "done",
        "started",
        "error",
        "stats",
        "t0",
        "events",
        "_last",
        "_recorded",
        "_first_reasoning",
        "_reasoning_reported",
        "_skip_malformed",
        "_secrets",
    )

    # What a complete stream ends with, for the message when one ends before it.
    END = "no end event"

    def __init__(
        self,
        stats: StreamStats,
        *,
        t0: float,
        skip_malformed: bool,
        secrets: tuple[str | None, ...],
    ) -> None:
        self.stats = stats
        self.t0 = t0
        self._skip_malformed = skip_malformed
        self._secrets = secrets
        self.events: list[StreamEvent] | None = None
        self.reset()

    def want_events(self) -> None:
        """Collect typed events in ``.events`` from now on."""
        if self.events is None:
            self.events = []

    def reset(self) -> None:
        """Forget everything received (a retry before the first delta starts over)."""
        self.parts: list[str] = []
        self.reasoning_parts: list[str] = []
        self.finish_reason: str | None = None
        self.raw_finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.raw_usage: dict[str, Any] | None = None
        self.blocks: list[dict[str, Any]] = []
        self.model: str | None = None
        self.tools = ToolCalls(self.stats)
        self.done = False
        self.started = False
        self.error: HolyError | None = None
        self._last: float | None = None
        self._recorded = 0
        self._first_reasoning: float | None = None
        self._reasoning_reported = False
        if self.events is not None:
            self.events.clear()

    def feed_sse(self, events: list[ServerSentEvent], now: float) -> list[str]:
        """Process the SSE events of one read received at ``now``; return the content deltas."""
        raise NotImplementedError

    def feed_ws(self, frames: list[str], now: float) -> list[str]:
        """Process the WebSocket text frames of one read; return the content deltas."""
        raise NotImplementedError

    def _malformed(self, data: str, chunks: int) -> bool:
        """A payload that is not valid JSON: skipped (counted) or the stream's error (True)."""
        if self._skip_malformed:
            self.stats.skipped_chunks += 1
            return False
        raw = scrub(data[:200], *self._secrets)
        number = self.stats.chunks + chunks + self.stats.skipped_chunks + 1
        self.error = MalformedChunkError(
            f"Chunk {number} of the stream is not valid JSON ({one_line(raw, 60)!r})",
            hint="pass skip_malformed=True to skip such chunks",
            raw=raw,
            partial_text="".join(self.parts),
        )
        return True

    # -- recording, for the API parsers ------------------------------------------------------

    def reasoning(self, text: str, now: float) -> None:
        """Record a reasoning delta received at ``now``."""
        stats = self.stats
        if self._first_reasoning is None:
            self._first_reasoning = now
            stats.ttfr_s = now - self.t0
        self.started = True
        self.reasoning_parts.append(text)
        if not self._reasoning_reported:
            stats.reasoning_tokens += 1
        if self.events is not None:
            self.events.append(ReasoningDelta(text))

    def record_content(self, out: list[str], now: float) -> None:
        """Record the content deltas at the end of ``out`` not recorded yet in this batch.

        Text, events, TTFT (the first one, which also ends the reasoning phase) and ITL: deltas
        read together arrive together, so the gaps between them are 0.0.
        """
        done = self._recorded
        if len(out) == done:
            return
        fresh = out[done:] if done else out
        self._recorded = len(out)
        stats = self.stats
        if self._last is None:
            stats.ttft_s = now - self.t0
            if self._first_reasoning is not None:
                stats.reasoning_s = now - self._first_reasoning
            self.started = True
        else:
            stats.itl_s.append(now - self._last)
        if len(fresh) > 1:
            stats.itl_s.extend([0.0] * (len(fresh) - 1))
        self._last = now
        self.parts.extend(fresh)
        if self.events is not None:
            self.events.extend(map(ContentDelta, fresh))
        stats.tokens += len(fresh)

    def record_usage(self, usage: Any) -> None:
        """Keep the (chat-form) usage object and its token counts in the stats."""
        if not isinstance(usage, dict):
            return
        self.usage = usage
        if usage_stats(usage, self.stats):
            self._reasoning_reported = True


class TypedEventParser(StreamParser):
    """A stream of typed JSON events (``{"type": ...}``), as the Responses and Messages APIs
    send them: the same JSON in SSE data and WebSocket frames.

    A subclass names its text-delta event (:attr:`TEXT_EVENT`) and says where the text is
    (:meth:`_text`); every other event goes to :meth:`_event`. The text of consecutive text
    deltas is recorded once per batch, as in the chat parser.
    """

    __slots__ = ()

    TEXT_EVENT = ""

    def feed_sse(self, events: list[ServerSentEvent], now: float) -> list[str]:
        """SSE: each event's data is the event object (the ``event:`` name repeats its type)."""
        return self.feed_ws(
            [error_event_payload(e.data) if e.event == "error" else e.data
             for e in events if e.data],
            now,
        )

    def feed_ws(self, frames: list[str], now: float) -> list[str]:
        """Event JSON texts (WebSocket frames, SSE data) received at ``now``."""
        out: list[str] = []
        emit = out.append
        events_wanted = self.events is not None
        loads = orjson.loads
        text_event = self.TEXT_EVENT
        text_of_event = self._text
        chunks = 0
        obj: Any = None
        self._recorded = 0
        for data in frames:
            try:
                obj = loads(data)
                kind = obj["type"]
            except orjson.JSONDecodeError:
                if data == "[DONE]":  # some relays end these streams the chat way
                    self.done = True
                    break
                self.record_content(out, now)
                if self._malformed(data, chunks):
                    break
                continue
            except (KeyError, TypeError):
                self.record_content(out, now)
                if isinstance(obj, dict) and "error" in obj:
                    kind = "error"
                elif self._malformed(data, chunks):
                    break
                else:
                    continue
            chunks += 1
            if kind == text_event:
                text = text_of_event(obj)
                if text is not None:
                    if text:
                        emit(text)  # recorded per batch, or now when typed events are wanted
                        if events_wanted:
                            self.record_content(out, now)
                    continue
            self.record_content(out, now)
            if self._event(kind, obj, out, now):
                break
        self.record_content(out, now)
        self.stats.chunks += chunks
        return out

    @staticmethod
    def _text(obj: dict[str, Any]) -> str | None:
        """The text of a :attr:`TEXT_EVENT` event ('' if empty), None if it carries none."""
        raise NotImplementedError

    def _event(self, kind: str, obj: dict[str, Any], out: list[str], now: float) -> bool:
        """Handle one event other than a text delta; True ends the batch (end or error)."""
        raise NotImplementedError


def usage_stats(usage: Mapping[str, Any] | None, stats: StreamStats) -> bool:
    """Copy a chat-form usage object's token counts into ``stats``; True if it reported
    reasoning tokens."""
    if not isinstance(usage, Mapping):
        return False
    prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
    completion = usage.get("completion_tokens", usage.get("output_tokens"))
    if isinstance(prompt, int):
        stats.prompt_tokens = prompt
    if isinstance(completion, int):
        stats.completion_tokens = completion
    details = usage.get("completion_tokens_details") or usage.get("output_tokens_details")
    if isinstance(details, dict) and isinstance(details.get("reasoning_tokens"), int):
        stats.reasoning_tokens = details["reasoning_tokens"]
        return True
    return False


# -- chat-form conversations, for the APIs that convert from them --------------------------------


def apply_params(
    body: dict[str, Any],
    params: Mapping[str, Any],
    *,
    reserved: tuple[str, ...],
    convert: Callable[[str, Any], tuple[str, Any]] | None = None,
) -> dict[str, Any]:
    """Set request parameters on ``body`` (a None value removes one) and return it;
    ``convert(name, value)`` gives the API's name and form of a parameter."""
    for name, value in params.items():
        if name in reserved:
            raise ConfigError(f"{name}= is set by holynb; pass the prompt/model arguments.")
        if convert is not None:
            name, value = convert(name, value)
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value
    return body


def text_of(content: Any) -> str:
    """The text of a message's content: a string, or the ``text`` of its parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"] for part in content
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        )
    return "" if content is None else str(content)


def split_system(messages: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """(the system and developer messages' text joined, the other messages)."""
    system = [text_of(m.get("content")) for m in messages
              if m.get("role") in ("system", "developer")]
    rest = [m for m in messages if m.get("role") not in ("system", "developer")]
    return "\n\n".join(t for t in system if t), rest


def function_tools(tools: Any, convert: Callable[[dict[str, Any]], Any]) -> list[Any]:
    """``tools`` with each OpenAI-form function tool (``{"type": "function", "function":
    {...}}``) converted by ``convert(function)``; tools in another form (the API's own) pass."""
    if not isinstance(tools, list):
        raise ConfigError(
            'tools= must be a list like [{"type": "function", "function": {"name": ...}}].'
        )
    out: list[Any] = []
    for tool in tools:
        fn = tool.get("function") if isinstance(tool, Mapping) else None
        if tool.get("type") == "function" and isinstance(fn, Mapping):
            if not fn.get("name"):
                raise ConfigError(f"Tool {tool!r:.80} has no function name.")
            out.append(convert(dict(fn)))
        else:
            out.append(tool)
    return out


def map_parts(
    content: Any, text: Callable[[str], Any], image: Callable[[str], Any]
) -> Any:
    """A chat message's content parts in an API's form: ``text(str)`` for text parts (None
    drops one), ``image(url)`` for image_url parts; other parts and plain strings pass."""
    if not isinstance(content, list):
        return content
    parts = []
    for part in content:
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text":
            converted = text(str(part.get("text") or ""))
            if converted is not None:
                parts.append(converted)
        elif kind == "image_url":
            url = part.get("image_url")
            parts.append(image(str(url.get("url") if isinstance(url, Mapping) else url)))
        else:
            parts.append(part)
    return parts


def tool_arguments(call: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON object of an assistant tool call's ``function.arguments``."""
    raw = (call.get("function") or {}).get("arguments") or "{}"
    try:
        value = orjson.loads(raw) if isinstance(raw, str) else raw
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise ConfigError(
            f"The arguments of tool call {call.get('id')!r} are not a JSON object "
            f"({str(raw)!r:.60}): fix them before sending the conversation on."
        )
    return value


def assistant_message(
    text: str, tool_calls: list[dict[str, Any]], blocks: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """A reply as a chat-form assistant message, to append to the conversation."""
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if blocks:
        message[THINKING_BLOCKS] = [dict(b) for b in blocks]
    return message
