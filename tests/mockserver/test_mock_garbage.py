"""A seeded barrage of bad input: the mock answers every piece with an OpenAI error (4xx) or a
complete reply, never a 5xx or a dropped connection, and still streams normally afterwards.

Documented exceptions: ``HEAD`` answers without a body (HTTP forbids one); a request line with
an unknown method never reaches the app: aiohttp's HTTP parser answers a plain-text 400.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from mockutil import AUTH, RawResponse, chat, raw_request

from mockserver import MockServer
from mockserver._faults import FaultError, parse_faults

SEED = 20240611
MAX_BODY = 64 * 1024
JUNK: list[Any] = [
    None, "", "yes", "x" * 300, -1, 0, 1.5, -1e308, 10**30, True, False, [], {}, [None],
    {"a": [1, {"b": None}]}, "\u0000\ud7ff\uffff", [[[]]], float("nan"),
]
FIELDS = [
    "model", "messages", "stream", "max_tokens", "max_completion_tokens", "temperature", "top_p",
    "presence_penalty", "frequency_penalty", "stream_options", "tools", "tool_choice", "stop",
    "seed", "n", "response_format", "user", "logprobs",
]
CONTROLS = ["X-Mock-Fault", "X-Mock-TTFT-Ms", "X-Mock-TPS", "X-Mock-Jitter-Ms", "X-Mock-Seed",
            "X-Mock-Cassette"]
BAD_NUMBERS = ["abc", "-1", "-0.5", "inf", "-inf", "nan", "1e308", "9" * 400, "1,5", "0x10", ""]
BAD_FAULTS = [
    "nonsense", ";;;x", "status", "status:code=abc", "status:code=99999", "status:code=200",
    "status:code=100", "status:code=429,retry_after=inf", "status:code=429,retry_after=1e308",
    "disconnect:after=-1", "disconnect:after=" + "9" * 5000, "stall:ms=inf", "stall:ms=nan",
    "slice:size=0", "ws-close:code=5000", "heartbeat:ms=0", "malformed:at=0", "crlf:p=2",
    "no-done:p=-1", "status:code=500,,,=", "disconnect:after", "reset:after==1", ":", "=",
]


def random_text(rng: random.Random, n: int) -> str:
    return "".join(chr(rng.choice([rng.randint(32, 126), rng.randint(0x80, 0x2FFF)]))
                   for _ in range(n))


def mutated_body(rng: random.Random) -> dict[str, Any]:
    """A chat request with one field (or one message part) replaced by junk."""
    body = chat("tell me a story", max_tokens=5, stream=rng.random() < 0.5)
    kind = rng.randrange(4)
    if kind == 0:
        body[rng.choice(FIELDS)] = rng.choice(JUNK)
    elif kind == 1:
        msg = body["messages"][0]
        choice = rng.randrange(5)
        if choice == 0:
            del msg["role"]
        elif choice == 1:
            msg["role"] = rng.choice(JUNK)
        elif choice == 2:
            msg["content"] = [rng.choice([*JUNK, {"type": "text", "text": rng.choice(JUNK)},
                                          {"type": rng.choice(JUNK)}]) for _ in range(3)]
        elif choice == 3:
            msg[rng.choice(["name", "tool_calls", "tool_call_id"])] = rng.choice(JUNK)
        else:
            body["messages"] = rng.choice(["hi", ["hi"], [None], [[]], [{}], {"role": "user"}])
    elif kind == 2:
        body["tools"] = rng.choice([
            "x", [1], [{"type": "function"}], [{"type": "function", "function": {"name": 5}}],
            [{"type": "function", "function": {"name": "f", "parameters": "x"}}], {"a": 1},
        ])
        body["tool_choice"] = rng.choice(JUNK + ["required", {"type": "function"}])
    else:
        body["stream_options"] = rng.choice([*JUNK, {"include_usage": "yes"},
                                             {"include_usage": None}, {"junk": 1}])
    return body


def http_cases(rng: random.Random) -> Iterator[dict[str, Any]]:
    """(method, path, headers, raw body) of every HTTP case, ~220 in all."""
    path = "/v1/chat/completions"
    valid = json.dumps(chat("hi", max_tokens=5, stream=True)).encode()
    for _ in range(40):
        yield {"raw_body": rng.randbytes(rng.randint(0, 300))}
    for _ in range(20):
        yield {"raw_body": valid[: rng.randint(0, len(valid) - 1)]}
    for _ in range(10):
        yield {"raw_body": valid.replace(b"hi", bytes([rng.randint(0x80, 0xFF)]) + b"\xc3")}
    yield {"raw_body": b"[" * 200_000 + b"]" * 200_000}  # deeper than the recursion limit
    yield {"raw_body": b'{"model": "gpt-4.1", "max_tokens": ' + b"7" * 5000 + b"}"}
    yield {"raw_body": b'{"messages": "' + b"x" * (MAX_BODY + 10) + b'"}'}
    yield {"raw_body": b"\xef\xbb\xbf" + valid}  # a UTF-8 BOM
    yield {"raw_body": valid.decode().encode("utf-16")}
    for _ in range(110):
        body = mutated_body(rng)
        yield {"raw_body": json.dumps(body, allow_nan=True).encode()}
    for ctype in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                  "", "application/json; charset=latin-1", "image/png"]:
        yield {"raw_body": valid, "headers": {"Content-Type": ctype}}
    for method, where in [
        ("GET", path), ("PUT", path), ("DELETE", path), ("PATCH", path), ("OPTIONS", path),
        ("HEAD", path), ("POST", "/v1/models"), ("DELETE", "/_mock/journal"),
        ("POST", "/_mock/config"), ("GET", "/_mock/reset"), ("GET", "/v2/chat/completions"),
        ("POST", "/v1/completions"), ("GET", "/%ff%fe/../../etc/passwd"),
        ("GET", "/v1/" + "a" * 2000), ("POST", "/v1/chat/completions/"), ("GET", "/"),
        ("GET", "/v1/ws/chat"), ("POST", "/v1/ws/chat"),
    ]:
        yield {"method": method, "path": where, "raw_body": valid if method == "POST" else b""}
    for _ in range(30):
        name = rng.choice(CONTROLS)
        if name == "X-Mock-Fault":
            value = rng.choice([*BAD_FAULTS, random_text(rng, rng.randint(1, 30))])
            try:
                parse_faults(value)
                continue  # random text that happens to be a valid fault: not garbage
            except FaultError:
                pass
        elif name == "X-Mock-Seed":
            value = rng.choice(["x", "1.5", "9" * 5000, "", " ", "0b1"])
        elif name == "X-Mock-Cassette":
            value = rng.choice(["../../etc/passwd", "nope", "x" * 500, "*"])
        else:
            value = rng.choice(BAD_NUMBERS)
        yield {"raw_body": valid, "headers": {name: value}}
    yield {"method": "BREW", "raw_body": b""}  # refused by aiohttp's HTTP parser
    yield {"raw_body": valid, "headers": {"X-Mock-Unknown": "1"}}
    yield {"raw_body": valid, "headers": {"Authorization": "Bearer"}}
    yield {"raw_body": valid, "headers": {"Authorization": "Basic Zm9vOmJhcg=="}}


def assert_error_json(data: bytes | str, where: Any) -> dict[str, Any]:
    body = json.loads(data)
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), where
    err = body["error"]
    assert isinstance(err.get("message"), str) and err["message"], where
    assert isinstance(err.get("type"), str) and err["type"], where
    return err


def check_http(resp: RawResponse, case: dict[str, Any]) -> None:
    where = (case.get("method"), case.get("path"), case.get("headers"),
             case["raw_body"][:200], resp.status, resp.body[:300])
    assert resp.error is None and resp.status, where  # answered, never dropped
    assert 200 <= resp.status < 500, where
    if case.get("method") == "HEAD":
        return
    if case.get("method") == "BREW":
        assert resp.status == 400 and resp.complete, where
        return
    assert resp.complete, where
    if resp.status >= 400:
        assert_error_json(resp.body, where)
    elif resp.headers.get("content-type", "").startswith("text/event-stream"):
        assert resp.events()[-1] == "[DONE]", where
    else:
        assert "choices" in resp.json(), where


def health_check(mock: MockServer) -> None:
    base = mock.url.removesuffix("/v1")
    resp = raw_request(base, "/v1/chat/completions", chat("health", max_tokens=7, stream=True))
    assert resp.status == 200 and resp.complete
    events = resp.events()
    assert events[-1] == "[DONE]"
    text = "".join(
        json.loads(e)["choices"][0]["delta"].get("content") or "" for e in events[:-1]
        if json.loads(e)["choices"]
    )
    assert len(events) >= 8 and text


@pytest.fixture
def garbage_mock(holy_mock_factory: Any, caplog: pytest.LogCaptureFixture) -> Iterator[Any]:
    """A fast mock with a small body limit; no unhandled-error log lines when the test ends."""
    caplog.set_level(logging.ERROR, logger="mockserver")
    mock = holy_mock_factory(max_body_bytes=MAX_BODY)
    yield mock
    crashes = [r.getMessage() for r in caplog.records if r.name.startswith("mockserver")]
    assert not crashes, crashes
    records = mock.journal()
    assert not [r for r in records if (r["status"] or 0) >= 500], records


def test_http_garbage(garbage_mock: MockServer) -> None:
    rng = random.Random(SEED)
    base = garbage_mock.url.removesuffix("/v1")
    cases = list(http_cases(rng))
    assert 200 <= len(cases) <= 300
    for case in cases:
        resp = raw_request(
            base, case.get("path", "/v1/chat/completions"), method=case.get("method", "POST"),
            raw_body=case["raw_body"], headers=case.get("headers"), timeout=5,
        )
        check_http(resp, case)
    health_check(garbage_mock)


# -- WebSocket ---------------------------------------------------------------------------------


async def receive_reply(ws: aiohttp.ClientWebSocketResponse, where: Any) -> str:
    """Read one answer: an error frame, a pong, or a whole stream up to [DONE]."""
    while True:
        msg = await asyncio.wait_for(ws.receive(), 5)
        assert msg.type == aiohttp.WSMsgType.TEXT, (where, msg)
        if msg.data == "[DONE]":
            return "done"
        obj = json.loads(msg.data)
        if isinstance(obj, dict) and "error" in obj:
            err = assert_error_json(msg.data, where)
            assert 400 <= err.get("status", 400) < 500, (where, err)
            return "error"
        if obj == {"type": "pong"}:
            return "pong"
        assert obj["object"] == "chat.completion.chunk", (where, obj)


def ws_frames(rng: random.Random) -> Iterator[tuple[str, str | bytes]]:
    """(kind, payload) of every frame sent on one connection, ~90 in all."""
    for _ in range(8):
        yield "binary", rng.randbytes(rng.randint(0, 200))
    for _ in range(15):
        yield "text", random_text(rng, rng.randint(1, 80))
    for value in ["[]", "[1, 2]", "1", "-1e308", "null", "true", '"hi"', "{}", '[{"type":"ping"}]',
                  "[" * 5000 + "]" * 5000, "7" * 5000, "NaN"]:
        yield "text", value
    for kind in [None, 5, "", "PING", "pong", ["ping"], {"a": 1}, "cancel\u0000", "x" * 500]:
        yield "text", json.dumps({"type": kind})
    yield "text", json.dumps({"type": "cancel"})  # nothing to cancel: ignored, no reply
    yield "text", json.dumps({"type": "resume"})
    for _ in range(45):
        yield "text", json.dumps(mutated_body(rng), allow_nan=True)


async def test_ws_garbage(garbage_mock: MockServer) -> None:
    rng = random.Random(SEED + 1)
    async with aiohttp.ClientSession(headers=AUTH) as http:
        async with http.ws_connect(garbage_mock.ws_url + "?foo=bar&&=&X=%ff") as ws:
            for kind, payload in ws_frames(rng):
                where = (kind, payload[:200])
                if kind == "binary":
                    await ws.send_bytes(payload)  # type: ignore[arg-type]
                else:
                    await ws.send_str(payload)  # type: ignore[arg-type]
                if payload in ('{"type": "cancel"}', '{"type": "resume"}'):
                    continue
                assert await receive_reply(ws, where) in ("error", "done"), where
            await ws.send_str('{"type":"ping"}')
            assert await receive_reply(ws, "ping after barrage") == "pong"

        # A second request while one streams: 409 error frame, the first stream goes on.
        async with http.ws_connect(garbage_mock.ws_url + "?X-Mock-TPS=200") as ws:
            request = json.dumps(chat("slow", max_tokens=20))
            await ws.send_str(request)
            await ws.send_str(request)
            got: list[str] = []
            while True:
                msg = await asyncio.wait_for(ws.receive(), 5)
                assert msg.type == aiohttp.WSMsgType.TEXT, msg
                got.append(msg.data)
                if msg.data == "[DONE]":
                    break
            errors = [json.loads(g)["error"] for g in got if g.startswith('{"error"')]
            assert [e["code"] for e in errors] == ["stream_in_progress"]
            assert sum('"chat.completion.chunk"' in g for g in got) >= 20

        # Garbage query parameters: an error JSON before the upgrade, never a crash.
        queries = [f"?X-Mock-Fault={v}" for v in ("nonsense", "status:code=99", "stall:ms=inf")]
        queries += [f"?X-Mock-TTFT-Ms={v}" for v in ("abc", "-1", "inf", "1e308")]
        queries += ["?X-Mock-Seed=x", "?X-Mock-Nope=1", "?X-Mock-TPS=nan"]
        for query in queries:
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await http.ws_connect(garbage_mock.ws_url + query)
                pytest.fail(f"{query} was accepted")
            assert info.value.status == 400, query
            resp = await http.get(garbage_mock.ws_url.replace("ws://", "http://") + query)
            assert resp.status == 400
            assert_error_json(await resp.read(), query)

        # Health: a normal stream on a fresh connection, and over HTTP.
        async with http.ws_connect(garbage_mock.ws_url) as ws:
            await ws.send_str(json.dumps(chat("health", max_tokens=6)))
            assert await receive_reply(ws, "health") == "done"
    await asyncio.to_thread(health_check, garbage_mock)
