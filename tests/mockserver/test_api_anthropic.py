"""Anthropic Messages against the mock: the official anthropic SDK (``messages.create``,
``messages.stream``, tool use, thinking, its error types) and the raw wire."""

from __future__ import annotations

import json

import anthropic
import pytest
from mockutil import raw_request

from mockserver import MOCK_KEY, MockServer

HEADERS = {"x-api-key": MOCK_KEY, "anthropic-version": "2023-06-01", "Authorization": ""}
HI = [{"role": "user", "content": "Say something"}]


def client(mock: MockServer, **headers: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=mock.base_url, api_key=MOCK_KEY, max_retries=0,
                               default_headers=headers or None)


def events(body: bytes) -> list[tuple[str, dict]]:
    out = []
    for block in body.decode().split("\n\n"):
        if block.strip():
            lines = dict(line.split(": ", 1) for line in block.split("\n"))
            out.append((lines["event"], json.loads(lines["data"])))
    return out


def test_sdk_create_and_stream_agree(holy_mock: MockServer) -> None:
    with client(holy_mock) as c:
        whole = c.messages.create(model="claude-sonnet-4.5", max_tokens=24, messages=HI)
        with c.messages.stream(model="claude-sonnet-4.5", max_tokens=24, messages=HI) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
    assert whole.id.startswith("msg_") and whole.type == "message" and whole.role == "assistant"
    assert whole.content[0].text == text == final.content[0].text
    assert whole.stop_reason == final.stop_reason == "max_tokens"
    assert final.usage.output_tokens == 24 and final.usage.input_tokens == whole.usage.input_tokens


@pytest.mark.parametrize(
    ("max_tokens", "headers", "tokens", "stop_reason"),
    [
        (4096, {}, 64, "end_turn"),  # the required budget does not make the answer long
        (20, {}, 20, "max_tokens"),  # a budget below the answer's length cuts it
        (4096, {"X-Mock-Tokens": "150"}, 150, "end_turn"),  # the length asked of the mock
        (100, {"X-Mock-Tokens": "150"}, 100, "max_tokens"),
    ],
)
def test_max_tokens_is_a_budget(
    holy_mock: MockServer, max_tokens: int, headers: dict, tokens: int, stop_reason: str
) -> None:
    with client(holy_mock, **headers) as c:
        whole = c.messages.create(model="claude-sonnet-4.5", max_tokens=max_tokens, messages=HI)
    assert whole.usage.output_tokens == tokens and whole.stop_reason == stop_reason


def test_sdk_thinking_blocks(holy_mock: MockServer) -> None:
    with client(holy_mock, **{"X-Mock-Reasoning": "6"}) as c, c.messages.stream(
            model="claude-sonnet-4.5", max_tokens=10, messages=HI,
            thinking={"type": "enabled", "budget_tokens": 1024}) as stream:
        kinds = [(e.type, getattr(getattr(e, "delta", None), "type", None)) for e in stream]
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].thinking and final.content[0].signature
    assert kinds.count(("content_block_delta", "thinking_delta")) == 6
    assert ("content_block_delta", "signature_delta") in kinds


def test_sdk_tool_use_from_the_tool_calls_cassette(holy_mock: MockServer) -> None:
    tools = [{"name": "get_weather", "description": "Weather for a city",
              "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    prompt = [{"role": "user",
               "content": "What is the weather in Bangkok and Chiang Mai right now?"}]
    with client(holy_mock) as c:
        with c.messages.stream(model="claude-sonnet-4.5", max_tokens=200, messages=prompt,
                               tools=tools) as stream:
            partial = [e.delta.partial_json for e in stream if e.type == "content_block_delta"]
            final = stream.get_final_message()
        whole = c.messages.create(model="claude-sonnet-4.5", max_tokens=200, messages=prompt,
                                  tools=tools)
    assert final.stop_reason == whole.stop_reason == "tool_use"
    uses = [b for b in final.content if b.type == "tool_use"]
    assert [u.input["city"] for u in uses] == ["Bangkok", "Chiang Mai"]
    assert uses[0].id.startswith("toolu_") and uses[0].name == "get_weather"
    assert len(partial) > 4  # the arguments arrive in fragments
    assert [b.input for b in whole.content] == [u.input for u in uses]


@pytest.mark.parametrize(("fault", "exc"), [
    ("status:code=429,retry_after=1", anthropic.RateLimitError),
    ("status:code=529", anthropic.OverloadedError),
    ("status:code=401", anthropic.AuthenticationError),
    ("status:code=500", anthropic.InternalServerError),
])
def test_sdk_raises_its_error_types(holy_mock: MockServer, fault: str, exc: type) -> None:
    with client(holy_mock, **{"X-Mock-Fault": fault}) as c, pytest.raises(exc) as info:
        c.messages.create(model="claude-sonnet-4.5", max_tokens=5, messages=HI, stream=True)
    body = info.value.body
    assert body["type"] == "error" and body["error"]["type"] in (
        "rate_limit_error", "overloaded_error", "authentication_error", "api_error")


def test_sdk_raises_on_an_error_event_mid_stream(holy_mock: MockServer) -> None:
    with client(holy_mock, **{"X-Mock-Fault": "error-event:at=5,code=529"}) as c:
        with pytest.raises(anthropic.APIStatusError) as info, c.messages.stream(
                model="claude-sonnet-4.5", max_tokens=20, messages=HI) as stream:
            for _ in stream.text_stream:
                pass
    assert info.value.body["error"]["type"] == "overloaded_error"


def test_sdk_authentication(holy_mock_factory) -> None:
    mock = holy_mock_factory(keys="sk-ant-good-key-123")
    with anthropic.Anthropic(base_url=mock.base_url, api_key="sk-ant-wrong-key-00",
                             max_retries=0) as c, pytest.raises(anthropic.AuthenticationError):
        c.messages.create(model="claude-sonnet-4.5", max_tokens=5, messages=HI)
    assert "wrong" not in json.dumps(mock.journal())


def test_wire_event_order(holy_mock: MockServer) -> None:
    r = raw_request(holy_mock.url, "/v1/messages",
                    {"model": "claude-sonnet-4.5", "max_tokens": 3, "stream": True,
                     "messages": HI}, headers={**HEADERS, "X-Mock-Reasoning": "2"})
    assert r.status == 200 and r.complete and b"[DONE]" not in r.body
    seen = events(r.body)
    assert all(name == data["type"] for name, data in seen)
    names = [(n, d.get("index"), (d.get("delta") or {}).get("type")) for n, d in seen]
    assert names == [
        ("message_start", None, None),
        ("content_block_start", 0, None), ("ping", None, None),
        ("content_block_delta", 0, "thinking_delta"), ("content_block_delta", 0, "thinking_delta"),
        ("content_block_delta", 0, "signature_delta"), ("content_block_stop", 0, None),
        ("content_block_start", 1, None),
        *[("content_block_delta", 1, "text_delta")] * 3,
        ("content_block_stop", 1, None),
        ("message_delta", None, None), ("message_stop", None, None),
    ]
    start, delta = seen[0][1]["message"], seen[-2][1]
    assert start["content"] == [] and start["stop_reason"] is None
    assert delta["delta"] == {"stop_reason": "max_tokens", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] == 5  # cumulative: thinking + text
    assert delta["usage"]["input_tokens"] == start["usage"]["input_tokens"]


@pytest.mark.parametrize(("headers", "body", "status", "kind"), [
    ({**HEADERS, "anthropic-version": ""}, {"model": "m", "max_tokens": 1, "messages": HI},
     400, "invalid_request_error"),
    (HEADERS, {"model": "claude-sonnet-4.5", "messages": HI}, 400, "invalid_request_error"),
    ({**HEADERS, "x-api-key": ""}, {"model": "claude-sonnet-4.5", "max_tokens": 1,
                                    "messages": HI}, 401, "authentication_error"),
    (HEADERS, {"model": "nope", "max_tokens": 1, "messages": HI}, 404, "not_found_error"),
])
def test_errors_in_anthropic_shape(holy_mock: MockServer, headers: dict, body: dict,
                                   status: int, kind: str) -> None:
    r = raw_request(holy_mock.url, "/v1/messages", body, headers=headers)
    assert r.status == status
    doc = r.json()
    assert doc["type"] == "error" and doc["error"]["type"] == kind
    assert doc["request_id"].startswith("req_")


def test_models_in_anthropic_shape(holy_mock: MockServer) -> None:
    with client(holy_mock) as c:
        ids = [m.id for m in c.models.list()]
    assert "claude-sonnet-4.5" in ids
    r = raw_request(holy_mock.url, "/v1/models", method="GET")
    assert r.json()["object"] == "list"  # without Anthropic headers: OpenAI's shape
