"""ChatPanel speaking the Responses and Anthropic Messages APIs against the real mock: the API
picker, tool calls and thinking shown, history sent back the API's way, errors in its words."""

from __future__ import annotations

import gc
import json
from typing import Any

import pytest
import traitlets as t

from holynb import ChatPanel

WEATHER = "What is the weather in Bangkok and Chiang Mai right now?"
LABEL = {"responses": "Responses", "messages": "Anthropic Messages"}
PATH = {"responses": "/v1/responses", "messages": "/v1/messages"}
WIRES = [("responses", "sse"), ("responses", "ws"), ("messages", "sse")]


@pytest.mark.parametrize(("api", "transport"), WIRES)
async def test_tool_calls_thinking_and_history(
    holy_mock_factory: Any, make_panel: Any, api: str, transport: str
) -> None:
    mock = holy_mock_factory(speed=4, reasoning_tokens=12, tps=400)
    panel = make_panel(mock, api=api, transport=transport, max_tokens=24)
    assert panel._controls["api"].get_state()["index"] == ["chat", "responses", "messages"].index(
        api
    )
    await panel.send(WEATHER)
    message = panel._messages[-1]
    calls = [c for c in message.body.children if "holynb-tool-call" in c._dom_classes]
    assert len(calls) == 2 and "get_weather" in calls[0].value and "Chiang Mai" in calls[1].value
    args = [json.loads(c["function"]["arguments"]) for c in panel.messages[-1]["tool_calls"]]
    assert [a["city"] for a in args] == ["Bangkok", "Chiang Mai"]
    footer = message.footer_text
    assert footer.startswith(f"deepseek-v3.2 · {LABEL[api]} · {transport.upper()} · "), footer
    assert " 0 tokens" not in footer and "$" in footer
    record = mock.journal()[-1]
    assert record["path"] == PATH[api] and record["transport"] == transport

    reply = await panel.send("Is 97 a prime number?")
    message = panel._messages[-1]
    thinking = message.body.children[0]
    assert thinking.value.startswith('<details class="holynb-thinking"><summary>💭 Thought for')
    assert message.reasoning and reply and message.reasoning not in reply
    assert "(12 tokens)" in message.footer_text

    await panel.send("And 91?")
    sent = mock.journal()[-1]["request"]
    if api == "messages":
        turns = sent["messages"]
        # The weather question and "Is 97 ...?" are one user turn: the tool-only reply is not sent.
        assert [m["role"] for m in turns] == ["user", "assistant", "user"]
        thinking_block, text = turns[1]["content"]
        assert thinking_block["type"] == "thinking" and thinking_block["signature"]
        assert text == {"type": "text", "text": reply}
        assert "tool_use" not in json.dumps(turns)
    else:
        kinds = [item.get("type", item.get("role")) for item in sent["input"]]
        assert kinds == ["user", "user", "reasoning", "assistant", "user"]
        assert "function_call" not in json.dumps(sent["input"])


async def test_the_picker_switches_api_between_replies(holy_mock: Any, make_panel: Any) -> None:
    panel = make_panel(holy_mock, max_tokens=16, transport="ws")
    picker, toggle = panel._controls["api"], panel._controls["transport"]
    assert panel.api == "chat" and picker.value == "chat" and not toggle.disabled
    await panel.send("one")
    picker.value = "messages"  # as the browser sets it
    assert panel.api == "messages" and panel.transport == "sse" and toggle.disabled
    assert "no WebSocket mode" in panel.status
    with pytest.raises(t.TraitError, match="no WebSocket mode"):
        panel.transport = "ws"
    await panel.send("two")
    assert holy_mock.journal()[-1]["path"] == "/v1/messages"
    assert "Anthropic Messages · SSE" in panel._messages[-1].footer_text
    picker.value = "responses"
    assert not toggle.disabled
    panel.transport = "ws"
    await panel.send("three")
    record = holy_mock.journal()[-1]
    assert record["path"] == "/v1/responses" and record["transport"] == "ws"
    # One conversation: each reply went back as text to the next API.
    assert [item["role"] for item in record["request"]["input"]] == ["user", "assistant"] * 2 + [
        "user"
    ]
    assert panel._models_task is not None
    await panel._models_task  # each API lists its models with its own auth
    assert "claude-sonnet-4.5" in panel._controls["model"].options and panel.banner == ""


def test_api_argument_environment_and_refusal(holy_mock: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("HOLYNB_API", "responses")
    panel = ChatPanel(base_url=holy_mock.url, api_key="sk-holynb-mock")
    try:
        assert panel.api == "responses"
    finally:
        panel.close()
    with pytest.raises(ValueError, match="no WebSocket mode"):
        ChatPanel(base_url=holy_mock.url, api_key="sk-holynb-mock", api="messages", transport="ws")
    with pytest.raises(TypeError, match="a price is"):  # refused, and nothing left half open
        ChatPanel(base_url=holy_mock.url, api_key="sk-holynb-mock", prices={"m": "cheap"})
    gc.collect()


@pytest.mark.parametrize(
    ("api", "fault", "words"),
    [
        ("messages", "status:code=529", "HTTP 529: Overloaded — the server is overloaded; wait a"),
        ("responses", "status:code=404", "pick another model, or another API"),
        ("messages", "error-event:at=9,code=529", "the server is overloaded"),
        ("responses", "malformed:at=9", "A chunk of the reply was not valid JSON — press Retry"),
    ],
)
async def test_errors_in_the_panels_words(
    holy_mock_factory: Any, make_panel: Any, api: str, fault: str, words: str
) -> None:
    mock = holy_mock_factory(fault=fault, tps=0)
    panel = make_panel(mock, api=api, max_tokens=20, client_options={"max_retries": 0})
    await panel.send("q")
    banner = panel.banner
    assert words in banner, banner
    for python in ("partial_text", "api=", "transport=", "max_retries"):
        assert python not in banner
