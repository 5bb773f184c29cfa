"""Thinking and tool-call blocks: built from typed stream events, shown within the budget."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from magicutil import Recorder

from holynb import ContentDelta, ReasoningDelta, ToolCallDelta
from holynb.notebook.live_markdown import Budget
from holynb.notebook.output import RichOutput, TextOutput, show_event
from holynb.notebook.reply_parts import (
    THINKING_TAIL_CHARS,
    ToolCallView,
    pretty_json,
    reasoning_tail,
    thinking_block,
    tool_call_markdown,
)

ARGS = '{"location": "Bangkok, TH", "unit": "celsius", "days": [1, 2], "extra": {}}'


def weather_call(index: int, city: str) -> list[ToolCallDelta]:
    """One tool call as a server streams it: name first, then the arguments in pieces."""
    args = json.dumps({"location": city, "unit": "celsius"})
    first = ToolCallDelta(index=index, id=f"call_{index}", name="get_weather", arguments="")
    pieces = [args[i : i + 7] for i in range(0, len(args), 7)]
    return [first] + [ToolCallDelta(index=index, id=None, name=None, arguments=p) for p in pieces]


# -- pure parts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("cut", range(0, len(ARGS) + 1, 3))
def test_pretty_json_of_a_prefix_is_a_prefix_of_the_whole(cut: int) -> None:
    whole = pretty_json(ARGS)
    assert whole == json.dumps(json.loads(ARGS), indent=2)
    partial = pretty_json(ARGS[:cut])
    # Laid out where it will end up: the partial layout only ever grows at its end.
    assert whole.startswith(partial.rstrip()) or partial.rstrip().endswith('"'), partial


def test_pretty_json_finished_and_invalid() -> None:
    assert pretty_json('{"a":"é"}', done=True) == '{\n  "a": "é"\n}'
    assert pretty_json("{not json", done=True) == "{not json"
    assert pretty_json('"a \\" quote"') == '"a \\" quote"'


def test_tool_call_block_names_the_function_and_shows_the_arguments() -> None:
    call = ToolCallView(0)
    call.add("call_0", "get_weather", ARGS[:20])
    live = tool_call_markdown(call, done=False)
    assert live.startswith("🔧 **Tool call** `get_weather`")
    assert '```json\n{\n  "location": "Bang' in live
    call.add(None, None, ARGS[20:])
    done = tool_call_markdown(call, done=True)
    assert json.dumps(json.loads(ARGS), indent=2) in done
    assert call.as_openai() == {
        "id": "call_0",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ARGS},
    }


def test_tool_call_names_and_arguments_cannot_break_out() -> None:
    call = ToolCallView(0)
    call.add("c", "evil`name<b>", '{"x": "```\\n<script>"}')
    block = tool_call_markdown(call, done=True)
    assert "``evil`name<b>``" in block  # a code span longer than any backtick run inside
    assert "````json" in block  # a fence longer than the ``` in the arguments


def test_invalid_arguments_are_flagged() -> None:
    call = ToolCallView(0)
    call.add("c", "f", '{"a": ')
    assert "not valid JSON" in tool_call_markdown(call, done=True)


def test_thinking_block_is_open_with_a_tail_then_collapsed_with_everything() -> None:
    reasoning = "".join(f"Step {i}: consider the options carefully.\n" for i in range(60))
    live = thinking_block(reasoning, done=False, seconds=None)
    assert "<details" in live and " open>" in live and "Thinking…" in live
    assert "Step 59" in live and "Step 0:" not in live
    assert len(live) < THINKING_TAIL_CHARS + 200  # each live update stays small
    done = thinking_block(reasoning, done=True, seconds=2.34)
    assert thinking_block(reasoning, done=True, seconds=2.34, html=True).startswith(
        '<details class="holynb-thinking"><summary>💭 Thought for 2.3 s</summary><p>Step 0'
    )
    assert " open>" not in done and "Thought for 2.3 s" in done
    assert "Step 0:" in done and "Step 59" in done
    assert reasoning_tail("short") == "short"


# -- the magic's output ---------------------------------------------------------------------------


class Clock:
    """Advances time.monotonic-like readings for the budget without sleeping."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def rich(ip: InteractiveShell, fmt: str = "markdown") -> tuple[RichOutput, Recorder]:
    recorder = Recorder(shell=ip)
    ip.display_pub = recorder
    return RichOutput(ip, fmt=fmt, budget=Budget(1000)), recorder


def test_thinking_then_answer_then_tool_calls(ip: InteractiveShell) -> None:
    output, rec = rich(ip)
    events: list[Any] = [ReasoningDelta(f"thought {i}. ") for i in range(5)]
    events += [ContentDelta("Let me check "), ContentDelta("the weather.\n\n")]
    events += weather_call(0, "Bangkok") + weather_call(1, "Chiang Mai")
    for event in events:
        show_event(output, event)
        time.sleep(0.002)
    output.finish("Let me check the weather.\n\n", None, "stats")
    outputs = [o["data"] for o in rec.outputs()]
    thinking, answer, first, second, line = outputs
    assert "<details" in thinking["text/markdown"] and " open>" not in thinking["text/markdown"]
    assert "thought 4." in thinking["text/markdown"]
    assert thinking["text/plain"].startswith("💭 Thought for ")
    assert answer["text/plain"] == "Let me check the weather.\n\n"
    assert "`get_weather`" in first["text/markdown"] and '"Bangkok"' in first["text/markdown"]
    assert '"Chiang Mai"' in second["text/markdown"]
    assert second["text/plain"].startswith("tool call get_weather({")
    assert line == {"text/plain": "stats"}
    # While thinking, the block was open; it collapsed before the answer was shown.
    markdowns = [m["data"].get("text/markdown", "") for m in rec.display_messages()]
    first_answer = next(i for i, m in enumerate(markdowns) if m.startswith("Let me"))
    assert " open>" in markdowns[0]
    assert " open>" not in markdowns[first_answer - 1]


def test_tool_calls_only(ip: InteractiveShell) -> None:
    output, rec = rich(ip)
    for event in weather_call(0, "Bangkok"):
        show_event(output, event)
    output.finish("", None, "deepseek-v3.2 · 0 tokens")
    (call, line) = [o["data"] for o in rec.outputs()]
    assert "get_weather" in call["text/markdown"]
    assert line["text/plain"].startswith("deepseek-v3.2")


def test_a_retry_line_is_replaced_by_the_first_part_in_place(ip: InteractiveShell) -> None:
    output, rec = rich(ip)
    output.status("⟳ rate limited — retrying in 0.1 s (1/3)")
    show_event(output, ReasoningDelta("hmm"))
    show_event(output, ContentDelta("Answer."))
    output.finish("Answer.", None, "stats")
    outputs = rec.outputs()
    assert len(outputs) == 3  # thinking (in the retry line's place), answer, stats
    assert "<details" in outputs[0]["data"]["text/markdown"]
    assert not any(m["type"] == "clear_output" for m in rec.messages)


def test_many_tool_call_fragments_stay_within_the_budget(ip: InteractiveShell) -> None:
    recorder = Recorder(shell=ip)
    ip.display_pub = recorder
    clock = Clock()
    output = RichOutput(ip, fmt="markdown", budget=Budget(20, clock=clock))
    fragments = [ToolCallDelta(0, "c", "f", "")] + [
        ToolCallDelta(0, None, None, f'"k{i}": {i}, ') for i in range(200)
    ]
    for fragment in fragments:
        clock.now += 0.001  # 1,000 fragments per second
        show_event(output, fragment)
    assert len(recorder.display_messages()) <= 0.2 * 20 + 2


def test_terminal_output_prints_thinking_and_tool_calls(capsys: pytest.CaptureFixture) -> None:
    import sys

    output = TextOutput(sys.stdout)
    for event in [ReasoningDelta("pondering"), ContentDelta("Hi."), *weather_call(0, "Bangkok")]:
        show_event(output, event)
    output.finish("Hi.", None, "stats")
    out = capsys.readouterr().out
    assert out.startswith("💭 Thinking…\npondering\n")
    assert "Hi.\n🔧 tool call get_weather({" in out and out.endswith("stats\n")
