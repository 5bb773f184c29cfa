"""Markdown rendering for the chat panel: untrusted model text in, safe HTML out.

Model output is untrusted. ``markdown-it-py`` runs with raw HTML disabled, so tags the model
writes are shown as text, and its output then goes through ``nh3`` with a small allowlist as a
second line of defence: no ``<script>``, no ``on*=`` handlers, no ``javascript:`` URLs.
"""

from __future__ import annotations

from functools import lru_cache

import nh3
from markdown_it import MarkdownIt

__all__ = ["code_blocks", "render_markdown"]

# Exactly the tags markdown-it emits for CommonMark + tables + strikethrough.
_TAGS = {
    "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "img", "li", "ol", "p", "pre", "s", "strong", "table", "tbody", "td", "th", "thead", "tr",
    "ul",
}  # fmt: skip
_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "ol": {"start"},
    "td": {"style"},
    "th": {"style"},
}
_URL_SCHEMES = {"http", "https", "mailto"}


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    # html=False: raw HTML from the model is escaped, never interpreted.
    return MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


def render_markdown(text: str) -> str:
    """Render untrusted Markdown to sanitised HTML."""
    html = _parser().render(text)
    return nh3.clean(
        html,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes=_URL_SCHEMES,
        filter_style_properties={"text-align"},
        set_tag_attribute_values={"a": {"target": "_blank"}},
        link_rel="noopener noreferrer",
    )


def code_blocks(text: str) -> list[str]:
    """Return the contents of the fenced and indented code blocks in Markdown ``text``."""
    return [tok.content for tok in _parser().parse(text) if tok.type in ("fence", "code_block")]
