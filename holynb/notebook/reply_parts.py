"""The parts of a reply besides its answer, as both notebook faces show them.

- **Thinking**: the model's reasoning, in a collapsible block above the answer — open while
  the model thinks (showing the last few lines, so each live update stays small), collapsed
  with the whole reasoning inside once the answer starts.
- **Tool calls**: one block per call with the function name and its arguments, pretty-printed
  as they stream (:func:`pretty_json` indents JSON that is still incomplete).

The magic publishes the Markdown built here; the panel renders the same Markdown to HTML, so
both faces show the same thing. Names and arguments come from the model: they only ever
appear inside code spans and code fences, never as Markdown or HTML.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from holynb.notebook.safe_markdown import code_fence, code_span, render_html, safe_markdown

__all__ = [
    "THINKING_TAIL_CHARS",
    "ToolCallView",
    "pretty_json",
    "reasoning_tail",
    "thinking_block",
    "thinking_summary",
    "tool_call_markdown",
]

# How much of the reasoning the open "Thinking" block shows while the model thinks.
THINKING_TAIL_CHARS = 600


def thinking_summary(*, done: bool, seconds: float | None) -> str:
    """``Thinking…`` while the model thinks, then ``Thought for 3.2 s``."""
    if not done:
        return "💭 Thinking…"
    return "💭 Thought" + (f" for {seconds:.1f} s" if seconds is not None else "")


def reasoning_tail(text: str, limit: int = THINKING_TAIL_CHARS) -> str:
    """The end of ``text`` (about ``limit`` characters, from a line or word start)."""
    if len(text) <= limit:
        return text
    tail = text[-limit:]
    cut = tail.find("\n")
    if cut < 0 or cut > limit // 2:
        cut = tail.find(" ")
    return "…" + (tail[cut + 1 :] if 0 <= cut < limit // 2 else tail)


def thinking_block(text: str, *, done: bool, seconds: float | None, html: bool = False) -> str:
    """The "Thinking" block: Markdown for ``%%holy`` or, with ``html``, HTML for the panel.

    An HTML ``<details>`` either way, open with the last lines while the model thinks, closed
    with everything once the answer starts.
    """
    body = (text if done else reasoning_tail(text)).strip()
    summary = thinking_summary(done=done, seconds=seconds)
    opened = "" if done else " open"
    head = f'<details class="holynb-thinking"{opened}>'
    if html:
        return f"{head}<summary>{summary}</summary>{render_html(body)}</details>"
    # A block quote sets the thinking apart from the answer below it once the block is opened
    # (the notebook's Markdown styles it; the panel has its own CSS). Blank lines around it:
    # Markdown inside an HTML block needs them (CommonMark 4.6).
    lines = safe_markdown(body).split("\n") if body else []
    quoted = "\n".join(f"> {line}" if line else ">" for line in lines)
    return f"{head}\n<summary>{summary}</summary>\n\n{quoted}\n\n</details>\n"


@dataclass(slots=True)
class ToolCallView:
    """One tool call as it streams: its id, function name and the arguments so far."""

    index: int
    id: str | None = None
    name: str = ""
    arguments: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The arguments received so far (JSON, possibly incomplete)."""
        return "".join(self.arguments)

    def add(self, call_id: str | None, name: str | None, arguments: str) -> None:
        """Take one fragment of the call."""
        if call_id:
            self.id = call_id
        if name:
            self.name += name
        if arguments:
            self.arguments.append(arguments)

    def as_openai(self) -> dict[str, object]:
        """The call in OpenAI form: ``{"id", "type": "function", "function": {...}}``."""
        function = {"name": self.name, "arguments": self.text}
        return {"id": self.id, "type": "function", "function": function}


def tool_call_markdown(call: ToolCallView, *, done: bool) -> str:
    """A tool-call block: ``🔧 `name` `` and the arguments as a JSON code block."""
    head = f"🔧 **Tool call** {code_span(call.name) if call.name else '…'}"
    args = pretty_json(call.text, done=done)
    note = ""
    if done and call.text.strip():
        try:
            json.loads(call.text)
        except json.JSONDecodeError:
            note = "\n\n⚠ the arguments are not valid JSON; shown as sent"
    if not args:
        return head + ("" if done else " …") + note + "\n"
    fence = code_fence(args)
    return f"{head}\n\n{fence}json\n{args}\n{fence}{note}\n"


def pretty_json(text: str, *, done: bool = False) -> str:
    """Indent JSON ``text`` that may still be incomplete (2 spaces per level).

    Finished, valid JSON is re-serialised by :mod:`json`; anything else is laid out token by
    token as written, so a value still streaming shows where it will end up.
    """
    if done:
        try:
            return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except json.JSONDecodeError:
            return text
    out: list[str] = []
    depth = 0
    i = 0
    n = len(text)
    pending_newline = False  # after "{", "[" or ",": the next token starts a new line

    def newline() -> None:
        out.append("\n" + "  " * depth)

    while i < n:
        ch = text[i]
        if ch in " \t\r\n":
            i += 1
            continue
        if ch in "}]":
            depth = max(0, depth - 1)
            if pending_newline and out and out[-1] in "{[":
                out.append(ch)  # an empty object or array stays on one line
            else:
                newline()
                out.append(ch)
            pending_newline = False
            i += 1
            continue
        if pending_newline:
            newline()
            pending_newline = False
        if ch in "{[":
            out.append(ch)
            depth += 1
            pending_newline = True
            i += 1
        elif ch == ",":
            out.append(",")
            pending_newline = True
            i += 1
        elif ch == ":":
            out.append(": ")
            i += 1
        elif ch == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        else:
            j = i
            while j < n and text[j] not in ' \t\r\n{}[],:"':
                j += 1
            out.append(text[i:j])
            i = j
    return "".join(out)
