"""The Responses and Messages API modules on plain payloads: servers that send no deltas, usage
normalisation, finish reasons, blocks kept for the next turn, configuration of ``api=``."""

from __future__ import annotations

import json

import pytest

from holynb import AsyncClient, ConfigError
from holynb._apis.messages import MessagesParser, normalize_usage
from holynb._apis.responses import ResponsesParser
from holynb._config import configure, resolve_api
from holynb._stats import StreamStats
from holynb.sse import ServerSentEvent


def responses() -> ResponsesParser:
    return ResponsesParser(StreamStats(), t0=0.0, skip_malformed=False, secrets=())


def messages() -> MessagesParser:
    return MessagesParser(StreamStats(), t0=0.0, skip_malformed=False, secrets=())


def test_responses_server_without_deltas_still_delivers_the_reply():
    p = responses()
    p.want_events()
    completed = {"type": "response.completed", "response": {
        "status": "completed", "model": "m",
        "output": [
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text",
                                                             "text": "think"}]},
            {"type": "message", "content": [{"type": "output_text", "text": "Hello "}]},
            {"type": "message", "content": [{"type": "output_text", "text": "again"}]},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        ],
        "usage": {"input_tokens": 3, "output_tokens": 5, "total_tokens": 8,
                  "input_tokens_details": {"cached_tokens": 2},
                  "output_tokens_details": {"reasoning_tokens": 4}}}}
    assert p.feed_ws([json.dumps(completed), "ignored after the end"], 1.0) == ["Hello ", "again"]
    assert p.done and p.reasoning_parts == ["think"] and p.finish_reason == "tool_calls"
    assert [e.type for e in p.events] == ["reasoning", "content", "content", "tool_call",
                                          "tool_call"]
    assert p.tools.result()[0]["function"] == {"name": "f", "arguments": "{}"}
    assert p.usage == {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8,
                       "completion_tokens_details": {"reasoning_tokens": 4},
                       "prompt_tokens_details": {"cached_tokens": 2}}
    assert p.stats.reasoning_tokens == 4 and p.blocks[0]["id"] == "rs_1"


def test_responses_chat_style_done_marker_and_summary_parts():
    p = responses()
    part = json.dumps({"type": "response.reasoning_summary_part.added", "summary_index": 1})

    def thought(text: str) -> str:
        return json.dumps({"type": "response.reasoning_summary_text.delta", "delta": text,
                           "item_id": "rs_1"})

    p.feed_ws([thought("one"), part, thought("two")], 0.5)
    assert "".join(p.reasoning_parts) == "one\n\ntwo"
    events = [ServerSentEvent("response.output_text.delta",
                              json.dumps({"type": "response.output_text.delta", "delta": "x"})),
              ServerSentEvent(data="[DONE]")]
    assert p.feed_sse(events, 1.0) == ["x"] and p.done


def test_responses_error_forms():
    p = responses()
    ws_form = {"type": "error", "status": 429, "error": {
        "type": "requests", "code": "rate_limit_exceeded", "message": "slow down",
        "headers": {"Retry-After": "2"}}}
    p.feed_ws([json.dumps(ws_form)], 1.0)
    assert p.error.status_code == 429 and p.error.retry_after == 2.0
    p = responses()
    p.feed_sse([ServerSentEvent("error", "upstream exploded")], 1.0)
    assert "upstream exploded" in p.error.message


def test_messages_usage_with_cache_and_thinking_tokens():
    raw = {"input_tokens": 10, "cache_creation_input_tokens": 5, "cache_read_input_tokens": 100,
           "output_tokens": 40, "output_tokens_details": {"thinking_tokens": 30}}
    assert normalize_usage(raw) == {
        "prompt_tokens": 115, "completion_tokens": 40, "total_tokens": 155,
        "prompt_tokens_details": {"cached_tokens": 100},
        "completion_tokens_details": {"reasoning_tokens": 30}}


def sse(obj: dict) -> ServerSentEvent:
    return ServerSentEvent(obj["type"], json.dumps(obj))


def test_messages_usage_merges_and_stop_reasons_map():
    p = messages()
    p.feed_sse([
        sse({"type": "message_start", "message": {"model": "claude", "usage": {
            "input_tokens": 7, "cache_read_input_tokens": 3, "output_tokens": 1}}}),
        sse({"type": "message_delta", "delta": {"stop_reason": "max_tokens"},
             "usage": {"output_tokens": 20, "cache_read_input_tokens": None}}),
        sse({"type": "message_stop"}),
    ], 1.0)
    assert p.raw_usage == {"input_tokens": 7, "cache_read_input_tokens": 3, "output_tokens": 20}
    assert p.usage["prompt_tokens"] == 10 and p.stats.completion_tokens == 20
    assert (p.finish_reason, p.raw_finish_reason, p.done) == ("length", "max_tokens", True)
    p = messages()
    p.feed_sse([sse({"type": "message_delta", "delta": {"stop_reason": "pause_turn"}})], 1.0)
    assert p.finish_reason == "pause_turn"


def test_messages_tool_input_given_whole_and_redacted_thinking():
    p = messages()
    p.feed_sse([
        sse({"type": "content_block_start", "index": 0,
             "content_block": {"type": "redacted_thinking", "data": "EmwKAhgB"}}),
        sse({"type": "content_block_start", "index": 1, "content_block": {
            "type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}}),
        sse({"type": "content_block_stop", "index": 1}),
        sse({"type": "content_block_start", "index": 2, "content_block": {
            "type": "tool_use", "id": "t2", "name": "g", "input": {}}}),
        sse({"type": "content_block_stop", "index": 2}),
    ], 1.0)
    assert [c["function"]["arguments"] for c in p.tools.result()] == ['{"a":1}', "{}"]
    assert p.blocks == [{"type": "redacted_thinking", "data": "EmwKAhgB"}]


def test_api_setting_precedence(monkeypatch):
    assert resolve_api() == "chat"
    monkeypatch.setenv("HOLYNB_API", "Responses")
    assert resolve_api() == "responses"
    configure(api="messages")
    assert resolve_api() == "messages" and resolve_api("chat") == "chat"
    with pytest.raises(ConfigError, match="Unknown API 'gemini'.*HOLYNB_API"):
        resolve_api("gemini")


async def test_client_api_option_and_repr():
    async with AsyncClient(base_url="http://127.0.0.1:9/v1", api_key="sk-x-0123456789",
                           api="responses") as client:
        assert client.api == "responses" and "api='responses'" in repr(client)
        stream = client.stream("Hi", api="messages", max_tokens=5)
        assert stream.api == "messages" and "api='messages'" in repr(stream)
        with pytest.raises(ConfigError, match="Unknown API"):
            client.stream("Hi", api="bogus")
