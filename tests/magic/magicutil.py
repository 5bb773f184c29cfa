"""Helpers shared by the magic tests."""

from __future__ import annotations

import time
from typing import Any

from IPython.core.displaypub import DisplayPublisher

from mockserver._cassettes import SHIPPED_DIR, content_deltas, load_cassette


class Recorder(DisplayPublisher):
    """A display publisher that keeps every message, like a frontend would see it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.messages: list[dict[str, Any]] = []

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False):  # type: ignore[override]
        self.messages.append(
            {
                "type": "update_display_data" if update else "display_data",
                "data": data,
                "display_id": (transient or {}).get("display_id"),
                "at": time.monotonic(),
            }
        )

    def clear_output(self, wait: bool = False) -> None:
        self.messages.append({"type": "clear_output", "wait": wait, "at": time.monotonic()})

    def outputs(self) -> list[dict[str, Any]]:
        """The cell's outputs at the end, as a notebook frontend would hold them."""
        shown: list[dict[str, Any]] = []
        pending_clear = False
        for msg in self.messages:
            if msg["type"] == "clear_output":
                if msg["wait"]:
                    pending_clear = True
                else:
                    shown.clear()
                continue
            if msg["type"] == "update_display_data":
                for out in shown:
                    if out["display_id"] == msg["display_id"]:
                        out["data"] = msg["data"]
                continue
            if pending_clear:
                shown.clear()
                pending_clear = False
            shown.append({"data": msg["data"], "display_id": msg["display_id"]})
        return shown

    def display_messages(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] != "clear_output"]


def last_request(mock: Any) -> dict[str, Any]:
    """The mock's journal record of the last request."""
    return mock.journal()[-1]


def texts(outputs: list[dict[str, Any]]) -> list[str]:
    """Each output's Markdown, else its plain text."""
    return [o["data"].get("text/markdown", o["data"].get("text/plain", "")) for o in outputs]


def shipped_prompt(name: str) -> str:
    """The prompt a shipped cassette answers."""
    return load_cassette(SHIPPED_DIR / f"{name}.json").match["prompt"]


def cassette_deltas() -> list[str]:
    """The text deltas of the shipped long Markdown cassette, in order."""
    return [delta for _, delta in content_deltas(load_cassette(SHIPPED_DIR / "long-markdown.json"))]

