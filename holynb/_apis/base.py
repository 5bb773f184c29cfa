"""What every API module shares: its spec, the stream parser's state, tool-call accumulation."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from holynb._errors import ConfigError, HolyError
from holynb._events import ContentDelta, ReasoningDelta, StreamEvent, ToolCallDelta
from holynb._stats import StreamStats
from holynb.sse import ServerSentEvent

__all__ = ["APISpec", "Completion", "StreamParser", "ToolCalls", "build_messages"]


@dataclass(frozen=True, slots=True)
class Completion:
    """The parts of a non-streamed reply."""

    text: str
    reasoning: str
    finish_reason: str | None
    usage: dict[str, Any] | None
    tool_calls: list[dict[str, Any]]
    model: str | None


@dataclass(frozen=True, slots=True)
class APISpec:
    """One API: where requests go, how they authenticate, how bodies and replies look."""

    name: str
    path: str
    ws_path: str | None
    auth_headers: Callable[[str], dict[str, str]]
    build_body: Callable[..., dict[str, Any]]
    parser: Callable[..., StreamParser]
    parse_reply: Callable[[Any, StreamStats], Completion]


def build_messages(messages_or_prompt: str | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A prompt string becomes one user message; a message list is checked and copied."""
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
        if not isinstance(message, Mapping) or "role" not in message:
            raise ConfigError(
                f"Message {i} must be a dict with a 'role' (and 'content'), got {message!r:.80}."
            )
        messages.append(dict(message))
    return messages


class ToolCalls:
    """Accumulates streamed tool-call fragments into OpenAI-format tool calls (by index)."""

    __slots__ = ("_calls",)

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, Any]] = {}

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
            if events is not None:
                events.append(ToolCallDelta(index, d.get("id") or None, name, arguments))

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
        "usage",
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
        self.usage: dict[str, Any] | None = None
        self.model: str | None = None
        self.tools = ToolCalls()
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
        stats.tokens = len(self.parts)

    def record_usage(self, usage: Any) -> None:
        """Keep the usage object and its token counts (reasoning tokens when reported)."""
        if not isinstance(usage, dict):
            return
        self.usage = usage
        stats = self.stats
        prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
        completion = usage.get("completion_tokens", usage.get("output_tokens"))
        if isinstance(prompt, int):
            stats.prompt_tokens = prompt
        if isinstance(completion, int):
            stats.completion_tokens = completion
        details = usage.get("completion_tokens_details") or usage.get("output_tokens_details")
        if isinstance(details, dict) and isinstance(details.get("reasoning_tokens"), int):
            stats.reasoning_tokens = details["reasoning_tokens"]
            self._reasoning_reported = True
