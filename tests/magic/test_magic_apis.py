"""``%%holy --api responses|messages`` through a real InteractiveShell against the real mock:
tool calls and thinking shown, conversations carried the API's way, errors in the cell's words."""

from __future__ import annotations

import json
import re

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from magicutil import Recorder, last_request, texts

from holynb.notebook.magic import HolyMagics

WEATHER = "What is the weather in Bangkok and Chiang Mai right now?"
LABEL = {"responses": "Responses", "messages": "Anthropic Messages"}
PATH = {"responses": "/v1/responses", "messages": "/v1/messages"}
# (api, transport): the Responses API streams over SSE and in its WebSocket mode.
WIRES = [("responses", "sse"), ("responses", "ws"), ("messages", "sse")]


def wire_id(wire: tuple[str, str]) -> str:
    return "-".join(wire)


# Streamed over each wire; not streamed (one JSON request, whatever the transport) per API.
TOOL_CASES = [(*wire, "") for wire in WIRES] + [
    ("responses", "sse", "--no-stream"),
    ("messages", "sse", "--no-stream"),
]


@pytest.mark.parametrize(("api", "transport", "flags"), TOOL_CASES)
def test_tool_calls_show_as_blocks(
    ip: InteractiveShell, recorder: Recorder, holy_mock_factory, use_mock, api, transport, flags
) -> None:
    mock = use_mock(holy_mock_factory(speed=8))
    ip.run_cell_magic("holy", f"--api {api} --transport {transport} -o reply {flags}", WEATHER)
    *calls, stats = [o["data"] for o in recorder.outputs()]
    assert len(calls) == 2
    for call, city in zip(calls, ("Bangkok", "Chiang Mai"), strict=True):
        assert call["text/markdown"].startswith("🔧 **Tool call** `get_weather`")
        assert f'"{city}' in call["text/markdown"] and '```json\n{\n  "' in call["text/markdown"]
    reply = ip.user_ns["reply"]
    assert [json.loads(c["function"]["arguments"])["city"] for c in reply.tool_calls] == [
        "Bangkok",
        "Chiang Mai",
    ]
    line = stats["text/plain"]
    head = f"deepseek-v3.2 · {LABEL[api]}" + ("" if flags else f" · {transport.upper()}")
    assert line.startswith(head), line
    # A reply that only calls tools has generated tokens, and a cost.
    assert not re.search(r"· 0 tokens", line) and "$" in line, line
    record = last_request(mock)
    assert record["path"] == PATH[api] and record["transport"] == ("json" if flags else transport)


@pytest.mark.parametrize("wire", WIRES, ids=wire_id)
def test_thinking_block_then_the_answer(
    ip: InteractiveShell,
    recorder: Recorder,
    holy_mock_factory,
    use_mock,
    magics: HolyMagics,
    wire,
) -> None:
    api, transport = wire
    use_mock(holy_mock_factory(tps=400))
    magics.extra_headers = {"X-Mock-Reasoning": "30"}
    ip.run_cell_magic("holy", f"--api {api} --transport {transport} --max-tokens 20 -o r", "q")
    thinking, *answer, stats = [o["data"] for o in recorder.outputs()]
    assert thinking["text/markdown"].startswith('<details class="holynb-thinking">')
    assert thinking["text/plain"].startswith("💭 Thought for ")
    assert answer and "".join(a["text/plain"] for a in answer).strip() == ip.user_ns["r"]
    assert re.search(r"· thinking [\d.]+ s \(30 tokens\) ·", stats["text/plain"]), stats
    first = recorder.display_messages()[0]["data"]["text/markdown"]
    assert first.startswith('<details class="holynb-thinking" open>')  # open while it thought
    assert ip.user_ns["r"].reasoning and magics.turns[-1].api == api


def test_conversation_carries_the_thinking_signature(
    ip: InteractiveShell, holy_mock_factory, use_mock, magics: HolyMagics
) -> None:
    """Anthropic: the thinking block goes back with its signature, before the turn's text."""
    mock = use_mock(holy_mock_factory(tps=0))
    magics.extra_headers = {"X-Mock-Reasoning": "5"}
    ip.run_cell_magic("holy", "--api messages -c --max-tokens 8", "Is 97 prime?")
    first = magics.turns[-1].reply
    ip.run_cell_magic("holy", "--api messages -c --max-tokens 8", "And 91?")
    sent = last_request(mock)["request"]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    thinking, text = sent[1]["content"]
    assert thinking["type"] == "thinking" and thinking["signature"] and thinking["thinking"]
    assert text == {"type": "text", "text": first}


def test_conversation_carries_the_reasoning_item(
    ip: InteractiveShell, holy_mock_factory, use_mock, magics: HolyMagics
) -> None:
    """Responses: the reasoning item goes back before the reply's message, over either wire."""
    mock = use_mock(holy_mock_factory(tps=0))
    magics.extra_headers = {"X-Mock-Reasoning": "5"}
    ip.run_cell_magic("holy", "--api responses -c --max-tokens 16", "Is 97 prime?")
    first = magics.turns[-1].reply
    ip.run_cell_magic("holy", "--api responses --transport ws -c --max-tokens 16", "And 91?")
    record = last_request(mock)
    assert record["transport"] == "ws" and record["status"] == 200
    user, reasoning, assistant, again = record["request"]["input"]
    assert user == {"role": "user", "content": "Is 97 prime?"}
    assert reasoning["type"] == "reasoning" and reasoning["id"].startswith("rs_")
    assert assistant == {"role": "assistant", "content": first}
    assert again == {"role": "user", "content": "And 91?"}


def test_one_conversation_across_apis_sends_each_its_own_blocks(
    ip: InteractiveShell, holy_mock_factory, use_mock, magics: HolyMagics
) -> None:
    mock = use_mock(holy_mock_factory(tps=0))
    magics.extra_headers = {"X-Mock-Reasoning": "3"}
    ip.run_cell_magic("holy", "--api messages -c --max-tokens 8", "one")
    ip.run_cell_magic("holy", "--api responses -c --max-tokens 16", "two")
    ip.run_cell_magic("holy", "--api chat -c --max-tokens 8", "three")
    responses = mock.journal()[-2]["request"]["input"]
    # Anthropic's thinking block is not a Responses item: only the text went to Responses.
    assert [item.get("type", item.get("role")) for item in responses] == [
        "user",
        "assistant",
        "user",
    ]
    chat = last_request(mock)["request"]["messages"]
    assert [m["role"] for m in chat] == ["user", "assistant", "user", "assistant", "user"]
    assert all(set(m) == {"role", "content"} for m in chat)
    with capture_output() as cap:
        ip.run_line_magic("holy", "history")
    assert "deepseek-v3.2 · Anthropic Messages" in cap.stdout
    assert "deepseek-v3.2 · Responses" in cap.stdout
    assert "conversation 'default': 3 turns remembered" in cap.stdout


def test_a_tool_call_only_reply_is_not_sent_back(
    ip: InteractiveShell, holy_mock_factory, use_mock
) -> None:
    mock = use_mock(holy_mock_factory(speed=0))
    ip.run_cell_magic("holy", "--api messages -c", WEATHER)
    ip.run_cell_magic("holy", "--api messages -c --max-tokens 8", "It is 31 °C in both.")
    sent = last_request(mock)["request"]["messages"]
    # The two user turns are one Anthropic user turn; no tool_use without its tool_result.
    assert sent == [
        {"role": "user", "content": [{"type": "text", "text": WEATHER},
                                     {"type": "text", "text": "It is 31 °C in both."}]}
    ]


def test_the_api_trait_config_and_models(
    ip: InteractiveShell, holy_mock_factory, use_mock
) -> None:
    mock = use_mock(holy_mock_factory(tps=0))
    ip.run_line_magic("config", "HolyMagics.api = 'messages'")
    with capture_output() as cap:
        ip.run_line_magic("holy", "config")
    assert re.search(r"^api\s+messages$", cap.stdout, re.M), cap.stdout
    ip.run_cell_magic("holy", "--max-tokens 3", "q")
    assert last_request(mock)["path"] == "/v1/messages"
    ip.run_cell_magic("holy", "--api chat --max-tokens 3", "q")  # the flag wins
    assert last_request(mock)["path"] == "/v1/chat/completions"
    with capture_output() as cap:
        ip.run_line_magic("holy", "models")
    assert "claude-sonnet-4.5" in cap.stdout and "price unknown" not in cap.stdout


def test_messages_over_websocket_is_a_usage_error_in_flag_words(
    ip: InteractiveShell, use_mock, holy_mock_factory, magics
) -> None:
    use_mock(holy_mock_factory())
    with pytest.raises(UsageError) as info:
        ip.run_cell_magic("holy", "--api messages --transport ws", "q")
    message = str(info.value)
    assert "no WebSocket mode" in message and "--transport sse" in message
    assert "transport=" not in message and "api=" not in message
    magics.transport = "ws"  # the trait too
    with pytest.raises(UsageError):
        ip.run_cell_magic("holy", "--api messages", "q")


@pytest.mark.parametrize(
    ("api", "fault", "words"),
    [
        ("messages", "status:code=529", "HTTP 529: Overloaded — the server is overloaded; wait"),
        ("messages", "status:code=429,retry_after=0", "HTTP 429: "),
        ("messages", "status:code=401", "check the key: %env HOLYSHEEP_API_KEY"),
        ("responses", "status:code=404", "or the API (--api chat)"),
        ("responses", "error-event:at=9", "Server error in the stream (500"),
        ("messages", "error-event:at=9,code=529", "the server is overloaded"),
        ("responses", "malformed:at=9", "A chunk of the reply was not valid JSON"),
        ("messages", "disconnect:after=9", "dropped mid-stream"),
    ],
)
def test_each_api_fails_in_one_line_of_the_cells_words(
    ip: InteractiveShell,
    recorder: Recorder,
    holy_mock_factory,
    use_mock,
    magics: HolyMagics,
    api,
    fault,
    words,
) -> None:
    use_mock(holy_mock_factory(tps=0))
    magics.extra_headers = {"X-Mock-Fault": fault}
    ip.run_cell_magic("holy", f"--api {api} --retries 0 --max-tokens 20", "q")
    line = texts(recorder.outputs())[-1]
    assert line.startswith("⚠ ") and words in line and "\n" not in line, line
    for python in ("partial_text", "api=", "transport=", "idle_timeout=", "max_retries"):
        assert python not in line
    partial = magics.turns[-1].reply
    if "at=9" in fault or "after=9" in fault:
        assert partial and line.endswith("partial answer kept")
