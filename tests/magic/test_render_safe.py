"""Model-written Markdown is published with its raw HTML and unsafe links neutralised.

JupyterLab renders Markdown outputs of the running session as trusted HTML (scripts run,
event handlers fire), so these tests render what the magic publishes with a CommonMark renderer
that passes raw HTML through — the trusting case — and parse the result with a real HTML parser.
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from IPython.core.interactiveshell import InteractiveShell
from magicutil import Recorder, cassette_deltas
from markdown_it import MarkdownIt

from holynb.notebook.safe_markdown import safe_markdown
from mockserver._cassettes import Cassette, save_cassette
from mockserver._frames import Frame

# Raw HTML goes through and every link is accepted, as in JupyterLab's trusted outputs
# (markdown-it refuses javascript: links by default; marked, which JupyterLab uses, does not).
TRUSTING = MarkdownIt("commonmark")
TRUSTING.validateLink = lambda url: True

ATTACKS = [
    "Hello <script>alert(1)</script> world",
    "<img src=x onerror=alert(1)>",
    "<div>\n<svg onload=alert(1)>\n</div>",
    "\\`<img src=x onerror=alert(1)>`",  # an escaped backtick opens no code span
    "\\\\<img src=x onerror=alert(1)>",  # an escaped backslash escapes nothing after it
    "[click](javascript:alert(1))",
    "[click]( JaVaScRiPt:alert(1))",
    "[click](jav&#97;script:alert(1))",
    "[click](<javascript:alert(1)>)",
    "<javascript:alert(1)>",
    "[c][id]\n\n[id]: javascript:alert(1)",
    "> [c][id]\n>\n> [id]:\n> vbscript:msgbox(1)",
    "``code ` span`` then <iframe src=javascript:alert(1)></iframe>",
    "- item\n\n  <a href=x onclick=alert(1)>y</a>",
    "| a | b |\n|---|---|\n| <b onmouseover=alert(1)>x</b> | 2 |",
    "![img](data:text/html,<script>alert(1)</script>)",
]


class _Active(HTMLParser):
    """Collects what would be active in a browser: tags that run code, handlers, bad URLs."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"script", "iframe", "svg", "object", "embed"}:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"{tag}[{name}]")
            if name in {"href", "src"} and value:
                scheme = urlsplit(value.strip()).scheme.lower()
                if scheme and scheme not in {"http", "https", "mailto"}:
                    self.found.append(f"{tag}[{name}={value}]")


def active_parts(markdown: str) -> list[str]:
    parser = _Active()
    parser.feed(TRUSTING.render(markdown))
    return parser.found


@pytest.mark.parametrize("attack", ATTACKS)
def test_attacks_are_inert_after_neutralising(attack: str) -> None:
    assert active_parts(attack), "the attack must be active before neutralising"
    assert active_parts(safe_markdown(attack)) == []


def test_code_is_left_exactly_as_written() -> None:
    text = (
        "Use `List<int>` and `a && b`.\n\n"
        "```html\n<script>shown as code</script>\n```\n\n"
        "- item\n\n  ```py\n  x = a < b & c\n  ```\n"
    )
    out = safe_markdown(text)
    assert "`List<int>`" in out and "`a && b`" in out
    assert "<script>shown as code</script>" in out and "x = a < b & c" in out
    assert TRUSTING.render(out) == TRUSTING.render(text)  # code renders the same


def test_prose_renders_as_before_and_html_shows_as_text() -> None:
    text = "AT&T says 3 < 4, see [docs](https://example.com) and <b>bold</b>."
    html = TRUSTING.render(safe_markdown(text))
    assert "AT&amp;T says 3 &lt; 4" in html
    assert '<a href="https://example.com">docs</a>' in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html  # visible as text, not a tag


def test_shipped_answer_is_unchanged() -> None:
    full = "".join(cassette_deltas())
    assert safe_markdown(full) == full


def test_magic_publishes_neutralised_markdown(
    ip: InteractiveShell, recorder: Recorder, holy_mock_factory, use_mock, tmp_path: Path
) -> None:
    prompt = "Show me something dangerous."
    pieces = ["Here ", "is <img src=x ", "onerror=alert(1)>", " and [a link](javascript:", "x())."]
    chunks = [
        {"choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in pieces
    ]
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    frames = [Frame(i * 0.01, f"data: {json.dumps(c)}\n\n".encode()) for i, c in enumerate(chunks)]
    frames.append(Frame(len(chunks) * 0.01, b"data: [DONE]\n\n"))
    save_cassette(
        Cassette(
            name="xss",
            match={"prompt": prompt},
            transport="sse",
            frames=frames,
            headers={"content-type": "text/event-stream"},
        ),
        tmp_path / "xss.json",
    )
    use_mock(holy_mock_factory(cassettes=[tmp_path]))
    ip.run_cell_magic("holy", "-o reply", prompt)

    published = [m["data"]["text/markdown"] for m in recorder.display_messages()
                 if "text/markdown" in m["data"]]
    assert published, "the reply was published as Markdown"
    for markdown in published:
        assert active_parts(markdown) == [], markdown
    # The variable keeps the reply exactly as the model wrote it.
    assert ip.user_ns["reply"] == "".join(pieces)


HAIKU = "An old silent pond\nA frog jumps into the pond\nSplash! Silence again."


def test_single_line_breaks_are_kept_as_chat_uis_do() -> None:
    shown = safe_markdown(HAIKU)
    html = MarkdownIt("commonmark").render(shown)
    assert html.count("<br />") == 2  # three lines, as print(reply) shows
    assert shown.replace("  \n", "\n") == HAIKU  # only trailing spaces were added


@pytest.mark.parametrize(
    "text",
    [
        "```\nline one\nline two\n```\n",  # code keeps its own lines untouched
        "    indented\n    code\n",
        "| a | b |\n|---|---|\n| 1 | 2 |\n",  # table rows are not paragraphs
        "# Heading\nParagraph",  # a heading is one line
        "ends with a break  \nnext",  # already a hard break
        "ends with a backslash\\\nnext",
        "one line only",
    ],
)
def test_line_breaks_only_added_inside_paragraphs(text: str) -> None:
    assert safe_markdown(text).count("  \n") == text.count("  \n")


def test_line_breaks_in_lists_and_quotes() -> None:
    shown = safe_markdown("- first line\n  second line\n\n> quoted\n> lines")
    assert shown == "- first line  \n  second line\n\n> quoted  \n> lines"


def test_html_in_indented_code_is_left_as_written() -> None:
    assert safe_markdown("Code:\n\n    <b>x</b> & y\n") == "Code:\n\n    <b>x</b> & y\n"
