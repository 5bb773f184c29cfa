"""Cassette frames between transports, and the reply a recorded stream carries."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .._frames import Frame, join_frames
from .._reply import Reply
from ..formats import decoded, sse_event
from ..formats.chat import completion_body
from ..formats.registry import FORMATS

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
    return decoded(frames, "sse")


def ws_to_sse(frames: list[Frame], *, named: bool = False) -> list[Frame]:
    """WebSocket text messages → SSE writes ``data: <message>\\n\\n`` (binary dropped); with
    ``named`` each event also gets an ``event:`` line naming the message's ``type`` (Responses)."""
    out: list[Frame] = []
    for frame in frames:
        if not isinstance(frame.data, str):
            continue
        if named:
            try:
                kind = json.loads(frame.data).get("type", "message")
            except (ValueError, AttributeError):
                kind = "message"
            if isinstance(kind, str) and "\n" not in frame.data:
                out.append(Frame(frame.at, sse_event(kind, frame.data)))
                continue
        lines = frame.data.splitlines() or [""]
        out.append(Frame(frame.at, "".join(f"data: {ln}\n" for ln in lines).encode() + b"\n"))
    return out


def reply_from_messages(messages: Iterable[Frame]) -> Reply:
    """The reply plan a recorded chat stream carries (its messages, e.g. decoded SSE events)."""
    return FORMATS["chat"].read_reply(messages)


def cassette_reply(cassette: Cassette) -> Reply:
    """The reply plan of a cassette, in any API."""
    return cassette.reply()


def content_deltas(cassette: Cassette) -> list[tuple[float, str]]:
    """The reply text of a streamed cassette as ``(offset s, delta)``, one per content chunk."""
    reply = cassette_reply(cassette)
    start = len(reply.reasoning)
    return list(zip(reply.times[start:start + len(reply.content)], reply.content, strict=True))


def completion_from_messages(messages: Iterable[str]) -> dict[str, Any]:
    """Assemble a non-streaming ``chat.completion`` body from streamed chunk JSON texts."""
    return completion_body(reply_from_messages(Frame(0.0, m) for m in messages))


def convert_frames(frames: list[Frame], source: str, target: str, *, api: str = "chat"
                   ) -> list[Frame]:
    """Frames recorded over ``source`` rewritten for ``target`` in the same API (same list when
    they agree)."""
    if source == target:
        return list(frames)
    if target not in SERVABLE or source not in SERVABLE[target]:
        raise ValueError(f"a {source} cassette cannot answer a {target} request")
    if target == "ws":
        return sse_to_ws(frames)
    if target == "sse":
        return ws_to_sse(frames, named=api == "responses")
    fmt = FORMATS[api]
    body = join_frames(fmt.reply_frames(fmt.read_reply(frames, source), "json"))
    return [Frame(frames[-1].at if frames else 0.0, body)]


def match_digest(match: Mapping[str, Any]) -> str:
    """A short stable hash of a match key (used in recorded file names)."""
    canon = json.dumps(match, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()[:8]
