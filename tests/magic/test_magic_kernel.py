"""``%%holy`` in real Jupyter kernels: a notebook run by nbclient, and Kernel → Interrupt."""

from __future__ import annotations

import json
import os
import queue
import re
import time
from collections.abc import Iterator
from typing import Any

import nbformat
import pytest
from jupyter_client.manager import KernelManager
from magicutil import cassette_deltas, shipped_prompt
from nbclient import NotebookClient

from mockserver import MOCK_KEY, MockServer

pytestmark = pytest.mark.kernel

LONG_PROMPT = "Explain how to stream chat completions into a Jupyter notebook."
SECRET = "sk-holynb-kernel-secret-0a1b2c3d4e5f"


CELLS = {
    "load": "%load_ext holynb",
    "config_before": "%holy config",
    "mock_start": "%holy mock start --ttft-ms 0 --tps 0 --speed 10",
    "long": f"%%holy\n{LONG_PROMPT}",
    "code": f"%%holy -f code -o snippet\n{shipped_prompt('code-answer')}",
    "snippet": "print(len(snippet) > 0, '```' in snippet)",
    "chat1": "%holy -c --max-tokens 3 first question",
    "chat2": "%holy -c --max-tokens 3 second question",
    "journal": (
        "_m = get_ipython().magics_manager.registry['HolyMagics']._mock\n"
        "print(json.dumps(_m.journal()[-1]['request']['messages']))"
    ),
    "fault_on": (
        "%config HolyMagics.extra_headers = {'X-Mock-Fault': 'status:code=429,retry_after=0.05'}"
    ),
    "rate_limited": "%%holy --retries 1 --max-tokens 5\nq",
    "fault_off": "%config HolyMagics.extra_headers = {}",
    "json_var": '%%holy -o reply --max-tokens 4 --no-stats\nSay "{greeting}" {x + 1}',
    "reasoning_on": "%config HolyMagics.extra_headers = {'X-Mock-Reasoning': '4'}",
    "messages_api": "%%holy --api messages -c claude --max-tokens 5\nIs 97 prime?",
    "responses_ws": "%%holy --api responses --transport ws -c gpt --max-tokens 16\nIs 97 prime?",
    "reasoning_off": "%config HolyMagics.extra_headers = {}",
    "api_config": "%config HolyMagics.api = 'messages'\n%holy config",
    "reply": "reply",
    "status": "%holy mock status",
    "stats": "%holy stats",
    "stop": "%holy mock stop",
    "after_stop": "%holy config",
}


def final_outputs(outputs: list[dict[str, Any]]) -> list[str]:
    """The text of each output (plain text as written, else markdown, else stream text)."""
    shown = []
    for out in outputs:
        data = out.get("data", {})
        if out["output_type"] == "stream":
            shown.append(out["text"])
        elif out["output_type"] == "error":
            shown.append("ERROR " + out["ename"])
        else:
            shown.append(data.get("text/plain") or data.get("text/markdown", ""))
    return shown


@pytest.fixture(scope="module")
def notebook() -> Iterator[tuple[dict[str, list[str]], dict[str, Any], str]]:
    """Run one notebook of %%holy cells in a real kernel (one kernel start for the module)."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import json\ngreeting = 'hello'")]
    nb.cells += [nbformat.v4.new_code_cell(src) for src in CELLS.values()]
    replies: dict[int, dict[str, Any]] = {}

    def on_cell_executed(cell: Any, cell_index: int, execute_reply: dict[str, Any]) -> None:
        replies[cell_index] = execute_reply

    saved = os.environ.get("HOLYSHEEP_API_KEY")
    os.environ["HOLYSHEEP_API_KEY"] = SECRET  # the kernel inherits it
    try:
        client = NotebookClient(
            nb, timeout=60, kernel_name="python3", on_cell_executed=on_cell_executed
        )
        client.execute()
    finally:
        if saved is None:
            os.environ.pop("HOLYSHEEP_API_KEY", None)
        else:
            os.environ["HOLYSHEEP_API_KEY"] = saved
    names = ["setup", *CELLS]
    cells = zip(names, nb.cells, strict=True)
    outputs = {name: final_outputs(cell.outputs) for name, cell in cells}
    payloads = {names[i]: r["content"].get("payload", []) for i, r in replies.items()}
    yield outputs, payloads, nbformat.writes(nb)


def test_notebook_holds_the_final_answer_and_a_stats_line(notebook) -> None:
    outputs, _, _ = notebook
    *answer, stats = outputs["long"]
    assert "".join(answer) == "".join(cassette_deltas())
    assert len(answer) == 33  # one output per Markdown block, as streamed
    assert stats.startswith("deepseek-v3.2 · SSE · TTFT") and "tok/s" in stats


def test_code_format_sends_a_set_next_input_payload(notebook) -> None:
    outputs, payloads, _ = notebook
    (payload,) = [p for p in payloads["code"] if p["source"] == "set_next_input"]
    assert payload["replace"] is False
    assert payload["text"].strip() and "```" not in payload["text"]
    assert outputs["snippet"] == ["True False\n"]


def test_conversation_memory_in_the_kernel(notebook) -> None:
    outputs, _, _ = notebook
    messages = json.loads(outputs["journal"][0])
    assert [m["content"] for m in messages if m["role"] == "user"] == [
        "first question",
        "second question",
    ]
    assert messages[1]["role"] == "assistant" and messages[1]["content"]


def test_rate_limit_renders_one_line_not_a_traceback(notebook) -> None:
    outputs, _, _ = notebook
    (line,) = outputs["rate_limited"]
    assert line.startswith("⚠ ") and "wait a little" in line and "\n" not in line


def test_each_api_streams_thinking_then_the_answer_in_the_kernel(notebook) -> None:
    outputs, _, _ = notebook
    for cell, head in (
        ("messages_api", "deepseek-v3.2 · Anthropic Messages · SSE · thinking"),
        ("responses_ws", "deepseek-v3.2 · Responses · WS · thinking"),
    ):
        thinking, *answer, stats = outputs[cell]
        assert thinking.startswith("💭 Thought for "), outputs[cell]
        assert "".join(answer).strip() and stats.startswith(head), stats
    assert re.search(r"^api\s+messages$", outputs["api_config"][0], re.M)


def test_out_variable_and_interpolation(notebook) -> None:
    outputs, _, _ = notebook
    (answer,) = outputs["json_var"]
    (value,) = outputs["reply"]
    assert value.strip("'\"") == answer


def test_mock_status_stop_and_the_key_never_shows(notebook) -> None:
    outputs, _, saved = notebook
    assert "Mock server at http://127.0.0.1:" in outputs["mock_start"][0]
    # --tps shapes generated replies only; the line says how cassettes replay.
    assert "cassettes replay at their recorded pace × 10" in outputs["mock_start"][0]
    assert "requests served" in outputs["status"][0]
    assert "session:" in outputs["stats"][0]
    assert "settings restored" in outputs["stop"][0]
    assert "sk-…" in outputs["config_before"][0]
    # After the mock stops, the environment's settings are back (the key shown masked only).
    assert "https://api.holysheep.ai/v1" in outputs["after_stop"][0]
    assert "sk-…" in outputs["after_stop"][0]
    assert SECRET not in saved


def test_interrupt_stops_the_stream_and_keeps_the_partial_text() -> None:
    with MockServer(ttft_ms=0, tps=30, seed=1) as mock:
        km = KernelManager(kernel_name="python3")
        env = {**os.environ, "HOLYSHEEP_BASE_URL": mock.url, "HOLYSHEEP_API_KEY": MOCK_KEY}
        km.start_kernel(env=env)
        kc = km.client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=60)
            kc.execute_interactive("%load_ext holynb", timeout=60)
            msg_id = kc.execute("%%holy --max-tokens 300\nTell me a long story.")
            messages = collect(kc, msg_id, interrupt_after=8, km=km)
            reply = kc.get_shell_msg(timeout=10)
            while reply["parent_header"].get("msg_id") != msg_id:
                reply = kc.get_shell_msg(timeout=10)
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
        record = mock.journal()[-1]
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "HolyInterrupt"
    answer = replay(messages)
    assert "".join(answer).strip() and 3 <= len("".join(answer).split()) < 300
    assert not any("interrupted" in out for out in answer)
    # The interrupt is said once, by the error that stops "Run All": one line, with the stats.
    errors = [m for m in messages if m["msg_type"] == "error"]
    assert len(errors) == 1
    (line,) = errors[0]["content"]["traceback"]
    assert line.startswith("⏹ interrupted — partial answer kept above · deepseek-v3.2 · ")
    assert record["outcome"] == "client_disconnected"
    assert record["chunks_sent"] < 300
    # Within the budget while it streamed: never more than 20 display messages per second.
    stamps = [m["header"]["date"].timestamp() for m in messages if "display" in m["msg_type"]]
    assert max(sum(1 for t in stamps if s <= t < s + 1) for s in stamps) <= 20


def collect(kc: Any, msg_id: str, *, interrupt_after: int, km: KernelManager) -> list[dict]:
    """IOPub messages of one execution; interrupt the kernel after a few display messages."""
    messages: list[dict] = []
    interrupted = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            msg = kc.get_iopub_msg(timeout=5)
        except queue.Empty:
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        messages.append(msg)
        shown = sum(1 for m in messages if "display_data" in m["msg_type"])
        if not interrupted and shown >= interrupt_after:
            km.interrupt_kernel()
            interrupted = True
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return messages
    raise AssertionError("the kernel did not finish after the interrupt")


def replay(messages: list[dict]) -> list[str]:
    """The display and stream outputs a frontend shows at the end, from the IOPub messages."""
    shown: list[dict[str, Any]] = []
    pending_clear = False
    for msg in messages:
        kind, content = msg["msg_type"], msg["content"]
        if kind == "clear_output":
            if content["wait"]:
                pending_clear = True
            else:
                shown.clear()
            continue
        if kind == "update_display_data":
            for out in shown:
                if out["id"] and out["id"] == content["transient"]["display_id"]:
                    out["data"] = content["data"]
            continue
        if kind not in ("display_data", "stream"):
            continue  # the interrupt's error output is checked on its own
        if pending_clear:
            shown.clear()
            pending_clear = False
        data = content.get("data") or {"text/plain": content.get("text", "")}
        display_id = (content.get("transient") or {}).get("display_id")
        shown.append({"id": display_id, "data": data})
    return [o["data"].get("text/plain") or o["data"].get("text/markdown", "") for o in shown]
