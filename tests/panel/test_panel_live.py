"""The live reply view keeps to the rendering budget; ``mock=True`` needs no key."""

from __future__ import annotations

import asyncio

import ipywidgets as w
import pytest

from holynb import ChatPanel
from holynb.notebook.panel_live import UPDATE_INTERVAL_S, LiveReply
from holynb.notebook.safe_markdown import render_html


def reply_tokens(paragraphs: int = 30, words: int = 40) -> list[str]:
    tokens: list[str] = []
    for p in range(paragraphs):
        if p % 5 == 4:
            tokens += ["```python\n", *[f"x{i} = {i}\n" for i in range(8)], "```\n\n"]
        tokens += [f"word{p}_{i} " for i in range(words)]
        tokens.append(".\n\n")
    return tokens


async def test_live_body_sends_blocks_once_and_throttles_the_tail() -> None:
    loop = asyncio.get_running_loop()
    box = w.VBox()
    live = LiveReply(box, loop)
    # Every value the body sends: value changes of any of its widgets, and each new widget's
    # first value (a new tail is created with its content).
    sent_values: list[str] = []
    watched: set[int] = set()

    def watch(widget: w.HTML) -> None:
        watched.add(id(widget))
        widget.observe(lambda change: sent_values.append(change["new"]), "value")

    def on_children(change: dict) -> None:
        for child in change["new"]:
            if id(child) not in watched:
                sent_values.append(child.value)
                watch(child)

    watch(live._tail)
    box.observe(on_children, "children")
    tokens = reply_tokens()
    started = loop.time()
    for i in range(0, len(tokens), 8):  # ~8 tokens per millisecond, far above 20 updates/s
        for token in tokens[i : i + 8]:
            live.feed(token)
        await asyncio.sleep(0.001)
    elapsed = loop.time() - started
    await asyncio.sleep(UPDATE_INTERVAL_S * 2)  # the scheduled flush of the last burst
    text = "".join(tokens)
    assert live.text == text

    # At most one flush per interval (plus the first); a flush sends at most two values (the
    # tail frozen as finished blocks, and the new tail).
    flushes = elapsed / UPDATE_INTERVAL_S + 2
    assert len(sent_values) <= 2 * flushes
    # Finished blocks went out once each (grouped per flush) and render as the whole would.
    blocks = box.children[:-1]
    assert 1 < len(blocks) <= flushes
    finished = _split_like_live(tokens)
    assert "".join(b.value for b in blocks) == "".join(render_html(f) for f in finished)
    # Bytes sent versus re-sending the whole reply on every token (raw text, a lower bound).
    sent = sum(len(v) for v in sent_values)
    naive, length = 0, 0
    for token in tokens:
        length += len(token)
        naive += length
    assert sent * 20 < naive, (sent, naive)

    # Tokens that arrive after a flush show within one interval, without a further token.
    live.feed("tail word")
    await asyncio.sleep(UPDATE_INTERVAL_S * 2)
    assert "tail word" in live._tail.value

    # The final render is in place: the frozen blocks are not touched, only the tail changes.
    frozen = [(b, b.value) for b in box.children[:-1]]
    live.finish()
    assert [(b, b.value) for b in box.children[:-1]] == frozen
    assert box.children[-1].value == render_html(live._markdown.pending)
    assert "tail word" in box.children[-1].value


def _split_like_live(tokens: list[str]) -> list[str]:
    from holynb.notebook.live_markdown import MarkdownBlocks

    blocks = MarkdownBlocks()
    finished: list[str] = []
    for token in tokens:
        finished += blocks.feed(token)
    return finished


async def test_finished_blocks_render_to_the_same_html() -> None:
    loop = asyncio.get_running_loop()
    box = w.VBox()
    live = LiveReply(box, loop)
    tokens = reply_tokens(paragraphs=6, words=5)
    for token in tokens:
        live.feed(token)
        await asyncio.sleep(0)
    live.flush()
    live_html = "".join(child.value for child in box.children)
    assert live_html.replace("\n", "") == render_html("".join(tokens)).replace("\n", "")


@pytest.mark.parametrize("mock", [True, {"ttft_ms": 0, "tps": 0}])
async def test_mock_true_needs_no_key(monkeypatch: pytest.MonkeyPatch, mock: object) -> None:
    monkeypatch.delenv("HOLYSHEEP_API_KEY", raising=False)
    panel = ChatPanel(mock=mock, max_tokens=8)
    try:
        assert panel.banner == ""
        server = panel._mock
        assert server is not None and panel._base_url == server.url
        reply = await panel.send("hello mock")
        assert reply and panel.banner == ""
        await panel._models_task
        assert "deepseek-v3.2" in panel._controls["model"].options
    finally:
        await panel.aclose()
    assert panel._mock is None


async def test_reply_with_thinking_and_tool_calls() -> None:
    loop = asyncio.get_running_loop()
    box = w.VBox()
    live = LiveReply(box, loop)
    for i in range(5):
        live.add_reasoning(f"thought {i}. ")
    await asyncio.sleep(UPDATE_INTERVAL_S * 2)
    (thinking,) = box.children
    assert "<details" in thinking.value and " open>" in thinking.value
    live.feed("Checking the weather.\n\n")
    live.tool_call(0, "call_0", "get_weather", '{"location": ')
    live.tool_call(0, None, None, '"Bangkok"}')
    await asyncio.sleep(UPDATE_INTERVAL_S * 2)
    live.finish()
    thinking, answer, call = box.children
    assert " open>" not in thinking.value and "Thought for" in thinking.value
    assert "thought 4." in thinking.value
    assert answer.value == render_html("Checking the weather.\n\n")
    assert "get_weather" in call.value and "Bangkok" in call.value
    assert "holynb-tool-call" in call._dom_classes
    assert live.reasoning.startswith("thought 0.")
    assert live.tool_calls == [
        {
            "id": "call_0",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"location": "Bangkok"}'},
        }
    ]


async def test_tool_calls_only_leave_no_empty_answer_widget() -> None:
    loop = asyncio.get_running_loop()
    box = w.VBox()
    live = LiveReply(box, loop)
    live.tool_call(0, "c", "f", "{}")
    live.finish()
    (call,) = box.children
    assert "holynb-tool-call" in call._dom_classes


async def test_the_answer_shows_after_a_thinking_block() -> None:
    loop = asyncio.get_running_loop()
    box = w.VBox()
    live = LiveReply(box, loop)
    live.add_reasoning("hmm")
    await asyncio.sleep(UPDATE_INTERVAL_S * 2)
    live.feed("The answer")
    await asyncio.sleep(UPDATE_INTERVAL_S * 2)
    thinking, answer = box.children
    assert "The answer" in answer.value and " open>" not in thinking.value
