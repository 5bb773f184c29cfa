"""The chat panel's transcript entries, and the live view of a reply while it streams.

A reply's body is a column of HTML widgets: the "Thinking" block (when the model reasons), the
answer's finished Markdown blocks (each sent once) and the block in progress (re-rendered at
most ~20 times a second), then one block per tool call. When the reply ends only the block in
progress gets its final render; nothing above it is re-sent or replaced.
"""

from __future__ import annotations

import asyncio
import html
from typing import Any

import ipywidgets as w

from holynb.notebook.live_markdown import Budget, MarkdownBlocks
from holynb.notebook.reply_parts import ToolCallView, thinking_block, tool_call_markdown
from holynb.notebook.safe_markdown import render_html

__all__ = ["UPDATE_INTERVAL_S", "LiveReply", "Message"]

UPDATE_INTERVAL_S = 0.05  # at most ~20 transcript updates per second per reply


def _answer_html(value: str = "") -> w.HTML:
    """A widget showing (part of) an answer, rendered HTML ``value``."""
    widget = w.HTML(value)
    widget.add_class("holynb-answer")
    return widget


class LiveReply:
    """The body of the reply being streamed: thinking, answer blocks, tool calls."""

    def __init__(self, box: w.Box, loop: asyncio.AbstractEventLoop) -> None:
        self._box = box
        self._loop = loop
        self._markdown = MarkdownBlocks()
        self._finished: list[str] = []  # finished blocks not yet sent
        self._tail = _answer_html()
        self._blocks: list[w.HTML] = []
        self._reasoning: list[str] = []  # shown in the Thinking block
        self._hidden_reasoning: list[str] = []  # received with show_reasoning off
        self._thinking: w.HTML | None = None
        self._thinking_started = loop.time()
        self._thinking_s: float | None = None
        self._calls: dict[int, ToolCallView] = {}
        self._call_widgets: dict[int, w.HTML] = {}
        self._budget = Budget(1 / UPDATE_INTERVAL_S, clock=loop.time)
        self._timer: asyncio.TimerHandle | None = None
        box.children = (self._tail,)

    @property
    def text(self) -> str:
        """The answer received so far."""
        return self._markdown.text

    @property
    def reasoning(self) -> str:
        """The thinking received so far."""
        return "".join(self._reasoning or self._hidden_reasoning)

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        """The tool calls received so far, in OpenAI form."""
        return [call.as_openai() for _, call in sorted(self._calls.items())]

    # -- input -------------------------------------------------------------------------------

    def feed(self, delta: str) -> None:
        """Take a piece of the answer."""
        self._end_thinking()
        self._finished += self._markdown.feed(delta)
        self._markdown.trim(self._markdown.boundary)  # finished text is kept in _finished
        self._schedule()

    def add_reasoning(self, text: str, *, shown: bool = True) -> None:
        """Take a piece of the model's thinking (kept, but not shown when ``shown`` is False)."""
        if not self._reasoning and not self._hidden_reasoning:
            self._thinking_started = self._loop.time()
        if not shown:
            self._hidden_reasoning.append(text)
            return
        self._reasoning.append(text)
        self._schedule()

    def tool_call(self, index: int, call_id: str | None, name: str | None, args: str) -> None:
        """Take one fragment of tool call ``index``."""
        self._end_thinking()
        self._calls.setdefault(index, ToolCallView(index)).add(call_id, name, args)
        self._schedule()

    def _end_thinking(self) -> None:
        if self._reasoning and self._thinking_s is None:
            self._thinking_s = self._loop.time() - self._thinking_started

    def _schedule(self) -> None:
        """Render now if the last update is old enough, else once the interval has passed."""
        wait = self._budget.due_in()
        if wait == 0:
            self.flush()
        elif self._timer is None:
            # Tokens that arrive in a burst and then pause must still show within the interval.
            self._timer = self._loop.call_later(wait, self.flush)

    # -- output ------------------------------------------------------------------------------

    def flush(self, *, final: bool = False) -> None:
        """Send what changed: the thinking block, finished blocks once, the block in progress
        (its final form when ``final``), the tool calls."""
        self._cancel_timer()
        self._budget.take()
        changed = False
        if self._reasoning:
            done = self._thinking_s is not None or final
            value = thinking_block(
                self.reasoning, done=done, seconds=self._thinking_s, html=True
            )
            if self._thinking is None:
                self._thinking = w.HTML(value)
                self._thinking.add_class("holynb-thinking-box")
                changed = True
            elif self._thinking.value != value:
                self._thinking.value = value
        if final:
            tail_text = self._markdown.pending + self._markdown.closing_fence()
        else:
            tail_text = self._markdown.display_pending()
        tail = render_html(tail_text) if tail_text.strip() else ""
        if self._finished:
            # The tail widget freezes in place as the finished blocks, then a new tail follows.
            # In this order the browser never shows a finished block twice (once frozen, once
            # still in the old tail) between the two widget messages.
            frozen = self._tail
            frozen.value = render_html("".join(self._finished))
            self._finished.clear()
            self._blocks.append(frozen)
            self._tail = _answer_html(tail)
            changed = True
        elif tail != self._tail.value:
            self._tail.value = tail
        for index, call in sorted(self._calls.items()):
            value = render_html(tool_call_markdown(call, done=final))
            widget = self._call_widgets.get(index)
            if widget is None:
                widget = self._call_widgets[index] = w.HTML(value)
                widget.add_class("holynb-tool-call")
                changed = True
            elif widget.value != value:
                widget.value = value
        children = self._children()
        if changed or children != self._box.children:
            self._box.children = children

    def _children(self) -> tuple[w.Widget, ...]:
        thinking = (self._thinking,) if self._thinking is not None else ()
        calls = tuple(widget for _, widget in sorted(self._call_widgets.items()))
        empty = not (thinking or self._blocks or calls)
        tail = (self._tail,) if self._tail.value or empty else ()
        return (*thinking, *self._blocks, *tail, *calls)

    def finish(self) -> None:
        """The final render, in place: only what is still in progress changes."""
        self._end_thinking()
        self.flush(final=True)
        children = self._children()
        if self._tail not in children:
            self._box.children = children
            self._tail.close()

    def discard(self) -> None:
        """Stop rendering and close the live widgets."""
        self._cancel_timer()
        widgets = [*self._blocks, self._tail, *self._call_widgets.values()]
        if self._thinking is not None:
            widgets.append(self._thinking)
        for widget in widgets:
            widget.close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class Message:
    """One transcript entry: its role, text, status and the widgets showing it."""

    def __init__(self, role: str, content: str, *, model: str = "") -> None:
        self.role = role
        self.content = content
        self.reasoning = ""
        self.tool_calls: list[dict[str, Any]] = []
        self.model = model
        # A completed reply as the API gave it for the next turn (the stream's ``.message``).
        self.reply: dict[str, Any] | None = None
        self.status = "done"  # done | streaming | stopped | interrupted
        self.footer_text = ""
        self.live: LiveReply | None = None  # set while the reply streams
        who = "You" if role == "user" else f"Assistant · {html.escape(model)}"
        self.header = w.HTML(f'<span class="holynb-role">{who}</span>')
        self.body = w.VBox()
        self.footer = w.HTML()
        self.box = w.VBox((self.header, self.body, self.footer))
        self.box.add_class("holynb-msg")
        self.box.add_class(f"holynb-{role}")
        if content:
            self.body.children = (_answer_html(render_html(content)),)

    def set_footer(self, text: str) -> None:
        """Show ``text`` (stats, or a stop/failure marker) under the message."""
        self.footer_text = text
        self.footer.value = f'<span class="holynb-footer">{html.escape(text)}</span>'

    def close(self) -> None:
        """Close the message's widgets."""
        for child in self.body.children:
            child.close()
        for widget in (self.header, self.body, self.footer, self.box):
            widget.close()
