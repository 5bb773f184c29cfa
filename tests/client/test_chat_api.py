"""The chat-completions API module on plain payloads: JSON edge cases, errors, usage, reasoning,
typed events, tool-call merging, request bodies."""

from __future__ import annotations

import json

import pytest

from holynb import APIStatusError, MalformedChunkError, RateLimitError
from holynb._apis.base import ToolCalls
from holynb._apis.chat import ChatParser
from holynb._stats import StreamStats


def chunk(content: str | None = None, **extra) -> str:
    delta = {} if content is None else {"content": content}
    return json.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": None}],
                       **extra}, separators=(",", ":"))


def parser(*, skip: bool = False) -> ChatParser:
    return ChatParser(StreamStats(), t0=0.0, skip_malformed=skip, secrets=())


@pytest.mark.parametrize(
    "payload",
    [chunk("a"), " " + chunk("a"), chunk("a") + " ", json.dumps(json.loads(chunk("a")), indent=2)],
)
def test_json_forms_are_accepted(payload):
    p = parser()
    assert p.feed_ws([payload], 1.0) == ["a"] and p.error is None


@pytest.mark.parametrize("payload", ["{", chunk("a") + "x", "[1, 2", "12 13", "null", "[]"])
def test_bad_payloads_are_malformed(payload):
    p = parser()
    assert p.feed_ws([chunk("ok"), payload, chunk("never")], 1.0) == ["ok"]
    assert isinstance(p.error, MalformedChunkError) and p.error.partial_text == "ok"
    assert p.error.raw == payload[:200]
    skipping = parser(skip=True)
    assert skipping.feed_ws([payload, chunk("b")], 1.0) == ["b"]
    assert skipping.stats.skipped_chunks == 1 and skipping.stats.chunks == 1


def test_finish_usage_done_and_stats():
    p = parser()
    finish = json.dumps({"model": "m1", "choices": [{"index": 0, "delta": {},
                                                     "finish_reason": "stop"}]})
    usage = json.dumps({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2,
                                                 "total_tokens": 5}})
    assert p.feed_ws([chunk("x"), chunk("")], 0.5) == ["x"]
    assert p.feed_ws([chunk("y"), finish, usage, "[DONE]", chunk("ignored")], 0.75) == ["y"]
    assert p.done and p.finish_reason == "stop" and p.usage["total_tokens"] == 5
    assert p.stats.ttft_s == 0.5 and p.stats.itl_s == [0.25] and p.stats.chunks == 5
    assert p.stats.completion_tokens == 2 and p.model == "m1"


def test_error_payloads_map_to_statuses():
    p = parser()
    error = json.dumps({"error": {"message": "slow down", "type": "requests",
                                  "code": "rate_limit_exceeded"}})
    assert p.feed_ws([chunk("a"), error], 1.0) == ["a"]
    assert isinstance(p.error, RateLimitError) and p.error.partial_text == "a"
    p = parser()
    p.feed_ws([json.dumps({"error": {"message": "boom", "status": 502, "retry_after": 1.5}})], 1)
    assert isinstance(p.error, APIStatusError) and p.error.status_code == 502
    assert p.error.retry_after == 1.5 and "boom" in str(p.error)


def test_tool_call_fragments_merge_by_index():
    calls = ToolCalls()
    calls.add([{"index": 1, "id": "call_b", "type": "function",
                "function": {"name": "f2", "arguments": '{"x"'}}])
    calls.add([{"index": 0, "id": "call_a", "function": {"name": "f1", "arguments": ""}}])
    calls.add([{"index": 1, "function": {"arguments": ": 1}"}},
               {"index": 0, "function": {"arguments": "{}"}}])
    assert calls.result() == [
        {"id": "call_a", "type": "function", "function": {"name": "f1", "arguments": "{}"}},
        {"id": "call_b", "type": "function", "function": {"name": "f2", "arguments": '{"x": 1}'}},
    ]


def test_reasoning_only_counts_chunks_and_times_to_the_end():
    p = parser()
    p.want_events()
    thought = json.dumps({"choices": [{"index": 0, "delta": {"reasoning": "hmm"}}]})
    assert p.feed_ws([thought, thought], 0.25) == []
    assert p.started and p.reasoning_parts == ["hmm", "hmm"]
    assert p.stats.reasoning_tokens == 2 and p.stats.ttfr_s == 0.25 and p.stats.ttft_s is None
    p.stats.finish(1.0)
    assert p.stats.reasoning_s == 0.75
    assert [e.type for e in p.events] == ["reasoning", "reasoning"]


def test_sse_events_error_event_and_other_types():
    from holynb.sse import ServerSentEvent

    p = parser()
    events = [ServerSentEvent(data=chunk("a")), ServerSentEvent("ping", "{}"),
              ServerSentEvent("error", "overloaded")]
    assert p.feed_sse(events, 1.0) == ["a"]
    assert isinstance(p.error, APIStatusError) and "overloaded" in p.error.message


def test_build_body():
    from holynb._apis.chat import build_body
    from holynb._errors import ConfigError

    body = build_body("m", "Hi", {"temperature": 0.5, "stream_options": None}, stream=True)
    assert body == {"model": "m", "messages": [{"role": "user", "content": "Hi"}],
                    "stream": True, "temperature": 0.5}
    with pytest.raises(ConfigError, match="stream="):
        build_body("m", "Hi", {"stream": False}, stream=True)
