"""Cassette frames between transports, and the reply a recorded stream carries."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from holynb.sse import SSEDecoder  # the project's one SSE decoder (allowed in mockserver)

from .._frames import Frame
from .._reply import Reply, ToolCall
from ..formats.chat import completion_body, json_body

if TYPE_CHECKING:
    from .format import Cassette

__all__ = [
    "SERVABLE",
    "cassette_reply",
    "completion_from_messages",
    "content_deltas",
    "convert_frames",
    "match_digest",
    "reply_from_messages",
    "sse_to_ws",
    "ws_to_sse",
]

# Which cassette transports can answer a request made over each transport.
SERVABLE = {"sse": ("sse", "ws"), "ws": ("ws", "sse"), "json": ("json", "sse", "ws")}


def sse_to_ws(frames: list[Frame]) -> list[Frame]:
    """SSE writes → WebSocket text messages: one per event ``data``, at the completing write."""
    decoder = SSEDecoder()
    out: list[Frame] = []
    for frame in frames:
        data = frame.data.encode("utf-8") if isinstance(frame.data, str) else frame.data
        out.extend(Frame(frame.at, event.data) for event in decoder.feed(data))
    decoder.close()  # an event cut off at the end is discarded, as an SSE client would
    return out


def ws_to_sse(frames: list[Frame]) -> list[Frame]:
    """WebSocket text messages → SSE writes ``data: <message>\\n\\n`` (binary dropped)."""
    out: list[Frame] = []
    for frame in frames:
        if isinstance(frame.data, str):
            lines = frame.data.splitlines() or [""]
            out.append(Frame(frame.at, "".join(f"data: {ln}\n" for ln in lines).encode() + b"\n"))
    return out


def _messages(frames: list[Frame], transport: str) -> list[Frame]:
    """The text messages a recording carries (SSE events decoded), with their offsets."""
    messages = sse_to_ws(frames) if transport == "sse" else frames
    return [m for m in messages if isinstance(m.data, str)]


def reply_from_messages(messages: Iterable[Frame]) -> Reply:
    """The reply plan a recorded chat stream carries: its reasoning, text, tool calls, usage,
    finish reason and the offset of every delta (malformed and error chunks carry none)."""
    head: dict[str, Any] = {}
    parts: dict[str, list[tuple[float, str]]] = {"reasoning": [], "content": []}
    calls: dict[int, dict[str, Any]] = {}
    call_times: list[float] = []
    finish: str | None = None
    usage: Any = None
    for message in messages:
        text = message.data
        if text == "[DONE]":
            break
        try:
            chunk = json.loads(text)
        except (TypeError, json.JSONDecodeError):
            continue
        if not isinstance(chunk, dict) or "error" in chunk:
            continue
        for key in ("id", "created", "model", "system_fingerprint"):
            if key in chunk and key not in head:
                head[key] = chunk[key]
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            for field, key in (("reasoning", "reasoning_content"), ("content", "content")):
                if isinstance(delta.get(key), str) and delta[key]:
                    parts[field].append((message.at, delta[key]))
            for call in delta.get("tool_calls") or []:
                slot = calls.setdefault(call.get("index", 0), {"id": "", "name": "", "args": []})
                slot["id"] = call.get("id") or slot["id"]
                fn = call.get("function") or {}
                slot["name"] += fn.get("name") or ""
                if fn.get("arguments"):
                    slot["args"].append(fn["arguments"])
                call_times.append(message.at)
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


def cassette_reply(cassette: Cassette) -> Reply:
    """The reply plan of a streamed cassette (``sse`` or ``ws``)."""
    return reply_from_messages(_messages(cassette.frames, cassette.transport))


def content_deltas(cassette: Cassette) -> list[tuple[float, str]]:
    """The reply text of a streamed cassette as ``(offset s, delta)``, one per content chunk."""
    reply = cassette_reply(cassette)
    start = len(reply.reasoning)
    return list(zip(reply.times[start:start + len(reply.content)], reply.content, strict=True))


def completion_from_messages(messages: Iterable[str]) -> dict[str, Any]:
    """Assemble a non-streaming ``chat.completion`` body from streamed chunk JSON texts."""
    return completion_body(reply_from_messages(Frame(0.0, m) for m in messages))


def convert_frames(frames: list[Frame], source: str, target: str) -> list[Frame]:
    """Frames recorded over ``source`` rewritten for ``target`` (same list when they agree)."""
    if source == target:
        return list(frames)
    if target not in SERVABLE or source not in SERVABLE[target]:
        raise ValueError(f"a {source} cassette cannot answer a {target} request")
    if target == "ws":
        return sse_to_ws(frames)
    if target == "sse":
        return ws_to_sse(frames)
    body = json_body(reply_from_messages(_messages(frames, source)))
    return [Frame(frames[-1].at if frames else 0.0, body)]


def match_digest(match: Mapping[str, Any]) -> str:
    """A short stable hash of a match key (used in recorded file names)."""
    canon = json.dumps(match, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()[:8]
