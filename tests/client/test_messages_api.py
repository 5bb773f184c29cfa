"""The Anthropic Messages API over a real loopback server that plays the documentation's example
streams verbatim: text with a ``ping`` mid-stream, tool use with ``input_json_delta`` split across
many events, extended thinking with ``signature_delta``; requests, history, non-streamed replies,
model listing, errors, faults, timeouts, cancel and retries."""

from __future__ import annotations

import asyncio
import json

import pytest
from client_helpers import KEY, WEATHER_TOOLS, collect, script
from doc_streams import ANTHROPIC_BASIC

from holynb import (
    APIStatusError,
    AsyncClient,
    AuthenticationError,
    Client,
    ConfigError,
    ContentDelta,
    MalformedChunkError,
    ReasoningDelta,
    StreamInterrupted,
    StreamTimeout,
    ToolCallDelta,
)

STORY = "In a shimmering forest under a sky full of stars,"


@pytest.fixture
async def claude(api_server):
    async with AsyncClient(base_url=api_server.url, api_key=KEY, api="messages",
                           model="claude-sonnet-4-5") as client:
        yield client


async def test_basic_stream_with_ping(api_server, claude):
    async with claude.stream("Hello", extra_headers=script("basic")) as s:
        assert await collect(s) == ["Hello", "!"]
    assert s.text == "Hello!" and s.done and s.api == "messages"
    assert s.finish_reason == "stop" and s.raw_finish_reason == "end_turn"
    assert s.usage == {"prompt_tokens": 25, "completion_tokens": 15, "total_tokens": 40}
    assert s.raw_usage == {"input_tokens": 25, "output_tokens": 15}
    assert s.model == "claude-sonnet-4-5-20250929"
    assert s.stats.chunks == ANTHROPIC_BASIC.count("event: ") and s.stats.tokens == 15
    (seen,) = api_server.seen
    assert seen["path"] == "/v1/messages" and seen["headers"]["x-api-key"] == KEY
    assert seen["headers"]["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in seen["headers"]
    assert seen["body"] == {"model": "claude-sonnet-4-5", "max_tokens": 4096, "stream": True,
                            "messages": [{"role": "user", "content": "Hello"}]}


async def test_tool_use_fragments_and_events(claude):
    async with claude.stream("Weather in SF?", tools=WEATHER_TOOLS,
                             extra_headers=script("tool")) as s:
        events = [e async for e in s.events()]
    text = "Okay, let's check the weather for San Francisco, CA:"
    assert "".join(e.text for e in events if isinstance(e, ContentDelta)) == text
    calls = [e for e in events if isinstance(e, ToolCallDelta)]
    assert calls[0] == ToolCallDelta(0, "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather", "")
    assert all(c.index == 0 and c.id is None and c.name is None for c in calls[1:])
    assert len(calls) == 9  # the empty partial_json is no fragment
    arguments = '{"location": "San Francisco, CA", "unit": "fahrenheit"}'
    assert "".join(c.arguments for c in calls) == arguments
    assert s.tool_calls == [{"id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "type": "function",
                             "function": {"name": "get_weather", "arguments": arguments}}]
    assert s.finish_reason == "tool_calls" and s.raw_finish_reason == "tool_use"
    assert s.usage["prompt_tokens"] == 472 and s.usage["completion_tokens"] == 89
    assert s.message == {"role": "assistant", "content": text, "tool_calls": s.tool_calls}


async def test_thinking_with_signature(claude):
    async with claude.stream("What is 27 * 453?", extra_headers=script("thinking")) as s:
        events = [e async for e in s.events()]
    assert [e.type for e in events] == ["reasoning"] * 6 + ["content"]
    assert s.reasoning.startswith("Let me solve this step by step:\n\n1. First break down")
    assert s.reasoning.endswith("6. 10,800 + 1,350 + 81 = 12,231")
    assert events[0] == ReasoningDelta("Let me solve this step by step:\n\n1. First break down "
                                       "27 * 453")
    assert s.text == "27 * 453 = 12,231" and s.usage is None
    assert s.stats.ttfr_s is not None and s.stats.reasoning_tokens == 6
    assert s.stats.ttfr_s <= s.stats.ttft_s
    assert s.message["thinking_blocks"] == [{
        "type": "thinking", "thinking": s.reasoning,
        "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds..."}]


async def test_conversation_with_thinking_and_tool_calls_is_sent_back(api_server, claude):
    async with claude.stream("What is 27 * 453?", extra_headers=script("thinking")) as s:
        await collect(s)
    thinking_turn = s.message
    async with claude.stream("Weather?", tools=WEATHER_TOOLS, extra_headers=script("tool")) as s:
        await collect(s)
    history = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 27 * 453?"},
        thinking_turn,
        {"role": "user", "content": [{"type": "text", "text": "And the weather?"},
                                     {"type": "image_url",
                                      "image_url": {"url": "data:image/png;base64,iVBORw0"}}]},
        s.message,
        {"role": "tool", "tool_call_id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "content": "15 C"},
        {"role": "user", "content": "Thanks"},
    ]
    async with claude.stream(history, tools=WEATHER_TOOLS, tool_choice="required", stop="END",
                             temperature=0.2, max_tokens=100,
                             extra_headers=script("basic")) as done:
        await collect(done)
    body = api_server.seen[-1]["body"]
    assert body["system"] == "Be brief." and body["max_tokens"] == 100
    assert body["stop_sequences"] == ["END"] and body["temperature"] == 0.2
    assert body["tools"] == [{"name": "get_weather",
                              "input_schema": {"type": "object", "properties": {}}}]
    assert body["tool_choice"] == {"type": "any"}
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user", "assistant",
                                                     "user"]
    assert body["messages"][1]["content"] == [
        thinking_turn["thinking_blocks"][0], {"type": "text", "text": "27 * 453 = 12,231"}]
    assert body["messages"][2]["content"][1] == {
        "type": "image", "source": {"type": "base64", "media_type": "image/png",
                                    "data": "iVBORw0"}}
    assert body["messages"][3]["content"][-1] == {
        "type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "get_weather",
        "input": {"location": "San Francisco, CA", "unit": "fahrenheit"}}
    assert body["messages"][4]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
         "content": "15 C"},
        {"type": "text", "text": "Thanks"}]


async def test_parallel_tool_calls_off_and_named_tool_choice(api_server, claude):
    choice = {"type": "function", "function": {"name": "get_weather"}}
    await claude.complete("Hi", tools=WEATHER_TOOLS, tool_choice=choice,
                          parallel_tool_calls=False, extra_headers=script("basic"))
    body = api_server.seen[-1]["body"]
    assert body["tool_choice"] == {"type": "tool", "name": "get_weather",
                                   "disable_parallel_tool_use": True}
    assert "parallel_tool_calls" not in body and "stream" not in body
    with pytest.raises(ConfigError, match="tool_choice='sometimes'"):
        claude.stream("Hi", tools=WEATHER_TOOLS, tool_choice="sometimes")
    with pytest.raises(ConfigError, match="not a JSON object"):
        claude.stream([{"role": "assistant", "tool_calls": [
            {"id": "t1", "function": {"name": "f", "arguments": "{broken"}}]}])


async def test_complete_text_and_tool_use(claude):
    reply = await claude.complete("Hello", extra_headers=script("basic"))
    assert reply.text == "Hi! My name is Claude." and reply.finish_reason == "stop"
    assert reply.raw_finish_reason == "end_turn" and reply.model == "claude-3-7-sonnet-20250219"
    assert reply.usage == {"prompt_tokens": 2095, "completion_tokens": 503, "total_tokens": 2598}
    assert reply.stats.completion_tokens == 503 and reply.raw["id"].startswith("msg_")
    reply = await claude.complete("Weather?", tools=WEATHER_TOOLS, extra_headers=script("tool"))
    assert reply.finish_reason == "tool_calls" and reply.usage is None
    assert reply.tool_calls == [{"id": "toolu_01A09q90qw90lq917835lq9", "type": "function",
                                 "function": {"name": "get_weather", "arguments":
                                              '{"location":"San Francisco, CA","unit":"celsius"}'}}]
    assert reply.message["tool_calls"] == reply.tool_calls


async def test_models_follow_the_pages(api_server, claude):
    assert await claude.models() == ["claude-opus-4", "claude-sonnet-4", "claude-haiku-4"]
    pages = [r for r in api_server.seen if r["path"] == "/v1/models"]
    assert len(pages) == 2 and all(r["headers"]["x-api-key"] == KEY for r in pages)


async def test_401_is_an_authentication_error(api_server):
    async with AsyncClient(base_url=api_server.url, api_key="sk-wrong-key-0000", api="messages",
                           max_retries=3) as client:
        with pytest.raises(AuthenticationError) as info:
            async with client.stream("Hi") as s:
                await collect(s)
        assert info.value.status_code == 401 and "invalid x-api-key" in info.value.message
        assert info.value.error_type == "authentication_error" and len(api_server.seen) == 1
        error: BaseException | None = info.value
        while error is not None:  # the x-api-key header is in no error of the chain
            assert "sk-wrong-key-0000" not in repr(error) + str(error)
            error = error.__cause__ or error.__context__
        with pytest.raises(AuthenticationError):
            await client.models()


async def test_429_retry_after_is_honoured(claude):
    seen = []
    async with claude.stream("Hi", on_retry=seen.append, extra_headers=script(
            "basic", "status:code=429,retry_after=0.05", times=1)) as s:
        assert "".join(await collect(s)) == "Hello!"
    assert s.stats.retries == 1 and [e.reason for e in seen] == ["rate limited"]
    assert seen[0].delay_s == pytest.approx(0.05)


async def test_529_overloaded_is_retried_before_the_first_token(api_server, claude):
    async with claude.stream("Hi", extra_headers=script("basic", "status:code=529",
                                                        times=1)) as s:
        assert s.text == "" and "".join(await collect(s)) == "Hello!"
    assert s.stats.retries == 1
    with pytest.raises(APIStatusError) as info:
        async with claude.stream("Hi", max_retries=1, extra_headers=script("overloaded")) as s:
            await collect(s)
    assert info.value.status_code == 529 and info.value.error_type == "overloaded_error"
    assert "Overloaded" in info.value.message and s.stats.retries == 1
    assert [r["headers"].get("X-Script") for r in api_server.seen[-2:]] == ["overloaded"] * 2


async def test_error_event_mid_stream_keeps_the_partial_text(api_server, claude):
    with pytest.raises(APIStatusError) as info:
        async with claude.stream("Hi", extra_headers=script("story", "error:at=13")) as s:
            await collect(s)
    assert info.value.status_code == 529 and "Overloaded" in info.value.message
    assert info.value.partial_text == s.text and s.text.startswith(STORY)
    assert len(api_server.seen) == 1


async def test_cut_stream_before_and_after_the_first_token(api_server, claude):
    async with claude.stream("Hi", extra_headers=script("story", "cut:after=2", times=1)) as s:
        text = "".join(await collect(s))
    assert text.startswith(STORY) and s.stats.retries == 1
    with pytest.raises(StreamInterrupted) as info:
        async with claude.stream("Hi", extra_headers=script("story", "cut:after=13")) as s:
            await collect(s)
    assert info.value.partial_text.startswith(STORY) and s.stats.retries == 0
    with pytest.raises(StreamInterrupted, match="closed the stream early.*no message_stop"):
        async with claude.stream("Hi", extra_headers=script("story", "end:after=13")) as s:
            await collect(s)


async def test_malformed_event(claude):
    with pytest.raises(MalformedChunkError) as info:
        async with claude.stream("Hi", extra_headers=script("story", "malformed:at=5")) as s:
            await collect(s)
    assert info.value.partial_text == "In a " and "response.output_te" in info.value.raw
    async with claude.stream("Hi", skip_malformed=True,
                             extra_headers=script("story", "malformed:at=5")) as s:
        await collect(s)
    assert s.done and s.stats.skipped_chunks == 1 and "shimmering" not in s.text


async def test_pings_are_not_a_first_token(claude):
    with pytest.raises(StreamTimeout) as info:
        async with claude.stream("Hi", first_token_timeout=0.5,
                                 extra_headers=script("basic", "pings:ms=20")) as s:
            await collect(s)
    assert info.value.phase == "first_token" and s.stats.chunks >= 2


async def test_idle_timeout_keeps_the_partial_text(claude):
    with pytest.raises(StreamTimeout) as info:
        async with claude.stream("Hi", idle_timeout=0.5,
                                 extra_headers=script("story", "stall:after=8")) as s:
            await collect(s)
    assert info.value.phase == "idle" and info.value.partial_text == "In a shimmering forest under "


async def test_leaving_early_closes_the_upstream(api_server, claude):
    async with claude.stream("Hi", extra_headers=script("story", "gap:ms=20")) as s:
        async for _ in s:
            if len(s.text) > 10:
                break
    for _ in range(200):
        if api_server.left:
            break
        await asyncio.sleep(0.01)
    assert api_server.left == ["/v1/messages"] and not s.done


async def test_no_websocket_mode(api_server):
    with pytest.raises(ConfigError, match="no WebSocket mode"):
        AsyncClient(base_url=api_server.url, api_key=KEY, api="messages", transport="ws")
    async with AsyncClient(base_url=api_server.url, api_key=KEY, transport="ws") as client:
        with pytest.raises(ConfigError, match="no WebSocket mode"):
            client.stream("Hi", api="messages")
        # A one-shot JSON request has no transport to refuse.
        reply = await client.complete("Hi", api="messages", extra_headers=script("basic"))
        assert reply.text == "Hi! My name is Claude."


def test_sync_client_and_env(monkeypatch, upstream_sync_api):
    monkeypatch.setenv("HOLYNB_API", "messages")
    with Client(base_url=upstream_sync_api, api_key=KEY) as client:
        assert client.api == "messages"
        with client.stream("Hello", extra_headers=script("tool")) as s:
            text = "".join(s)
        assert text.endswith("CA:") and s.api == "messages"
        assert json.loads(s.message["tool_calls"][0]["function"]["arguments"])["unit"] == \
            "fahrenheit"
        assert s.raw_finish_reason == "tool_use" and s.raw_usage["output_tokens"] == 89
        assert client.models() == ["claude-opus-4", "claude-sonnet-4", "claude-haiku-4"]
