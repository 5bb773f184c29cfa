"""ChatPanel against a misbehaving upstream: Stop, every fault → banner, Retry, sanitising."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from cassette_files import write_cassette, write_error_cassette
from panel_helpers import all_states, assert_inert

from holynb.notebook.panel import STOP_MARKER


async def wait_for_text(panel: Any, chars: int) -> None:
    async with asyncio.timeout(10):
        while len(panel.messages[-1]["content"]) < chars:
            await asyncio.sleep(0.005)


async def wait_for_outcome(mock: Any) -> dict[str, Any]:
    """The last journal record once the server has finished it."""
    async with asyncio.timeout(5):
        while True:
            record = mock.journal()[-1]
            if record.get("ended"):
                return record
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("transport", ["sse", "ws"])
async def test_stop_keeps_the_partial_reply_and_closes_upstream(
    holy_mock_factory: Any, make_panel: Any, transport: str
) -> None:
    mock = holy_mock_factory(tps=60)
    panel = make_panel(mock, max_tokens=500, transport=transport)
    task = panel.send("a long answer please")
    await wait_for_text(panel, 20)
    loop = asyncio.get_running_loop()
    clicked = loop.time()
    panel._stop_button.click()
    reply = await task
    assert loop.time() - clicked < 0.2  # the bound for Stop
    assert reply and panel.messages[-1] == {"role": "assistant", "content": reply}
    message = panel._messages[-1]
    assert message.status == "stopped"
    assert STOP_MARKER in message.footer.get_state()["value"]
    assert message.body.children[0].value  # the partial text is still rendered
    assert panel.streaming is False and panel.banner == ""
    assert f"*{STOP_MARKER}*" in panel.export()
    record = await wait_for_outcome(mock)
    # SSE: the connection is closed; WebSocket: a cancel frame ends the stream, socket kept.
    assert record["outcome"] == ("client_disconnected" if transport == "sse" else "cancelled")
    assert record["chunks_sent"] < 500


async def test_stop_before_the_first_step(holy_mock: Any, make_panel: Any) -> None:
    panel = make_panel(holy_mock)
    task = panel.send("never mind")
    panel.stop()
    assert await task == ""
    assert panel._messages[-1].status == "stopped"
    assert panel.streaming is False
    # The empty stopped reply is not sent back to the model as history.
    await panel.send("again")
    assert holy_mock.journal()[-1]["request"]["messages"] == [
        {"role": "user", "content": "never mind"},
        {"role": "user", "content": "again"},
    ]


FAULTS = [
    pytest.param(
        {"fault": "status:code=503"}, {"max_retries": 0}, "failed; press Retry", False, id="503"
    ),
    pytest.param({"fault": "disconnect:after=5"}, {}, "— press Retry", True, id="disconnect"),
    pytest.param({"fault": "reset:after=5"}, {}, "— press Retry", True, id="reset"),
    pytest.param(
        {"fault": "stall:after=3,ms=3000"},
        {"idle_timeout": 0.3},
        "the server is slow; press Retry",
        True,
        id="idle-timeout",
    ),
    pytest.param(
        {"ttft_ms": 3000},
        {"first_token_timeout": 0.3, "max_retries": 0},
        "the server is slow; press Retry",
        False,
        id="first-token-timeout",
    ),
    pytest.param({"fault": "malformed:at=4"}, {}, "not valid JSON", True, id="malformed"),
    pytest.param(
        {"fault": "status:code=429,retry_after=0.1"},
        {"max_retries": 1},
        "wait a little, then press Retry",
        False,
        id="429",
    ),
]


@pytest.mark.parametrize(("mock_options", "client_options", "banner", "partial"), FAULTS)
async def test_fault_shows_a_banner_and_keeps_partial_text(
    holy_mock_factory: Any,
    make_panel: Any,
    mock_options: dict[str, Any],
    client_options: dict[str, Any],
    banner: str,
    partial: bool,
) -> None:
    mock = holy_mock_factory(**mock_options)
    panel = make_panel(mock, max_tokens=30, client_options=client_options)
    reply = await panel.send("hello")
    assert banner in panel.banner
    assert panel.banner.count(" — ") == 1 and ".partial_text" not in panel.banner
    assert panel._retry_button.layout.display is None  # Retry offered
    assert panel.streaming is False
    if partial:
        assert reply
        assert panel.messages[-1] == {"role": "assistant", "content": reply}
        assert "⚠ interrupted" in panel._messages[-1].footer_text
    else:
        assert reply == ""
        assert panel.messages == [{"role": "user", "content": "hello"}]


async def test_ws_close_mid_reply(holy_mock_factory: Any, make_panel: Any) -> None:
    mock = holy_mock_factory(fault="ws-close:code=1011,after=4")
    panel = make_panel(mock, max_tokens=30, transport="ws", client_options={"max_retries": 0})
    reply = await panel.send("hello")
    assert reply
    assert panel.banner
    assert "⚠ interrupted" in panel._messages[-1].footer_text


async def test_bad_key_shows_401_and_never_the_key(holy_mock_factory: Any, make_panel: Any) -> None:
    key = "sk-wrong-key-5e3f9a7b21"
    mock = holy_mock_factory(keys=["sk-the-right-one-0001"])
    panel = make_panel(mock, api_key=key)
    await panel._models_task  # the model list is fetched first and already fails
    assert "401" in panel.banner
    await panel.send("hello")
    assert "401" in panel.banner
    assert "check HOLYSHEEP_API_KEY or the api_key given to the panel" in panel.banner
    assert key not in all_states(panel)
    assert key not in panel.export() and key not in panel.export("json")


async def test_retry_countdown_is_live_then_the_reply_arrives(
    holy_mock_factory: Any, make_panel: Any, tmp_path: Any
) -> None:
    prompt = "rate limit me once"
    write_error_cassette(tmp_path, "a-429", prompt, status=429, headers={"retry-after": "0.6"})
    write_cassette(tmp_path, "b-ok", prompt, ["Fine ", "now."])
    mock = holy_mock_factory(cassettes=tmp_path)
    panel = make_panel(mock)
    seen: list[str] = []
    panel._banner_text.observe(lambda change: seen.append(change["new"]), "value")
    classes: list[tuple[str, ...]] = []
    panel._banner.observe(lambda change: classes.append(change["new"]), "_dom_classes")
    reply = await panel.send(prompt)
    assert reply == "Fine now."
    countdown = [s for s in seen if "retrying in" in s]
    assert countdown[0].startswith("⏳ rate limited — retrying in 0.6 s (1/3)")
    values = [float(re.search(r"in ([\d.]+) s", s).group(1)) for s in countdown]
    assert len(set(values)) >= 3 and values == sorted(values, reverse=True)
    assert any("holynb-retrying" in c for c in classes)
    assert panel.banner == ""  # hidden again once the reply streams
    assert mock.journal()[-1]["outcome"] == "completed"


async def test_stop_during_the_retry_countdown_hides_the_countdown(
    holy_mock_factory: Any, make_panel: Any, tmp_path: Any
) -> None:
    prompt = "rate limit me, then stop"
    write_error_cassette(tmp_path, "a-429", prompt, status=429, headers={"retry-after": "5"})
    mock = holy_mock_factory(cassettes=tmp_path)
    panel = make_panel(mock)
    task = panel.send(prompt)
    async with asyncio.timeout(5):
        while "retrying in" not in panel.banner:
            await asyncio.sleep(0.01)
    panel.stop()
    await task
    assert panel._messages[-1].status == "stopped"
    assert panel.banner == ""  # no frozen "retrying in …" left behind


async def test_retry_button_streams_a_fresh_reply(
    holy_mock_factory: Any, make_panel: Any, tmp_path: Any
) -> None:
    prompt = "flaky answer"
    words = [f"word{i} " for i in range(12)]
    write_cassette(tmp_path, "a-cut", prompt, words, fault="disconnect:after=4")
    write_cassette(tmp_path, "b-whole", prompt, words)
    mock = holy_mock_factory(cassettes=tmp_path)
    panel = make_panel(mock)
    partial = await panel.send(prompt)
    assert partial and partial != "".join(words)
    assert panel.banner.endswith("— press Retry")
    panel._retry_button.click()
    assert panel.banner == ""
    full = await panel._task
    assert full == "".join(words)
    assert panel.messages == [
        {"role": "user", "content": prompt},
        {"role": "assistant", "content": full},
    ]
    # The retried request carried the same conversation (the failed partial was dropped).
    first, second = (r["request"]["messages"] for r in mock.journal()[-2:])
    assert first == second == [{"role": "user", "content": prompt}]


async def test_model_html_is_inert_end_to_end(
    holy_mock_factory: Any, make_panel: Any, tmp_path: Any
) -> None:
    prompt = "show me some html"
    pieces = [
        "Here: <scr", "ipt>alert(1)</script> ",
        '<img src=x onerror="alert(1)"> ',
        "[click](javascript:alert(1)) ",
        '<a href="javascript:alert(2)">two</a>\n\n',
        "```html\n<script>alert(3)</script>\n```\n",
    ]  # fmt: skip
    write_cassette(tmp_path, "xss", prompt, pieces)
    mock = holy_mock_factory(cassettes=tmp_path)
    panel = make_panel(mock)
    live_values: list[str] = []
    await panel._models_task
    task = panel.send(prompt)
    body = panel._messages[-1].body

    def watch(change: dict[str, Any]) -> None:
        for child in change["new"]:
            live_values.append(child.value)
            child.observe(lambda c: live_values.append(c["new"]), "value")

    body.children[0].observe(lambda change: live_values.append(change["new"]), "value")
    body.observe(watch, "children")
    reply = await task
    assert reply == "".join(pieces)
    final = "".join(child.value for child in body.children)
    for html in [*live_values, final]:
        assert_inert(html)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in final
    # The fenced HTML is shown as highlighted code: its tags are text, never elements.
    assert '<pre><code><span class="p">&lt;</span><span class="nt">script</span>' in final
    assert "<script" not in final


def test_banner_scrubs_a_key_taken_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, holy_mock: Any
) -> None:
    from holynb import ChatPanel
    from holynb._config import reset_defaults

    key = "sk-env-key-0123456789abcdef"
    monkeypatch.setenv("HOLYSHEEP_API_KEY", key)
    reset_defaults()
    panel = ChatPanel(base_url=holy_mock.url)
    try:
        # A callback error whose message carries the key (as an echoing server might).
        panel._guard(lambda _: _raise(key))(None)
        assert "server echoed" in panel.banner
        assert key not in panel.banner and "…cdef" in panel.banner
    finally:
        panel.close()


def _raise(key: str) -> None:
    raise RuntimeError(f"server echoed {key}")


async def test_clear_while_streaming(holy_mock_factory: Any, make_panel: Any) -> None:
    mock = holy_mock_factory(tps=100)
    panel = make_panel(mock, max_tokens=300)
    task = panel.send("go on")
    await wait_for_text(panel, 10)
    body = panel._messages[-1].body
    panel._clear_button.click()
    partial = await task
    assert partial  # the awaiting code still gets what arrived
    assert panel.messages == [] and panel._log.children == ()
    assert panel.streaming is False and panel.banner == ""
    assert body.comm is None  # the cleared reply's widgets were closed, not re-rendered
