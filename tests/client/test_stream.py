"""Streaming over both transports against the real mock: results, stats, every fault."""

from __future__ import annotations

from typing import Any

import pytest
from client_helpers import (
    PROMPT,
    WEATHER_PROMPT,
    WEATHER_TOOLS,
    client_sockets,
    collect,
    stream_records,
)

from holynb import (
    APIStatusError,
    AuthenticationError,
    MalformedChunkError,
    RateLimitError,
    StreamInterrupted,
)


async def reference(make_client: Any, mock: Any, transport: str, n: int = 20) -> str:
    """The text the mock generates for PROMPT with ``n`` tokens (no fault)."""
    async with make_client(mock, transport=transport).stream(PROMPT, max_tokens=n) as s:
        await collect(s)
    return s.text


async def test_stream_delivers_text_usage_and_stats(holy_mock, make_client, transport):
    client = make_client(holy_mock, transport=transport)
    async with client.stream(PROMPT, max_tokens=20) as s:
        deltas = await collect(s)
    assert len(deltas) == 20 and all(isinstance(d, str) and d for d in deltas)
    assert "".join(deltas) == s.text
    assert s.finish_reason == "length"
    assert s.usage is not None and s.usage["completion_tokens"] == 20
    assert s.model == "deepseek-v3.2" and s.transport == transport and s.done
    st = s.stats
    assert st.tokens == 20 and st.completion_tokens == 20 and st.prompt_tokens
    assert st.ttft_s is not None and st.total_s is not None and st.total_s >= st.ttft_s
    assert len(st.itl_s) == 19 and all(gap >= 0 for gap in st.itl_s)
    assert st.chunks >= 20 and st.bytes > 0 and st.retries == 0 and st.skipped_chunks == 0


async def test_both_transports_give_the_same_result(holy_mock, make_client):
    sse = await reference(make_client, holy_mock, "sse", 30)
    ws = await reference(make_client, holy_mock, "ws", 30)
    assert sse == ws and len(sse) > 30


async def test_messages_model_and_params(holy_mock, make_client, transport):
    client = make_client(holy_mock, transport=transport)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    async with client.stream(messages, model="gpt-4.1", max_tokens=5, temperature=0.2) as s:
        await collect(s)
    assert s.model == "gpt-4.1" and s.stats.tokens == 5
    request = stream_records(holy_mock)[-1]
    assert request["model"] == "gpt-4.1"


async def test_iterating_without_context_manager_closes(holy_mock, make_client, transport):
    client = make_client(holy_mock, transport=transport)
    stream = client.stream(PROMPT, max_tokens=6)
    assert len([d async for d in stream]) == 6
    assert stream.done and stream.stats.total_s is not None


async def test_connections_are_reused(holy_mock, make_client, transport):
    client = make_client(holy_mock, transport=transport)
    for _ in range(5):
        async with client.stream(PROMPT, max_tokens=3) as s:
            await collect(s)
    assert client_sockets(holy_mock.url) == 1


# fault -> (exception type or None, number of deltas delivered before it)
FAULTS: list[tuple[str, type[Exception] | None, int]] = [
    ("disconnect:after=5", StreamInterrupted, 5),
    ("reset:after=4", StreamInterrupted, 4),
    ("malformed:at=3", MalformedChunkError, 2),
    ("error-event:at=3", APIStatusError, 2),
    ("error-event:at=4,code=429", RateLimitError, 3),
    ("no-done", None, 20),
    ("crlf", None, 20),
    ("slice:size=3", None, 20),
    ("fragment:size=5", None, 20),
    ("heartbeat:ms=2", None, 20),
]


@pytest.mark.parametrize(("fault", "error", "delivered"), FAULTS, ids=[f[0] for f in FAULTS])
async def test_fault(holy_mock, make_client, transport, fault, error, delivered):
    expected = await reference(make_client, holy_mock, transport)
    client = make_client(holy_mock, transport=transport, max_retries=2)
    headers = {"X-Mock-Fault": fault}
    if fault == "crlf" and transport == "ws":
        # Line endings are an SSE matter: the mock refuses the control before streaming.
        error, delivered = APIStatusError, 0
    if fault.startswith("heartbeat"):
        headers["X-Mock-TPS"] = "400"  # 50 ms of stream: heartbeats land between chunks
    deltas: list[str] = []
    if error is None:
        async with client.stream(PROMPT, max_tokens=20, extra_headers=headers) as s:
            deltas = await collect(s)
        assert s.text == expected and s.finish_reason == "length" and s.done
    else:
        s = client.stream(PROMPT, max_tokens=20, extra_headers=headers)
        with pytest.raises(error) as info:
            async with s:
                async for delta in s:
                    deltas.append(delta)
        assert len(deltas) == delivered
        assert info.value.partial_text == "".join(deltas) == s.text
        assert expected.startswith(info.value.partial_text)
        assert bool(info.value.partial_text) == bool(delivered)
        # Failures after the first delta are never retried.
        assert s.stats.retries == 0
        if delivered:
            assert len(stream_records(holy_mock)) == 2
        assert "\n" not in str(info.value)
    assert len(deltas) == delivered


async def test_malformed_chunk_details(holy_mock, make_client, transport):
    client = make_client(holy_mock, transport=transport)
    with pytest.raises(MalformedChunkError) as info:
        async with client.stream(
            PROMPT, max_tokens=10, extra_headers={"X-Mock-Fault": "malformed:at=3"}
        ) as s:
            await collect(s)
    assert "chatcmpl-malformed" in info.value.raw
    assert "skip_malformed=True" in str(info.value)


async def test_skip_malformed_counts_the_chunk(holy_mock, make_client, transport):
    expected = await reference(make_client, holy_mock, transport)
    client = make_client(holy_mock, transport=transport, skip_malformed=True)
    async with client.stream(
        PROMPT, max_tokens=20, extra_headers={"X-Mock-Fault": "malformed:at=3"}
    ) as s:
        await collect(s)
    assert s.text == expected and s.stats.skipped_chunks == 1


@pytest.mark.parametrize(
    ("fault", "error", "status"),
    [
        ("status:code=400", APIStatusError, 400),
        ("status:code=401", AuthenticationError, 401),
        ("status:code=404", APIStatusError, 404),
    ],
)
async def test_status_faults_are_not_retried(
    holy_mock, make_client, transport, fault, error, status
):
    client = make_client(holy_mock, transport=transport, max_retries=3)
    s = client.stream(PROMPT, extra_headers={"X-Mock-Fault": fault})
    with pytest.raises(error) as info:
        async with s:
            await collect(s)
    assert info.value.status_code == status and info.value.partial_text == ""
    assert info.value.error_type and info.value.body
    assert len(stream_records(holy_mock)) == 1
    assert s.stats.retries == 0


async def test_server_error_is_retried_then_raised(holy_mock, make_client, transport):
    seen = []
    client = make_client(holy_mock, transport=transport, max_retries=1, on_retry=seen.append)
    with pytest.raises(APIStatusError) as info:
        async with client.stream(PROMPT, extra_headers={"X-Mock-Fault": "status:code=503"}):
            pass
    assert info.value.status_code == 503
    assert len(stream_records(holy_mock)) == 2
    assert [e.reason for e in seen] == ["server error 503"]


async def test_ws_close_codes(holy_mock, make_client):
    client = make_client(holy_mock, transport="ws", max_retries=1)
    deltas: list[str] = []
    with pytest.raises(APIStatusError) as info:
        async with client.stream(
            PROMPT, max_tokens=20, extra_headers={"X-Mock-Fault": "ws-close:code=1011,after=4"}
        ) as s:
            async for delta in s:
                deltas.append(delta)
    assert info.value.status_code == 500 and "1011" in str(info.value)
    assert len(deltas) == 4 and info.value.partial_text == s.text

    with pytest.raises(AuthenticationError, match="1008"):
        async with client.stream(
            PROMPT, extra_headers={"X-Mock-Fault": "ws-close:code=1008,after=0"}
        ) as s:
            await collect(s)

    holy_mock.reset()
    s = client.stream(PROMPT, extra_headers={"X-Mock-Fault": "ws-close:code=1013,after=0"})
    with pytest.raises(APIStatusError, match="1013") as info:
        async with s:
            await collect(s)
    assert info.value.status_code == 503 and s.stats.retries == 1
    assert len(stream_records(holy_mock)) == 2


async def test_ws_only_fault_on_sse_is_a_clear_400(holy_mock, make_client):
    client = make_client(holy_mock, transport="sse")
    s = client.stream(
        PROMPT, max_tokens=20, extra_headers={"X-Mock-Fault": "ws-close:code=1011,after=4"}
    )
    with pytest.raises(APIStatusError) as info:
        async with s:
            await collect(s)
    assert info.value.status_code == 400 and "ws-close" in info.value.message
    assert s.text == "" and s.stats.retries == 0


async def test_tool_calls_are_accumulated(holy_mock_factory, make_client, transport):
    client = make_client(holy_mock_factory(speed=0), transport=transport)
    async with client.stream(WEATHER_PROMPT, tools=WEATHER_TOOLS) as s:
        deltas = await collect(s)
    assert deltas == [] and s.text == ""
    assert s.finish_reason == "tool_calls"
    calls = s.tool_calls
    assert [c["function"]["name"] for c in calls] == ["get_weather", "get_weather"]
    assert [c["function"]["arguments"] for c in calls] == [
        '{"city":"Bangkok","unit":"celsius"}',
        '{"city":"Chiang Mai","unit":"celsius"}',
    ]
    assert all(c["id"].startswith("call_") and c["type"] == "function" for c in calls)


async def test_usage_chunk_cassette(holy_mock_factory, make_client, transport):
    client = make_client(holy_mock_factory(speed=0), transport=transport)
    async with client.stream(
        "Summarise the benefits of streaming responses in one paragraph."
    ) as s:
        deltas = await collect(s)
    assert s.usage == {"prompt_tokens": 21, "completion_tokens": 98, "total_tokens": 119}
    # tokens come from usage when present, not from the chunk count
    assert s.stats.tokens == 98 and len(deltas) != 0
    assert s.stats.tokens_per_s is None or s.stats.tokens_per_s > 0


async def test_complete_and_models(holy_mock, make_client):
    client = make_client(holy_mock)
    result = await client.complete(PROMPT, max_tokens=7)
    assert result.text and result.finish_reason == "length"
    assert result.usage is not None and result.usage["completion_tokens"] == 7
    assert result.stats.tokens == 7 and result.model == "deepseek-v3.2"
    models = await client.models()
    assert {"gpt-4.1", "claude-sonnet-4.5", "gemini-2.5-flash", "deepseek-v3.2"} <= set(models)
