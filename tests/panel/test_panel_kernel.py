"""ChatPanel in a real IPython kernel: top-level await, cells run while a reply streams."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytestmark = pytest.mark.kernel


@pytest.fixture
def kernel() -> Iterator[Any]:
    from jupyter_client.manager import start_new_kernel

    env = {k: v for k, v in os.environ.items() if k != "HOLYSHEEP_API_KEY"}
    km, kc = start_new_kernel(kernel_name="python3", env=env)
    try:
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def run(kc: Any, code: str, timeout: float = 30) -> tuple[dict[str, Any], list[str]]:
    """Execute ``code``; return the execute_reply content and the text outputs."""
    texts: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        content = msg["content"]
        if msg["msg_type"] == "stream":
            texts.append(content["text"])
        elif msg["msg_type"] in ("execute_result", "display_data"):
            texts.append(content["data"].get("text/plain", ""))
        elif msg["msg_type"] == "error":
            texts.append("\n".join(content["traceback"]))

    reply = kc.execute_interactive(code, timeout=timeout, output_hook=hook)
    assert reply["content"]["status"] == "ok", texts
    return reply["content"], texts


def test_panel_streams_in_the_background_of_a_kernel(kernel: Any, holy_mock_factory: Any) -> None:
    mock = holy_mock_factory(tps=40)
    run(
        kernel,
        "from holynb import ChatPanel\n"
        f"panel = ChatPanel(base_url={mock.url!r}, api_key='sk-holynb-mock', max_tokens=60)\n"
        "task = panel.send('tell me something')",
    )
    # The reply (60 tokens at 40 tok/s, ~1.5 s) streams while other cells run.
    _, out = run(kernel, "print(21 * 2, panel.streaming, len(panel.messages))")
    assert out == ["42 True 2\n"]
    time.sleep(0.4)
    _, out = run(kernel, "print(len(panel.messages[-1]['content']) > 0, panel.streaming)")
    assert out == ["True True\n"]
    _, out = run(
        kernel,
        "reply = await task\nprint(panel.streaming, reply == panel.messages[-1]['content'])",
    )
    assert out == ["False True\n"]


def test_await_send_and_insert_code_in_a_kernel(kernel: Any, holy_mock_factory: Any) -> None:
    holy_mock = holy_mock_factory(speed=0)  # the shipped cassette, without its timing
    run(
        kernel,
        "from holynb import ChatPanel\n"
        f"panel = ChatPanel(base_url={holy_mock.url!r}, api_key='sk-holynb-mock')",
    )
    _, out = run(
        kernel,
        "import json\n"
        "reply = await panel.send("
        "'Write a Python function that returns the n-th Fibonacci number.')\n"
        "print(json.dumps(panel.last_code()))",
    )
    code = json.loads(out[0])
    assert "def " in code
    reply, _ = run(kernel, "_ = panel.insert_code()")
    (payload,) = reply["payload"]
    assert payload["source"] == "set_next_input"
    assert payload["text"] == code and payload["replace"] is False
    # The picker's API, as the browser would set it, for the next reply.
    _, out = run(
        kernel,
        "panel._controls['api'].value = 'messages'\n"
        "await panel.send('And in Rust?')\n"
        "print(panel._messages[-1].footer_text)",
    )
    assert out[0].startswith("deepseek-v3.2 · Anthropic Messages · SSE · ")
    assert holy_mock.journal()[-1]["path"] == "/v1/messages"
