"""Helpers shared by the panel tests: HTML inspection."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import ipywidgets as w


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
