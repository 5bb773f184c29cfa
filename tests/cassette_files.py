"""Cassette files written by tests (the JSON format of docs/cassettes.md), for the faces' tests."""

from __future__ import annotations

import json
from pathlib import Path


def chunk(content: str | None, *, finish: str | None = None) -> str:
    """One SSE frame carrying a chat.completion.chunk."""
    delta = {} if content is None else {"content": content}
    body = {
        "id": "chatcmpl-panel",
        "object": "chat.completion.chunk",
        "created": 1763712000,
        "model": "deepseek-v3.2",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(body)}\n\n"


def write_cassette(
    folder: Path,
    name: str,
    prompt: str,
    pieces: list[str],
    *,
    fault: str | None = None,
    every_s: float = 0.005,
    at: list[float] | None = None,
) -> Path:
    """Write a streaming SSE cassette answering ``prompt`` with ``pieces``, one per frame,
    ``every_s`` apart (or at the offsets ``at``, one per piece)."""
    frames = [chunk(p) for p in pieces] + [chunk(None, finish="stop"), "data: [DONE]\n\n"]
    if at is None:
        at = [i * every_s for i in range(len(pieces))]
    at = [*at, at[-1] + every_s, at[-1] + every_s]
    doc = {
        "version": 1,
        "name": name,
        "match": {"prompt": prompt},
        "transport": "sse",
        "status": 200,
        "headers": {"content-type": "text/event-stream"},
        "fault": fault,
        "frames": [{"at": round(t, 4), "text": f} for t, f in zip(at, frames, strict=True)],
    }
    path = folder / f"{name}.json"
    path.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    return path


def write_error_cassette(
    folder: Path, name: str, prompt: str, *, status: int, headers: dict[str, str]
) -> Path:
    """Write a cassette answering ``prompt`` with an HTTP error and an OpenAI error body."""
    body = {"error": {"message": f"mock error {status}", "type": "rate_limit", "code": None}}
    doc = {
        "version": 1,
        "name": name,
        "match": {"prompt": prompt},
        "transport": "sse",
        "status": status,
        "headers": {"content-type": "application/json", **headers},
        "fault": None,
        "frames": [{"at": 0.0, "text": json.dumps(body)}],
    }
    path = folder / f"{name}.json"
    path.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    return path
