"""Reasoning streams (DeepSeek's delta.reasoning_content, OpenRouter/vLLM's delta.reasoning),
typed events, and reasoning as activity for the timeouts — over SSE and WebSocket."""

from __future__ import annotations

import pytest
from client_helpers import KEY, PROMPT, WEATHER_PROMPT, WEATHER_TOOLS, collect

from holynb import (
    APIStatusError,
    AsyncClient,
    Client,
    ConfigError,
    ContentDelta,
    ReasoningDelta,
    ToolCallDelta,
)


def controls(reasoning: int, field: str = "reasoning_content", gap_ms: int = 0) -> dict[str, str]:
    return {"X-Reasoning": str(reasoning), "X-Field": field, "X-Gap-Ms": str(gap_ms)}


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
async def test_reasoning_then_content(upstream, transport, field):
    up = await upstream()
    async with AsyncClient(base_url=up.url, api_key=KEY, transport=transport) as client:
        async with client.stream(PROMPT, extra_headers=controls(4, field)) as s:
            deltas = await collect(s)
    assert deltas == ["The ", "answer ", "is 42."]  # plain iteration: the answer only
    assert s.reasoning == "think0 think1 think2 think3 " and s.text == "The answer is 42."
    st = s.stats
    assert st.reasoning_tokens == 4  # from usage.completion_tokens_details
    assert st.ttfr_s is not None and st.ttft_s is not None and st.ttfr_s <= st.ttft_s
    assert st.reasoning_s is not None and st.reasoning_s >= 0
    assert st.tokens == 7 and len(st.itl_s) == 2  # ITL is between content chunks


async def test_events_are_typed_and_in_wire_order(upstream, transport):
    up = await upstream()
    async with AsyncClient(base_url=up.url, api_key=KEY, transport=transport) as client:
        async with client.stream(PROMPT, extra_headers=controls(2)) as s:
            events = [event async for event in s.events()]
    assert events == [
        ReasoningDelta("think0 "),
        ReasoningDelta("think1 "),
        ContentDelta("The "),
        ContentDelta("answer "),
        ContentDelta("is 42."),
    ]
    assert [e.type for e in events] == ["reasoning"] * 2 + ["content"] * 3
    assert s.done and s.reasoning == "think0 think1 " and s.text == "The answer is 42."


async def test_next_events_batches_and_one_way_of_reading(upstream, transport):
    up = await upstream()
    async with AsyncClient(base_url=up.url, api_key=KEY, transport=transport) as client:
        async with client.stream(PROMPT, extra_headers=controls(3)) as s:
            got = []
            while batch := await s.next_events():
                got += batch
            assert await s.next_events() == []
            with pytest.raises(ConfigError, match="one way"):
                await s.next_deltas()
        assert [type(e) for e in got] == [ReasoningDelta] * 3 + [ContentDelta] * 3
        async with client.stream(PROMPT) as s:
            await s.next_deltas()
            with pytest.raises(ConfigError, match="one way"):
                s.events()


async def test_reasoning_counts_as_activity_for_timeouts(upstream, transport):
    # 12 thinking chunks 60 ms apart: ~0.7 s before the first content, with first-token and
    # idle timeouts of 0.4 s. Data is flowing: no timeout.
    up = await upstream()
    async with AsyncClient(base_url=up.url, api_key=KEY, transport=transport,
                           first_token_timeout=0.4, idle_timeout=0.4, max_retries=0) as client:
        async with client.stream(PROMPT, extra_headers=controls(12, gap_ms=60)) as s:
            assert await collect(s) == ["The ", "answer ", "is 42."]
    assert s.done and s.stats.ttft_s > 0.4 and s.stats.reasoning_tokens == 12


def test_sync_stream_events_and_reasoning(upstream_sync):
    with Client(base_url=upstream_sync, api_key=KEY) as client:
        with client.stream(PROMPT, extra_headers=controls(2)) as s:
            events = list(s.events())
        assert [e.type for e in events] == ["reasoning", "reasoning", "content", "content",
                                            "content"]
        assert s.reasoning == "think0 think1 "
        result = client.complete(PROMPT, extra_headers=controls(1))
        assert result.reasoning == "thinking" and result.text == "The answer is 42."


async def test_ws_close_1009_is_request_too_large(upstream):
    up = await upstream(max_msg=1000)
    async with AsyncClient(base_url=up.url, api_key=KEY, transport="ws",
                           max_retries=3) as client:
        s = client.stream("x" * 5000)
        with pytest.raises(APIStatusError) as info:
            async with s:
                await collect(s)
    assert info.value.status_code == 413 and "1009" in info.value.message
    assert "too large" in info.value.message and s.stats.retries == 0
    assert len([r for r in up.seen if r["path"] == "/v1/ws/chat"]) == 1


async def test_tool_call_events(holy_mock_factory, make_client, transport):
    client = make_client(holy_mock_factory(speed=0), transport=transport)
    async with client.stream(WEATHER_PROMPT, tools=WEATHER_TOOLS) as s:
        events = [e async for e in s.events()]
    assert events and all(isinstance(e, ToolCallDelta) for e in events)
    firsts = [e for e in events if e.id is not None]
    assert [(e.index, e.name) for e in firsts] == [(0, "get_weather"), (1, "get_weather")]
    for index, call in enumerate(s.tool_calls):
        assert "".join(e.arguments for e in events if e.index == index) == (
            call["function"]["arguments"]
        )
