"""HTTP endpoints: chat (stream + JSON), models, auth, bad input, control API, journal."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from mockutil import AUTH, chat, raw_request, wait_for

from mockserver import MOCK_KEY, Frame, MockServer


def post(mock: MockServer, body=None, *, headers=None, **kw) -> httpx.Response:
    headers = {**AUTH, **(headers or {})}
    return httpx.post(f"{mock.url}/chat/completions", json=body, headers=headers, **kw)


@pytest.mark.parametrize(
    ("params", "control", "tokens", "finish"),
    [
        ({}, None, 64, "stop"),  # the natural length of a generated answer
        ({"max_tokens": 100}, None, 100, "length"),  # max_tokens alone: exactly that many
        ({}, "10", 10, "stop"),  # X-Mock-Tokens: the answer's own length
        ({"max_tokens": 5}, "10", 5, "length"),  # ... which max_tokens still cuts
        ({"max_tokens": 50}, "10", 10, "stop"),
    ],
)
def test_answer_length(
    holy_mock: MockServer, params: dict, control: str | None, tokens: int, finish: str
) -> None:
    headers = {"X-Mock-Tokens": control} if control else {}
    body = post(holy_mock, chat(**params), headers=headers).json()
    assert body["usage"]["completion_tokens"] == tokens
    assert body["choices"][0]["finish_reason"] == finish
    if control:
        assert holy_mock.journal()[-1]["controls"]["tokens"] == int(control)


@pytest.mark.parametrize("value", ["0", "x", "2.5", "100001"])
def test_bad_tokens_control_is_400(holy_mock: MockServer, value: str) -> None:
    r = post(holy_mock, chat(), headers={"X-Mock-Tokens": value})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_mock_control"
    assert "X-Mock-Tokens" in r.json()["error"]["message"]


def test_non_streaming_reply_is_a_chat_completion(holy_mock: MockServer) -> None:
    r = post(holy_mock, chat(max_tokens=7))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "gpt-4.1"
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 7
    assert body["usage"]["total_tokens"] == 7 + body["usage"]["prompt_tokens"]


def test_streaming_chunks_and_done(holy_mock: MockServer) -> None:
    r = raw_request(holy_mock.url, "/v1/chat/completions", chat(stream=True, max_tokens=5))
    assert r.status == 200 and r.complete
    for name, value in {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache",
        "connection": "keep-alive",
        "x-accel-buffering": "no",
    }.items():
        assert r.headers[name] == value
    events = r.events()
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert len(chunks) == 5  # one token per chunk
    assert len({c["id"] for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all("role" not in c["choices"][0]["delta"] for c in chunks[1:])
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * 4 + ["length"]
    text = "".join(c["choices"][0]["delta"]["content"] for c in chunks)
    # The same request without streaming gives the same text.
    assert post(holy_mock, chat(max_tokens=5)).json()["choices"][0]["message"]["content"] == text


def test_default_length_is_64_and_finish_stop(holy_mock: MockServer) -> None:
    r = raw_request(holy_mock.url, "/v1/chat/completions", chat(stream=True))
    chunks = [json.loads(e) for e in r.events()[:-1]]
    assert len(chunks) == 64
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_include_usage_adds_a_final_usage_chunk(holy_mock: MockServer) -> None:
    body = chat(stream=True, max_tokens=3, stream_options={"include_usage": True})
    events = raw_request(holy_mock.url, "/v1/chat/completions", body).events()
    usage = json.loads(events[-2])
    assert usage["choices"] == []
    assert usage["usage"]["completion_tokens"] == 3
    assert all("usage" not in json.loads(e) for e in events[:-2])


def test_models_lists_the_four_profiles(holy_mock: MockServer) -> None:
    r = httpx.get(f"{holy_mock.url}/models", headers=AUTH)
    ids = [m["id"] for m in r.json()["data"]]
    for model in ("gpt-4.1", "claude-sonnet-4.5", "gemini-2.5-flash", "deepseek-v3.2"):
        assert model in ids
    assert r.json()["object"] == "list"


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_api_key"),
        ({"Authorization": "Bearer YOUR_HOLYSHEEP_API_KEY"}, "invalid_api_key"),
        ({"Authorization": "Basic abc"}, "missing_api_key"),
    ],
)
def test_missing_or_placeholder_key_is_401(holy_mock: MockServer, headers, code) -> None:
    for r in (
        httpx.post(f"{holy_mock.url}/chat/completions", json=chat(), headers=headers),
        httpx.get(f"{holy_mock.url}/models", headers=headers),
    ):
        assert r.status_code == 401
        assert r.json()["error"]["code"] == code
        assert r.json()["error"]["type"] == "invalid_request_error"


def test_configured_keys_reject_others_without_echoing_them(holy_mock_factory) -> None:
    mock = holy_mock_factory(keys=["sk-good-key-123456"])
    bad = "sk-bad-secret-987654"
    r = httpx.post(f"{mock.url}/chat/completions", json=chat(),
                   headers={"Authorization": f"Bearer {bad}"})
    assert r.status_code == 401
    assert bad not in r.text and "7654" in r.text  # masked form only
    ok = httpx.post(f"{mock.url}/chat/completions", json=chat(),
                    headers={"Authorization": "Bearer sk-good-key-123456"})
    assert ok.status_code == 200
    dump = json.dumps(mock.journal()) + httpx.get(f"{mock.base_url}/_mock/config").text
    assert bad not in dump and "sk-good-key-123456" not in dump
    assert "sk-good-key-123456" not in repr(mock.config)


def test_key_in_the_body_is_scrubbed_from_the_journal(holy_mock: MockServer) -> None:
    post(holy_mock, chat(f"my key is {MOCK_KEY}"))
    assert MOCK_KEY not in json.dumps(holy_mock.journal())


def test_unknown_model_is_404_model_not_found(holy_mock: MockServer) -> None:
    r = post(holy_mock, chat(model="gpt-9"))
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "model_not_found"
    assert "gpt-9" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("raw", "param", "fragment"),
    [
        (b"{not json", None, "parse the JSON"),
        (b"[1, 2]", None, "JSON object"),
        (b"\xff\xfe", None, "UTF-8"),
        (json.dumps({"messages": [{"role": "user", "content": "x"}]}).encode(), "model", "model"),
        (json.dumps({"model": 5, "messages": []}).encode(), "model", "non-empty string"),
        (json.dumps({"model": "gpt-4.1"}).encode(), "messages", "messages"),
        (json.dumps({"model": "gpt-4.1", "messages": "hi"}).encode(), "messages", "array"),
        (json.dumps({"model": "gpt-4.1", "messages": [1]}).encode(), "messages[0]", "object"),
        (json.dumps(chat() | {"messages": [{"role": "robot", "content": "x"}]}).encode(),
         "messages[0].role", "role"),
        (json.dumps(chat(max_tokens="5")).encode(), "max_tokens", "integer"),
        (json.dumps(chat(max_tokens=0)).encode(), "max_tokens", "between"),
        (json.dumps(chat(max_tokens=10**9)).encode(), "max_tokens", "between"),
        (json.dumps(chat(max_tokens=True)).encode(), "max_tokens", "integer"),
        (json.dumps(chat(stream="yes")).encode(), "stream", "boolean"),
        (json.dumps(chat(stream_options=[1])).encode(), "stream_options", "object"),
        (json.dumps(chat(temperature="hot")).encode(), "temperature", "number"),
    ],
)
def test_bad_request_bodies_are_400_naming_the_problem(
    holy_mock: MockServer, raw: bytes, param: str | None, fragment: str
) -> None:
    r = httpx.post(f"{holy_mock.url}/chat/completions", content=raw,
                   headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error"
    assert err["param"] == param
    assert fragment in err["message"]
    assert holy_mock.journal()[-1]["outcome"] == "error"


def test_oversize_body_is_413(holy_mock_factory) -> None:
    mock = holy_mock_factory(max_body_bytes=2048)
    r = post(mock, chat("x" * 5000))
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "request_too_large"
    assert "2048" in r.json()["error"]["message"]
    assert post(mock, chat("small")).status_code == 200


def test_unknown_route_and_wrong_method_are_json(holy_mock: MockServer) -> None:
    r = httpx.get(f"{holy_mock.base_url}/v1/nothing-here", headers=AUTH)
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_url"
    r = httpx.delete(f"{holy_mock.url}/chat/completions", headers=AUTH)
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    assert "POST" in r.headers["allow"]


@pytest.mark.parametrize(
    ("header", "value", "fragment"),
    [
        ("X-Mock-Fault", "explode", "unknown fault 'explode'"),
        ("X-Mock-Fault", "disconnect:when=3", "no parameter 'when'"),
        ("X-Mock-Fault", "stall:ms=abc", "ms='abc'"),
        ("X-Mock-Fault", "status", "needs code"),
        ("X-Mock-Fault", "status:code=429,p=2", "between 0 and 1"),
        ("X-Mock-TPS", "fast", "X-Mock-TPS"),
        ("X-Mock-Seed", "1.5", "X-Mock-Seed"),
        ("X-Mock-Colour", "red", "unknown control"),
    ],
)
def test_bad_controls_are_400_naming_the_part(holy_mock: MockServer, header, value, fragment):
    r = post(holy_mock, chat(), headers={header: value})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_mock_control"
    assert fragment in r.json()["error"]["message"]


def test_control_api_config_journal_reset(holy_mock_factory) -> None:
    mock = holy_mock_factory(fault="crlf", seed=7, rate_limit="100/s")
    config = httpx.get(f"{mock.base_url}/_mock/config").json()
    assert config["fault"] == "crlf" and config["seed"] == 7 and config["rate_limit"] == "100/s"
    assert "gpt-4.1" in config["models"]
    post(mock, chat(stream=True, max_tokens=3), headers={"X-Mock-TPS": "1000"})
    records = httpx.get(f"{mock.base_url}/_mock/journal").json()
    assert len(records) == 1
    rec = records[0]
    for key in ("id", "method", "path", "transport", "model", "status", "outcome", "started",
                "ended", "chunks_sent"):
        assert key in rec
    assert rec["transport"] == "sse" and rec["status"] == 200
    assert rec["outcome"] == "fault:crlf" and rec["chunks_sent"] == 4
    assert rec["controls"] == {"tps": 1000.0}
    assert rec["started"] <= rec["ended"]
    assert httpx.post(f"{mock.base_url}/_mock/reset").json() == {"ok": True}
    assert httpx.get(f"{mock.base_url}/_mock/journal").json() == []
    mock.reset()
    assert mock.journal() == []


def test_journal_shows_client_disconnect_within_100ms(holy_mock_factory) -> None:
    mock = holy_mock_factory(ttft_ms=0, tps=20)
    r = raw_request(mock.url, "/v1/chat/completions", chat(stream=True, max_tokens=50),
                    stop_after=2)
    hung_up = time.time()
    assert len(r.chunks) >= 2 and not r.complete
    rec = wait_for(lambda: next((x for x in mock.journal() if x["ended"]), None), timeout=2)
    assert rec["outcome"] == "client_disconnected"
    assert rec["ended"] - hung_up < 0.1
    assert 2 <= rec["chunks_sent"] < 50


def test_rate_limiter_is_a_token_bucket_per_key(holy_mock_factory) -> None:
    mock = holy_mock_factory(rate_limit="3/min")
    codes = [post(mock, chat()).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    r = post(mock, chat())
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "rate_limit_exceeded"
    assert r.headers["x-ratelimit-limit"] == "3"
    assert r.headers["x-ratelimit-remaining"] == "0"
    assert 0 < int(r.headers["retry-after-ms"]) <= 20_000
    assert int(r.headers["x-ratelimit-reset"]) >= int(time.time())
    other = post(mock, chat(), headers={"Authorization": "Bearer sk-another-key-0000"})
    assert other.status_code == 200  # buckets are per key
    mock.reset()
    assert post(mock, chat()).status_code == 200


def test_concurrent_streams_all_complete(holy_mock_factory) -> None:
    import asyncio

    mock = holy_mock_factory(ttft_ms=5, tps=500)

    async def one(client: httpx.AsyncClient, i: int) -> int:
        async with client.stream("POST", f"{mock.url}/chat/completions",
                                 json=chat(str(i), stream=True, max_tokens=20)) as r:
            return sum(line.startswith("data: {") for line in [ln async for ln in r.aiter_lines()])

    async def main() -> list[int]:
        async with httpx.AsyncClient(headers=AUTH, timeout=30) as client:
            return await asyncio.gather(*(one(client, i) for i in range(50)))

    assert asyncio.run(main()) == [20] * 50
    assert all(r["outcome"] == "completed" for r in mock.journal())


def test_journal_closes_a_request_whose_body_never_arrives(holy_mock: MockServer) -> None:
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(holy_mock.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Authorization: {AUTH['Authorization']}\r\nContent-Type: application/json\r\n"
            "Content-Length: 1000\r\n\r\n{\"model\":".encode()
        )
        wait_for(holy_mock.journal)
    rec = wait_for(lambda: next((x for x in holy_mock.journal() if x["ended"]), None), timeout=2)
    assert rec["outcome"] == "client_disconnected"


def test_a_mock_bug_mid_stream_breaks_the_body(holy_mock: MockServer, monkeypatch) -> None:
    def broken(reply, path):
        yield Frame(0.0, b"data: {}\n\n")
        raise RuntimeError("bug")

    monkeypatch.setattr("mockserver.formats.chat.reply_frames", broken)
    r = raw_request(holy_mock.url, "/v1/chat/completions", chat(stream=True))
    assert r.status == 200 and r.chunks == [b"data: {}\n\n"] and not r.complete
    (rec,) = holy_mock.journal()
    assert rec["outcome"] == "error" and rec["error"] == "internal mock error: RuntimeError"
