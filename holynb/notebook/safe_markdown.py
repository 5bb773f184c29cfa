"""Model-written Markdown made safe, and shown as chat UIs show it, for both notebook faces.

A model's reply is untrusted input. JupyterLab treats outputs produced during the session as
*trusted*: the HTML its Markdown renderer produces goes to ``innerHTML`` unsanitised, so a reply
containing ``<img src=x onerror=...>`` would execute in the user's session (and can reach the
kernel); ipywidgets' ``HTML`` widget does not sanitise either. This module is the one place
that defuses model text, with one Markdown parser (markdown-it-py: CommonMark + GFM tables and
strikethrough) and one code-fence finder (:func:`code_blocks`):

- :func:`safe_markdown` (``%%holy``, published as ``text/markdown``): ``<`` and ``&`` are
  escaped everywhere except inside code — fenced and indented blocks and inline code spans,
  where Markdown never interprets HTML. That leaves no raw HTML, and no character reference
  that could spell a URL scheme (``jav&#97;script:``). Characters already backslash-escaped are
  left as they are. Link destinations whose scheme is not http, https or mailto get a ``#`` in
  front, so ``javascript:`` links become harmless fragments.
- :func:`render_html` (``ChatPanel``): Markdown → HTML with raw HTML disabled (tags the model
  writes show as text), code blocks highlighted by Pygments, then :func:`sanitize_html`.
- :func:`sanitize_html`: the one HTML allowlist (nh3), also used for ``%%holy -f html``.

Both faces keep single line breaks inside a paragraph, as chat UIs do (a haiku stays on three
lines): CommonMark would join them into one line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import nh3
from markdown_it import MarkdownIt

__all__ = [
    "CodeBlock",
    "code_blocks",
    "code_fence",
    "code_span",
    "extract_code",
    "render_html",
    "safe_markdown",
    "sanitize_html",
    "unclosed_code_span",
]

_SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
_SPECIAL = re.compile(r"(\\*)([<&])")
_BACKTICKS = re.compile(r"`+")
_PARAGRAPH_BREAK = re.compile(r"(\n[ \t]*\n)")
_SCHEME = r"([A-Za-z][A-Za-z0-9+.\-]*):"
_INLINE_DEST = re.compile(r"(\]\(\s*)" + _SCHEME)
_REF_DEST = re.compile(r"^([ \t>]*\[[^\]\n]+\]:[ \t]*\n?[ \t>]*)" + _SCHEME, re.MULTILINE)
# A line break between two non-blank lines: a soft break if both are paragraph text.
_INNER_NEWLINE = re.compile(r"\S[^\S\n]*\n[^\S\n]*\S")
_HARD_BREAK_END = re.compile(r"(?: {2,}|\\)$")
_PLAIN_SPAN = re.compile(r'<span class="[nw]">([^<]*)</span>')


@dataclass(frozen=True, slots=True)
class CodeBlock:
    """A fenced or indented code block: its language (``""`` if none), body and line span."""

    lang: str
    body: str
    lines: tuple[int, int]  # [first, last) line numbers in the text, fences included


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    # html=False: raw HTML from the model is escaped, never interpreted; breaks=True: a single
    # newline inside a paragraph is a line break, as in chat UIs.
    options: dict[str, Any] = {"html": False, "breaks": True, "highlight": _highlight}
    return MarkdownIt("commonmark", options).enable(["table", "strikethrough"])


def code_blocks(text: str) -> list[CodeBlock]:
    """The fenced and indented code blocks of Markdown ``text``, in order."""
    return [
        CodeBlock(
            lang=tok.info.strip().split(" ")[0].lower() if tok.type == "fence" else "",
            body=tok.content,
            lines=(tok.map[0], tok.map[1]) if tok.map else (0, 0),
        )
        for tok in _parser().parse(text)
        if tok.type in ("fence", "code_block")
    ]


def extract_code(text: str, lang: str | None = None) -> str:
    """The body of the first code block (of language ``lang`` if one has it), else the text."""
    blocks = code_blocks(text)
    for block in blocks:
        if lang is None or block.lang == lang:
            return block.body.rstrip("\n")
    return blocks[0].body.rstrip("\n") if blocks else text.strip("\n")


def code_fence(body: str) -> str:
    """A backtick fence longer than any backtick run in ``body``, so the body cannot close it."""
    return "`" * max(3, _longest_backticks(body) + 1)


def code_span(text: str) -> str:
    """``text`` as an inline code span, whatever backticks it holds (CommonMark 6.1)."""
    ticks = "`" * (_longest_backticks(text) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def _longest_backticks(text: str) -> int:
    return max((len(run) for run in _BACKTICKS.findall(text)), default=0)


# -- text/markdown for %%holy ------------------------------------------------------------------


def safe_markdown(text: str) -> str:
    """``text`` with raw HTML and unsafe link schemes neutralised outside code, and its
    paragraphs' single line breaks kept (as hard breaks)."""
    needs_defusing = "<" in text or "&" in text or "](" in text or "]:" in text
    if not needs_defusing and not _INNER_NEWLINE.search(text):
        return text  # nothing to neutralise and no line break to keep (most blocks)
    verbatim: set[int] = set()
    soft_breaks: set[int] = set()
    for token in _parser().parse(text):
        if token.map is None:
            continue
        if token.type in ("fence", "code_block"):
            verbatim.update(range(*token.map))
        elif token.type == "paragraph_open":
            soft_breaks.update(range(token.map[0], token.map[1] - 1))
    out: list[str] = []
    prose: list[str] = []
    for number, line in enumerate(text.splitlines(keepends=True)):
        if number in verbatim:
            if prose:
                out.append(_safe_prose("".join(prose)) if needs_defusing else "".join(prose))
                prose = []
            out.append(line)
            continue
        if number in soft_breaks:
            line = _hard_break(line)
        prose.append(line)
    if prose:
        out.append(_safe_prose("".join(prose)) if needs_defusing else "".join(prose))
    return "".join(out)


def _hard_break(line: str) -> str:
    """End a paragraph line with a hard break (two spaces) unless it already has one."""
    body = line.rstrip("\r\n")
    if _HARD_BREAK_END.search(body):
        return line
    return body + "  " + line[len(body) :]


def _safe_prose(text: str) -> str:
    # Code spans never cross a blank line (CommonMark 6.1), so each paragraph is scanned alone.
    return "".join(
        part if _PARAGRAPH_BREAK.fullmatch(part) else _outside_code_spans(part)
        for part in _PARAGRAPH_BREAK.split(text)
    )


def _outside_code_spans(text: str) -> str:
    """Defuse ``text`` except inside inline code spans, which are copied verbatim."""
    out: list[str] = []
    pos = 0
    while True:
        opener = _BACKTICKS.search(text, pos)
        if opener is None:
            out.append(_defuse(text[pos:]))
            return "".join(out)
        start = opener.start()
        if _escaped(text, start):
            # A backslash-escaped backtick is literal; the rest of its run may still open a span.
            out.append(_defuse(text[pos : start + 1]))
            pos = start + 1
            continue
        closer = _closing_run(text, opener.end(), len(opener.group()))
        if closer is None:
            out.append(_defuse(text[pos : opener.end()]))  # an unmatched run is literal text
            pos = opener.end()
            continue
        out.append(_defuse(text[pos:start]))
        out.append(text[start:closer])
        pos = closer


def _closing_run(text: str, start: int, length: int) -> int | None:
    """End of the first backtick run of exactly ``length`` at or after ``start``, if any."""
    for run in _BACKTICKS.finditer(text, start):
        if len(run.group()) == length:
            return run.end()
    return None


def unclosed_code_span(text: str) -> str:
    """The backticks that would close a code span left open at the end of ``text`` ('' if none).

    Used for live rendering: a span still being written is shown as code, not as a backtick.
    Only the last paragraph matters (code spans never cross a blank line).
    """
    last = _PARAGRAPH_BREAK.split(text)[-1]
    pos = 0
    while (opener := _BACKTICKS.search(last, pos)) is not None:
        if _escaped(last, opener.start()):
            pos = opener.start() + 1
            continue
        closer = _closing_run(last, opener.end(), len(opener.group()))
        if closer is None:
            return opener.group() if last[opener.end() :].strip() else ""
        pos = closer
    return ""


def _escaped(text: str, index: int) -> bool:
    """True if the character at ``index`` follows an odd number of backslashes."""
    count = 0
    while index - count - 1 >= 0 and text[index - count - 1] == "\\":
        count += 1
    return count % 2 == 1


def _defuse(text: str) -> str:
    text = _SPECIAL.sub(_escape_special, text)
    text = _INLINE_DEST.sub(_defuse_scheme, text)
    return _REF_DEST.sub(_defuse_scheme, text)


def _escape_special(match: re.Match[str]) -> str:
    slashes, char = match.groups()
    if len(slashes) % 2 == 1:
        return match.group()  # already a literal character
    return slashes + ("&lt;" if char == "<" else "&amp;")


def _defuse_scheme(match: re.Match[str]) -> str:
    prefix, scheme = match.groups()
    if scheme.lower() in _SAFE_SCHEMES:
        return match.group()
    return f"{prefix}#{scheme}:"


# -- HTML for ChatPanel --------------------------------------------------------------------------

def _highlight(code: str, lang: str, attrs: str) -> str:
    """Pygments spans for a fenced block with a known language ('' = markdown-it escapes it)."""
    if not lang:
        return ""  # like JupyterLab's Markdown renderer: no language, no highlighting
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import get_lexer_by_name
    from pygments.util import ClassNotFound

    try:
        lexer = get_lexer_by_name(lang.split()[0])
    except ClassNotFound:
        return ""
    spans = highlight(code, lexer, HtmlFormatter(nowrap=True))
    # Plain names and whitespace keep the default colour: dropping their spans halves the bytes.
    return _PLAIN_SPAN.sub(r"\1", spans)


@lru_cache(maxsize=1)
def _cleaner() -> nh3.Cleaner:
    from pygments.token import STANDARD_TYPES

    attributes = {tag: set(names) for tag, names in nh3.ALLOWED_ATTRIBUTES.items()}
    attributes["a"] = attributes.get("a", set()) | {"title"}
    attributes["img"] = attributes.get("img", set()) | {"title"}
    attributes["span"] = set()  # its classes are allowed_classes below
    for cell in ("td", "th"):
        attributes[cell] = attributes.get(cell, set()) | {"style"}
    return nh3.Cleaner(
        attributes=attributes,
        # Pygments' short token classes (``k``, ``s2``, ``nf`` ...) are the only classes kept.
        allowed_classes={"span": {name for name in STANDARD_TYPES.values() if name}},
        url_schemes=set(_SAFE_SCHEMES),
        filter_style_properties={"text-align"},
        set_tag_attribute_values={"a": {"target": "_blank"}},
        link_rel="noopener noreferrer",
    )


def render_html(text: str) -> str:
    """Render untrusted Markdown to sanitised HTML (code highlighted, line breaks kept)."""
    return sanitize_html(_parser().render(text))


def sanitize_html(html: str) -> str:
    """Keep only inert HTML: no scripts, handlers, styles (but table alignment) or unsafe URLs."""
    return _cleaner().clean(html)
