"""Budgeted live Markdown rendering: block splitting and update scheduling (pure logic, no I/O).

Re-sending the whole answer on every token costs O(n²) bytes and one IOPub message per token
(DESIGN.md, "Notebook rendering budget"). Instead:

* :class:`MarkdownBlocks` splits streamed Markdown into top-level blocks. A block is *finished*
  once no later text can change how it renders (the next block has begun, or a heading, rule or
  fenced code block has ended); finished text never changes. The cut points are chosen so that
  rendering the pieces one after another gives the same HTML as rendering the whole text.
* :class:`LiveMarkdown` turns the growing text into display operations for a notebook: output
  "slots" that each show one block of the answer. The slot at the bottom shows the block in
  progress and is re-sent at most ``max_updates_per_s`` times a second; once that block is
  finished the slot is frozen with exactly it (sent once) and a new slot starts below it.
  One slot per block makes the final outputs the same however fast the text came, and the
  final render only completes the last slot: the outputs above never change, so a reader's
  scroll position stays put. Every operation is one display message, so the rate limit is a
  limit on messages.

While a block streams, :meth:`MarkdownBlocks.display_pending` shows it as it will end up: a
half-written code fence closed, an inline code span still being written closed, and a line that
may become a table header held back until its delimiter row shows whether it is one (so raw
pipes never flash).

CommonMark rules referenced below: https://spec.commonmark.org/0.31.2/
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from holynb.notebook.safe_markdown import unclosed_code_span

__all__ = ["Budget", "Emit", "LiveMarkdown", "MarkdownBlocks"]

# https://spec.commonmark.org/0.31.2/#fenced-code-blocks
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
# https://spec.commonmark.org/0.31.2/#thematic-breaks
_BREAK = re.compile(r"^ {0,3}(?:(?:\*[ \t]*){3,}|(?:-[ \t]*){3,}|(?:_[ \t]*){3,})$")
# https://spec.commonmark.org/0.31.2/#setext-headings (the `=` underline; `-` is also a break)
_SETEXT_EQ = re.compile(r"^ {0,3}=+[ \t]*$")
# https://spec.commonmark.org/0.31.2/#atx-headings
_ATX = re.compile(r"^ {0,3}#{1,6}(?:[ \t]|$)")
# https://spec.commonmark.org/0.31.2/#list-items
_ITEM = re.compile(r"^(?P<indent>[ \t]*)(?P<marker>[-+*]|\d{1,9}[.)])(?P<space>[ \t]+|$)")
# What a partial line may still grow into a list marker from.
_ITEM_PREFIX = re.compile(r"^(?:[-+*]|\d{1,9}[.)]?)$")
# Block quote markers, stripped to find fences inside quotes.
_QUOTE = re.compile(r"^(?: {0,3}>[ \t]?)+")
# HTML blocks of kinds 1 and 2 may contain blank lines, so they end only at their end marker.
# https://spec.commonmark.org/0.31.2/#html-blocks
_RAW_HTML_START = re.compile(r"^ {0,3}(?:<(script|pre|style|textarea)(?:[\s>]|$)|(<!--))", re.I)
# GFM tables (https://github.github.com/gfm/#tables-extension-): rows that start with a pipe,
# and the delimiter row under the header (and what a delimiter row still being written may be).
_PIPE_ROW = re.compile(r"^ {0,3}\|")
_DELIMITER_ROW = re.compile(r"^ {0,3}\|?(?:[ \t]*:?-+:?[ \t]*\|)+(?:[ \t]*:?-+:?[ \t]*)?$")
_DELIMITER_PREFIX = re.compile(r"^ {0,3}\|[ \t:|-]*$")


def _columns(text: str) -> int:
    """Display width of ``text``, with tabs advancing to the next multiple of 4."""
    width = 0
    for ch in text:
        width += 4 - width % 4 if ch == "\t" else 1
    return width


def _indent(line: str) -> int:
    """Width of the leading whitespace of ``line``."""
    return _columns(line[: len(line) - len(line.lstrip(" \t"))])


@dataclass(slots=True)
class _Fence:
    char: str
    length: int
    indent: int
    quote: str  # the block quote prefix of the opening line ("" outside quotes)


def _fence_opening(line: str) -> tuple[str, _Fence] | None:
    """The fence a line opens, as (prefix used to close it, fence), or None."""
    quote_match = _QUOTE.match(line)
    quote = quote_match.group(0) if quote_match else ""
    m = _FENCE.match(line[len(quote) :])
    if m is None:
        return None
    fence = m.group("fence")
    if fence[0] == "`" and "`" in m.group("info"):
        return None  # a backtick fence's info string cannot contain backticks: inline code
    indent = _indent(m.group("indent"))
    return m.group("indent"), _Fence(fence[0], len(fence), indent, quote)


def _closes(fence: _Fence, line: str) -> bool:
    """True if ``line`` is a closing fence for ``fence``."""
    body = line[len(fence.quote) :] if fence.quote else line
    stripped = body.strip()
    return (
        len(stripped) >= fence.length
        and stripped == fence.char * len(stripped)
        and _indent(body) <= fence.indent + 3
    )


class MarkdownBlocks:
    """Split streamed Markdown into finished top-level blocks.

    ``feed()`` returns blocks that are finished; ``text[boundary:]`` is the block in progress.
    The finished blocks followed by the block in progress are exactly the text fed so far.
    """

    def __init__(self) -> None:
        # Offsets are into the whole text; only text from ``_base`` on is kept in ``_buf``
        # (``trim()`` hands the rest to ``_trimmed``), so appending stays cheap on long answers.
        self._buf = ""
        self._base = 0
        self._trimmed: list[str] = []
        self.boundary = 0  # text[:boundary] is finished blocks
        self._scan = 0  # start of the first line not yet classified
        self._kind: str | None = None  # None (only blank lines so far), para, list, code, html
        self._blank_before = False
        self._list_indent = 0  # content indent of the current top-level list item
        self._fence: _Fence | None = None
        self._fence_prefix = ""
        self._raw_html_end: str | None = None  # end marker of an open HTML block (kinds 1-2)
        self._cuts: list[int] = []  # block ends found by the current feed()

    def feed(self, delta: str) -> list[str]:
        """Add streamed text; return the blocks that this text finished, in order."""
        cuts = [self.boundary]
        self._cuts = cuts
        self._buf += delta
        base = self._base
        while True:
            end = self._buf.find("\n", self._scan - base)
            if end < 0:
                break
            line = self._buf[self._scan - base : end].rstrip("\r")
            line_start, self._scan = self._scan, base + end + 1
            self._line(line, line_start, self._scan)
        if self._blank_before and self._kind is not None and self._fence is None:
            self._decide_early()
        return [self.slice(a, b) for a, b in zip(cuts, cuts[1:], strict=False)]

    def close(self) -> str:
        """End of stream: return the rest as the last block (may be empty) and finish it."""
        rest = self.pending
        self.boundary = self._scan = self._base + len(self._buf)
        self._fence = None
        self._kind = None
        return rest

    @property
    def text(self) -> str:
        """Everything fed so far."""
        return "".join(self._trimmed) + self._buf

    @property
    def length(self) -> int:
        """How many characters were fed so far."""
        return self._base + len(self._buf)

    @property
    def pending(self) -> str:
        """The block in progress (text after the last finished block)."""
        return self._buf[self.boundary - self._base :]

    def slice(self, start: int, end: int) -> str:
        """``text[start:end]`` for offsets at or after the last :meth:`trim`."""
        return self._buf[start - self._base : end - self._base]

    def trim(self, upto: int) -> None:
        """Let go of the text before offset ``upto`` (≤ :attr:`boundary`) for slicing."""
        upto = min(upto, self.boundary)
        if upto > self._base:
            cut = upto - self._base
            self._trimmed.append(self._buf[:cut])
            self._buf = self._buf[cut:]
            self._base = upto

    def display_pending(self) -> str:
        """The block in progress as it should be shown while it streams (see the module doc)."""
        pending = self.pending
        fence = self.closing_fence()
        if fence or self._fence is not None:
            return pending + fence
        pending = _hold_table_header(pending)
        return pending + unclosed_code_span(pending)

    def closing_fence(self) -> str:
        """Text to append to :attr:`pending` for display so that no fence is rendered half-open."""
        tail = self._buf[self._scan - self._base :]  # the line still being written
        fence = self._fence
        if fence is None:
            opening = _fence_opening(tail) if tail.strip() else None
            if opening is None:
                return ""
            prefix, fence = opening
            if fence.indent > 3 and self._kind != "list":
                return ""  # indented code, not a fence
            return "\n" + fence.quote + prefix + fence.char * fence.length
        if tail and _closes(fence, tail):
            return ""  # the closing fence is being written and already closes
        stripped = tail.strip()
        if tail and stripped and stripped == fence.char * len(stripped):
            # The start of the closing fence: shown closed rather than as a stray backtick line.
            return fence.char * (fence.length - len(stripped))
        lead = "" if not tail and self._buf.endswith("\n") else "\n"
        return lead + fence.quote + self._fence_prefix + fence.char * fence.length

    def _cut(self, at: int) -> None:
        """Finish the current block at text offset ``at`` (a line start)."""
        if at > self.boundary:
            self.boundary = at
            self._cuts.append(at)
        self._kind = None
        self._blank_before = False

    def _decide_early(self) -> None:
        """Finish the block as soon as the line after a blank line shows it starts a new one.

        Streamed paragraphs are usually one long line, so waiting for its newline would keep
        the previous block unfinished (and re-sent) for the whole paragraph.
        """
        if self._raw_html_end is not None:
            return
        tail = self._buf[self._scan - self._base :]
        body = tail.lstrip(" \t")
        if not body:
            return
        indent = _indent(tail)
        if self._kind == "code" and indent >= 4:
            return  # indented code goes on
        if self._kind == "list":
            if indent >= self._list_indent or _ITEM_PREFIX.match(body):
                return  # the item goes on, or the line may still become the next item
            item = _ITEM.match(tail)
            if item is not None and item.group("space"):
                return  # the next item of a loose list
        self._cut(self._scan)

    def _line(self, line: str, start: int, end: int) -> None:
        """Classify one complete line (``text[start:end]`` including its newline)."""
        fence = self._fence
        if fence is not None:
            if fence.quote and not line.startswith(fence.quote.rstrip()):
                self._fence = None  # leaving the block quote ends the fenced code inside it
                if self._kind == "fence":
                    self._cut(start)
            elif _closes(fence, line):
                self._fence = None
                if self._kind == "fence":
                    self._cut(end)
                return
            else:
                return
        if self._raw_html_end is not None:
            if self._raw_html_end in line.lower():
                self._raw_html_end = None
            return
        if not line.strip():
            self._blank_before = True
            return
        indent = _indent(line)
        item = _ITEM.match(line)
        in_list = self._kind == "list"
        if self._kind is not None and self._blank_before:
            if in_list and (indent >= self._list_indent or (item and indent < self._list_indent)):
                pass  # list item continues, or the next item of a loose list
            elif self._kind == "code" and indent >= 4:
                pass  # indented code continues across blank lines
            else:
                self._cut(start)
                in_list = False
        elif self._kind is not None and not (in_list and indent >= self._list_indent):
            # Blocks that interrupt the block in progress start a new block of their own.
            opening = _fence_opening(line)
            if _ATX.match(line) or (opening and indent <= 3 and not opening[1].quote):
                self._cut(start)
                in_list = False
        self._blank_before = False

        opening = _fence_opening(line)
        if opening is not None and (indent <= 3 or in_list):
            self._fence_prefix, self._fence = opening
            if self._kind is None:
                # A fence inside a block quote is part of the quote, which may go on after it.
                self._kind = "para" if self._fence.quote else "fence"
            return
        html = _RAW_HTML_START.match(line)
        if html is not None:
            end_marker = "-->" if html.group(2) else f"</{html.group(1).lower()}>"
            after_start = line[html.end() :].lower() if html.group(2) else line.lower()
            if end_marker not in after_start:
                self._raw_html_end = end_marker
            if self._kind is None:
                self._kind = "html"
            return
        if self._kind is None and (_ATX.match(line) or _BREAK.match(line)):
            self._cut(end)  # a heading or a rule is a whole block on its own line
            return
        if self._kind == "para" and (_SETEXT_EQ.match(line) or _BREAK.match(line)):
            self._cut(end)  # setext heading underline (or a rule after the paragraph)
            return
        if in_list and _BREAK.match(line) and indent < self._list_indent:
            self._cut(end)
            return
        if item is not None and not _BREAK.match(line):
            marker_indent = _indent(item.group("indent"))
            if not in_list or marker_indent < self._list_indent:
                marker_end = _columns(item.group("indent") + item.group("marker"))
                width = _columns(item.group(0)) - marker_end
                if width > 4 or not item.group("space"):
                    width = 1  # content starting 5+ columns after the marker is indented code
                self._list_indent = marker_end + width
            self._kind = "list"
            return
        if self._kind is None:
            self._kind = "code" if indent >= 4 else "para"


def _hold_table_header(text: str) -> str:
    """``text`` without a trailing pipe row that may still turn out to be a table header."""
    lines = text.splitlines(keepends=True)
    run = 0  # how many lines at the end start with a pipe
    while run < len(lines) and _PIPE_ROW.match(lines[len(lines) - 1 - run]):
        run += 1
    if run == 0 or run > 2:
        return text
    last = lines[-1]
    if run == 2:
        if last.endswith("\n"):
            return text  # header and a complete second line: a table, or plain text
        if not _DELIMITER_PREFIX.match(last):
            return text  # the second line cannot be a delimiter row: not a table
    elif last.endswith("\n") and _DELIMITER_ROW.match(last):
        return text
    return "".join(lines[: len(lines) - run])


class Budget:
    """Spaces messages at least ``1 / rate`` seconds apart, so any 1 s window holds ≤ ``rate``."""

    def __init__(self, rate: float = 20.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError(f"max updates per second must be positive, got {rate!r}")
        self.interval = 1.0 / rate
        self.clock = clock
        self.messages = 0
        self._next_at = float("-inf")

    def due_in(self) -> float:
        """Seconds until the next message may be sent (0 when it may be sent now)."""
        return max(0.0, self._next_at - self.clock())

    def take(self) -> None:
        """Record that one message is being sent now."""
        self.messages += 1
        self._next_at = self.clock() + self.interval

    def sent(self) -> None:
        """Restart the interval once the message is out (the kernel stamps it when sent)."""
        self._next_at = self.clock() + self.interval


@dataclass(frozen=True, slots=True)
class Emit:
    """One display message: show ``text`` in a new output slot or replace a slot's text."""

    op: Literal["new", "update"]
    slot: int
    text: str
    frozen: bool  # the slot holds finished blocks only and will never change again


class LiveMarkdown:
    """Turn streamed Markdown into display operations within a message budget.

    Call :meth:`feed` with each delta and perform the returned operations; when no delta
    arrives, call :meth:`poll` after :meth:`due_in` seconds so the last text is not held back.
    At the end, :meth:`finish` freezes the remaining blocks into their slots (not budgeted:
    the caller paces them); afterwards every slot holds exactly one finished block.
    """

    def __init__(self, budget: Budget) -> None:
        self.blocks = MarkdownBlocks()
        self.budget = budget
        self._slot: int | None = None  # the open (bottom) slot, if one is shown
        self._slots = 0
        self._start = 0  # text offset where the open slot, or the next one, begins
        self._ends: deque[int] = deque()  # ends of finished blocks not yet frozen in a slot
        self._shown = ""  # what the open slot shows

    @property
    def slots(self) -> int:
        """How many output slots have been opened."""
        return self._slots

    def feed(self, delta: str) -> list[Emit]:
        """Add a delta; return the operations to perform now (at most one)."""
        for block in self.blocks.feed(delta):
            self._ends.append((self._ends[-1] if self._ends else self._start) + len(block))
        return self.poll()

    def poll(self) -> list[Emit]:
        """Return the operation that is due now, if any (at most one)."""
        if self.budget.due_in() > 0:
            return []
        emit = self._step()
        if emit is None:
            return []
        self.budget.take()
        return [emit]

    def due_in(self) -> float | None:
        """Seconds until :meth:`poll` has something to send; None when everything is shown."""
        if not self._ends and self._live() == self._shown:
            return None
        if self._slot is None and not self._ends and not self._live().strip():
            return None
        return self.budget.due_in()

    def final_text(self) -> str:
        """The whole text with an unterminated fence closed."""
        return self.blocks.text + self.blocks.closing_fence()

    def finish(self) -> list[Emit]:
        """Freeze the remaining blocks into their slots; return the operations (not budgeted)."""
        emits = []
        while self._ends:
            emit = self._step()
            if emit is not None:
                emits.append(emit)
        rest = self.blocks.pending + self.blocks.closing_fence()
        self.blocks.close()
        self._start = self.blocks.length
        if self._slot is not None:
            # Sent even when the text is what the slot shows: it is final now (frozen).
            emits.append(Emit("update", self._slot, rest, True))
        elif rest.strip():
            emits.append(Emit("new", self._new_slot(), rest, True))
        self._slot = None
        self._shown = ""
        return emits

    def _live(self) -> str:
        return self.blocks.display_pending()

    def _new_slot(self) -> int:
        self._slots += 1
        return self._slots - 1

    def _step(self) -> Emit | None:
        if self._ends:
            # Freeze the open slot with exactly the next finished block: it is sent this once.
            end = self._ends.popleft()
            text = self.blocks.slice(self._start, end)
            self._start = end
            self.blocks.trim(end)
            slot, self._slot, self._shown = self._slot, None, ""
            if slot is not None:
                return Emit("update", slot, text, True)
            if not text.strip():
                return self._step()  # blank lines only: no slot of their own
            return Emit("new", self._new_slot(), text, True)
        live = self._live()
        if live == self._shown:
            return None
        if self._slot is None:
            if not live.strip():
                return None
            self._slot = self._new_slot()
            emit = Emit("new", self._slot, live, False)
        else:
            emit = Emit("update", self._slot, live, False)
        self._shown = live
        return emit
