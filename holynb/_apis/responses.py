"""OpenAI Responses: ``POST {base}/responses`` (SSE) and its WebSocket mode on the same path.

Requests are built from a chat-form conversation: system and developer messages become
``instructions``, assistant tool calls ``function_call`` items, tool results
``function_call_output`` items (the API's own input items pass as they are); OpenAI-form tools
are flattened to the Responses form, ``max_tokens`` becomes ``max_output_tokens`` and
``reasoning_effort`` asks for reasoning with its summary.

The stream is typed events (``response.output_text.delta``, ``response.reasoning_summary_text
.delta``, ``response.function_call_arguments.delta``, ``response.completed``...), the same JSON
over SSE and WebSocket. ``response.output_item.done`` and ``response.completed`` are
authoritative: they complete what the deltas said (and stand in for deltas a server did not
send). Streaming events: https://platform.openai.com/docs/api-reference/responses-streaming
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
    WSProtocol,
    apply_params,
    build_messages,
    function_tools,
    map_parts,
    split_system,
    text_of,
    usage_stats,
)
from holynb._apis.chat import auth_headers
from holynb._apis.errors import error_from_payload
from holynb._errors import APIStatusError
from holynb._retry import retry_after_from_headers
from holynb._stats import StreamStats

__all__ = ["API", "ResponsesParser", "build_body", "normalize_usage", "parse_reply"]

_loads = orjson.loads
_JSONError = orjson.JSONDecodeError
_REASONING = frozenset({"response.reasoning_summary_text.delta", "response.reasoning_text.delta"})
_STARTED = frozenset({"response.created", "response.in_progress", "response.queued"})
_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed", "error"})
# incomplete_details.reason -> finish_reason
_INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}


# -- requests ------------------------------------------------------------------------------------


def build_body(
    model: str,
    messages_or_prompt: str | Sequence[Mapping[str, Any]],
    params: Mapping[str, Any],
    *,
    stream: bool,
) -> dict[str, Any]:
    """The request body; ``params`` are chat-style or Responses parameters (None removes one)."""
    instructions, messages = split_system(build_messages(messages_or_prompt, items=True))
    body: dict[str, Any] = {"model": model, "input": to_input(messages)}
    if instructions:
        body["instructions"] = instructions
    if stream:
        body["stream"] = True
    return apply_params(body, params, reserved=("stream", "model", "input", "messages"),
                        convert=_param)


def _param(name: str, value: Any) -> tuple[str, Any]:
    """A chat-completions parameter in its Responses name and form."""
    if name in ("max_tokens", "max_completion_tokens"):
        return "max_output_tokens", value
    if value is None:
        return name, None
    if name == "reasoning_effort":
        return "reasoning", {"effort": value, "summary": "auto"}
    if name == "tools":
        return name, _tools(value)
    if name == "tool_choice":
        return name, _tool_choice(value)
    return name, value


def to_input(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat-form messages (system ones removed) → Responses input items."""
    items: list[dict[str, Any]] = []
    for m in messages:
        role = m.get("role")
        if role is None:
            items.append(m)  # already a Responses item
        elif role == "tool":
            output = m.get("content")
            items.append({"type": "function_call_output", "call_id": m.get("tool_call_id"),
                          "output": output if isinstance(output, str) else text_of(output)})
        elif role == "assistant":
            items.extend(b for b in m.get(THINKING_BLOCKS) or () if b.get("type") == "reasoning")
            text = text_of(m.get("content"))
            if text:
                items.append({"role": "assistant", "content": text})
            for call in m.get("tool_calls") or ():
                fn = call.get("function") or {}
                items.append({"type": "function_call", "call_id": call.get("id"),
                              "name": fn.get("name"), "arguments": fn.get("arguments") or "{}"})
        else:
            items.append({"role": role, "content": _user_content(m.get("content"))})
    return items


def _user_content(content: Any) -> Any:
    return map_parts(content, lambda text: {"type": "input_text", "text": text},
                     lambda url: {"type": "input_image", "image_url": url})


def _tools(tools: Any) -> list[Any]:
    def flat(fn: dict[str, Any]) -> dict[str, Any]:
        tool = {"type": "function", "name": fn["name"],
                "parameters": fn.get("parameters") or {"type": "object", "properties": {}}}
        tool.update((k, fn[k]) for k in ("description", "strict") if k in fn)
        return tool

    return function_tools(tools, flat)


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        return {"type": "function", "name": choice["function"].get("name")}
    return choice


# -- replies -------------------------------------------------------------------------------------


def normalize_usage(usage: Mapping[str, Any]) -> dict[str, Any]:
    """Responses usage (input/output tokens) in chat-completions form."""
    prompt = usage.get("input_tokens")
    completion = usage.get("output_tokens")
    total = usage.get("total_tokens")
    if not isinstance(total, int) and isinstance(prompt, int) and isinstance(completion, int):
        total = prompt + completion
    out: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                           "total_tokens": total}
    reasoning = (usage.get("output_tokens_details") or {}).get("reasoning_tokens")
    if isinstance(reasoning, int):
        out["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    cached = (usage.get("input_tokens_details") or {}).get("cached_tokens")
    if isinstance(cached, int):
        out["prompt_tokens_details"] = {"cached_tokens": cached}
    return out


def _finish(response: Mapping[str, Any], has_tools: bool) -> tuple[str, str]:
    """(normalised finish_reason, the API's own value) of a finished response."""
    status = str(response.get("status") or "completed")
    if status == "incomplete":
        reason = (response.get("incomplete_details") or {}).get("reason") or status
        return _INCOMPLETE.get(reason, "length"), reason
    return ("tool_calls" if has_tools else "stop"), status


def _summary(item: Mapping[str, Any]) -> str:
    """The reasoning text of a reasoning item: its summary parts, else its content."""
    parts = item.get("summary") or item.get("content") or []
    return "\n\n".join(text_of([p]) for p in parts if isinstance(p, Mapping))


def _message_text(item: Mapping[str, Any]) -> str:
    return "".join(
        str(p.get("text") if p.get("type") == "output_text" else p.get("refusal") or "")
        for p in item.get("content") or () if isinstance(p, Mapping)
    )


def _call(item: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": item.get("call_id") or item.get("id"), "type": "function",
            "function": {"name": item.get("name") or "", "arguments": item.get("arguments") or ""}}


class ResponsesParser(TypedEventParser):
    """Responses stream events → content, reasoning and tool-call deltas, usage, errors."""

    __slots__ = ("_calls", "_new_part", "_reasoned", "_parts_done")

    def reset(self) -> None:
        """Forget everything received (a retry before the first delta starts over)."""
        super().reset()
        self._calls: dict[Any, int] = {}  # output_index (or item id) -> tool-call index
        self._new_part = False  # a new reasoning summary part began: separate it
        self._reasoned: set[Any] = set()  # reasoning items whose text came as deltas
        self._parts_done = 0  # len(parts) when the last message item ended

    TEXT_EVENT = "response.output_text.delta"
    END = "no response.completed"

    @staticmethod
    def _text(obj: dict[str, Any]) -> str | None:
        delta = obj.get("delta")
        return delta if isinstance(delta, str) else ""

    def _event(self, kind: str, obj: dict[str, Any], out: list[str], now: float) -> bool:
        """Handle one event other than a text delta; True ends the batch (end or error)."""
        if kind in _REASONING:
            delta = obj.get("delta")
            if delta and isinstance(delta, str):
                if self._new_part and self.reasoning_parts:
                    delta = "\n\n" + delta
                self._new_part = False
                self._reasoned.add(obj.get("item_id"))
                self.reasoning(delta, now)
        elif kind == "response.reasoning_summary_part.added":
            self._new_part = True
        elif kind == "response.function_call_arguments.delta":
            index = self._call_index(obj)
            delta = obj.get("delta")
            if isinstance(delta, str) and delta:
                self.tools.add([{"index": index, "function": {"arguments": delta}}], self.events)
                self.started = True
        elif kind == "response.output_item.added":
            item = obj.get("item")
            if isinstance(item, dict) and item.get("type") == "function_call":
                call = _call(item)
                call["index"] = self._call_index(obj)
                self.tools.add([call], self.events)
                self.started = True
        elif kind == "response.function_call_arguments.done":
            arguments = obj.get("arguments")
            self.tools.finish(self._call_index(obj), id=None, name=obj.get("name"),
                              arguments=arguments if isinstance(arguments, str) else None,
                              events=self.events)
        elif kind == "response.output_item.done":
            item = obj.get("item")
            if isinstance(item, dict):
                self._item_done(obj, item, out, now)
        elif kind == "response.refusal.delta":
            delta = obj.get("delta")
            if delta and isinstance(delta, str):
                out.append(delta)
                self.record_content(out, now)
        elif kind in _STARTED:
            response = obj.get("response")
            if isinstance(response, dict) and response.get("model"):
                self.model = response["model"]
        elif kind in _TERMINAL:
            self._terminal(kind, obj, out, now)
            return True
        return False

    def _call_index(self, obj: Mapping[str, Any]) -> int:
        """The tool-call index of the output item an event is about (new items get the next)."""
        key = obj.get("output_index", obj.get("item_id"))
        index = self._calls.get(key)
        if index is None:
            index = self._calls[key] = len(self._calls)
        return index

    def _item_done(self, obj: dict[str, Any], item: dict[str, Any], out: list[str],
                   now: float) -> None:
        kind = item.get("type")
        if kind == "function_call":
            call = _call(item)
            self.tools.finish(self._call_index(obj), id=call["id"],
                              name=call["function"]["name"] or None,
                              arguments=item.get("arguments"), events=self.events)
            self.started = True
        elif kind == "reasoning":
            self.blocks.append(item)
            if item.get("id") not in self._reasoned:
                text = _summary(item)
                if text:
                    self.reasoning(("\n\n" if self.reasoning_parts else "") + text, now)
        elif kind == "message":
            if len(self.parts) == self._parts_done:
                # No text deltas came for this message: its text is delivered now.
                text = _message_text(item)
                if text:
                    out.append(text)
                    self.record_content(out, now)
            self._parts_done = len(self.parts)

    def _terminal(self, kind: str, obj: dict[str, Any], out: list[str], now: float) -> None:
        response = obj.get("response") if isinstance(obj.get("response"), dict) else {}
        if kind in ("response.failed", "error"):
            self.error = self._error(obj, response)
            return
        if response.get("model"):
            self.model = response["model"]
        if not self.parts and not self.tools:
            # A server that sent no deltas: the finished response holds the reply.
            for index, item in enumerate(response.get("output") or ()):
                if isinstance(item, dict):
                    self._item_done({"output_index": index}, item, out, now)
        self.finish_reason, self.raw_finish_reason = _finish(response, bool(self.tools))
        usage = response.get("usage")
        if isinstance(usage, dict):
            self.raw_usage = usage
            self.record_usage(normalize_usage(usage))
        self.done = True

    def _error(self, obj: dict[str, Any], response: dict[str, Any]) -> APIStatusError:
        err = _error_details(obj, response.get("error") if response else obj.get("error"))
        if response and "message" not in err:
            err["message"] = "the response failed"
        return error_from_payload(
            {"error": err}, secrets=self._secrets, partial_text="".join(self.parts)
        )


def _error_details(obj: Mapping[str, Any], err: Any) -> dict[str, Any]:
    """An error event's (or failed response's) error object, with the HTTP status and the
    Retry-After the WebSocket form carries."""
    if not isinstance(err, dict):
        # The SSE form: code, message and param on the event itself.
        err = {k: obj[k] for k in ("code", "message", "param") if k in obj}
    err = dict(err)
    if isinstance(obj.get("status"), int):
        err["status"] = obj["status"]
    headers = err.get("headers")
    if isinstance(headers, dict) and "retry_after" not in err:
        err["retry_after"] = retry_after_from_headers(
            {str(k).lower(): str(v) for k, v in headers.items()}
        )
    return err


def parse_reply(data: Any, stats: StreamStats) -> Completion:
    """A non-streamed response object → its parts (usage recorded in ``stats``)."""
    # The reply read as if streamed in one piece, on scratch stats: a reply read whole has no
    # delta timing, only usage.
    parser = ResponsesParser(StreamStats(), t0=0.0, skip_malformed=False, secrets=())
    out: list[str] = []
    event = {"type": "response.completed", "response": data if isinstance(data, dict) else {}}
    parser._terminal("response.completed", event, out, 0.0)
    usage_stats(parser.usage, stats)
    return Completion(
        text="".join(out),
        reasoning="".join(parser.reasoning_parts),
        finish_reason=parser.finish_reason,
        usage=parser.usage,
        tool_calls=parser.tools.result(),
        model=data.get("model") if isinstance(data, dict) else None,
        raw_finish_reason=parser.raw_finish_reason,
        raw_usage=parser.raw_usage,
        blocks=tuple(parser.blocks),
    )


def _ws_request(body: dict[str, Any]) -> str:
    # WebSocket mode: the body of POST /responses in a response.create event, without
    # `stream` (implicit) — see the openai SDK's ResponsesConnection.
    event = {"type": "response.create"}
    event.update((k, v) for k, v in body.items() if k not in ("stream", "stream_options"))
    return orjson.dumps(event).decode()


def _ws_type(frame: str) -> str | None:
    try:
        obj = _loads(frame)
    except _JSONError:
        return None
    return obj.get("type") if isinstance(obj, dict) else None


def _ws_ends(frames: list[str]) -> bool:
    return _ws_type(frames[-1]) in _TERMINAL


def _ws_error(frame: str) -> dict[str, Any] | None:
    # Only a frame that mentions "error" is decoded here (response.created does: "error": null).
    if '"error"' not in frame:
        return None
    try:
        obj = _loads(frame)
    except _JSONError:
        return None
    if not isinstance(obj, dict) or obj.get("type") != "error":
        return None
    return {"error": _error_details(obj, obj.get("error"))}


WS = WSProtocol(request=_ws_request, ends=_ws_ends, error=_ws_error)

API = APISpec(
    name="responses",
    label="Responses",
    path="/responses",
    auth_headers=auth_headers,
    build_body=build_body,
    parser=ResponsesParser,
    parse_reply=parse_reply,
    ws_path="/responses",
    ws=WS,
)
