"""Make model-written Markdown safe to publish as ``text/markdown`` in a trusting frontend.

JupyterLab treats outputs produced during the session as *trusted*: the HTML its Markdown
renderer produces goes to ``innerHTML`` unsanitised and its ``<script>`` tags run, so a reply
containing ``<img src=x onerror=...>`` would execute in the user's session (and can reach the
kernel). A model's reply is untrusted input. Before the magic publishes it:

- ``<`` and ``&`` are escaped everywhere except inside code — fenced blocks (found by
  markdown-it-py's CommonMark parser) and inline code spans, where Markdown never interprets
  HTML. That leaves no raw HTML, and no character reference that could spell a URL scheme
  (``jav&#97;script:``). Characters already backslash-escaped are left as they are.
- link destinations (inline ``](...)`` and reference definitions) whose scheme is not http,
  https or mailto get a ``#`` in front, so ``javascript:`` links become harmless fragments.

Ordinary prose, lists, tables, links and code render exactly as before; raw HTML shows as text.
"""

from __future__ import annotations

import re

from markdown_it import MarkdownIt

__all__ = ["safe_markdown"]

_SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
_SPECIAL = re.compile(r"(\\*)([<&])")
_BACKTICKS = re.compile(r"`+")
_PARAGRAPH_BREAK = re.compile(r"(\n[ \t]*\n)")
_SCHEME = r"([A-Za-z][A-Za-z0-9+.\-]*):"
_INLINE_DEST = re.compile(r"(\]\(\s*)" + _SCHEME)
_REF_DEST = re.compile(r"^([ \t>]*\[[^\]\n]+\]:[ \t]*\n?[ \t>]*)" + _SCHEME, re.MULTILINE)
_parser = MarkdownIt("commonmark")


def safe_markdown(text: str) -> str:
    """Return ``text`` with raw HTML and unsafe link schemes neutralised outside code."""
    if "<" not in text and "&" not in text and "](" not in text and "]:" not in text:
        return text  # no HTML, entity or link destination: nothing to neutralise (most blocks)
    fenced: set[int] = set()
    for token in _parser.parse(text):
        if token.type == "fence" and token.map:
            fenced.update(range(*token.map))
    out: list[str] = []
    prose: list[str] = []
    for number, line in enumerate(text.splitlines(keepends=True)):
        if number in fenced:
            if prose:
                out.append(_safe_prose("".join(prose)))
                prose = []
            out.append(line)
        else:
            prose.append(line)
    if prose:
        out.append(_safe_prose("".join(prose)))
    return "".join(out)


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
