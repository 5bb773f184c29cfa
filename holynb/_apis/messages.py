"""Anthropic Messages: ``POST {base}/messages`` (SSE only; the API has no WebSocket mode).

Auth is ``x-api-key`` with ``anthropic-version``. Requests are built from a chat-form
conversation: system messages become ``system``, assistant tool calls ``tool_use`` blocks (after
the turn's thinking blocks, which must come back with their signatures), tool results
``tool_result`` blocks in a user turn; OpenAI-form tools become ``input_schema`` tools,
``tool_choice`` and ``stop`` are translated, and ``max_tokens`` (required by the API) defaults to
:data:`DEFAULT_MAX_TOKENS`.

The stream: ``message_start``, per content block ``content_block_start`` / ``_delta`` /
``_stop`` (``text_delta``, ``thinking_delta``, ``signature_delta``, ``input_json_delta``),
``message_delta`` (stop reason, cumulative usage), ``message_stop``; ``ping`` and ``error``
events anywhere. https://docs.anthropic.com/en/docs/build-with-claude/streaming
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from holynb._apis.base import (
    THINKING_BLOCKS,
    APISpec,
    Completion,
    TypedEventParser,
    apply_params,
    build_messages,
    function_tools,
    map_parts,
    split_system,
    text_of,
    tool_arguments,
    usage_stats,
)
from holynb._apis.errors import error_from_payload
from holynb._errors import ConfigError
from holynb._stats import StreamStats

__all__ = ["API", "DEFAULT_MAX_TOKENS", "MessagesParser", "build_body", "normalize_usage",
           "parse_reply"]

ANTHROPIC_VERSION = "2023-06-01"
# The API requires max_tokens; this is sent when the caller gives none.
DEFAULT_MAX_TOKENS = 4096
_DELTA = "content_block_delta"
_THINKING = ("thinking", "redacted_thinking")
# stop_reason -> finish_reason (others are kept as they are, e.g. pause_turn)
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def auth_headers(key: str) -> dict[str, str]:
    """``x-api-key`` and ``anthropic-version``."""
    return {"x-api-key": key, "anthropic-version": ANTHROPIC_VERSION}


# -- requests ------------------------------------------------------------------------------------


def build_body(
    model: str,
    messages_or_prompt: str | Sequence[Mapping[str, Any]],
    params: Mapping[str, Any],
    *,
    stream: bool,
) -> dict[str, Any]:
    """The request body; ``params`` are chat-style or Messages parameters (None removes one)."""
    system, messages = split_system(build_messages(messages_or_prompt))
    body: dict[str, Any] = {"model": model, "max_tokens": DEFAULT_MAX_TOKENS,
                            "messages": to_messages(messages)}
    if system:
        body["system"] = system
    if stream:
        body["stream"] = True
    apply_params(body, params, reserved=("stream", "model", "messages"), convert=_param)
    if params.get("parallel_tool_calls") is False:
        choice = body.get("tool_choice") or {"type": "auto"}
        body["tool_choice"] = {**choice, "disable_parallel_tool_use": True}
    return body


def _param(name: str, value: Any) -> tuple[str, Any]:
    """A chat-completions parameter in its Messages name and form."""
    if name == "max_completion_tokens":
        return "max_tokens", value
    if name == "stop":
        return "stop_sequences", [value] if isinstance(value, str) else value
    if name == "parallel_tool_calls":
        return name, None  # no such parameter: False becomes disable_parallel_tool_use below
    if value is None:
        return name, None
    if name == "user":
        return "metadata", {"user_id": value}
    if name == "tools":
        return name, _tools(value)
    if name == "tool_choice":
        return name, _tool_choice(value)
    return name, value


def to_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat-form messages (system ones removed) → Messages turns (same roles merged)."""
    turns: list[dict[str, Any]] = []

    def push(role: str, content: Any) -> None:
        if turns and turns[-1]["role"] == role:
            last = turns[-1]
            last["content"] = _blocks(last["content"]) + _blocks(content)
        else:
            turns.append({"role": role, "content": content})

    for m in messages:
        role = m.get("role")
        if role == "tool":
            push("user", [{"type": "tool_result", "tool_use_id": m.get("tool_call_id"),
                           "content": m.get("content") or ""}])
        elif role == "assistant":
            blocks = [dict(b) for b in m.get(THINKING_BLOCKS) or () if b.get("type") in _THINKING]
            blocks += _blocks(_content(m.get("content")))
            blocks += [
                {"type": "tool_use", "id": call.get("id"),
                 "name": (call.get("function") or {}).get("name"), "input": tool_arguments(call)}
                for call in m.get("tool_calls") or ()
            ]
            if blocks:
                push("assistant", blocks)
        else:
            push("user", _content(m.get("content")))
    return turns


def _blocks(content: Any) -> list[Any]:
    if isinstance(content, list):
        return content
    return [{"type": "text", "text": content}] if content else []


def _content(content: Any) -> Any:
    """Chat message content → Messages content (text and image parts converted)."""
    return map_parts(content, lambda text: {"type": "text", "text": text} if text else None,
                     _image)


def _image(url: str) -> dict[str, Any]:
    if url.startswith("data:") and ";base64," in url:
        media, data = url[5:].split(";base64,", 1)
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _tools(tools: Any) -> list[Any]:
    def converted(fn: dict[str, Any]) -> dict[str, Any]:
        tool = {"name": fn["name"],
                "input_schema": fn.get("parameters") or {"type": "object", "properties": {}}}
        if fn.get("description"):
            tool["description"] = fn["description"]
        return tool

    return function_tools(tools, converted)


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, str):
        known = {"auto": "auto", "required": "any", "none": "none", "any": "any"}
        if choice not in known:
            raise ConfigError(
                f"tool_choice={choice!r} is not one of 'auto', 'required', 'none' or a function."
            )
        return {"type": known[choice]}
    if isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        return {"type": "tool", "name": choice["function"].get("name")}
    return choice


# -- replies -------------------------------------------------------------------------------------


def normalize_usage(usage: Mapping[str, Any]) -> dict[str, Any]:
    """Messages usage in chat-completions form; prompt tokens include cache reads and writes."""
    def count(name: str) -> int:
        value = usage.get(name)
        return value if isinstance(value, int) else 0

    prompt = (count("input_tokens") + count("cache_creation_input_tokens")
              + count("cache_read_input_tokens"))
    completion = count("output_tokens")
    out: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                           "total_tokens": prompt + completion}
    if count("cache_read_input_tokens"):
        out["prompt_tokens_details"] = {"cached_tokens": count("cache_read_input_tokens")}
    thinking = (usage.get("output_tokens_details") or {}).get("thinking_tokens")
    if isinstance(thinking, int):
        out["completion_tokens_details"] = {"reasoning_tokens": thinking}
    return out


class MessagesParser(TypedEventParser):
    """Messages stream events → content, reasoning and tool-call deltas, usage, errors."""

    __slots__ = ("_open",)

    def reset(self) -> None:
        """Forget everything received (a retry before the first delta starts over)."""
        super().reset()
        # Content blocks in progress, by the stream's block index: a thinking block being
        # filled in, or ("tool", tool-call index, the input sent at the start).
        self._open: dict[Any, Any] = {}

    TEXT_EVENT = _DELTA
    END = "no message_stop"

    @staticmethod
    def _text(obj: dict[str, Any]) -> str | None:
        delta = obj.get("delta")
        if isinstance(delta, dict) and delta.get("type") == "text_delta":
            text = delta.get("text")
            return text if isinstance(text, str) else ""
        return None  # a thinking, signature or tool-input delta: _event handles it

    def _event(self, kind: str, obj: dict[str, Any], out: list[str], now: float) -> bool:
        """Handle one event other than a text delta; True ends the batch (end or error)."""
        index = obj.get("index")
        if kind == _DELTA:
            delta = obj.get("delta")
            if isinstance(delta, dict):
                self._delta(index, delta, now)
        elif kind == "content_block_start":
            block = obj.get("content_block")
            if isinstance(block, dict):
                self._start(index, block, out, now)
        elif kind == "content_block_stop":
            self._stop(index)
        elif kind == "message_start":
            message = obj.get("message")
            if isinstance(message, dict):
                self.model = message.get("model") or self.model
                self._usage(message.get("usage"))
        elif kind == "message_delta":
            delta = obj.get("delta")
            reason = delta.get("stop_reason") if isinstance(delta, dict) else None
            if reason:
                self.raw_finish_reason = reason
                self.finish_reason = _FINISH.get(reason, reason)
            self._usage(obj.get("usage"))
        elif kind == "message_stop":
            self.done = True
            return True
        elif kind == "error":
            self.error = error_from_payload(
                obj, secrets=self._secrets, partial_text="".join(self.parts)
            )
            return True
        return False  # ping, and event types added later

    def _start(self, index: Any, block: dict[str, Any], out: list[str], now: float) -> None:
        kind = block.get("type")
        if kind == "text" and block.get("text"):
            out.append(block["text"])
            self.record_content(out, now)
        elif kind == "thinking":
            self._open[index] = {"type": "thinking", "thinking": "", "signature": ""}
            if block.get("thinking"):
                self._delta(index, {"type": "thinking_delta", "thinking": block["thinking"]}, now)
        elif kind == "redacted_thinking":
            self.blocks.append(dict(block))
        elif kind == "tool_use":
            call = len(self.tools)
            self._open[index] = ("tool", call, block.get("input"))
            self.tools.add([{"index": call, "id": block.get("id"), "type": "function",
                             "function": {"name": block.get("name") or "", "arguments": ""}}],
                           self.events)
            self.started = True

    def _delta(self, index: Any, delta: dict[str, Any], now: float) -> None:
        kind = delta.get("type")
        block = self._open.get(index)
        if kind == "thinking_delta":
            text = delta.get("thinking")
            if text and isinstance(text, str):
                if isinstance(block, dict):
                    block["thinking"] += text
                self.reasoning(text, now)
        elif kind == "signature_delta":
            if isinstance(block, dict):
                block["signature"] = delta.get("signature") or ""
        elif kind == "input_json_delta":
            fragment = delta.get("partial_json")
            if isinstance(block, tuple) and fragment and isinstance(fragment, str):
                self.tools.add([{"index": block[1], "function": {"arguments": fragment}}],
                               self.events)

    def _stop(self, index: Any) -> None:
        block = self._open.pop(index, None)
        if isinstance(block, dict):
            self.blocks.append(block)
        elif isinstance(block, tuple) and not self.tools.arguments(block[1]):
            # No input deltas: the input given at the start is the whole input ({} if none).
            start_input = block[2] if isinstance(block[2], dict) else {}
            self.tools.finish(block[1], id=None, name=None,
                              arguments=orjson.dumps(start_input).decode(), events=self.events)

    def _usage(self, usage: Any) -> None:
        # Counts on message_delta are cumulative and may omit fields: merge over message_start.
        if not isinstance(usage, dict):
            return
        merged = dict(self.raw_usage or {})
        merged.update((k, v) for k, v in usage.items() if v is not None)
        self.raw_usage = merged
        self.record_usage(normalize_usage(merged))


def parse_reply(data: Any, stats: StreamStats) -> Completion:
    """A non-streamed ``message`` object → its parts (usage recorded in ``stats``)."""
    message = data if isinstance(data, dict) else {}
    texts: list[str] = []
    thoughts: list[str] = []
    blocks: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for block in message.get("content") or ():
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            texts.append(text_of(block.get("text")))
        elif kind in _THINKING:
            blocks.append(block)
            if kind == "thinking":
                thoughts.append(text_of(block.get("thinking")))
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            calls.append({"id": block.get("id"), "type": "function",
                          "function": {"name": block.get("name") or "", "arguments": arguments}})
    raw_usage = message.get("usage") if isinstance(message.get("usage"), dict) else None
    usage = normalize_usage(raw_usage) if raw_usage is not None else None
    usage_stats(usage, stats)
    reason = message.get("stop_reason")
    return Completion(
        text="".join(texts),
        reasoning="".join(thoughts),
        finish_reason=_FINISH.get(reason, reason) if reason else None,
        usage=usage,
        tool_calls=calls,
        model=message.get("model"),
        raw_finish_reason=reason,
        raw_usage=raw_usage,
        blocks=tuple(blocks),
    )


API = APISpec(
    name="messages",
    label="Anthropic Messages",
    path="/messages",
    auth_headers=auth_headers,
    build_body=build_body,
    parser=MessagesParser,
    parse_reply=parse_reply,
)
