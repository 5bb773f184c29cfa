"""The Responses API (over SSE and in its WebSocket mode) and the Anthropic Messages API against
the project's mock, from one table: streaming, non-streaming, tool calls, reasoning, every
fault, timeouts, cancel and retries. (Chat completions get the same in test_stream.py; the
documentation's own example streams are played in test_responses_api.py / test_messages_api.py.)
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from client_helpers import PROMPT, WEATHER_PROMPT, collect, stream_records, wait_ended

from holynb import (
    APIStatusError,
    AuthenticationError,
    ContentDelta,
    MalformedChunkError,
    RateLimitError,
    ReasoningDelta,
    StreamInterrupted,
    StreamTimeout,
    ToolCallDelta,
)
from holynb._retry import RetryEvent

# (api, transport) of every wire besides chat completions.
WIRES = [("responses", "sse"), ("responses", "ws"), ("messages", "sse")]
PATH = {"responses": "/v1/responses", "messages": "/v1/messages"}
# The API's own finish value for a reply cut at max tokens, and for one that ends naturally.
RAW_LENGTH = {"responses": "max_output_tokens", "messages": "max_tokens"}
RAW_STOP = {"responses": "completed", "messages": "end_turn"}
RAW_TOOLS = {"responses": "completed", "messages": "tool_use"}


@pytest.fixture(params=WIRES, ids=["-".join(w) for w in WIRES])
def wire(request: pytest.FixtureRequest) -> tuple[str, str]:
    """Each test using this runs once per (api, transport)."""
    return request.param


@pytest.fixture(params=["responses", "messages"])
def api(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once per API (non-streamed replies go over HTTP)."""
    return request.param


def client_for(make_client: Any, mock: Any, wire: tuple[str, str], **options: Any) -> Any:
    api, transport = wire
    return make_client(mock, api=api, transport=transport, **options)


async def reference(make_client: Any, mock: Any, wire: tuple[str, str], n: int = 20) -> str:
    """The text the mock generates for PROMPT with ``n`` tokens, over ``wire``, no fault."""
    async with client_for(make_client, mock, wire).stream(PROMPT, max_tokens=n) as s:
        await collect(s)
    return s.text


async def test_stream_text_usage_finish_and_stats(holy_mock, make_client, wire):
    api, transport = wire
    client = client_for(make_client, holy_mock, wire)
    async with client.stream(PROMPT, max_tokens=20) as s:
        deltas = await collect(s)
    assert len(deltas) == 20 and "".join(deltas) == s.text and s.done
    assert s.api == api and s.transport == transport and s.model == "deepseek-v3.2"
    assert s.finish_reason == "length" and s.raw_finish_reason == RAW_LENGTH[api]
    assert s.usage["completion_tokens"] == 20 and s.usage["prompt_tokens"] > 0
    assert s.usage["total_tokens"] == s.usage["prompt_tokens"] + 20 and s.raw_usage
    st = s.stats
    assert st.tokens == st.completion_tokens == 20 and st.prompt_tokens == s.usage["prompt_tokens"]
    assert st.ttft_s is not None and st.total_s >= st.ttft_s and len(st.itl_s) == 19
    assert st.chunks > 20 and st.bytes > 0 and st.retries == 0
    assert s.message == {"role": "assistant", "content": s.text}
    (record,) = stream_records(holy_mock)
    assert record["path"] == PATH[api] and record["transport"] == transport
    assert record["status"] == 200 and record["outcome"] == "completed"
    # Without a limit the reply ends on its own: the API's "stop".
    async with client.stream(PROMPT) as s:
        await collect(s)
    assert s.finish_reason == "stop" and s.raw_finish_reason == RAW_STOP[api]


async def test_every_wire_gives_the_chat_text(holy_mock, make_client):
    """One generated reply, whatever the wire it comes over."""
    chat = await reference(make_client, holy_mock, ("chat", "sse"), 30)
    for wire in WIRES:
        assert await reference(make_client, holy_mock, wire, 30) == chat


async def test_complete_matches_the_stream(holy_mock, make_client, api):
    client = make_client(holy_mock, api=api)
    streamed = await reference(make_client, holy_mock, (api, "sse"), 16)
    reply = await client.complete(PROMPT, max_tokens=16)
    assert reply.text == streamed and reply.finish_reason == "length"
    assert reply.raw_finish_reason == RAW_LENGTH[api] and reply.usage["completion_tokens"] == 16
    assert reply.stats.tokens == 16 and reply.model == "deepseek-v3.2"
    record = stream_records(holy_mock)[-1]
    assert record["path"] == PATH[api] and record["stream"] is False


async def test_tool_calls_streamed_and_not(holy_mock_factory, make_client, wire):
    api, _ = wire
    mock = holy_mock_factory(speed=0)  # the tool-calls cassette, without its timing
    client = client_for(make_client, mock, wire)
    async with client.stream(WEATHER_PROMPT) as s:
        events = [e async for e in s.events()]
    calls = [e for e in events if isinstance(e, ToolCallDelta)]
    firsts = [c for c in calls if c.name]
    assert [(c.index, c.name) for c in firsts] == [(0, "get_weather"), (1, "get_weather")]
    assert all(c.id for c in firsts) and all(c.id is None for c in calls if not c.name)
    assert len(calls) > 4  # arguments arrive in fragments
    assert [json.loads(c["function"]["arguments"])["city"] for c in s.tool_calls] == [
        "Bangkok",
        "Chiang Mai",
    ]
    assert [c["id"] for c in s.tool_calls] == [c.id for c in firsts]
    for index in (0, 1):
        joined = "".join(c.arguments for c in calls if c.index == index)
        assert joined == s.tool_calls[index]["function"]["arguments"]
    assert s.finish_reason == "tool_calls" and s.raw_finish_reason == RAW_TOOLS[api]
    assert s.text == "" and s.message == {
        "role": "assistant",
        "content": None,
        "tool_calls": s.tool_calls,
    }
    # What the model generated counts: every tool-call delta, as the usage says.
    assert s.stats.tokens == s.usage["completion_tokens"] == len(calls)
    reply = await client.complete(WEATHER_PROMPT)
    assert reply.tool_calls == s.tool_calls and reply.finish_reason == "tool_calls"


async def test_reasoning_then_the_answer_and_back_next_turn(
    holy_mock_factory, make_client, wire
):
    api, _ = wire
    mock = holy_mock_factory(reasoning_tokens=6, tps=0)
    client = client_for(make_client, mock, wire)
    conversation: list[dict[str, Any]] = [{"role": "user", "content": "Is 97 prime?"}]
    async with client.stream(conversation, max_tokens=16) as s:
        events = [e async for e in s.events()]
    kinds = [type(e) for e in events]
    assert kinds == [ReasoningDelta] * 6 + [ContentDelta] * 16
    assert s.reasoning == "".join(e.text for e in events[:6]) and s.reasoning not in s.text
    st = s.stats
    assert st.reasoning_tokens == 6 and st.ttfr_s is not None and st.ttfr_s <= st.ttft_s
    assert st.reasoning_s is not None and st.tokens == st.completion_tokens
    (block,) = s.message["thinking_blocks"]
    if api == "messages":
        assert block["type"] == "thinking" and block["thinking"] == s.reasoning
        assert block["signature"]
    else:
        assert block["type"] == "reasoning" and block["id"].startswith("rs_")
    conversation += [s.message, {"role": "user", "content": "And 91?"}]
    async with client.stream(conversation, max_tokens=16) as again:
        await collect(again)
    record = stream_records(mock)[-1]
    assert record["status"] == 200 and again.text
    sent = json.dumps(record["request"])
    assert (block["signature"] if api == "messages" else block["id"]) in sent
    # Not streamed: the same reasoning, in the reply.
    reply = await client.complete("Is 97 prime?", max_tokens=16)
    assert reply.reasoning == s.reasoning and reply.text == s.text


# fault -> the error it raises mid-stream (None: the reply completes as if nothing happened);
# a dict when the APIs differ. Every mid-stream fault is placed after the first text delta.
FAULTS: list[tuple[str, Any]] = [
    ("disconnect:after=9", StreamInterrupted),
    ("reset:after=9", StreamInterrupted),
    ("malformed:at=9", MalformedChunkError),
    ("error-event:at=9", APIStatusError),
    ("error-event:at=9,code=429", RateLimitError),
    ("error-event:at=9,code=529", APIStatusError),
    ("stall:after=9,ms=3000", StreamTimeout),
    ("slice:size=3", None),
    ("fragment:size=5", None),
    ("heartbeat:ms=2", None),
    # Messages has its stop reason in message_delta before message_stop; a Responses stream
    # without its terminal event has no finish at all: over SSE the server then closes the body,
    # while a WebSocket stays open until the idle timeout.
    ("no-done", {"responses-sse": StreamInterrupted, "responses-ws": StreamTimeout,
                 "messages": None}),
]
# A Responses error event has a code, not an HTTP status: an overloaded server is a server_error.
STATUS = {("responses", 529): 500}


@pytest.mark.parametrize(("fault", "error"), FAULTS, ids=[f for f, _ in FAULTS])
async def test_fault(holy_mock, make_client, wire, fault, error):
    api, transport = wire
    if isinstance(error, dict):
        error = error.get(f"{api}-{transport}", error.get(api))
    expected = await reference(make_client, holy_mock, wire)
    client = client_for(make_client, holy_mock, wire, max_retries=2, idle_timeout=0.3)
    headers = {"X-Mock-Fault": fault}
    if fault.startswith("heartbeat"):
        headers["X-Mock-TPS"] = "400"  # 50 ms of stream: heartbeats land between chunks
    deltas: list[str] = []
    s = client.stream(PROMPT, max_tokens=20, extra_headers=headers)
    if error is None:
        async with s:
            deltas = await collect(s)
        assert s.text == expected and s.finish_reason == "length"
    else:
        with pytest.raises(error) as info:
            async with s:
                async for delta in s:
                    deltas.append(delta)
        assert deltas and info.value.partial_text == "".join(deltas) == s.text
        # Cut short, or (no-done) whole but without the end that says it is whole.
        assert expected.startswith(s.text) and (s.text != expected) == (fault != "no-done")
        assert s.stats.retries == 0  # nothing is retried after the first delta
        assert "\n" not in str(info.value)
        if error is StreamTimeout:
            assert info.value.phase == "idle"
        if "code=" in fault:
            code = int(fault.rsplit("=", 1)[1])
            assert info.value.status_code == STATUS.get((api, code), code)
    assert len(stream_records(holy_mock)) == 2  # the reference, and this one only


async def test_websocket_close_mid_stream(holy_mock, make_client):
    client = make_client(holy_mock, api="responses", transport="ws", max_retries=2)
    s = client.stream(
        PROMPT, max_tokens=20, extra_headers={"X-Mock-Fault": "ws-close:code=1011,after=9"}
    )
    with pytest.raises(APIStatusError) as info:
        async with s:
            await collect(s)
    assert info.value.status_code == 500 and info.value.partial_text == s.text != ""
    assert s.stats.retries == 0


async def test_stall_before_the_first_token(holy_mock, make_client, wire):
    client = client_for(make_client, holy_mock, wire, max_retries=0, first_token_timeout=0.3)
    s = client.stream(PROMPT, extra_headers={"X-Mock-Fault": "stall:after=1,ms=3000"})
    with pytest.raises(StreamTimeout) as info:
        async with s:
            await collect(s)
    assert info.value.phase == "first_token" and info.value.partial_text == ""


# Failures before the first delta: (fault, error, status, retried).
REFUSALS = [
    ("status:code=429,retry_after=0.05", RateLimitError, 429, True),
    ("status:code=529", APIStatusError, 529, True),
    ("status:code=500", APIStatusError, 500, True),
    ("error-event:at=1", APIStatusError, 500, True),
    ("status:code=401", AuthenticationError, 401, False),
    ("status:code=400", APIStatusError, 400, False),
]


@pytest.mark.parametrize(("fault", "error", "status", "retried"), REFUSALS,
                         ids=[r[0] for r in REFUSALS])
async def test_refusals_before_the_first_token(
    holy_mock, make_client, wire, fault, error, status, retried
):
    api, _ = wire
    events: list[RetryEvent] = []
    client = client_for(make_client, holy_mock, wire, max_retries=1, on_retry=events.append)
    s = client.stream(PROMPT, max_tokens=20, extra_headers={"X-Mock-Fault": fault})
    with pytest.raises(error) as info:
        async with s:
            await collect(s)
    exc = info.value
    assert type(exc) is error and exc.status_code == status and exc.partial_text == ""
    assert len(stream_records(holy_mock)) == (2 if retried else 1)
    assert s.stats.retries == len(events) == (1 if retried else 0)
    if status == 429:
        assert exc.retry_after == pytest.approx(0.05, abs=0.01)
        assert events[0].reason == "rate limited" and events[0].delay_s == exc.retry_after
    if status == 529 and api == "messages":
        assert exc.error_type == "overloaded_error"
    assert "\n" not in exc.message


@pytest.mark.parametrize("fault", ["status:code=429,retry_after=0.01", "status:code=529"])
async def test_retries_until_success(holy_mock_factory, make_client, wire, fault):
    mock = holy_mock_factory(seed=3, fault=f"{fault},p=0.5")
    client = client_for(make_client, mock, wire, max_retries=8)
    retries = 0
    for i in range(4):
        # 16: the Responses API's smallest max_output_tokens.
        async with client.stream(f"{PROMPT} {i}", max_tokens=16) as s:
            assert len(await collect(s)) == 16
        retries += s.stats.retries
    statuses = [r["status"] for r in stream_records(mock)]
    code = int(fault.split("code=")[1].split(",")[0])
    assert retries > 0 and statuses.count(code) == retries and statuses.count(200) == 4


async def test_leaving_early_reaches_the_mock(holy_mock, make_client, wire):
    client = client_for(make_client, holy_mock, wire)
    async with client.stream(PROMPT, max_tokens=500, extra_headers={"X-Mock-TPS": "100"}) as s:
        async for _ in s:
            if len(s.text.split()) >= 3:
                break
    record = await wait_ended(holy_mock)
    # Responses WebSocket mode has no cancel message: leaving closes the socket.
    assert record["outcome"] == "client_disconnected", record
    assert record["chunks_sent"] < 100 and not s.done and s.stats.total_s is not None
