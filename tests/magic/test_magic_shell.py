"""``%%holy`` / ``%holy`` through a real InteractiveShell against the real mock server."""

from __future__ import annotations

import _thread
import json
import re
import threading
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from magicutil import Recorder, cassette_deltas, last_request, shipped_prompt, texts

from holynb import _config
from holynb.notebook.magic import HolyInterrupt, HolyMagics
from holynb.notebook.output import Reply
from mockserver import MockServer

LONG_PROMPT = "Explain how to stream chat completions into a Jupyter notebook."
SECRET = "sk-holynb-test-secret-9f8e7d6c5b4a"


def max_per_window(times: list[float], window: float = 1.0) -> int:
    best = 0
    for i, start in enumerate(times):
        best = max(best, sum(1 for t in times[i:] if t < start + window))
    return best


# -- streaming and the final render -----------------------------------------------------------


def answer_outputs(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in outputs if "text/markdown" in o["data"]]


def test_cell_streams_one_output_per_block_then_a_stats_line(
    ip: InteractiveShell, recorder: Recorder, holy_mock_factory, use_mock
) -> None:
    use_mock(holy_mock_factory(speed=25))  # the long cassette in ~1.2 s: real streaming
    ip.run_cell_magic("holy", "", LONG_PROMPT)
    full = "".join(cassette_deltas())
    outputs = recorder.outputs()
    answer = answer_outputs(outputs)
    # One output per Markdown block, whose plain text is the block as written.
    assert "".join(o["data"]["text/plain"] for o in answer) == full
    assert len(answer) == 33 and len(outputs) == 34
    stats = outputs[-1]["data"]["text/plain"]
    assert stats.startswith("deepseek-v3.2 · SSE · TTFT ")
    assert "tok/s" in stats and "tokens" in stats and "$" in stats and "total " in stats
    # The final render updates in place: nothing is cleared, so the page does not jump.
    assert not any(m["type"] == "clear_output" for m in recorder.messages)
    # While streaming: never more than ~20 messages/s, far fewer bytes than per-token updates.
    shown = recorder.display_messages()
    assert max_per_window([m["at"] for m in shown]) <= 21
    naive = sum(len(full[: i + 1]) for i in range(len(full)))
    sent = sum(len(m["data"].get("text/markdown", "")) for m in shown)
    assert sent * 50 < naive


def test_final_outputs_do_not_depend_on_timing(
    ip: InteractiveShell, holy_mock_factory, use_mock
) -> None:
    """Saved notebooks (and nbval) see the same outputs however fast the reply came."""
    finals = []
    for speed in (0, 40):
        use_mock(holy_mock_factory(speed=speed))
        rec = Recorder(shell=ip)
        ip.display_pub = rec
        ip.run_cell_magic("holy", "--no-stats", LONG_PROMPT)
        finals.append([o["data"] for o in rec.outputs()])
    assert finals[0] == finals[1]


def test_finished_blocks_are_sent_once(
    ip: InteractiveShell, recorder: Recorder, holy_mock_factory, use_mock
) -> None:
    use_mock(holy_mock_factory(speed=25))
    ip.run_line_magic("holy", LONG_PROMPT)  # line magic: no clearing, slots stay
    full = "".join(cassette_deltas())
    outputs = recorder.outputs()
    answer = answer_outputs(outputs)
    assert "".join(o["data"]["text/plain"] for o in answer) == full
    assert not any(m["type"] == "clear_output" for m in recorder.messages)
    assert len(answer) >= 10
    # Once a slot holds finished blocks it is never sent again: each slot's last message
    # is the frozen text, and later messages only go to later slots.
    last_slot_seen: dict[str, int] = {}
    for n, msg in enumerate(recorder.display_messages()):
        last_slot_seen[msg["display_id"]] = n
    order = [o["display_id"] for o in answer]
    assert [last_slot_seen[d] for d in order] == sorted(last_slot_seen[d] for d in order)


def test_terminal_falls_back_to_plain_text(
    ip: InteractiveShell, magics: HolyMagics, mock: MockServer
) -> None:
    magics.display_mode = "auto"  # a plain InteractiveShell has no kernel: text mode
    with capture_output() as cap:
        ip.run_cell_magic("holy", "--max-tokens 12 --no-stats", "hi")
    assert cap.outputs == []
    assert cap.stdout.strip() == magics.turns[-1].reply.strip()
    assert len(cap.stdout.split()) == 12


# -- options ------------------------------------------------------------------------------------


def test_model_system_temperature_max_tokens_transport(
    ip: InteractiveShell, recorder: Recorder, mock: MockServer, magics: HolyMagics
) -> None:
    ip.run_cell_magic(
        "holy",
        '-m gpt-4.1 -s "Be terse." -t 0.3 --max-tokens 7 --transport ws --no-stats',
        "Say hi",
    )
    rec = last_request(mock)
    assert rec["transport"] == "ws"
    assert rec["model"] == "gpt-4.1"
    body = rec["request"]
    assert body["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Say hi"},
    ]
    assert body["temperature"] == 0.3
    assert body["max_tokens"] == 7
    assert len(magics.turns[-1].reply.split()) == 7
    assert len(recorder.outputs()) == 1  # --no-stats: the answer only


def test_config_traits_are_the_defaults(
    ip: InteractiveShell, mock: MockServer, magics: HolyMagics
) -> None:
    ip.run_line_magic("config", 'HolyMagics.model = "gemini-2.5-flash"')
    ip.run_line_magic("config", "HolyMagics.max_tokens = 5")
    ip.run_line_magic("config", 'HolyMagics.system = "sys"')
    assert magics.model == "gemini-2.5-flash"
    with capture_output():
        ip.run_cell_magic("holy", "", "q")
    body = last_request(mock)["request"]
    assert body["model"] == "gemini-2.5-flash" and body["max_tokens"] == 5
    assert body["messages"][0] == {"role": "system", "content": "sys"}


def test_base_url_flag_and_out_variable(ip: InteractiveShell, holy_mock_factory, use_mock) -> None:
    default = use_mock(holy_mock_factory())
    other = holy_mock_factory()
    with capture_output():
        ip.run_cell_magic("holy", f"--base-url {other.url} --max-tokens 4 -o answer", "q")
    assert default.journal() == []
    assert len(other.journal()) == 1
    assert isinstance(ip.user_ns["answer"], str) and len(ip.user_ns["answer"].split()) == 4


def test_no_stream_makes_one_json_request(
    ip: InteractiveShell, recorder: Recorder, mock: MockServer, magics: HolyMagics
) -> None:
    ip.run_cell_magic("holy", "--no-stream --max-tokens 9", "q")
    rec = last_request(mock)
    assert rec["transport"] == "json" and rec["stream"] is False
    outputs = recorder.outputs()
    assert outputs[0]["data"]["text/markdown"] == magics.turns[-1].reply


def test_usage_errors_are_one_line(ip: InteractiveShell, mock: MockServer) -> None:
    with pytest.raises(UsageError, match="between 0 and 2"):
        ip.run_cell_magic("holy", "-t 5", "q")
    with pytest.raises(UsageError, match="Empty prompt"):
        ip.run_cell_magic("holy", "", "   \n")
    with pytest.raises(UsageError, match="invalid choice"):
        ip.run_cell_magic("holy", "-f pdf", "q")
    with pytest.raises(UsageError, match="variable name"):
        ip.run_cell_magic("holy", "-o 1x", "q")
    assert mock.journal() == []


def test_line_magic_options_then_verbatim_prompt(
    ip: InteractiveShell, recorder: Recorder, mock: MockServer
) -> None:
    ip.run_line_magic("holy", "--max-tokens 3 -c what's the --force flag? {0} -1")
    body = last_request(mock)["request"]
    assert body["max_tokens"] == 3
    assert body["messages"][-1]["content"] == "what's the --force flag? {0} -1"
    ip.run_line_magic("holy", "-c=work --max-tokens 3 -- -m is not an option here")
    body = last_request(mock)["request"]
    assert body["messages"][-1]["content"] == "-m is not an option here"
    ip.run_line_magic("holy", "-t0.5 --max-tokens=2 -x is not an option")
    body = last_request(mock)["request"]
    assert body["temperature"] == 0.5 and body["max_tokens"] == 2
    assert body["messages"][-1]["content"] == "-x is not an option"


# -- formats ----------------------------------------------------------------------------------


def test_format_code_puts_the_code_in_the_next_cell(
    ip: InteractiveShell, recorder: Recorder, holy_mock_factory, use_mock
) -> None:
    use_mock(holy_mock_factory(speed=0))
    ip.rl_next_input = None
    # The shipped code-answer cassette replies with a fenced Python block.
    prompt = shipped_prompt("code-answer")
    ip.run_cell_magic("holy", "-f code -o code", prompt)
    code = ip.rl_next_input
    assert code and "```" not in code
    assert ip.user_ns["code"] == code
    assert any("```" in o["data"]["text/markdown"] for o in answer_outputs(recorder.outputs()))
    assert isinstance(ip.user_ns["code"], Reply) and ip.user_ns["code"].tool_calls == []


def test_format_text_streams_to_stdout(
    ip: InteractiveShell, mock: MockServer, magics: HolyMagics
) -> None:
    with capture_output() as cap:
        ip.run_cell_magic("holy", "-f text --max-tokens 6", "q")
    assert cap.stdout.startswith(magics.turns[-1].reply)
    assert [o.data["text/plain"] for o in cap.outputs][0].startswith("deepseek-v3.2")


def test_format_json_and_html_need_the_right_reply(
    ip: InteractiveShell, recorder: Recorder, mock: MockServer
) -> None:
    # The generated reply is prose, not JSON: shown as text with a one-line note; -o keeps text.
    ip.run_cell_magic("holy", "-f json -o j --max-tokens 5", "q")
    outputs = recorder.outputs()
    assert outputs[-2]["data"] == {"text/plain": ip.user_ns["j"]}
    assert outputs[-1]["data"]["text/plain"].startswith("⚠ the reply is not valid JSON")
    ip.run_cell_magic("holy", "-f html --max-tokens 5 --no-stats", "q")
    assert "text/html" in recorder.outputs()[-1]["data"]


# -- interpolation ----------------------------------------------------------------------------


def test_prompt_interpolation_through_the_magic(ip: InteractiveShell, mock: MockServer) -> None:
    ip.run_cell("topic = 'SSE'\n1 + 41", store_history=True)
    n = ip.execution_count - 1
    ip.user_ns["cfg"] = {"a": 1}
    prompt = (
        f"About {{topic}} and {{{{topic}}}}; In: {{In[{n}]}}; Out: {{Out[{n}]}}; "
        'json {"a": {"b": 1}}; code {x + 1} {0} {undefined} {cfg}; f"{topic!r}"'
    )
    with capture_output():
        ip.run_cell_magic("holy", "--max-tokens 2", prompt)
    sent = last_request(mock)["request"]["messages"][-1]["content"]
    assert sent == (
        "About SSE and {topic}; In: topic = 'SSE'\n1 + 41; Out: 42; "
        'json {"a": {"b": 1}}; code {x + 1} {0} {undefined} {\'a\': 1}; f"{topic!r}"'
    )


# -- conversations ------------------------------------------------------------------------------


def test_conversation_memory_named_default_and_new(
    ip: InteractiveShell, mock: MockServer, magics: HolyMagics
) -> None:
    with capture_output():
        ip.run_cell_magic("holy", "-c --max-tokens 3", "first")
        first_reply = magics.turns[-1].reply
        ip.run_cell_magic("holy", "-c --max-tokens 3", "second")
        second = last_request(mock)["request"]["messages"]
        ip.run_cell_magic("holy", "-c work --max-tokens 3", "other chat")
        work = last_request(mock)["request"]["messages"]
        ip.run_cell_magic("holy", "--new --max-tokens 3", "fresh")
        fresh = last_request(mock)["request"]["messages"]
        ip.run_cell_magic("holy", "--max-tokens 3", "one-shot")
        one_shot = last_request(mock)["request"]["messages"]
    assert second == [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": first_reply},
        {"role": "user", "content": "second"},
    ]
    assert work == [{"role": "user", "content": "other chat"}]
    assert fresh == [{"role": "user", "content": "fresh"}]
    assert one_shot == [{"role": "user", "content": "one-shot"}]
    assert len(magics.chats["default"]) == 2 and len(magics.chats["work"]) == 2


# -- faults -------------------------------------------------------------------------------------


def run_with_fault(ip: InteractiveShell, magics: HolyMagics, fault: str, flags: str = "") -> list:
    magics.extra_headers = {"X-Mock-Fault": fault}
    rec = Recorder(shell=ip)
    ip.display_pub = rec
    ip.run_cell_magic("holy", f"--max-tokens 20 {flags}", "q")
    return rec.outputs()


def test_bad_key_is_one_line_with_a_hint(
    ip: InteractiveShell, recorder: Recorder, holy_mock_factory
) -> None:
    mock = holy_mock_factory(keys=["sk-the-right-key-1234"])
    _config.configure(base_url=mock.url, api_key=SECRET)
    ip.run_cell_magic("holy", "", "q")
    (line,) = texts(recorder.outputs())
    assert line.startswith("⚠ ") and "\n" not in line
    assert "%env HOLYSHEEP_API_KEY" in line and len(line) <= 100
    assert SECRET not in repr(recorder.messages)


def test_missing_key_says_how_to_set_it(
    ip: InteractiveShell, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HOLYSHEEP_API_KEY", raising=False)
    ip.run_cell_magic("holy", "", "q")
    (line,) = texts(recorder.outputs())
    assert "HOLYSHEEP_API_KEY" in line and "mock start" in line


def test_rate_limit_retries_live_then_gives_up(
    ip: InteractiveShell, mock: MockServer, magics: HolyMagics
) -> None:
    rec = Recorder(shell=ip)
    ip.display_pub = rec
    magics.extra_headers = {"X-Mock-Fault": "status:code=429,retry_after=0.05"}
    ip.run_cell_magic("holy", "--retries 2", "q")
    live = [m["data"]["text/plain"] for m in rec.messages if m.get("data", {}).get("text/plain")]
    assert "rate limited — retrying in 0.1 s (1/2)" in live[0]
    assert any("(2/2)" in line for line in live)
    final = texts(rec.outputs())
    # The retry line is replaced in place by the error line: one output at the end.
    assert len(final) == 1 and final[0].startswith("⚠ ") and "wait a little" in final[0]
    assert len(mock.journal()) == 3


@pytest.mark.parametrize(
    ("fault", "flags", "expect"),
    [
        ("status:code=500", "--retries 0", "the server failed; run the cell again"),
        ("disconnect:after=5", "", "— run the cell again"),
        ("malformed:at=5", "", "not valid JSON — run the cell again"),
        ("stall:after=5,ms=3000", "--idle-timeout 0.3", "--idle-timeout"),
        ("stall:after=5,ms=3000", "--timeout 0.4", "allow longer: --timeout"),
    ],
)
def test_faults_render_one_line_and_keep_partial_text(
    ip: InteractiveShell, mock: MockServer, magics: HolyMagics, fault: str, flags: str, expect: str
) -> None:
    outputs = run_with_fault(ip, magics, fault, flags)
    lines = texts(outputs)
    error = lines[-1]
    assert error.startswith("⚠ ") and "\n" not in error and expect in error
    assert len(error) <= 100 and error.count(" — ") == 1
    assert "Traceback" not in repr(outputs)
    if "after=5" in fault or "at=5" in fault:
        assert len(lines) == 2 and lines[0].strip()  # the partial answer stays
        assert error.endswith("partial answer kept")
    assert magics.last_error is not None


def test_first_token_timeout_names_the_phase(
    ip: InteractiveShell, recorder: Recorder, holy_mock_factory, use_mock
) -> None:
    use_mock(holy_mock_factory(ttft_ms=3000))
    ip.run_cell_magic("holy", "--first-token-timeout 0.2", "q")
    (line,) = texts(recorder.outputs())
    assert "first token" in line and "--first-token-timeout" in line


def test_interrupt_keeps_partial_text_with_a_marker(
    ip: InteractiveShell, recorder: Recorder, holy_mock_factory, use_mock, magics: HolyMagics
) -> None:
    mock = use_mock(holy_mock_factory(tps=40))
    timer = threading.Timer(0.5, _thread.interrupt_main)
    timer.start()
    try:
        with pytest.raises(HolyInterrupt) as caught:
            ip.run_cell_magic("holy", "--max-tokens 200", "q")
    finally:
        timer.cancel()
    answer = texts(recorder.outputs())
    reply = magics.turns[-1].reply
    assert reply.strip() and "".join(answer).split() == reply.split()
    assert 3 < len(reply.split()) < 200
    # Said once: by the exception that stops "Run All" (one line), not by a status line too.
    assert not any("interrupted" in out for out in answer)
    assert caught.value._render_traceback_() == [str(caught.value)]
    assert str(caught.value).startswith("⏹ interrupted — partial answer kept above · ")
    assert magics.turns[-1].outcome == "interrupted"
    # The upstream request was closed, not left streaming.
    for _ in range(50):
        if mock.journal()[-1]["outcome"] != "in_progress":
            break
        threading.Event().wait(0.05)
    assert mock.journal()[-1]["outcome"] == "client_disconnected"


# -- subcommands --------------------------------------------------------------------------------


def test_models_config_stats_history_error(
    ip: InteractiveShell, holy_mock_factory, magics: HolyMagics
) -> None:
    mock = holy_mock_factory()
    _config.configure(base_url=mock.url, api_key=SECRET)
    with capture_output() as cap:
        ip.run_line_magic("holy", "models")
        ip.run_line_magic("holy", "config")
        ip.run_line_magic("holy", "stats")
        ip.run_line_magic("holy", "error")
        ip.run_cell_magic("holy", "--max-tokens 4 -c", "remember me")
        ip.run_cell_magic("holy", "--max-tokens 4 -m no-such-model", "q")
        ip.run_line_magic("holy", "stats")
        ip.run_line_magic("holy", "history")
        ip.run_line_magic("holy", "error")
        ip.run_line_magic("holy", "history clear")
        ip.run_line_magic("holy", "history")
    out = cap.stdout
    assert "* deepseek-v3.2" in out and "$0.28 in / $0.42 out per MTok" in out
    assert "gpt-4.1" in out
    assert mock.url in out and "sk-…" in out
    assert "No requests yet." in out and "No error in this session." in out
    assert "session: 2 requests (1 failed)" in out
    assert "you: remember me" in out and "[default]" in out
    assert "status code: 404" in out and "Traceback" in out
    assert 'File "holynb/_stream.py"' in out  # holynb's frames without where it is installed
    assert "History cleared." in out and magics.chats == {}
    everything = out + repr(cap.outputs) + repr(ip.user_ns.get("Out"))
    assert SECRET not in everything


def test_mock_start_status_stop_restores_settings(
    ip: InteractiveShell, magics: HolyMagics, recorder: Recorder
) -> None:
    _config.configure(base_url="http://127.0.0.1:9/v1", api_key=SECRET)
    with capture_output() as cap:
        ip.run_line_magic("holy", "mock start --tps 0 --ttft-ms 0")
        url = magics._mock.url
        ip.run_line_magic("holy", "mock status")
    assert f"Mock server running at {url}" in cap.stdout
    ip.display_pub = recorder
    ip.run_cell_magic("holy", "--max-tokens 5", "offline")
    assert magics.turns[-1].outcome == "ok"
    with capture_output() as cap:
        ip.run_line_magic("holy", "mock status")
        ip.run_line_magic("holy", "mock stop")
        ip.run_line_magic("holy", "mock status")
    assert "1 requests served" in cap.stdout and "not running" in cap.stdout
    assert _config.resolve_base_url() == "http://127.0.0.1:9/v1"
    assert _config.resolve_api_key() == SECRET
    with pytest.raises(UsageError, match="Usage"):
        ip.run_line_magic("holy", "mock restart")


def test_prices_override_the_cost(
    ip: InteractiveShell, recorder: Recorder, mock: MockServer, magics: HolyMagics
) -> None:
    ip.run_line_magic("config", "HolyMagics.prices = {'deepseek-v3.2': 1000000.0}")
    ip.run_cell_magic("holy", "--max-tokens 10", "q")
    turn = magics.turns[-1]
    expected = turn.stats.tokens + (turn.stats.prompt_tokens or 0)
    assert turn.cost == pytest.approx(expected)
    assert f"${expected:.4f}" in texts(recorder.outputs())[-1]


def test_prices_take_input_and_output_and_merge_over_the_defaults(
    ip: InteractiveShell, recorder: Recorder, mock: MockServer, magics: HolyMagics
) -> None:
    ip.run_line_magic("config", "HolyMagics.prices = {'my-model': (1.0, 2.0)}")
    ip.run_cell_magic("holy", "--max-tokens 10", "q")  # deepseek-v3.2: still priced
    turn = magics.turns[-1]
    prompt = turn.stats.prompt_tokens or 0
    assert turn.cost == pytest.approx((prompt * 0.28 + turn.stats.tokens * 0.42) / 1e6)
    with pytest.raises(TypeError, match="a price is a number"):
        magics.prices = {"x": "cheap"}


def test_code_format_without_fences_uses_the_whole_reply(
    ip: InteractiveShell, recorder: Recorder, mock: MockServer, magics: HolyMagics
) -> None:
    ip.rl_next_input = None
    ip.run_cell_magic("holy", "-f code --max-tokens 5", "q")
    assert ip.rl_next_input == magics.turns[-1].reply.strip("\n")


def test_terminal_errors_and_retries_are_plain_lines(
    ip: InteractiveShell, mock: MockServer, magics: HolyMagics
) -> None:
    magics.display_mode = "text"
    magics.extra_headers = {"X-Mock-Fault": "status:code=503"}
    with capture_output() as cap:
        ip.run_cell_magic("holy", "--retries 1", "q")
    lines = cap.stdout.splitlines()
    assert lines[0].startswith("⟳ server error 503 — retrying in")
    assert lines[-1].startswith("⚠ ") and "run the cell again" in lines[-1]


def test_mock_start_says_what_tps_does_and_does_not_change(
    ip: InteractiveShell, magics: HolyMagics
) -> None:
    with capture_output() as cap:
        ip.run_line_magic("holy", "mock start --tps 60")
    line = cap.stdout.strip()
    assert "generated replies: 60 tok/s" in line
    assert "cassettes replay at their recorded pace × 1 (set by speed, not tps)" in line
    with capture_output() as cap:
        ip.run_line_magic("holy", "mock start --speed 2")
    assert "cassettes replay at their recorded pace × 2" in cap.stdout
    with capture_output() as cap:
        ip.run_line_magic("holy", "mock start")
    assert "cassettes" not in cap.stdout  # nothing to warn about


# -- tool calls and thinking, end to end (the real client and mock) ----------------------------

WEATHER = "What is the weather in Bangkok and Chiang Mai right now?"


@pytest.mark.parametrize("flags", ["", "--no-stream"])
def test_tool_calls_show_as_blocks_and_reach_the_variable(
    ip: InteractiveShell, recorder: Recorder, holy_mock_factory, use_mock, flags: str
) -> None:
    use_mock(holy_mock_factory(speed=4))
    ip.run_cell_magic("holy", f"-o reply {flags}", WEATHER)
    outputs = recorder.outputs()
    *calls, stats = [o["data"] for o in outputs]
    assert len(calls) == 2
    for call, city in zip(calls, ("Bangkok", "Chiang Mai"), strict=True):
        assert call["text/markdown"].startswith("🔧 **Tool call** `get_weather`")
        assert f'"{city}' in call["text/markdown"] and '```json\n{\n  "' in call["text/markdown"]
        assert call["text/plain"].startswith("tool call get_weather({")
    assert stats["text/plain"].startswith("deepseek-v3.2 · ")
    reply = ip.user_ns["reply"]
    assert reply == "" and [c["function"]["name"] for c in reply.tool_calls] == ["get_weather"] * 2
    args = [json.loads(c["function"]["arguments"]) for c in reply.tool_calls]
    assert [a["city"] for a in args] == ["Bangkok", "Chiang Mai"]
    if not flags:  # streamed: the arguments grew in place, fragment by fragment
        updates = [m for m in recorder.messages if "Tool call" in str(m.get("data"))]
        assert len(updates) > 2


def test_reasoning_shows_a_thinking_block_above_the_answer(
    ip: InteractiveShell, recorder: Recorder, holy_mock_factory, use_mock, magics: HolyMagics
) -> None:
    use_mock(holy_mock_factory(tps=400))
    magics.extra_headers = {"X-Mock-Reasoning": "40"}
    ip.run_cell_magic("holy", "--max-tokens 20 -o reply", "Is 97 prime?")
    outputs = [o["data"] for o in recorder.outputs()]
    thinking, *answer, stats = outputs
    assert thinking["text/markdown"].startswith('<details class="holynb-thinking">')
    assert thinking["text/plain"].startswith("💭 Thought for ")
    assert answer and "<details" not in "".join(a["text/markdown"] for a in answer)
    assert re.search(r"· thinking [\d.]+ s \(40 tokens\) ·", stats["text/plain"]), stats
    reply = ip.user_ns["reply"]
    assert reply.reasoning and reply.reasoning not in reply
    # While it thought, the block was open.
    first = recorder.display_messages()[0]["data"]["text/markdown"]
    assert first.startswith('<details class="holynb-thinking" open>')


def test_no_reasoning_hides_the_block_but_keeps_the_text(
    ip: InteractiveShell, recorder: Recorder, holy_mock_factory, use_mock, magics: HolyMagics
) -> None:
    use_mock(holy_mock_factory(tps=0))
    magics.extra_headers = {"X-Mock-Reasoning": "10"}
    ip.run_cell_magic("holy", "--max-tokens 5 --no-reasoning -o reply", "q")
    assert not any("<details" in str(m.get("data")) for m in recorder.messages)
    assert ip.user_ns["reply"].reasoning
    assert "thinking" in texts(recorder.outputs())[-1]  # still in the stats line


def test_recorded_reasoning_cassette(
    ip: InteractiveShell, recorder: Recorder, holy_mock_factory, use_mock
) -> None:
    use_mock(holy_mock_factory(speed=0))
    prompt = shipped_prompt("reasoning-answer")
    ip.run_cell_magic("holy", "-o reply", prompt)
    outputs = [o["data"] for o in recorder.outputs()]
    assert "Thought for" in outputs[0]["text/plain"]
    assert "1013" in ip.user_ns["reply"] and ip.user_ns["reply"].reasoning


def test_verify_trusts_a_private_ca_and_says_so_when_missing(
    ip: InteractiveShell, recorder: Recorder, magics: HolyMagics, tmp_path
) -> None:
    from tls_mock import tls_mock

    from mockserver import MOCK_KEY

    with tls_mock(tmp_path) as (url, bundle):
        _config.configure(base_url=url, api_key=MOCK_KEY)
        ip.run_cell_magic("holy", "--max-tokens 3 --retries 0", "q")
        line = texts(recorder.outputs())[-1]
        assert line.startswith("⚠ ") and "%config HolyMagics.verify" in line  # the CA is unknown
        ip.run_line_magic("config", f"HolyMagics.verify = {bundle!r}")
        ip.run_cell_magic("holy", "--max-tokens 3", "q")
    assert magics.turns[-1].outcome == "ok"


def test_a_mock_that_cannot_start_is_one_line(ip: InteractiveShell, tmp_path) -> None:
    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(UsageError, match="The mock server did not start: .*broken.json"):
        ip.run_line_magic("holy", f"mock start --cassettes {tmp_path}")
