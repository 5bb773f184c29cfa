"""Let nbval compare what a notebook frontend shows, not every intermediate display message.

``%%holy`` streams within a rendering budget: it shows the block in progress with
``display_data`` + ``update_display_data`` (same ``display_id``) and ends with
``clear_output(wait=True)`` and one final Markdown output. Jupyter frontends and nbclient (which
saved these notebooks) apply those messages, so a cell's saved outputs are its final state. nbval
0.11 ignores ``update_display_data`` and ``clear_output`` and would compare every intermediate
snapshot — whose number and contents depend on timing. Here each cell's iopub messages are
buffered until the kernel goes idle and reduced the way nbclient reduces them; nbval then sees
the same outputs nbclient saved, and still compares them in full.
"""

from __future__ import annotations

import copy
from collections import deque
from typing import Any

import nbval.kernel

_PASS_THROUGH = {"status", "execute_input", "execute_reply"}
_OUTPUTS = {"display_data", "execute_result", "stream", "error"}


class _CellView:
    """The outputs of one cell as a frontend renders them, built from its iopub messages."""

    def __init__(self) -> None:
        self.outputs: list[dict[str, Any]] = []
        self.clear_pending = False

    def apply(self, msg: dict[str, Any]) -> None:
        kind = msg["msg_type"]
        content = msg["content"]
        if kind == "clear_output":
            if content.get("wait"):
                self.clear_pending = True  # cleared when the next output arrives
            else:
                self.outputs.clear()
                self.clear_pending = False
        elif kind == "update_display_data":
            display_id = (content.get("transient") or {}).get("display_id")
            for out in self.outputs:
                if display_id is not None and _display_id(out) == display_id:
                    out["content"]["data"] = content["data"]
                    out["content"]["metadata"] = content.get("metadata", {})
        elif kind in _OUTPUTS:
            if self.clear_pending:
                self.outputs.clear()
                self.clear_pending = False
            self.outputs.append(copy.deepcopy(msg))


def _display_id(msg: dict[str, Any]) -> str | None:
    return (msg["content"].get("transient") or {}).get("display_id")


def pytest_configure(config: Any) -> None:
    """Install the reducing message reader on nbval's kernel wrapper."""
    original = nbval.kernel.RunningKernel.get_message
    if getattr(original, "_holynb_reducer", False):
        return

    def get_message(self: Any, stream: str, timeout: float | None = None) -> dict[str, Any]:
        if stream != "iopub":
            return original(self, stream, timeout=timeout)
        ready: deque[dict[str, Any]] = self.__dict__.setdefault("_holynb_ready", deque())
        views: dict[str, _CellView] = self.__dict__.setdefault("_holynb_views", {})
        while not ready:
            msg = original(self, stream, timeout=timeout)
            parent = msg["parent_header"].get("msg_id")
            kind = msg["msg_type"]
            if parent is None or kind.startswith("comm"):
                ready.append(msg)
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                view = views.pop(parent, None)
                if view is not None:
                    ready.extend(view.outputs)
                ready.append(msg)
            elif kind in _PASS_THROUGH:
                ready.append(msg)
            else:
                views.setdefault(parent, _CellView()).apply(msg)
        return ready.popleft()

    get_message._holynb_reducer = True  # type: ignore[attr-defined]
    nbval.kernel.RunningKernel.get_message = get_message
