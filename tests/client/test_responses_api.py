"""The OpenAI Responses API over SSE and its WebSocket mode, against a real loopback server that
plays the API reference's event examples verbatim (``sequence_number`` on every event,
pretty-printed JSON as multi-line SSE data) and the function-calling guide's streamed
``response.function_call_arguments.delta`` events; requests, history, non-streamed replies,
errors (``response.failed``, ``error``), faults, timeouts, cancel and retries."""

from __future__ import annotations

import asyncio

import pytest
from client_helpers import KEY, WEATHER_TOOLS, collect, script
from doc_streams import SUMMARY, UNICORN

from holynb import (
    APIStatusError,
    AsyncClient,
    AuthenticationError,
    Client,
    ContentDelta,
    MalformedChunkError,
    RateLimitError,
    ReasoningDelta,
    StreamInterrupted,
    StreamTimeout,
    ToolCallDelta,
)

ARGUMENTS = '{"location":"Paris, France"}'


@pytest.fixture
async def gpt(api_server, transport):
    async with AsyncClient(base_url=api_server.url, api_key=KEY, api="responses",
                           transport=transport, model="gpt-4.1") as client:
        yield client


async def test_reference_text_stream(api_server, gpt, transport):
    async with gpt.stream("Tell me a story", extra_headers=script("text")) as s:
        assert await collect(s) == ["In"]
    assert s.done and s.api == "responses" and s.transport == transport
    assert s.finish_reason == "stop" and s.raw_finish_reason == "completed"
    assert s.model == "gpt-4o-mini-2024-07-18"
    assert s.usage == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0,
                       "completion_tokens_details": {"reasoning_tokens": 0}}
    assert s.raw_usage["output_tokens_details"] == {"reasoning_tokens": 0}
    assert s.stats.chunks == 9
    (seen,) = api_server.seen
    assert seen["path"] == "/v1/responses" and seen["transport"] == transport
    assert seen["headers"]["Authorization"] == f"Bearer {KEY}"
    expected = {"model": "gpt-4.1", "input": [{"role": "user", "content": "Tell me a story"}]}
    if transport == "sse":
        assert seen["body"] == {**expected, "stream": True}
    else:
        assert seen["body"] == {"type": "response.create", **expected}


async def test_many_deltas(gpt):
    async with gpt.stream("Story", extra_headers=script("story")) as s:
        deltas = await collect(s)
    assert len(deltas) == len(UNICORN.split(" ")) and s.text.strip() == UNICORN
    assert s.stats.tokens == s.usage["completion_tokens"] == 0  # what the example reports


async def test_function_call_arguments_deltas(gpt):
    async with gpt.stream("Weather in Paris?", tools=WEATHER_TOOLS,
                          extra_headers=script("tool")) as s:
        events = [e async for e in s.events()]
    assert all(isinstance(e, ToolCallDelta) and e.index == 0 for e in events)
    assert events[0] == ToolCallDelta(0, "call_1234xyz", "get_weather", "")
    assert [e.arguments for e in events[1:]] == ['{"', "location", '":"', "Paris", ",",
                                                 " France", '"}']
    # response.output_item.done is authoritative (the guide's example changes the call id).
    assert s.tool_calls == [{"id": "call_2345abc", "type": "function",
                             "function": {"name": "get_weather", "arguments": ARGUMENTS}}]
    assert s.finish_reason == "tool_calls" and s.raw_finish_reason == "completed"
    assert s.text == "" and s.message == {"role": "assistant", "content": None,
                                          "tool_calls": s.tool_calls}


async def test_reasoning_summary_then_text(gpt):
    async with gpt.stream("Hello!", reasoning_effort="low",
                          extra_headers=script("reasoning")) as s:
        events = [e async for e in s.events()]
    assert events == [ReasoningDelta(SUMMARY), ContentDelta("In")]
    assert s.reasoning == SUMMARY and s.stats.reasoning_tokens == 0  # as the usage reports
    (block,) = s.message["thinking_blocks"]
    assert block["type"] == "reasoning" and block["id"].startswith("rs_")


async def test_request_conversion(api_server, gpt):
    history = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Weather?"},
                                     {"type": "image_url", "image_url": {"url": "https://x/i.png"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": ARGUMENTS}}],
         "thinking_blocks": [{"type": "reasoning", "id": "rs_1", "summary": []},
                             {"type": "thinking", "thinking": "not ours", "signature": "x"}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "15 C"},
        {"type": "item_reference", "id": "msg_9"},
    ]
    async with gpt.stream(history, tools=WEATHER_TOOLS, max_tokens=50, temperature=0.3,
                          tool_choice={"type": "function", "function": {"name": "get_weather"}},
                          reasoning_effort="high", extra_headers=script("text")) as s:
        await collect(s)
    body = api_server.seen[-1]["body"]
    assert body["instructions"] == "Be brief." and body["max_output_tokens"] == 50
    assert body["temperature"] == 0.3 and "max_tokens" not in body
    assert body["reasoning"] == {"effort": "high", "summary": "auto"}
    assert body["tools"] == [{"type": "function", "name": "get_weather",
                              "parameters": {"type": "object", "properties": {}}}]
    assert body["tool_choice"] == {"type": "function", "name": "get_weather"}
    assert body["input"] == [
        {"role": "user", "content": [{"type": "input_text", "text": "Weather?"},
                                     {"type": "input_image", "image_url": "https://x/i.png"}]},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather",
         "arguments": ARGUMENTS},
        {"type": "function_call_output", "call_id": "call_1", "output": "15 C"},
        {"type": "item_reference", "id": "msg_9"},
    ]


async def test_response_failed_mid_stream(api_server, gpt):
    with pytest.raises(APIStatusError) as info:
        async with gpt.stream("Hi", extra_headers=script("failed")) as s:
            await collect(s)
    error = info.value
    assert error.status_code == 500 and error.code == "server_error"
    assert "The model failed to generate a response." in error.message
    assert error.partial_text == "In a shimmering " == s.text and len(api_server.seen) == 1


async def test_error_event_mid_stream(gpt):
    with pytest.raises(APIStatusError) as info:
        async with gpt.stream("Hi", extra_headers=script("error")) as s:
            await collect(s)
    assert "Something went wrong" in info.value.message and info.value.code == "ERR_SOMETHING"
    assert info.value.partial_text == "In a shimmering "


async def test_incomplete_is_length(gpt):
    async with gpt.stream("Hi", extra_headers=script("incomplete")) as s:
        await collect(s)
    assert s.done and s.finish_reason == "length" and s.raw_finish_reason == "max_tokens"


async def test_reference_arguments_delta_example_is_malformed(gpt):
    # The reference's example misses a comma: a faithful client calls it malformed.
    with pytest.raises(MalformedChunkError):
        async with gpt.stream("Hi", extra_headers=script("doc-arguments-delta")) as s:
            await collect(s)
    async with gpt.stream("Hi", skip_malformed=True,
                          extra_headers=script("doc-arguments-delta")) as s:
        await collect(s)
    assert s.done and s.stats.skipped_chunks == 1 and s.tool_calls == []


async def test_rate_limit_retry_after_is_honoured(gpt):
    seen = []
    async with gpt.stream("Hi", on_retry=seen.append, extra_headers=script(
            "text", "status:code=429,retry_after=0.05", times=1)) as s:
        assert await collect(s) == ["In"]
    assert s.stats.retries == 1 and seen[0].delay_s == pytest.approx(0.05)
    with pytest.raises(RateLimitError) as info:
        async with gpt.stream("Hi", max_retries=0, extra_headers=script(
                "text", "status:code=429,retry_after=0.05")) as s:
            await collect(s)
    assert info.value.retry_after == pytest.approx(0.05)


async def test_server_error_before_the_first_token_is_retried(gpt):
    async with gpt.stream("Hi", extra_headers=script("story", "status:code=500",
                                                     times=1)) as s:
        text = "".join(await collect(s))
    assert text.strip() == UNICORN and s.stats.retries == 1


async def test_401(api_server, transport):
    async with AsyncClient(base_url=api_server.url, api_key="sk-wrong-key-0000",
                           api="responses", transport=transport) as client:
        s = client.stream("Hi")
        with pytest.raises(AuthenticationError) as info:
            async with s:
                await collect(s)
        assert info.value.status_code == 401 and s.stats.retries == 0
        assert "wrong-key" not in str(info.value) and "…0000" in info.value.hint
        if transport == "sse":  # aiohttp does not read the body of a refused WebSocket upgrade
            assert "Incorrect API key" in info.value.message


async def test_cut_stream(gpt, transport):
    async with gpt.stream("Hi", extra_headers=script("story", "cut:after=1", times=1)) as s:
        text = "".join(await collect(s))
    assert text.strip() == UNICORN and s.stats.retries == 1
    error = StreamInterrupted if transport == "sse" else APIStatusError  # WS: close code 1011
    with pytest.raises(error) as info:
        async with gpt.stream("Hi", extra_headers=script("story", "cut:after=6")) as s:
            await collect(s)
    assert info.value.partial_text == "In a shimmering forest " and s.stats.retries == 0
    if transport == "sse":
        with pytest.raises(StreamInterrupted, match="early.*no response.completed"):
            async with gpt.stream("Hi", extra_headers=script("story", "end:after=6")) as s:
                await collect(s)


async def test_malformed_event(gpt):
    with pytest.raises(MalformedChunkError) as info:
        async with gpt.stream("Hi", extra_headers=script("story", "malformed:at=4")) as s:
            await collect(s)
    assert info.value.partial_text == "In a " and "output_te" in info.value.raw


async def test_idle_timeout(gpt):
    with pytest.raises(StreamTimeout) as info:
        async with gpt.stream("Hi", idle_timeout=0.5,
                              extra_headers=script("story", "stall:after=5")) as s:
            await collect(s)
    assert info.value.phase == "idle" and info.value.partial_text == "In a shimmering "


async def test_first_token_timeout(gpt):
    with pytest.raises(StreamTimeout) as info:
        async with gpt.stream("Hi", first_token_timeout=0.5,
                              extra_headers=script("story", "stall:after=1")) as s:
            await collect(s)
    assert info.value.phase == "first_token" and s.text == ""


async def test_leaving_early_closes_the_upstream(api_server, gpt, transport):
    for _ in range(2):
        async with gpt.stream("Hi", extra_headers=script("story", "gap:ms=20")) as s:
            async for _ in s:
                if len(s.text) > 10:
                    break
        for _ in range(200):
            if api_server.left:
                break
            await asyncio.sleep(0.01)
        assert api_server.left.pop() in ("/v1/responses", "ws") and not s.done
    if transport == "ws":
        # No cancel frame in the Responses WebSocket mode: the socket is closed, never reused.
        assert len(gpt._ws["responses"]._conns) == 0


async def test_ws_connection_is_reused(api_server):
    async with AsyncClient(base_url=api_server.url, api_key=KEY, api="responses",
                           transport="ws") as client:
        for _ in range(3):
            async with client.stream("Hi", extra_headers=script("text")) as s:
                await collect(s)
        assert len(client._ws["responses"]._conns) == 1
        # An error event ends its stream but leaves the socket usable (pooled per query).
        for _ in range(2):
            with pytest.raises(APIStatusError):
                async with client.stream("Hi", extra_headers=script("error")) as s:
                    await collect(s)
        assert len(client._ws["responses"]._conns) == 2


async def test_complete_and_models(api_server):
    async with AsyncClient(base_url=api_server.url, api_key=KEY, api="responses") as client:
        reply = await client.complete("Story", extra_headers=script("text"))
        assert reply.text == UNICORN and reply.finish_reason == "stop"
        assert reply.usage["total_tokens"] == 0 and reply.stats.ttfr_s is None
        reply = await client.complete("Weather?", tools=WEATHER_TOOLS,
                                      extra_headers=script("tool"))
        assert reply.finish_reason == "tool_calls" and reply.tool_calls == [
            {"id": "call_12345xyz", "type": "function",
             "function": {"name": "get_weather", "arguments": ARGUMENTS}}]
        assert "stream" not in api_server.seen[-1]["body"]
        assert await client.models() == ["gpt-4o-mini"]
        assert api_server.seen[-1]["headers"]["Authorization"] == f"Bearer {KEY}"


def test_sync_client_per_call_api(upstream_sync_api):
    with Client(base_url=upstream_sync_api, api_key=KEY) as client:
        assert client.api == "chat"
        with client.stream("Hi", api="responses", transport="ws",
                           extra_headers=script("reasoning")) as s:
            events = list(s.events())
        assert [e.type for e in events] == ["reasoning", "content"] and s.api == "responses"
