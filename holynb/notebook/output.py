"""Where ``%%holy`` output goes: a Jupyter frontend (display messages) or a terminal (stdout).

:class:`RichOutput` publishes through the shell's display publisher (duck-typed, so this module
imports no IPython). A reply is a column of outputs, in the order its parts arrive:

    [💭 Thinking block]  [answer: one output per Markdown block]  [🔧 tool calls]  [stats line]

All of them share one budget (≤ ``max_updates_per_s`` display messages per second). Answers
stream as output slots planned by :class:`~holynb.notebook.live_markdown.LiveMarkdown`; the
final render only completes the last slot and adds the stats or error line, so nothing above
moves and a reader's scroll position stays where it is (no ``clear_output``). A retry notice
shown before the reply is replaced in place by the reply's first part. :class:`TextOutput`
streams plain text for terminal IPython.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from typing import Any, Protocol, TextIO

from holynb.notebook.live_markdown import Budget, Emit, LiveMarkdown
from holynb.notebook.reply_parts import (
    ToolCallView,
    pretty_json,
    thinking_block,
    thinking_summary,
    tool_call_markdown,
)
from holynb.notebook.safe_markdown import extract_code, safe_markdown, sanitize_html

__all__ = ["FORMATS", "Output", "Reply", "RichOutput", "TextOutput", "final_bundle", "show_event"]

FORMATS = ("markdown", "text", "code", "html", "json")


class Reply(str):
    """The answer text that ``%%holy -o var`` stores: a ``str`` that also carries the reply's
    ``.tool_calls`` (OpenAI form, ``[]`` if none) and ``.reasoning`` (``''`` if none)."""

    tool_calls: list[dict[str, Any]]
    reasoning: str

    def __new__(
        cls, text: str, *, tool_calls: list[dict[str, Any]] | None = None, reasoning: str = ""
    ) -> Reply:
        reply = super().__new__(cls, text)
        reply.tool_calls = list(tool_calls or [])
        reply.reasoning = reasoning
        return reply


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
        return {"text/html": sanitize_html(body), "text/plain": body}, body, None
    if fmt == "code":
        return {"text/markdown": safe_markdown(text), "text/plain": text}, extract_code(text), None
    if fmt == "text":
        return {"text/plain": text}, text, None
    return {"text/markdown": safe_markdown(text), "text/plain": text}, text, None


class Output(Protocol):
    """What the magic writes to while a reply streams."""

    def feed(self, delta: str) -> None: ...
    def reasoning(self, text: str) -> None: ...
    def tool_call(self, index: int, call_id: str | None, name: str | None, args: str) -> None: ...
    def poll(self) -> None: ...
    def due_in(self) -> float | None: ...
    def status(self, line: str) -> None: ...
    def finish(self, text: str, fmt_bundle: dict[str, Any] | None, line: str | None) -> None: ...


def show_event(output: Output, event: Any) -> None:
    """Hand one typed stream event (``holynb.ContentDelta`` ...) to ``output``."""
    kind = event.type
    if kind == "content":
        output.feed(event.text)
    elif kind == "reasoning":
        output.reasoning(event.text)
    elif kind == "tool_call":
        output.tool_call(event.index, event.id, event.name, event.arguments)


class _Thinking:
    """The reasoning received so far and how its block was last shown."""

    def __init__(self, clock: float) -> None:
        self.parts: list[str] = []
        self.started = clock
        self.seconds: float | None = None  # set when the answer starts
        self.display_id: str | None = None
        self.shown = ""

    @property
    def done(self) -> bool:
        return self.seconds is not None

    def markdown(self) -> str:
        return thinking_block("".join(self.parts), done=self.done, seconds=self.seconds)


class RichOutput:
    """Budgeted display messages for a Jupyter frontend (see the module docstring)."""

    def __init__(self, shell: Any, *, fmt: str, budget: Budget) -> None:
        self._shell = shell
        self._fmt = fmt
        self.budget = budget
        self.live = LiveMarkdown(budget) if fmt in ("markdown", "code") else None
        self._prefix = f"holy-{uuid.uuid4().hex[:12]}"
        self._outputs = 0  # display ids handed out
        self._status_id: str | None = None  # the one-line status output (retries, progress)
        self._status_shown = ""
        self._spare: str | None = None  # a status output above everything: reused, not kept
        self._slots: dict[int, str] = {}  # answer slot -> display id
        self._thinking: _Thinking | None = None
        self._calls: dict[int, ToolCallView] = {}
        self._call_ids: dict[int, str] = {}
        self._call_shown: dict[int, str] = {}
        self._received = 0  # characters received, for the html/json progress line

    # -- publishing --------------------------------------------------------------------------

    def _publish(self, data: dict[str, Any], display_id: str, *, update: bool) -> None:
        transient = {"display_id": display_id}
        self._shell.display_pub.publish(data=data, metadata={}, transient=transient, update=update)
        self.budget.sent()

    def _new(self, data: dict[str, Any]) -> str:
        """Show a new output (taking the place of a status line shown above everything)."""
        if self._spare is not None:
            display_id, self._spare = self._spare, None
            if self._status_id == display_id:
                self._status_id = None
            self._publish(data, display_id, update=True)
            return display_id
        display_id = f"{self._prefix}-{self._outputs}"
        self._outputs += 1
        self._publish(data, display_id, update=False)
        return display_id

    def _show(self, display_id: str | None, data: dict[str, Any]) -> str:
        if display_id is None:
            return self._new(data)
        self._publish(data, display_id, update=True)
        return display_id

    def _paced(self) -> None:
        """Wait for the next free slot in the budget, for messages that must be sent."""
        time.sleep(self.budget.due_in())
        self.budget.take()

    # -- the parts of a reply ----------------------------------------------------------------

    def feed(self, delta: str) -> None:
        """Take one streamed piece of the answer."""
        self._end_thinking()
        if self.live is not None:
            if self._thinking_due():
                self.poll()  # the thinking block collapses before the answer shows
            for emit in self.live.feed(delta):
                self._emit(emit)
        elif self._fmt == "text":
            self._write(delta)
            self.poll()
        else:
            self._received += len(delta)
            self.poll()

    def reasoning(self, text: str) -> None:
        """Take one streamed piece of the model's thinking."""
        if self._thinking is None:
            self._thinking = _Thinking(time.monotonic())
        self._thinking.parts.append(text)
        self.poll()

    def tool_call(self, index: int, call_id: str | None, name: str | None, args: str) -> None:
        """Take one streamed fragment of tool call ``index``."""
        self._end_thinking()
        self._calls.setdefault(index, ToolCallView(index)).add(call_id, name, args)
        self.poll()

    def _end_thinking(self) -> None:
        thinking = self._thinking
        if thinking is not None and not thinking.done:
            thinking.seconds = time.monotonic() - thinking.started

    def _emit(self, emit: Emit) -> None:
        data: dict[str, Any] = {"text/markdown": safe_markdown(emit.text)}
        if emit.frozen:
            data["text/plain"] = emit.text
        self._slots[emit.slot] = self._show(self._slots.get(emit.slot), data)

    def _write(self, text: str) -> None:
        # Looked up on each call: the kernel (and capture_output) swap sys.stdout.
        sys.stdout.write(text)

    # -- the budget ----------------------------------------------------------------------------

    def _progress_line(self) -> str:
        return f"receiving… {self._received:,} characters"

    def _thinking_due(self) -> bool:
        thinking = self._thinking
        return thinking is not None and thinking.markdown() != thinking.shown

    def _calls_due(self) -> list[int]:
        return [
            index
            for index, call in sorted(self._calls.items())
            if tool_call_markdown(call, done=False) != self._call_shown.get(index)
        ]

    def _progress_due(self) -> bool:
        return self._fmt in ("html", "json") and bool(self._received) and (
            self._progress_line() != self._status_shown
        )

    def due_in(self) -> float | None:
        """Seconds until :meth:`poll` has something to send (None: nothing pending)."""
        waits = []
        if self.live is not None and (wait := self.live.due_in()) is not None:
            waits.append(wait)
        if self._thinking_due() or self._calls_due() or self._progress_due():
            waits.append(self.budget.due_in())
        return min(waits) if waits else None

    def poll(self) -> None:
        """Send the most urgent update that is due (thinking, answer, tool calls, progress)."""
        if self.budget.due_in() > 0:
            return
        if self._thinking_due():
            self.budget.take()
            self._send_thinking()
            return
        if self.live is not None:
            emits = self.live.poll()
            for emit in emits:
                self._emit(emit)
            if emits:
                return
        if calls := self._calls_due():
            self.budget.take()
            self._send_call(calls[0], done=False)
            return
        if self._progress_due():
            self.budget.take()
            self._set_status(self._progress_line())

    def _send_thinking(self) -> None:
        thinking = self._thinking
        assert thinking is not None
        markdown = thinking.markdown()
        summary = thinking_summary(done=thinking.done, seconds=thinking.seconds)
        data = {"text/markdown": markdown, "text/plain": summary}
        thinking.display_id = self._show(thinking.display_id, data)
        thinking.shown = markdown

    def _send_call(self, index: int, *, done: bool) -> None:
        call = self._calls[index]
        markdown = tool_call_markdown(call, done=done)
        data: dict[str, Any] = {"text/markdown": markdown}
        if done:
            name = call.name or "?"
            data["text/plain"] = f"tool call {name}({pretty_json(call.text, done=True)})"
        self._call_ids[index] = self._show(self._call_ids.get(index), data)
        self._call_shown[index] = markdown

    # -- status and the end ----------------------------------------------------------------

    def status(self, line: str) -> None:
        """Show or replace the one-line status (retries)."""
        self._paced()
        self._set_status(line)

    def _set_status(self, line: str) -> None:
        data = {"text/plain": line}
        if self._status_id is None:
            nothing_shown = self._outputs == 0 and self._spare is None
            self._status_id = self._new(data)
            if nothing_shown:
                self._spare = self._status_id
        else:
            self._publish(data, self._status_id, update=True)
        self._status_shown = line

    def finish(self, text: str, bundle: dict[str, Any] | None, line: str | None) -> None:
        """Final render: complete every part in place, then show the stats/error line.

        These messages are paced like the others, so no 1 s window holds more than the budget.
        """
        self._end_thinking()
        if self._thinking_due():
            self._paced()
            self._send_thinking()
        if self.live is not None:
            for emit in self.live.finish():
                self._paced()
                self._emit(emit)
        elif self._fmt == "text":
            if text and not text.endswith("\n"):
                self._write("\n")
        elif bundle is not None:
            # The progress line becomes the result; the stats line goes below it.
            self._paced()
            status, self._status_id = self._status_id, None
            if self._spare == status:
                self._spare = None
            self._show(status, bundle)
        elif text:
            self._paced()
            self._new({"text/plain": text})
        for index in sorted(self._calls):  # final: with plain text, even if it looks the same
            self._paced()
            self._send_call(index, done=True)
        if line is not None:
            if self._status_id is not None and self._spare != self._status_id:
                self._status_id = None  # a status line above the reply stays; this goes below
            self._paced()
            self._set_status(line)


class TextOutput:
    """Plain text streaming for terminal IPython (no frontend to render Markdown)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._at_line_start = True
        self._thinking = False
        self._calls: dict[int, ToolCallView] = {}

    def _write(self, text: str) -> None:
        if text:
            self._stream.write(text)
            self._stream.flush()
            self._at_line_start = text.endswith("\n")

    def _line(self, line: str) -> None:
        self._write(("" if self._at_line_start else "\n") + line + "\n")

    def feed(self, delta: str) -> None:
        """Print the delta as it comes."""
        if self._thinking:
            self._thinking = False
            self._line("💭 (end of thinking)")
        self._write(delta)

    def reasoning(self, text: str) -> None:
        """Print the thinking as it comes, under a header."""
        if not self._thinking:
            self._thinking = True
            self._line(thinking_summary(done=False, seconds=None))
        self._write(text)

    def tool_call(self, index: int, call_id: str | None, name: str | None, args: str) -> None:
        """Collect tool calls; they are printed whole at the end."""
        self._calls.setdefault(index, ToolCallView(index)).add(call_id, name, args)

    def poll(self) -> None:
        """Nothing is deferred in a terminal."""

    def due_in(self) -> float | None:
        """Nothing is deferred in a terminal."""
        return None

    def status(self, line: str) -> None:
        """Print a status line (retries)."""
        self._line(line)

    def finish(self, text: str, bundle: dict[str, Any] | None, line: str | None) -> None:
        """End the answer's line, print the tool calls and the stats or error line."""
        for _, call in sorted(self._calls.items()):
            self._line(f"🔧 tool call {call.name or '?'}({pretty_json(call.text, done=True)})")
        if line is not None:
            self._line(line)
        elif not self._at_line_start:
            self._write("\n")
