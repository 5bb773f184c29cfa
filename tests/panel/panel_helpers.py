"""Helpers shared by the panel tests: cassette writing and HTML inspection."""

from __future__ import annotations

import json
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import ipywidgets as w

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "panel"


@dataclass
class Lab:
    """A running JupyterLab: its URL, token and notebook root."""

    url: str
    token: str
    root: Path

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/lab/tree/{name}?token={self.token}"


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
) -> Path:
    """Write a streaming SSE cassette answering ``prompt`` with ``pieces``, one per frame."""
    frames = [chunk(p) for p in pieces] + [chunk(None, finish="stop"), "data: [DONE]\n\n"]
    doc = {
        "version": 1,
        "name": name,
        "match": {"prompt": prompt},
        "transport": "sse",
        "status": 200,
        "headers": {"content-type": "text/event-stream"},
        "fault": fault,
        "frames": [{"at": round(i * every_s, 4), "text": f} for i, f in enumerate(frames)],
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


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags_of(html: str) -> list[tuple[str, dict[str, str | None]]]:
    """Every (tag, attributes) pair of an HTML fragment."""
    parser = _Tags()
    parser.feed(html)
    return parser.tags


def assert_inert(html: str) -> None:
    """No active element, no event handler attribute, no script or data URL."""
    for tag, attrs in tags_of(html):
        assert tag not in {"script", "style", "iframe", "object", "embed", "svg", "form"}, html
        for name, value in attrs.items():
            assert not name.startswith("on"), html
            if name in {"href", "src"}:
                assert value is not None
                assert value.split(":")[0].strip().lower() in {"http", "https", "mailto"}, html


def all_states(widget: w.Widget) -> str:
    """The synced state of a widget and all its descendants, as one JSON string."""
    states = []
    todo = [widget]
    while todo:
        current = todo.pop()
        states.append(current.get_state())
        todo.extend(getattr(current, "children", ()))
    return json.dumps(states, default=str)
