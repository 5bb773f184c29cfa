"""The panel's Markdown renderer: untrusted model text must come out inert."""

from __future__ import annotations

import pytest
from panel_helpers import assert_inert, tags_of

from holynb._panel_render import code_blocks, render_markdown

ATTACKS = [
    "<script>alert(1)</script>",
    "hello <script src=https://evil.example/x.js></script> world",
    '<img src=x onerror="alert(1)">',
    '<a href="javascript:alert(1)">click</a>',
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](  javascript:alert(1) )",
    "![img](javascript:alert(1))",
    "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    '<svg onload="alert(1)"><circle/></svg>',
    '<iframe src="https://evil.example"></iframe>',
    '<div style="position:fixed;inset:0" onclick="alert(1)">x</div>',
    "<style>body{display:none}</style>",
    '<a href="https://ok.example" onmouseover="alert(1)">x</a>',
    "<details open ontoggle=alert(1)>",
    "```html\n<script>alert(1)</script>\n```",
    "| a | b |\n|---|---|\n| <img src=x onerror=alert(1)> | [x](javascript:alert(1)) |",
]


@pytest.mark.parametrize("text", ATTACKS)
def test_model_html_is_inert(text: str) -> None:
    assert_inert(render_markdown(text))


def test_raw_html_is_shown_as_text() -> None:
    html = render_markdown("<script>alert(1)</script> and <b>bold</b>")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html


def test_markdown_features_render() -> None:
    text = (
        "# Title\n\nSome **bold**, *em*, `code` and ~~gone~~.\n\n"
        "```python\nprint('<hi>')\n```\n\n"
        "| left | right |\n|:-----|------:|\n| 1 | 2 |\n\n"
        "1. one\n2. two\n\n> quote\n\n[site](https://example.com)\n"
    )
    html = render_markdown(text)
    names = [tag for tag, _ in tags_of(html)]
    for tag in ("h1", "strong", "em", "code", "s", "pre", "table", "th", "td", "ol", "li"):
        assert tag in names, tag
    assert "<blockquote>" in html
    assert "print(&#39;&lt;hi&gt;&#39;)" in html or "print('&lt;hi&gt;')" in html
    assert 'style="text-align:right"' in html
    link = next(attrs for tag, attrs in tags_of(html) if tag == "a")
    assert link["href"] == "https://example.com"
    assert link["target"] == "_blank"
    assert link["rel"] == "noopener noreferrer"


def test_code_blocks_are_extracted_in_order() -> None:
    text = "Intro\n\n```python\nx = 1\n```\n\ntext\n\n    indented\n\n~~~\nlast()\n~~~\n"
    assert code_blocks(text) == ["x = 1\n", "indented\n", "last()\n"]
    assert code_blocks("no code here") == []
