"""The panel's Markdown renderer: untrusted model text must come out inert."""

from __future__ import annotations

import pytest
from panel_helpers import assert_inert, tags_of

from holynb.notebook.safe_markdown import code_blocks, render_html

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
    assert_inert(render_html(text))


def test_raw_html_is_shown_as_text() -> None:
    html = render_html("<script>alert(1)</script> and <b>bold</b>")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html


def test_markdown_features_render() -> None:
    text = (
        "# Title\n\nSome **bold**, *em*, `code` and ~~gone~~.\n\n"
        "```python\nprint('<hi>')\n```\n\n"
        "| left | right |\n|:-----|------:|\n| 1 | 2 |\n\n"
        "1. one\n2. two\n\n> quote\n\n[site](https://example.com)\n"
    )
    html = render_html(text)
    names = [tag for tag, _ in tags_of(html)]
    for tag in ("h1", "strong", "em", "code", "s", "pre", "table", "th", "td", "ol", "li"):
        assert tag in names, tag
    assert "<blockquote>" in html
    # Highlighted like the magic's code (Pygments classes), the model's "<hi>" still escaped.
    assert '<span class="nb">print</span>' in html
    assert "&lt;hi&gt;" in html and "<hi>" not in html
    assert 'style="text-align:right"' in html
    link = next(attrs for tag, attrs in tags_of(html) if tag == "a")
    assert link["href"] == "https://example.com"
    assert link["target"] == "_blank"
    assert link["rel"] == "noopener noreferrer"


def test_code_blocks_are_extracted_in_order() -> None:
    text = "Intro\n\n```python\nx = 1\n```\n\ntext\n\n    indented\n\n~~~\nlast()\n~~~\n"
    blocks = code_blocks(text)
    assert [b.body for b in blocks] == ["x = 1\n", "indented\n", "last()\n"]
    assert [b.lang for b in blocks] == ["python", "", ""]
    assert blocks[0].lines == (2, 5)
    assert code_blocks("no code here") == []


def test_code_without_a_known_language_is_not_highlighted() -> None:
    assert "<span" not in render_html("```\nx = 1\n```")
    assert "<span" not in render_html("```no-such-language\nx = 1\n```")
    assert '<span class="k">def</span>' in render_html("```py\ndef f(): pass\n```")


def test_only_pygments_classes_survive_on_spans() -> None:
    html = render_html("```python\nx = 1\n```")
    for _, attrs in tags_of(html):
        assert set(attrs) <= {"class"}
    assert render_html("<span class='evil'>x</span>").count("<span") == 0


def test_single_line_breaks_are_kept() -> None:
    html = render_html("Old pond\nfrog jumps in\nsplash\n\nnext")
    assert html.count("<br>") == 2
    assert "<p>next</p>" in html
