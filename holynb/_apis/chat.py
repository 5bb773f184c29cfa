"""OpenAI chat completions: ``POST {base}/chat/completions`` (SSE) and ``{base}/ws/chat``.

The stream parser is the client's hot path: each payload is decoded once with orjson and a
plain content chunk costs a few dict lookups. Thinking text arrives as
``delta.reasoning_content`` (DeepSeek) or ``delta.reasoning`` (OpenRouter, vLLM).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from holynb._apis.base import (
    THINKING_BLOCKS,
    APISpec,
    Completion,
    StreamParser,
    WSProtocol,
    apply_params,
    build_messages,
)
from holynb._apis.errors import error_event_payload, error_from_payload
from holynb._stats import StreamStats
from holynb.sse import ServerSentEvent

__all__ = ["API", "ChatParser", "build_body", "parse_reply"]

_loads = orjson.loads
_JSONError = orjson.JSONDecodeError
_DONE = "[DONE]"


def auth_headers(key: str) -> dict[str, str]:
    """``Authorization: Bearer <key>``."""
    return {"Authorization": f"Bearer {key}"}


def build_body(
    model: str,
    messages_or_prompt: str | Sequence[Mapping[str, Any]],
    params: Mapping[str, Any],
    *,
    stream: bool,
) -> dict[str, Any]:
    """The request body; ``params`` are chat-completions parameters (None removes one)."""
    messages = build_messages(messages_or_prompt)
    for message in messages:
        # holynb's record of another API's reasoning blocks is not a chat-completions field.
        message.pop(THINKING_BLOCKS, None)
    body: dict[str, Any] = {"model": model, "messages": messages}
    if stream:
        body["stream"] = True
        # Ask for the usage chunk (OpenAI sends it only when asked); stream_options=None omits.
        body["stream_options"] = {"include_usage": True}
    return apply_params(body, params, reserved=("stream", "model", "messages"))


def _reasoning_of(delta: dict[str, Any]) -> Any:
    return delta.get("reasoning_content") or delta.get("reasoning")


class ChatParser(StreamParser):
    """Chat-completion chunks → content, reasoning and tool-call deltas, usage, errors."""

    __slots__ = ()

    END = "no finish_reason, no [DONE]"

    def feed_sse(self, events: list[ServerSentEvent], now: float) -> list[str]:
        """SSE: ``message`` events carry chunks; ``event: error`` carries an error."""
        frames = [event.data for event in events if event.event == "message"]
        if len(frames) != len(events):
            # Rare: other event types. ``error`` ones keep their place; the rest are not part
            # of the chat-completions stream and are ignored.
            frames = [
                event.data if event.event == "message" else error_event_payload(event.data)
                for event in events
                if event.event in ("message", "error")
            ]
        return self.feed_ws(frames, now)

    def feed_ws(self, frames: list[str], now: float) -> list[str]:
        """Chunk JSON texts (WebSocket frames, SSE data) received at ``now``."""
        out: list[str] = []
        emit = out.append
        events = self.events
        loads = _loads
        chunks = 0
        obj: Any = None
        need_model = self.model is None
        self._recorded = 0
        for data in frames:
            if data == _DONE:
                self.done = True
                break
            try:
                obj = loads(data)
                choice = obj["choices"][0]
                delta = choice["delta"]
                content = delta.get("content")
            except _JSONError:
                self.record_content(out, now)
                if self._malformed(data, chunks):
                    break
                continue
            except (KeyError, IndexError, TypeError, AttributeError):
                self.record_content(out, now)
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
            if content and len(delta) == 1 and events is None:
                emit(content)  # the fast path: a plain content chunk, recorded per batch
            else:
                # Thinking, tool calls, a role or an empty delta, or typed events wanted:
                # record in wire order.
                self.record_content(out, now)
                thought = _reasoning_of(delta)
                if thought and isinstance(thought, str):
                    self.reasoning(thought, now)
                tool_calls = delta.get("tool_calls")
                if tool_calls and isinstance(tool_calls, list):
                    self.tools.add(tool_calls, events)
                    self.started = True
                if content:
                    emit(content)
                    self.record_content(out, now)
            reason = choice.get("finish_reason")
            if reason:
                self.finish_reason = reason
            usage = obj.get("usage")
            if usage:
                self.record_usage(usage)
            if need_model:
                self.model = obj.get("model")
                need_model = self.model is None
        self.record_content(out, now)
        self.stats.chunks += chunks
        return out

    def _other(self, obj: dict[str, Any]) -> bool:
        """A chunk off the fast path: an error, usage only or a finish reason without delta."""
        if "error" in obj:
            self.error = error_from_payload(
                obj, secrets=self._secrets, partial_text="".join(self.parts)
            )
            return True
        usage = obj.get("usage")
        if usage:
            self.record_usage(usage)
        choices = obj.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            reason = choices[0].get("finish_reason")
            if reason:
                self.finish_reason = reason
        if self.model is None:
            self.model = obj.get("model")
        return False


def parse_reply(data: Any, stats: StreamStats) -> Completion:
    """A non-streamed ``chat.completion`` object → its parts (usage recorded in ``stats``)."""
    parser = ChatParser(stats, t0=0.0, skip_malformed=False, secrets=())
    message: dict[str, Any] = {}
    choices = data.get("choices") if isinstance(data, dict) else None
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        message = choices[0].get("message") or {}
        parser.finish_reason = choices[0].get("finish_reason")
    if isinstance(data, dict):
        parser.record_usage(data.get("usage"))
    if isinstance(message.get("tool_calls"), list):
        parser.tools.add(message["tool_calls"])
    reasoning = _reasoning_of(message) if isinstance(message, dict) else None
    return Completion(
        text=message.get("content") or "",
        reasoning=reasoning if isinstance(reasoning, str) else "",
        finish_reason=parser.finish_reason,
        usage=parser.usage,
        tool_calls=parser.tools.result(),
        model=data.get("model") if isinstance(data, dict) else None,
    )


def _ends(frames: list[str]) -> bool:
    # [DONE] ends a stream; so does an error frame (the socket stays usable).
    last = frames[-1]
    return last == _DONE or last.startswith('{"error"') or _DONE in frames


def _ws_error(frame: str) -> dict[str, Any] | None:
    if not frame.startswith('{"error"'):
        return None
    try:
        payload = _loads(frame)
    except _JSONError:
        payload = None
    return payload if isinstance(payload, dict) else {"error": {"message": frame}}


# holynb's own protocol (DESIGN.md): the request as one frame, one chunk per frame, [DONE].
WS = WSProtocol(
    request=lambda body: orjson.dumps(body).decode(),
    ends=_ends,
    error=_ws_error,
    ping='{"type": "ping"}',
    pause='{"type": "pause"}',
    resume='{"type": "resume"}',
    cancel='{"type": "cancel"}',
)

API = APISpec(
    name="chat",
    label="chat completions",
    path="/chat/completions",
    auth_headers=auth_headers,
    build_body=build_body,
    parser=ChatParser,
    parse_reply=parse_reply,
    ws_path="/ws/chat",
    ws=WS,
)
