"""OpenAI Responses against the mock: the official openai SDK (HTTP streaming and not, the
``responses.stream`` helper, WebSocket mode) and the raw wire (event order and fields)."""

from __future__ import annotations

import json

import aiohttp
import openai
import pytest
from mockutil import AUTH, raw_request

from mockserver import MOCK_KEY, MockServer


def client(mock: MockServer, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=mock.url, api_key=MOCK_KEY, max_retries=0,
                         default_headers=headers or None)


def sse_events(body: bytes) -> list[tuple[str, dict]]:
    """(event name, data) of every SSE event, checking each has both lines."""
    out = []
    for block in body.decode().split("\n\n"):
        if not block.strip():
            continue
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def test_sdk_non_streaming_matches_streaming(holy_mock: MockServer) -> None:
    with client(holy_mock) as c:
        whole = c.responses.create(model="gpt-4.1", input="Say something")
        text = "".join(e.delta for e in c.responses.create(
            model="gpt-4.1", input="Say something", stream=True)
            if e.type == "response.output_text.delta")
    assert whole.status == "completed" and whole.object == "response"
    assert whole.id.startswith("resp_") and whole.output_text == text
    assert whole.usage is not None and whole.usage.output_tokens == 64


def test_sdk_stream_helper_with_reasoning(holy_mock: MockServer) -> None:
    with client(holy_mock, **{"X-Mock-Reasoning": "5"}) as c, c.responses.stream(
            model="gpt-4.1", input="Think first") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds.count("response.reasoning_summary_text.delta") == 5
    assert kinds.index("response.reasoning_summary_text.done") < kinds.index(
        "response.output_text.delta")
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert final.usage is not None and final.usage.output_tokens_details.reasoning_tokens == 5


def test_sdk_function_call_arguments_from_the_tool_calls_cassette(holy_mock: MockServer) -> None:
    with client(holy_mock) as c, c.responses.stream(
            model="gpt-4.1", input="What is the weather in Bangkok and Chiang Mai right now?",
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "response.function_call_arguments.delta"]
        final = stream.get_final_response()
    calls = [item for item in final.output if item.type == "function_call"]
    assert [json.loads(call.arguments)["city"] for call in calls] == ["Bangkok", "Chiang Mai"]
    assert calls[0].name == "get_weather" and calls[0].call_id.startswith("call_")
    assert "".join(deltas) == calls[0].arguments + calls[1].arguments


def test_previous_response_id_continues_the_conversation(holy_mock: MockServer) -> None:
    with client(holy_mock) as c:
        first = c.responses.create(model="gpt-4.1", input="Hello")
        second = c.responses.create(model="gpt-4.1", input="And then?",
                                    previous_response_id=first.id)
        alone = c.responses.create(model="gpt-4.1", input="And then?")
        with pytest.raises(openai.BadRequestError) as info:
            c.responses.create(model="gpt-4.1", input="x", previous_response_id="resp_unknown")
    assert second.previous_response_id == first.id
    assert second.output_text != alone.output_text  # generated from the whole conversation
    assert info.value.code == "previous_response_not_found"
    request = holy_mock.journal()[1]["request"]
    assert request["previous_response_id"] == first.id


@pytest.mark.parametrize(("fault", "exc"), [
    ("status:code=429,retry_after=1", openai.RateLimitError),
    ("status:code=401", openai.AuthenticationError),
    ("status:code=503", openai.InternalServerError),
    ("status:code=529", openai.InternalServerError),
])
def test_sdk_raises_its_error_types(holy_mock: MockServer, fault: str, exc: type) -> None:
    with client(holy_mock, **{"X-Mock-Fault": fault}) as c, pytest.raises(exc):
        c.responses.create(model="gpt-4.1", input="x", stream=True)


def test_sdk_sees_error_and_failed_events_mid_stream(holy_mock: MockServer) -> None:
    with client(holy_mock, **{"X-Mock-Fault": "error-event:at=6"}) as c, c.responses.stream(
            model="gpt-4.1", input="x") as stream:
        events = list(stream)
        with pytest.raises(RuntimeError, match="response.completed"):
            stream.get_final_response()
    assert [e.type for e in events[-2:]] == ["error", "response.failed"]
    assert events[-2].code == "server_error" and events[-2].sequence_number == 5
    assert events[-1].response.status == "failed" and events[-1].response.error is not None
    assert events[-1].response.id == events[0].response.id


def test_wire_event_order_and_fields(holy_mock: MockServer) -> None:
    r = raw_request(holy_mock.url, "/v1/responses",
                    {"model": "gpt-4.1", "input": "hi", "stream": True,
                     "max_output_tokens": 16, "instructions": "Be brief."})
    assert r.status == 200 and r.complete
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.body)
    assert b"[DONE]" not in r.body
    assert all(name == data["type"] for name, data in events)
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    names = [name for name, _ in events]
    assert names[:4] == ["response.created", "response.in_progress",
                         "response.output_item.added", "response.content_part.added"]
    assert names[4:-4] == ["response.output_text.delta"] * 16
    assert names[-4:] == ["response.output_text.done", "response.content_part.done",
                          "response.output_item.done", "response.incomplete"]
    final = events[-1][1]["response"]
    assert final["status"] == "incomplete"
    assert final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["instructions"] == "Be brief." and final["max_output_tokens"] == 16
    delta = events[4][1]
    assert set(delta) == {"type", "sequence_number", "item_id", "output_index",
                          "content_index", "delta", "logprobs"}


@pytest.mark.parametrize("echo", [
    {},
    {"instructions": "Sé breve ✓ \"q\"\n", "temperature": 0, "top_p": 0.25, "user": "u-1",
     "store": False, "parallel_tool_calls": False, "truncation": "auto", "max_output_tokens": 40,
     "metadata": {"b": "é", "a": "1"}, "reasoning": {"summary": "auto", "effort": "low"},
     "text": {"verbosity": "low", "format": {"type": "text"}},
     "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
     "tool_choice": {"type": "function", "name": "f"}},
])
def test_every_payload_is_the_json_encoders_own_text(holy_mock: MockServer, echo: dict) -> None:
    """The events and the body are written as text around per-request pieces: each payload is
    byte for byte what ``json.dumps(..., ensure_ascii=False)`` writes for its value (separators,
    escaping, key order), and the response object repeats the request as it was sent."""
    body = {"model": "gpt-4.1", "input": "hi", **echo}
    headers = {"X-Mock-Reasoning": "3", "X-Mock-Tokens": "5", "X-Mock-TTFT-Ms": "0",
               "X-Mock-TPS": "0"}
    streamed = raw_request(holy_mock.url, "/v1/responses", {**body, "stream": True},
                           headers=headers)
    whole = raw_request(holy_mock.url, "/v1/responses", body, headers=headers)
    payloads = [block.split("\ndata: ", 1)[1] for block in streamed.body.decode().split("\n\n")
                if block]
    payloads.append(whole.body.decode())
    for payload in payloads:
        assert payload == json.dumps(json.loads(payload), ensure_ascii=False)
    objects = [json.loads(p) for p in payloads]
    for response in [o["response"] for o in objects[:2]] + [objects[-2]["response"], objects[-1]]:
        for name, value in echo.items():
            assert json.dumps(response[name]) == json.dumps(value)  # key order and types too
    for final in (objects[-1], objects[-2]["response"]):
        assert [item["type"] for item in final["output"]] == ["reasoning", "message"]
        assert final["usage"]["output_tokens_details"] == {"reasoning_tokens": 3}


@pytest.mark.parametrize(("body", "param"), [
    ({"input": "x"}, "model"),
    ({"model": "gpt-4.1"}, "input"),
    ({"model": "gpt-4.1", "input": "x", "max_output_tokens": 8}, "max_output_tokens"),
    ({"model": "gpt-4.1", "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
])
def test_bad_requests_name_the_field(holy_mock: MockServer, body: dict, param: str) -> None:
    r = raw_request(holy_mock.url, "/v1/responses", body)
    assert r.status == 400 and r.json()["error"]["param"] == param


# The SDK opens its sync WebSocket without a context manager, which websockets >= 17.1 flags.
@pytest.mark.filterwarnings("ignore:connect\\(\\) must be used as a context manager")
def test_sdk_websocket_mode(holy_mock: MockServer) -> None:
    with client(holy_mock) as c, c.responses.connect() as conn:
        conn.response.create(model="gpt-4.1", input="Hello", store=False)
        kinds, first = [], None
        for event in conn:
            kinds.append(event.type)
            if event.type == "response.completed":
                first = event.response
                break
        assert first is not None and kinds[0] == "response.created"
        conn.response.create(model="gpt-4.1", input="More", previous_response_id=first.id,
                             store=False)
        for event in conn:
            if event.type == "response.completed":
                assert event.response.previous_response_id == first.id
                break
        conn.response.create(model="gpt-4.1", input="x", previous_response_id="resp_gone")
        error = conn.recv()
    assert error.type == "error" and error.status == 400
    assert error.error.code == "previous_response_not_found"
    # store=false: the first response lives only on its connection
    with client(holy_mock) as c, pytest.raises(openai.BadRequestError):
        c.responses.create(model="gpt-4.1", input="x", previous_response_id=first.id)


async def test_websocket_mode_events_match_the_sse_stream(holy_mock: MockServer) -> None:
    body = {"model": "gpt-4.1", "input": "same", "max_output_tokens": 20}
    sse = raw_request(holy_mock.url, "/v1/responses", {**body, "stream": True})
    url = holy_mock.url.replace("http://", "ws://") + "/responses"
    async with aiohttp.ClientSession(headers=AUTH) as session, session.ws_connect(url) as ws:
        await ws.send_str(json.dumps({"type": "response.create", **body}))
        messages = []
        while not messages or json.loads(messages[-1])["type"] != "response.incomplete":
            messages.append((await ws.receive(timeout=5)).data)
    def shape(events: list[dict]) -> list[tuple]:  # ids differ: the request bodies differ
        return [(e["type"], e["sequence_number"], e.get("delta")) for e in events]

    assert shape([json.loads(m) for m in messages]) == shape(
        [data for _, data in sse_events(sse.body)])


async def test_websocket_mode_errors_and_auth(holy_mock: MockServer) -> None:
    url = holy_mock.url.replace("http://", "ws://") + "/responses"
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await session.ws_connect(url)
        assert info.value.status == 401
        async with session.ws_connect(url + "?X-Mock-Fault=status:code%3D429%2Cretry_after%3D2",
                                      headers=AUTH) as ws:
            await ws.send_str(json.dumps({"type": "response.create", "model": "gpt-4.1",
                                          "input": "x"}))
            event = json.loads((await ws.receive(timeout=5)).data)
            await ws.send_str(json.dumps({"type": "response.cancel"}))
            unknown = json.loads((await ws.receive(timeout=5)).data)
    assert event["type"] == "error" and event["status"] == 429
    assert event["error"]["code"] == "rate_limit_exceeded"
    assert event["error"]["headers"]["retry-after-ms"] == "2000"
    assert unknown["type"] == "error" and unknown["status"] == 400
