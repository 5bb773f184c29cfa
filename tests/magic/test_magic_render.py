"""The budgeted Markdown renderer: block splitting, fence closing and update scheduling."""

from __future__ import annotations

import random

import pytest
from magicutil import cassette_deltas
from markdown_it import MarkdownIt

from holynb.notebook.live_markdown import Budget, Emit, LiveMarkdown, MarkdownBlocks

_MD = MarkdownIt("commonmark").enable("table").enable("strikethrough")

TRICKY = """# Title

Intro paragraph with **bold**
continued line.

- item one
- item two

  continued item two

- item three
  ```python
  def f():

      return 1
  ```

Setext heading
--------------

Another setext
===

| a | b |
|---|---|
| 1 | 2 |

````md
```py
nested
```

still inside
````

~~~
tilde ``` inside

~~~
> quote
> ```
> code
>
> ```

1. one
2. two

   second paragraph of two

    indented code

        more indented code

<!-- comment

with blank -->

<pre>
keep

this
</pre>
***
Final para.
text right before a fence
```
x = {"a": 1}
```
- a
# heading interrupts a list
* * *
"""


def split_all(pieces: list[str]) -> tuple[list[str], str]:
    blocks = MarkdownBlocks()
    finished: list[str] = []
    for piece in pieces:
        finished += blocks.feed(piece)
    return finished, blocks.close()


def random_pieces(text: str, rng: random.Random, max_len: int = 12) -> list[str]:
    pieces, i = [], 0
    while i < len(text):
        n = rng.randint(1, max_len)
        pieces.append(text[i : i + n])
        i += n
    return pieces


def render_separately(parts: list[str]) -> str:
    return "".join(_MD.render(p) for p in parts)


def test_cassette_deltas_reassemble_exactly() -> None:
    deltas = cassette_deltas()
    text = "".join(deltas)
    assert len(deltas) > 1000
    finished, rest = split_all(deltas)
    assert "".join(finished) + rest == text
    assert len(finished) >= 10  # headings, paragraphs, lists, the table and fences all finish


@pytest.mark.parametrize("seed", range(20))
def test_random_splits_reassemble_and_render_the_same(seed: int) -> None:
    rng = random.Random(seed)
    text = "".join(cassette_deltas()) if seed % 2 else TRICKY
    finished, rest = split_all(random_pieces(text, rng, max_len=rng.choice([1, 3, 40])))
    assert "".join(finished) + rest == text
    assert render_separately([*finished, rest]) == _MD.render(text)


@pytest.mark.parametrize("doc", [TRICKY, "".join(cassette_deltas())], ids=["tricky", "cassette"])
def test_every_two_way_split_gives_the_same_blocks(doc: str) -> None:
    reference, reference_rest = split_all([doc])
    for cut in range(0, len(doc), 7):
        finished, rest = split_all([doc[:cut], doc[cut:]])
        assert [*finished, rest] == [*reference, reference_rest]


def test_tricky_document_renders_identically_block_by_block() -> None:
    finished, rest = split_all(list(TRICKY))
    assert render_separately([*finished, rest]) == _MD.render(TRICKY)
    # Cuts happen at the right places: a sample of the finished blocks.
    assert finished[0] == "# Title\n"
    assert any(b.lstrip("\n").startswith("- item one") and "- item three" in b for b in finished)
    assert any("Setext heading\n--------------\n" in b for b in finished)
    assert any(b.lstrip("\n").startswith("````md") and b.endswith("````\n") for b in finished)


def test_text_inside_an_open_fence_never_ends_a_block() -> None:
    blocks = MarkdownBlocks()
    assert blocks.feed("Before.\n\n```python\n") == ["Before.\n\n"]
    for piece in ["a = 1\n", "\n", "\n", "# not a heading\n", "---\n", "- no list\n", "~~~\n"]:
        assert blocks.feed(piece) == []
    assert blocks.feed("``") == []
    block = "```python\na = 1\n\n\n# not a heading\n---\n- no list\n~~~\n```\n"
    assert blocks.feed("`\n") == [block]


def test_longer_and_tilde_fences_need_a_matching_close() -> None:
    blocks = MarkdownBlocks()
    blocks.feed("````\n```\ninner\n```\n")
    assert blocks.boundary == 0
    assert blocks.feed("````\n") == ["````\n```\ninner\n```\n````\n"]
    blocks.feed("~~~~\n```\n~~~\n")
    assert blocks.pending == "~~~~\n```\n~~~\n"
    assert blocks.feed("~~~~~\n") == ["~~~~\n```\n~~~\n~~~~~\n"]


def test_list_items_continue_after_blank_lines() -> None:
    blocks = MarkdownBlocks()
    assert blocks.feed("1. first\n\n   more of first\n\n2. second\n\n") == []
    assert blocks.feed("    - nested\n\nAfter.\n") == [
        "1. first\n\n   more of first\n\n2. second\n\n    - nested\n\n"
    ]


def test_tables_and_setext_headings() -> None:
    blocks = MarkdownBlocks()
    assert blocks.feed("| a | b |\n|---|---|\n| 1 | 2 |\n") == []
    assert blocks.feed("\nTitle\n") == ["| a | b |\n|---|---|\n| 1 | 2 |\n\n"]
    assert blocks.feed("=====\n") == ["Title\n=====\n"]


def test_headings_finish_at_their_newline() -> None:
    blocks = MarkdownBlocks()
    assert blocks.feed("## Heading") == []
    assert blocks.feed("\n") == ["## Heading\n"]
    assert blocks.feed("para\n## Next\n") == ["para\n", "## Next\n"]


def test_crlf_lines_are_handled() -> None:
    text = "# T\r\n\r\npara\r\n\r\n```\r\ncode\r\n\r\n```\r\nend\r\n"
    finished, rest = split_all(list(text))
    assert "".join(finished) + rest == text
    assert finished == ["# T\r\n", "\r\npara\r\n\r\n", "```\r\ncode\r\n\r\n```\r\n"]


@pytest.mark.parametrize(
    ("text", "closing"),
    [
        ("plain", ""),
        ("```py\nx = 1", "\n```"),
        ("```py\nx = 1\n", "```"),
        ("```py", "\n```"),
        ("````\n```\n", "````"),
        ("  ~~~\ncode\n", "  ~~~"),
        ("> ```\n> code", "\n> ```"),
        ("```\ncode\n``", "`"),
        ("```\ncode\n```", ""),
        ("- item\n  ```\n  code\n", "  ```"),
        ("    ```\nindented code", ""),
    ],
)
def test_open_fences_are_displayed_closed(text: str, closing: str) -> None:
    blocks = MarkdownBlocks()
    blocks.feed(text)
    assert blocks.closing_fence() == closing
    shown = blocks.pending + closing
    if "```" in text or "~~~" in text:
        # The display text renders with no fence running to the end of the document.
        assert _MD.render(shown) == _MD.render(shown + "\n\nafter\n").removesuffix("<p>after</p>\n")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_budget_spaces_messages() -> None:
    clock = FakeClock()
    budget = Budget(20, clock=clock)
    assert budget.due_in() == 0
    budget.take()
    assert budget.due_in() == pytest.approx(0.05)
    clock.now += 0.03
    assert budget.due_in() == pytest.approx(0.02)
    with pytest.raises(ValueError, match="positive"):
        Budget(0)


def test_live_markdown_first_token_shows_at_once_then_throttles() -> None:
    clock = FakeClock()
    live = LiveMarkdown(Budget(20, clock=clock))
    assert live.feed("Hel") == [Emit("new", 0, "Hel", False)]
    assert live.feed("lo") == []
    assert live.due_in() == pytest.approx(0.05)
    clock.now += 0.05
    assert live.poll() == [Emit("update", 0, "Hello", False)]
    assert live.due_in() is None
    clock.now += 1
    # The paragraph is finished as soon as the next one visibly starts (before its newline).
    assert live.feed(" world.\n\nN") == [Emit("update", 0, "Hello world.\n\n", True)]
    assert live.feed("ext") == []
    clock.now += 0.05
    assert live.poll() == [Emit("new", 1, "Next", False)]
    assert live.finish() == [Emit("update", 1, "Next", True)]  # the same text, now final
    assert live.final_text() == "Hello world.\n\nNext"


def _renders_closed(shown: str) -> bool:
    """No fence in ``shown`` runs to the end of the document."""
    after = "\n\nafter\n"
    return _MD.render(shown + after).endswith("<p>after</p>\n")


def test_live_markdown_never_shows_a_half_open_fence() -> None:
    clock = FakeClock()
    live = LiveMarkdown(Budget(20, clock=clock))
    shown: list[Emit] = []
    text = "Code:\n\n```py\nx = 1\n\ny = 2\n```\n\n- item\n  ~~~\n  z\n  ~~~\n\nEnd."
    for ch in text:
        clock.now += 0.06
        shown += live.feed(ch)
    shown += live.finish()
    assert all(_renders_closed(e.text) for e in shown)
    assert any(e.text == "```py\nx = 1\n\ny\n```" for e in shown)
    final = {e.slot: e.text for e in shown}  # what each output shows at the end
    assert "".join(final[k] for k in sorted(final)) == text
    assert [final[k] for k in sorted(final)] == [
        "Code:\n\n",
        "```py\nx = 1\n\ny = 2\n```\n",
        "\n- item\n  ~~~\n  z\n  ~~~\n\n",
        "End.",
    ]


def test_interrupted_answer_final_text_closes_its_fence() -> None:
    live = LiveMarkdown(Budget(20, clock=FakeClock()))
    emits = live.feed("Intro\n\n```python\nprint(1")
    assert live.final_text() == "Intro\n\n```python\nprint(1\n```"
    emits += live.finish()
    assert [e.text for e in emits] == ["Intro\n\n", "```python\nprint(1\n```"]
    assert all(e.frozen for e in emits)


def test_cassette_stream_stays_within_budget_and_sends_finished_blocks_once() -> None:
    deltas = cassette_deltas()
    text = "".join(deltas)
    clock = FakeClock()
    live = LiveMarkdown(Budget(20, clock=clock))
    emits: list[tuple[float, Emit]] = []
    for delta in deltas:
        clock.now += 0.01  # 100 tokens per second
        emits += [(clock.now, e) for e in live.poll()]
        emits += [(clock.now, e) for e in live.feed(delta)]
    emits += [(clock.now, e) for e in live.finish()]
    times = [t for t, _ in emits]
    assert all(b - a >= 0.05 - 1e-9 for a, b in zip(times[:-2], times[1:-1], strict=True))
    # The frozen slots, in order, are exactly the answer, each sent once.
    slots: dict[int, str] = {}
    for _, e in emits:
        assert e.slot not in slots, "a frozen slot was sent again"
        if e.frozen:
            slots[e.slot] = e.text
    assert "".join(slots[k] for k in sorted(slots)) == text
    sent = sum(len(e.text) for _, e in emits)
    naive = sum(len(text[: i + 1]) for i in range(0, len(text), 4))
    assert sent * 50 < naive
    assert live.budget.messages == len(emits) - 1


# -- one output per block; what a block shows while it streams ---------------------------------


def _final_slots(deltas: list[str], step: float) -> list[str]:
    clock = FakeClock()
    live = LiveMarkdown(Budget(20, clock=clock))
    final: dict[int, str] = {}
    for delta in deltas:
        clock.now += step
        for e in live.poll() + live.feed(delta):
            final[e.slot] = e.text
    for e in live.finish():
        final[e.slot] = e.text
    return [final[k] for k in sorted(final)]


@pytest.mark.parametrize("step", [0.0, 0.001, 0.01, 0.2])
def test_final_slots_are_the_blocks_whatever_the_pace(step: float) -> None:
    deltas = cassette_deltas()
    blocks = MarkdownBlocks()
    expected: list[str] = []
    for delta in deltas:
        expected += blocks.feed(delta)
    expected.append(blocks.close())
    assert _final_slots(deltas, step) == [b for b in expected if b.strip()]


def _display_while_streaming(text: str) -> list[str]:
    """What the block in progress shows after each character."""
    blocks = MarkdownBlocks()
    shown = []
    for ch in text:
        blocks.feed(ch)
        shown.append(blocks.display_pending())
    return shown


TABLE = "Prices:\n\n| model | $/MTok |\n|---|---:|\n| gpt-4.1 | 8.00 |\n| deepseek | 0.42 |\n"


def test_a_table_header_never_shows_as_raw_pipes() -> None:
    for shown in _display_while_streaming(TABLE):
        html = _MD.render(shown)
        # Either no table yet (header held back) or a real table: never a paragraph of pipes.
        assert "<p>|" not in html and "| model" not in html.replace("<th>", ""), shown
    final = _display_while_streaming(TABLE)[-1]
    assert "<table>" in _MD.render(final) and "deepseek" in final


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("Intro\n| a | b", "Intro\n"),  # a header row being written
        ("| a | b |\n", ""),  # complete, but no delimiter row yet
        ("| a | b |\n|--", ""),  # the delimiter row being written
        ("| a | b |\n|---|---|\n", "| a | b |\n|---|---|\n"),  # a table now
        ("| a | b |\n|---|---|\n| 1", "| a | b |\n|---|---|\n| 1"),  # rows show as they come
        ("| a | b |\n| not | a delimiter |\n", "| a | b |\n| not | a delimiter |\n"),
        ("a | b in prose", "a | b in prose"),  # pipes inside a line are not held back
        ("| x |\n| y |\n| z |", "| x |\n| y |\n| z |"),  # three pipe rows: not a header
    ],
)
def test_pipe_rows_held_back_only_while_they_may_be_a_header(text: str, shown: str) -> None:
    blocks = MarkdownBlocks()
    blocks.feed(text)
    assert blocks.display_pending() == shown


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("Use `pip inst", "Use `pip inst`"),
        ("Use ``a ` b", "Use ``a ` b``"),
        ("Done `x` and `y", "Done `x` and `y`"),
        ("Closed `x`.", "Closed `x`."),
        ("Just a tick `", "Just a tick `"),  # nothing after it yet: nothing to close
        ("Escaped \\`tick", "Escaped \\`tick"),
        ("old `open\n\nnew `para", "new `para`"),  # the old paragraph is a finished block
    ],
)
def test_an_inline_code_span_being_written_shows_as_code(text: str, shown: str) -> None:
    blocks = MarkdownBlocks()
    blocks.feed(text)
    assert blocks.display_pending() == shown


def test_inside_a_fence_backticks_are_left_alone() -> None:
    blocks = MarkdownBlocks()
    blocks.feed("```py\nx = `a")
    assert blocks.display_pending() == "```py\nx = `a\n```"
