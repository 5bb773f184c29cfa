"""Where ``%%holy`` output goes: a Jupyter frontend (display messages) or a terminal (stdout).

:class:`RichOutput` publishes through the shell's display publisher (duck-typed, so this module
imports no IPython): Markdown answers stream as output slots planned by
:class:`holynb._render.LiveMarkdown`; one status output shows retries, then the stats or the
error line. :class:`TextOutput` streams plain text for terminal IPython.
"""

from __future__ import annotations

import json
import re
import sys
import time
import uuid
from typing import Any, Protocol, TextIO

from holynb._render import Budget, Emit, LiveMarkdown
from holynb._render_safe import safe_markdown

__all__ = ["FORMATS", "Output", "RichOutput", "TextOutput", "extract_code", "final_bundle"]

FORMATS = ("markdown", "text", "code", "html", "json")

_FENCED = re.compile(
    r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[^\s`]*)[^\n]*\n(?P<body>.*?)"
    r"^(?P=indent)?(?P=fence)[`~]*[ \t]*$",
    re.M | re.S,
)


def extract_code(text: str, lang: str | None = None) -> str:
    """The body of the first fenced block (of language ``lang`` if given), else the whole text."""
    for m in _FENCED.finditer(text):
        if lang is None or m.group("lang").lower() == lang:
            return m.group("body").rstrip("\n")
    if lang is not None:
        return extract_code(text)
    return text.strip("\n")


def final_bundle(fmt: str, text: str) -> tuple[dict[str, Any], Any, str | None]:
    """(mime bundle to display, value for ``-o``, problem) for a finished reply."""
    if fmt == "json":
        body = extract_code(text, "json")
        try:
            value = json.loads(body)
        except json.JSONDecodeError as exc:
            problem = f"the reply is not valid JSON ({exc.msg} at line {exc.lineno}, column "
            problem += f"{exc.colno}); showing it as text"
            return {"text/plain": text}, text, problem
        pretty = json.dumps(value, indent=2, ensure_ascii=False)
        data: dict[str, Any] = {"text/plain": pretty}
        if isinstance(value, dict | list):
            data["application/json"] = value
        return data, value, None
    if fmt == "html":
        body = extract_code(text, "html") if "```" in text or "~~~" in text else text
        return {"text/html": _sanitize(body), "text/plain": body}, body, None
    if fmt == "code":
        return {"text/markdown": safe_markdown(text), "text/plain": text}, extract_code(text), None
    if fmt == "text":
        return {"text/plain": text}, text, None
    return {"text/markdown": safe_markdown(text), "text/plain": text}, text, None


def _sanitize(html: str) -> str:
    """Drop scripts, event handlers and other active content from model-written HTML."""
    import nh3  # the notebook extra; imported here so plain ``import holynb`` stays light

    return nh3.clean(html)


class Output(Protocol):
    """What the magic writes to while a reply streams."""

    def feed(self, delta: str) -> None: ...
    def poll(self) -> None: ...
    def due_in(self) -> float | None: ...
    def status(self, line: str) -> None: ...
    def finish(self, text: str, fmt_bundle: dict[str, Any] | None, line: str | None) -> None: ...


class RichOutput:
    """Budgeted display messages for a Jupyter frontend.

    ``replace=True`` (``%%holy``: the cell's outputs are all ours) ends with the cell cleared and
    ONE Markdown output holding the whole answer; ``replace=False`` (``%holy`` inside a cell
    that may print other things) leaves the finished-block outputs in place, last one frozen.
    """

    def __init__(self, shell: Any, *, fmt: str, budget: Budget, replace: bool) -> None:
        self._shell = shell
        self._fmt = fmt
        self._replace = replace
        self.budget = budget
        self.live = LiveMarkdown(budget) if fmt in ("markdown", "code") else None
        self._prefix = f"holy-{uuid.uuid4().hex[:12]}"
        self._status_id: str | None = None
        self._status_shown = ""
        self._status_first = False  # the status output was shown before the answer
        self._received = 0  # characters received, for the html/json progress line

    def _publish(self, data: dict[str, Any], display_id: str | None, *, update: bool) -> None:
        transient = {"display_id": display_id} if display_id else None
        self._shell.display_pub.publish(data=data, metadata={}, transient=transient, update=update)
        self.budget.sent()

    def _paced(self) -> None:
        """Wait for the next free slot in the budget, for messages that must be sent."""
        time.sleep(self.budget.due_in())
        self.budget.take()

    def _emit(self, emit: Emit) -> None:
        did = f"{self._prefix}-{emit.slot}"
        self._publish({"text/markdown": safe_markdown(emit.text)}, did, update=emit.op == "update")

    def feed(self, delta: str) -> None:
        """Take one streamed delta."""
        if self.live is not None:
            for emit in self.live.feed(delta):
                self._emit(emit)
        elif self._fmt == "text":
            self._write(delta)
        else:
            self._received += len(delta)
            self.poll()

    def _write(self, text: str) -> None:
        # Looked up on each call: the kernel (and capture_output) swap sys.stdout.
        sys.stdout.write(text)

    def poll(self) -> None:
        """Send what is due (the block in progress, or the progress line)."""
        if self.live is not None:
            for emit in self.live.poll():
                self._emit(emit)
        elif self._fmt in ("html", "json") and self.budget.due_in() == 0:
            line = f"receiving… {self._received:,} characters"
            if line != self._status_shown:
                self.budget.take()
                self._set_status(line)

    def due_in(self) -> float | None:
        """Seconds until :meth:`poll` has something to send (None: nothing pending)."""
        if self.live is not None:
            return self.live.due_in()
        if self._fmt in ("html", "json") and self._received:
            line = f"receiving… {self._received:,} characters"
            return None if line == self._status_shown else self.budget.due_in()
        return None

    def status(self, line: str) -> None:
        """Show or replace the one-line status (retries)."""
        self._paced()
        self._set_status(line)

    def _set_status(self, line: str) -> None:
        if self._status_id is None:
            self._status_first = self.live is None or self.live.slots == 0
            self._status_id = f"{self._prefix}-status-{self.budget.messages}"
            self._publish({"text/plain": line}, self._status_id, update=False)
        else:
            self._publish({"text/plain": line}, self._status_id, update=True)
        self._status_shown = line

    def finish(self, text: str, bundle: dict[str, Any] | None, line: str | None) -> None:
        """Final render: the answer (``bundle``, or the text so far) and the stats/error line.

        These messages are paced like the others, so no 1 s window holds more than the budget.
        """
        if self.live is not None:
            final = self.live.final_text()
            if self._replace:
                self._paced()
                self._shell.display_pub.clear_output(wait=True)
                self._status_id = None
                if final.strip():
                    self._paced()
                    bundle = {"text/markdown": safe_markdown(final), "text/plain": text}
                    self._publish(bundle, None, update=False)
            else:
                for emit in self.live.finish():
                    self._paced()
                    self._emit(emit)
        elif self._fmt == "text":
            if text and not text.endswith("\n"):
                self._write("\n")
        elif bundle is not None:
            # The progress line becomes the result; the stats line goes below it.
            self._paced()
            self._publish(bundle, self._status_id, update=self._status_id is not None)
            self._status_id = None
        elif text:
            self._paced()
            self._publish({"text/plain": text}, None, update=False)
        if line is not None:
            if self._status_id is not None and self._answer_below_status():
                self._status_id = None  # keep the retry line where it is; stats go below
            self._paced()
            self._set_status(line)

    def _answer_below_status(self) -> bool:
        return self._status_first and (self.live is None or self.live.slots > 0)


class TextOutput:
    """Plain text streaming for terminal IPython (no frontend to render Markdown)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._at_line_start = True

    def _write(self, text: str) -> None:
        if text:
            self._stream.write(text)
            self._stream.flush()
            self._at_line_start = text.endswith("\n")

    def _line(self, line: str) -> None:
        self._write(("" if self._at_line_start else "\n") + line + "\n")

    def feed(self, delta: str) -> None:
        """Print the delta as it comes."""
        self._write(delta)

    def poll(self) -> None:
        """Nothing is deferred in a terminal."""

    def due_in(self) -> float | None:
        """Nothing is deferred in a terminal."""
        return None

    def status(self, line: str) -> None:
        """Print a status line (retries)."""
        self._line(line)

    def finish(self, text: str, bundle: dict[str, Any] | None, line: str | None) -> None:
        """End the answer's line and print the stats or error line."""
        if line is not None:
            self._line(line)
        elif not self._at_line_start:
            self._write("\n")
