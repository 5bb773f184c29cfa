"""ChatPanel headless: widget state, streaming against the real mock, export, code blocks."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import ipywidgets as w
import pytest
from IPython.core.interactiveshell import InteractiveShell

from holynb import ChatPanel
from holynb._config import reset_defaults

FIB_PROMPT = "Write a Python function that returns the n-th Fibonacci number."


def state(widget: w.Widget) -> dict[str, Any]:
    return widget.get_state()


def test_layout_and_initial_state(holy_mock: Any) -> None:
    panel = ChatPanel(base_url=holy_mock.url, api_key="sk-holynb-mock", model="gpt-4.1")
    try:
        assert "holynb-panel" in state(panel)["_dom_classes"]
        assert panel.model == "gpt-4.1" and panel.transport == "sse"
        assert state(panel._controls["model"])["index"] == list(
            panel._controls["model"].options
        ).index("gpt-4.1")
        assert state(panel._send_button)["description"] == "Send"
        assert "holynb-send" in state(panel._send_button)["_dom_classes"]
        assert "holynb-input" in state(panel._input)["_dom_classes"]
        assert state(panel._stop_button)["disabled"] is True
        assert state(panel._send_button)["disabled"] is False
        assert panel.banner == "" and panel.messages == []
        # The keyboard shortcut script ships inside the panel's Output widget.
        (output,) = state(panel._out)["outputs"]
        assert "holynb-input" in output["data"]["application/javascript"]
    finally:
        panel.close()


def test_traits_and_controls_are_linked(holy_mock: Any) -> None:
    panel = ChatPanel(base_url=holy_mock.url, api_key="sk-holynb-mock")
    try:
        panel.transport = "ws"
        assert state(panel._controls["transport"])["index"] == 1
        panel._controls["temperature"].value = 1.3
        assert panel.temperature == 1.3
        panel._controls["system"].value = "Be terse."
        assert panel.system == "Be terse."
        panel.max_tokens = 99
        assert state(panel._controls["max_tokens"])["value"] == 99
        with pytest.raises(Exception, match="sse"):
            panel.transport = "carrier-pigeon"
    finally:
        panel.close()


def test_missing_key_shows_config_banner(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOLYSHEEP_API_KEY", raising=False)
    reset_defaults()
    panel = ChatPanel()
    try:
        assert "HOLYSHEEP_API_KEY" in panel.banner
        assert "ChatPanel(mock=True)" in panel.banner
        assert state(panel._banner)["layout"] != ""  # shown: layout display flex
        assert panel._banner.layout.display == "flex"
    finally:
        panel.close()


def test_placeholder_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOLYSHEEP_API_KEY", "YOUR_HOLYSHEEP_API_KEY")
    reset_defaults()
    panel = ChatPanel()
    try:
        assert "placeholder" in panel.banner
    finally:
        panel.close()


def test_send_needs_a_running_loop(holy_mock: Any) -> None:
    panel = ChatPanel(base_url=holy_mock.url, api_key="sk-holynb-mock")
    try:
        with pytest.raises(RuntimeError, match="running asyncio loop"):
            panel.send("hi")
        assert panel.messages == []
    finally:
        panel.close()


async def test_model_dropdown_comes_from_models_endpoint(holy_mock: Any, make_panel: Any) -> None:
    panel = make_panel(holy_mock, model="gemini-2.5-flash")
    await panel._models_task
    options = list(panel._controls["model"].options)
    served = await panel._get_client().models()
    assert options == sorted(served)
    assert panel.model == "gemini-2.5-flash"


async def test_send_streams_a_reply(holy_mock: Any, make_panel: Any) -> None:
    panel = make_panel(holy_mock, max_tokens=24)
    reply = await panel.send("hello there")
    assert reply
    assert panel.messages == [
        {"role": "user", "content": "hello there"},
        {"role": "assistant", "content": reply},
    ]
    user, assistant = panel._log.children
    assert "holynb-user" in state(user)["_dom_classes"]
    assert "holynb-assistant" in state(assistant)["_dom_classes"]
    footer = panel._messages[-1].footer_text
    assert "TTFT" in footer and "tok/s" in footer and "24 tokens" in footer
    assert "$" in footer and "SSE" in footer and footer.startswith("deepseek-v3.2 · SSE · ")
    # The final render completes the reply in place: every block rendered, none repeated.
    bodies = panel._messages[-1].body.children
    assert bodies and all(b.value.startswith("<p>") for b in bodies)
    assert panel.streaming is False
    assert state(panel._stop_button)["disabled"] is True
    request = holy_mock.journal()[-1]["request"]
    assert request["max_tokens"] == 24 and request["temperature"] == 0.7


async def test_send_button_takes_the_input_box(holy_mock: Any, make_panel: Any) -> None:
    panel = make_panel(holy_mock, max_tokens=8)
    panel._input.value = "from the box"
    panel._send_button.click()
    assert panel.streaming is True
    assert state(panel._stop_button)["disabled"] is False
    assert state(panel._send_button)["disabled"] is True
    assert panel._input.value == ""
    await panel._task
    assert panel.messages[0] == {"role": "user", "content": "from the box"}
    assert len(panel.messages) == 2


async def test_empty_send_click_explains_in_banner(holy_mock: Any, make_panel: Any) -> None:
    panel = make_panel(holy_mock)
    panel._input.value = "   "
    panel._send_button.click()
    assert "Nothing to send" in panel.banner
    assert panel.messages == []


async def test_history_system_prompt_and_ws_transport(holy_mock: Any, make_panel: Any) -> None:
    panel = make_panel(holy_mock, max_tokens=6, system="You are terse.", transport="ws")
    first = await panel.send("one")
    await panel.send("two")
    record = holy_mock.journal()[-1]
    assert record["transport"] == "ws"
    assert record["request"]["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": first},
        {"role": "user", "content": "two"},
    ]
    assert "WS" in panel._messages[-1].footer_text


async def test_second_send_while_streaming_is_refused(
    holy_mock_factory: Any, make_panel: Any
) -> None:
    mock = holy_mock_factory(tps=50)
    panel = make_panel(mock, max_tokens=50)
    task = panel.send("first")
    with pytest.raises(RuntimeError, match="still streaming"):
        panel.send("second")
    panel._input.value = "second"
    panel._send_button.click()  # disabled in the browser; a direct click lands in the banner
    assert "still streaming" in panel.banner
    panel.stop()
    await task


async def test_clear_empties_the_transcript(holy_mock: Any, make_panel: Any) -> None:
    panel = make_panel(holy_mock, max_tokens=5)
    await panel.send("hi")
    panel._clear_button.click()
    assert panel.messages == [] and panel._log.children == ()


async def test_export_markdown_and_json(holy_mock: Any, make_panel: Any, tmp_path: Any) -> None:
    panel = make_panel(holy_mock, max_tokens=10, system="Be nice.", model="gpt-4.1")
    reply = await panel.send("Say hi")
    md = panel.export()
    assert md.startswith("## System\n\nBe nice.")
    assert "## You\n\nSay hi" in md
    assert f"## Assistant (gpt-4.1)\n\n{reply.rstrip()}" in md
    out = tmp_path / "chat.json"
    text = panel.export("json", path=out)
    assert out.read_text(encoding="utf-8") == text
    doc = json.loads(text)
    assert doc == {
        "model": "gpt-4.1",
        "messages": [
            {"role": "system", "content": "Be nice."},
            {"role": "user", "content": "Say hi"},
            {"role": "assistant", "content": reply},
        ],
    }
    with pytest.raises(ValueError, match="markdown"):
        panel.export("pdf")


async def test_last_code_block_from_a_cassette_reply(
    holy_mock_factory: Any, make_panel: Any
) -> None:
    panel = make_panel(holy_mock_factory(speed=0))  # the shipped cassette, without its timing
    assert panel.last_code() is None
    reply = await panel.send(FIB_PROMPT)
    assert "```" in reply
    code = panel.last_code()
    assert code is not None and "def " in code and not code.endswith("\n")
    shell = InteractiveShell.instance()  # a real shell: insert_code() goes through it
    shell.rl_next_input = None
    assert panel.insert_code() == code
    assert shell.rl_next_input == code


@pytest.mark.parametrize(
    ("report", "status"),
    [
        ("inserted#1", "Code inserted into a new cell below the panel."),
        ("copied#2", "Copied the code to the clipboard: this page has no holynb frontend"),
        ("failed#3", "Could not insert or copy the code here"),
        ("none#4", "No code block in the assistant's replies yet."),
        ("garbage#5", "Could not insert or copy the code here"),
    ],
)
def test_code_to_cell_status_says_what_the_browser_did(
    holy_mock: Any, report: str, status: str
) -> None:
    from holynb import ChatPanel

    panel = ChatPanel(base_url=holy_mock.url, api_key="sk-holynb-mock")
    try:
        before = panel.status
        panel._insert_report.value = report  # what the page's script sends after the click
        assert panel.status.startswith(status)
        panel._insert_report.value = ""
        assert panel.status.startswith(status) and before != panel.status
    finally:
        panel.close()


async def test_messages_show_the_partial_text_while_streaming(
    holy_mock_factory: Any, make_panel: Any
) -> None:
    mock = holy_mock_factory(tps=100)
    panel = make_panel(mock, max_tokens=40)
    task = panel.send("stream please")
    while not panel.messages[-1]["content"]:
        await asyncio.sleep(0.01)
    assert panel.streaming
    assert panel.messages[-1]["role"] == "assistant"
    reply = await task
    assert panel.messages[-1]["content"] == reply


async def test_calls_from_another_thread_run_on_the_home_loop(
    holy_mock: Any, make_panel: Any
) -> None:
    """JupyterLab delivers widget events to a kernel subshell: another thread with its own loop."""
    panel = make_panel(holy_mock, max_tokens=10)
    await panel._models_task
    panel._input.value = "clicked in a subshell"

    def subshell_click() -> None:
        async def click() -> None:
            panel._send_button.click()

        asyncio.run(click())

    await asyncio.to_thread(subshell_click)
    async with asyncio.timeout(5):
        while panel._task is None:
            await asyncio.sleep(0.01)
    first = await panel._task
    assert panel.banner == "" and first

    def subshell_send() -> str:
        async def send() -> str:
            return await panel.send("sent from a subshell")

        return asyncio.run(send())

    second = await asyncio.to_thread(subshell_send)
    assert [m["content"] for m in panel.messages] == [
        "clicked in a subshell",
        first,
        "sent from a subshell",
        second,
    ]


def test_mock_panel_says_how_the_mock_paces_replies() -> None:
    from holynb import ChatPanel

    panel = ChatPanel(mock={"tps": 60})
    try:
        assert panel.status.startswith("Mock server at http://127.0.0.1:")
        assert "60 tok/s" in panel.status and "set by speed, not tps" in panel.status
    finally:
        panel.close()
    with pytest.raises(TypeError, match="unknown mock option"):
        ChatPanel(mock={"tokens_per_second": 60})


async def test_verify_reaches_the_client(tmp_path: Any) -> None:
    from tls_mock import tls_mock

    from holynb import ChatPanel

    with tls_mock(tmp_path) as (url, bundle):
        panel = ChatPanel(base_url=url, api_key="sk-holynb-mock", verify=bundle, max_tokens=3)
        try:
            assert await panel.send("hello") and panel.banner == ""
        finally:
            await panel.aclose()
        panel = ChatPanel(base_url=url, api_key="sk-holynb-mock", max_tokens=3)
        try:
            await panel.send("hello")
            assert "ChatPanel(verify=" in panel.banner
        finally:
            await panel.aclose()


async def test_tool_calls_and_thinking_end_to_end(holy_mock_factory: Any, make_panel: Any) -> None:
    mock = holy_mock_factory(speed=4, reasoning_tokens=12, tps=400)
    panel = make_panel(mock)
    await panel.send("What is the weather in Bangkok and Chiang Mai right now?")
    message = panel._messages[-1]
    calls = [c for c in message.body.children if "holynb-tool-call" in c._dom_classes]
    assert len(calls) == 2 and "get_weather" in calls[0].value and "Chiang Mai" in calls[1].value
    assert [c["function"]["name"] for c in panel.messages[-1]["tool_calls"]] == ["get_weather"] * 2
    assert "🔧 Tool call `get_weather`" in panel.export()
    # Tool calls are not sent back: the panel runs no tools, so no result could follow them.
    await panel.send("And tomorrow?")
    sent = mock.journal()[-1]["request"]["messages"]
    assert all("tool_calls" not in m for m in sent)

    reply = await panel.send("Is 97 a prime number?")
    message = panel._messages[-1]
    thinking = message.body.children[0]
    assert thinking.value.startswith('<details class="holynb-thinking"><summary>💭 Thought for')
    assert message.reasoning and reply and message.reasoning not in reply
    assert "thinking" in message.footer_text and "(12 tokens)" in message.footer_text
    panel.show_reasoning = False
    await panel.send("Once more?")
    assert "holynb-thinking" not in str([c.value for c in panel._messages[-1].body.children])
