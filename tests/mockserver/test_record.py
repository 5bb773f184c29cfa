"""Record mode against a second mock as the upstream: client → B (recording) → A; C replays."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from itertools import accumulate
from pathlib import Path

import aiohttp
import httpx
import pytest
from mockutil import assert_paced_like

from mockserver import MockServer
from mockserver._cassettes import (
    SHIPPED_DIR,
    Cassette,
    CassetteStore,
    load_cassette,
    save_cassette,
)
from mockserver._frames import Frame
from mockserver._record import HEADER_ALLOWLIST, REDACTED, Scrubber

KEY = "holy-test-key-7f3a9c2e5b1d"  # not sk-shaped: only the exact-value scrub can catch it
AUTH = {"Authorization": f"Bearer {KEY}"}
SHIPPED = CassetteStore(SHIPPED_DIR)
Factory = Callable[..., MockServer]


def writes_of(frames: list[Frame]) -> list[bytes]:
    """The payload of each SSE write."""
    return [f.data if isinstance(f.data, bytes) else f.data.encode() for f in frames]


def chat(prompt: str, **params: object) -> dict:
    return {"model": "deepseek-v3.2", "messages": [{"role": "user", "content": prompt}], **params}


async def stream_raw(url: str, body: dict, headers: dict | None = None) -> list[bytes]:
    pieces: list[bytes] = []
    async with httpx.AsyncClient(timeout=30) as client:
        async with client.stream("POST", f"{url}/chat/completions", json=body,
                                 headers={**AUTH, **(headers or {})}) as r:
            assert r.status_code == 200, await r.aread()
            async for piece in r.aiter_raw():
                pieces.append(piece)
    return pieces


def recordings(folder: Path) -> list[Cassette]:
    return [load_cassette(p) for p in sorted(folder.glob("*.json"))]


async def wait_for(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "condition not reached in time"
        await asyncio.sleep(0.02)


def outcomes(mock: MockServer) -> list[str]:
    return [r["outcome"] for r in mock.journal()]


def assert_offsets_close(original: list[Frame], recorded: list[Frame], tolerance: float) -> None:
    """Each original write arrives in the recorded write covering its last byte, never early."""
    rec_ends = list(accumulate(len(f.data) for f in recorded))
    for end, frame in zip(accumulate(len(f.data) for f in original), original, strict=True):
        rec = recorded[next(i for i, e in enumerate(rec_ends) if e >= end)]
        assert frame.at - 0.003 <= rec.at <= frame.at + tolerance, (frame.at, rec.at)


# -- SSE ---------------------------------------------------------------------------------------


async def test_sse_record_then_replay_is_byte_identical_with_original_offsets(
    holy_mock_factory: Factory, tmp_path: Path
) -> None:
    upstream = holy_mock_factory(speed=1)
    recorder = holy_mock_factory(record_upstream=upstream.url, record_dir=tmp_path)
    original = SHIPPED.get("tool-calls")
    body = chat(original.match["prompt"], stream=True, temperature=0.2)
    passed = await stream_raw(recorder.url, body)
    want = b"".join(writes_of(original.frames))
    assert b"".join(passed) == want

    (rec,) = recordings(tmp_path)
    assert rec.transport == "sse" and rec.status == 200 and rec.fault is None
    assert rec.match == {"model": "deepseek-v3.2", "temperature": 0.2,
                         "messages": [{"role": "user", "content": original.match["prompt"]}]}
    assert set(rec.headers) <= HEADER_ALLOWLIST
    assert rec.headers["content-type"].startswith("text/event-stream")
    assert b"".join(writes_of(rec.frames)) == want
    assert_offsets_close(original.frames, rec.frames, tolerance=0.25)
    (journal,) = recorder.journal()
    assert (journal["outcome"], journal["cassette"], journal["transport"]) == (
        "completed", rec.name, "sse")

    replay = holy_mock_factory(speed=0, cassettes=tmp_path)
    pieces = await stream_raw(replay.url, body)
    assert b"".join(pieces) == want
    assert set(accumulate(len(f.data) for f in rec.frames)) <= set(
        accumulate(len(p) for p in pieces))
    # the recording is keyed on the whole request: other parameters do not match it
    assert CassetteStore(tmp_path).match(chat(original.match["prompt"]), "sse") is None


async def test_repeated_requests_are_recorded_and_replayed_in_order(
    holy_mock_factory: Factory, tmp_path: Path
) -> None:
    upstream = holy_mock_factory(seed=None, ttft_ms=0, tps=0)  # ids differ per reply
    recorder = holy_mock_factory(record_upstream=upstream.url, record_dir=tmp_path)
    body = chat("a generated reply", stream=True, max_tokens=5)
    first = b"".join(await stream_raw(recorder.url, body))
    second = b"".join(await stream_raw(recorder.url, body))
    assert first != second
    names = sorted(p.name for p in tmp_path.glob("*.json"))
    assert [n[-8:] for n in names] == ["001.json", "002.json"]
    assert names[0].startswith("a-generated-reply-sse-")

    replay = holy_mock_factory(speed=0, cassettes=tmp_path)
    got = [b"".join(await stream_raw(replay.url, body)) for _ in range(3)]
    assert got == [first, second, first]


async def test_non_streaming_and_error_replies_are_recorded(
    holy_mock_factory: Factory, tmp_path: Path
) -> None:
    upstream = holy_mock_factory(speed=0)
    recorder = holy_mock_factory(record_upstream=upstream.url, record_dir=tmp_path)
    prompt = SHIPPED.get("code-answer").match["prompt"]
    async with httpx.AsyncClient(timeout=30) as client:
        ok = await client.post(f"{recorder.url}/chat/completions", json=chat(prompt),
                               headers=AUTH)
        limited = await client.post(
            f"{recorder.url}/chat/completions", json=chat("busy?", stream=True),
            headers={**AUTH, "X-Mock-Fault": "status:code=429,retry_after=2"},
        )
    assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"]
    assert limited.status_code == 429 and limited.headers["retry-after"] == "2"
    by_transport = {c.transport: c for c in recordings(tmp_path)}
    assert by_transport["json"].frames[0].data == ok.content
    err = by_transport["sse"]
    assert err.status == 429 and err.headers["retry-after"] == "2"
    assert "x-ratelimit-remaining-requests" in err.headers or "x-ratelimit-remaining" in err.headers

    replay = holy_mock_factory(speed=0, cassettes=tmp_path)
    async with httpx.AsyncClient(timeout=30) as client:
        again_ok = await client.post(f"{replay.url}/chat/completions", json=chat(prompt),
                                     headers=AUTH)
        again_429 = await client.post(f"{replay.url}/chat/completions",
                                      json=chat("busy?", stream=True), headers=AUTH)
    assert again_ok.content == ok.content
    assert (again_429.status_code, again_429.content) == (429, limited.content)
    assert again_429.headers["retry-after"] == "2"


async def read_until_broken(url: str, body: dict, headers: dict | None = None) -> tuple[bytes, str]:
    """The body bytes received and the name of the error that ended the read ("" if none)."""
    received = b""
    async with httpx.AsyncClient(timeout=30) as client:
        try:
            async with client.stream("POST", f"{url}/chat/completions", json=body,
                                     headers={**AUTH, **(headers or {})}) as r:
                async for piece in r.aiter_raw():
                    received += piece
        except httpx.HTTPError as exc:
            return received, type(exc).__name__
    return received, ""


@pytest.mark.parametrize("fault", ["disconnect", "reset"])
async def test_a_broken_upstream_stream_is_recorded_as_a_fault(
    holy_mock_factory: Factory, tmp_path: Path, fault: str
) -> None:
    upstream = holy_mock_factory()
    recorder = holy_mock_factory(record_upstream=upstream.url, record_dir=tmp_path)
    body = chat("break please", stream=True, max_tokens=12)
    passed, error = await read_until_broken(
        recorder.url, body, {"X-Mock-Fault": f"{fault}:after=4"}  # forwarded to the upstream
    )
    assert error and passed.count(b"data: ") == 4

    (rec,) = recordings(tmp_path)
    assert rec.fault == f"{fault}:after={len(rec.frames)}"
    assert b"".join(writes_of(rec.frames)) == passed
    replay = holy_mock_factory(speed=0, cassettes=tmp_path)
    assert await read_until_broken(replay.url, body) == (passed, error)


async def test_keys_are_scrubbed_from_everything_written(
    holy_mock_factory: Factory, tmp_path: Path
) -> None:
    leaky = "sk-live-ABCDEFGHIJKLMNOPQRSTUVWX"
    text = (f"your key {KEY} and {leaky} at https://api.example.com/v1?key=abc123secret&x=1 "
            f"with Authorization: Bearer tok_9876543210zyxw")
    event = ("data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": text}}]})
             + "\n\n").encode()
    cut = event.index(leaky.encode()) + 10  # a key split across two writes
    up_dir = tmp_path / "upstream"
    up_dir.mkdir()
    save_cassette(Cassette(
        name="leaky", match={"prompt": "leak"}, transport="sse",
        headers={"content-type": "text/event-stream"},
        frames=[Frame(0.0, event[:cut]), Frame(0.01, event[cut:]),
                Frame(0.02, b"data: [DONE]\n\n")],
    ), up_dir / "leaky.json")
    upstream = holy_mock_factory(speed=0, cassettes=up_dir)
    rec_dir = tmp_path / "recorded"
    recorder = holy_mock_factory(record_upstream=upstream.url, record_dir=rec_dir)
    body = {"model": "deepseek-v3.2", "stream": True,
            "messages": [{"role": "system", "content": f"key={KEY}"},
                         {"role": "user", "content": "leak"}]}
    passed = b"".join(await stream_raw(recorder.url, body))
    assert KEY.encode() in passed  # the client still gets the upstream's bytes unchanged

    (path,) = rec_dir.glob("*.json")
    written = path.read_text(encoding="utf-8")
    for secret in (KEY, leaky, "abc123secret", "tok_9876543210zyxw", "ABCDEFGHIJ"):
        assert secret not in written
    rec = load_cassette(path)
    stream = b"".join(writes_of(rec.frames)).decode()
    assert stream.count(REDACTED) == 4 and "?key=[REDACTED]&x=1" in stream
    assert "Bearer [REDACTED]" in stream and stream.endswith("data: [DONE]\n\n")
    assert rec.match["messages"][0]["content"] == f"key={REDACTED}"
    journal = json.dumps(recorder.journal())
    assert KEY not in journal


def test_scrubber_keeps_write_boundaries_outside_keys() -> None:
    s = Scrubber(["secret-value"])
    frames = [Frame(0.0, b"a secr"), Frame(0.1, b"et-value b "), Frame(0.2, b"sk-"),
              Frame(0.3, b"0123456789abcdefXYZ c")]
    assert s.frames(frames) == [Frame(0.0, b"a [REDACTED]"), Frame(0.1, b" b "),
                                Frame(0.2, b"[REDACTED]"), Frame(0.3, b" c")]
    clean = [Frame(0.0, b"nothing to hide")]
    assert s.frames(clean) == clean
    assert s.value({"k": ["Bearer abcdefghijkl", 3]}) == {"k": ["Bearer [REDACTED]", 3]}


async def test_client_hanging_up_right_after_done_keeps_the_recording(
    holy_mock_factory: Factory, tmp_path: Path
) -> None:
    up_dir = tmp_path / "upstream"
    up_dir.mkdir()
    # The upstream lingers after [DONE] (a trailing comment 30 s later): the client leaves first.
    save_cassette(Cassette(
        name="linger", match={"prompt": "linger"}, transport="sse",
        headers={"content-type": "text/event-stream"},
        frames=[Frame(0.0, b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'),
                Frame(0.01, b"data: [DONE]\n\n"), Frame(30.0, b": still here\n\n")],
    ), up_dir / "linger.json")
    upstream = holy_mock_factory(speed=1, cassettes=up_dir)
    rec_dir = tmp_path / "recorded"
    recorder = holy_mock_factory(record_upstream=upstream.url, record_dir=rec_dir)
    received = b""
    async with httpx.AsyncClient(timeout=30) as client:
        async with client.stream("POST", f"{recorder.url}/chat/completions",
                                 json=chat("linger", stream=True), headers=AUTH) as r:
            async for piece in r.aiter_raw():
                received += piece
                if b"[DONE]" in received:
                    break  # hang up: leaving the block closes the connection
    await wait_for(lambda: list(rec_dir.glob("*.json")))
    (rec,) = recordings(rec_dir)
    assert writes_of(rec.frames)[-1].endswith(b"data: [DONE]\n\n")
    await wait_for(lambda: outcomes(upstream) == ["client_disconnected"])  # upstream aborted


async def test_client_leaving_mid_stream_aborts_upstream_and_saves_nothing(
    holy_mock_factory: Factory, tmp_path: Path
) -> None:
    upstream = holy_mock_factory(speed=1)
    recorder = holy_mock_factory(record_upstream=upstream.url, record_dir=tmp_path)
    prompt = SHIPPED.get("long-markdown").match["prompt"]  # ~29 s at speed 1
    async with httpx.AsyncClient(timeout=30) as client:
        async with client.stream("POST", f"{recorder.url}/chat/completions",
                                 json=chat(prompt, stream=True), headers=AUTH) as r:
            async for _ in r.aiter_raw():
                break
    await wait_for(lambda: outcomes(upstream) == ["client_disconnected"])
    await wait_for(lambda: outcomes(recorder) == ["client_disconnected"])
    assert not list(tmp_path.glob("*.json"))


async def test_a_request_without_messages_is_relayed_but_not_recorded(
    holy_mock_factory: Factory, tmp_path: Path
) -> None:
    upstream = holy_mock_factory()
    recorder = holy_mock_factory(record_upstream=upstream.url, record_dir=tmp_path)
    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.post(f"{recorder.url}/chat/completions",
                              json={"model": "gpt-4.1", "stream": True}, headers=AUTH)
    assert r.status_code == 400 and "messages" in r.json()["error"]["message"]
    assert not list(tmp_path.glob("*.json"))


async def test_unreachable_upstream_is_a_502_in_openai_format(
    holy_mock_factory: Factory, tmp_path: Path
) -> None:
    recorder = holy_mock_factory(record_upstream="http://127.0.0.1:9/v1", record_dir=tmp_path)
    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.post(f"{recorder.url}/chat/completions", json=chat("x", stream=True),
                              headers=AUTH)
    assert r.status_code == 502
    assert r.json()["error"]["message"].startswith("record mode: cannot reach the upstream")
    assert not list(tmp_path.glob("*.json"))


# -- WebSocket ---------------------------------------------------------------------------------


async def ws_exchange(ws: aiohttp.ClientWebSocketResponse, body: dict) -> list[str]:
    await ws.send_str(json.dumps(body))
    messages: list[str] = []
    async for msg in ws:
        messages.append(msg.data)
        if msg.data == "[DONE]":
            break
    return messages


async def test_ws_record_then_replay(holy_mock_factory: Factory, tmp_path: Path) -> None:
    upstream = holy_mock_factory(speed=1)
    recorder = holy_mock_factory(record_upstream=upstream.url, record_dir=tmp_path)
    haiku, tools = SHIPPED.get("ws-haiku"), SHIPPED.get("tool-calls")
    async with aiohttp.ClientSession() as session:
        # the key travels in the query string here; it must not reach the recordings either
        async with session.ws_connect(f"{recorder.ws_url}?key={KEY}") as ws:
            await ws.send_str('{"type": "ping"}')
            assert json.loads((await ws.receive()).data) == {"type": "pong"}
            first = await ws_exchange(ws, chat(haiku.match["prompt"]))
            second = await ws_exchange(ws, chat(tools.match["prompt"]))
    assert first == [f.data for f in haiku.frames]
    assert second == [f.data for f in tools.frames_for("ws")]

    recs = {c.match["messages"][0]["content"]: c for c in recordings(tmp_path)}
    assert set(recs) == {haiku.match["prompt"], tools.match["prompt"]}
    rec = recs[haiku.match["prompt"]]
    assert rec.transport == "ws" and [f.data for f in rec.frames] == first
    assert_paced_like([f.at for f in haiku.frames], [f.at for f in rec.frames])
    for path in tmp_path.glob("*.json"):
        assert KEY not in path.read_text(encoding="utf-8")

    replay = holy_mock_factory(speed=0, cassettes=tmp_path)
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(replay.ws_url, headers=AUTH) as ws:
            assert await ws_exchange(ws, chat(haiku.match["prompt"])) == first
            assert await ws_exchange(ws, chat(tools.match["prompt"])) == second
    # a WebSocket recording answers SSE too
    pieces = await stream_raw(replay.url, chat(haiku.match["prompt"], stream=True))
    assert b"".join(pieces) == b"".join(writes_of(rec.frames_for("sse")))


async def test_ws_upstream_close_code_is_recorded_as_a_fault(
    holy_mock_factory: Factory, tmp_path: Path
) -> None:
    upstream = holy_mock_factory()
    recorder = holy_mock_factory(record_upstream=upstream.url, record_dir=tmp_path)
    body = chat("close on me", max_tokens=10)

    async def run(url: str) -> tuple[list[str], int | None]:
        got: list[str] = []
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url, headers=AUTH) as ws:
                await ws.send_str(json.dumps(body))
                async for msg in ws:
                    got.append(msg.data)
                return got, ws.close_code

    messages, code = await run(recorder.ws_url + "?X-Mock-Fault=ws-close:code=1011,after=3")
    assert (len(messages), code) == (3, 1011)
    (rec,) = recordings(tmp_path)
    assert rec.fault == "ws-close:code=1011,after=3" and [f.data for f in rec.frames] == messages
    replay = holy_mock_factory(speed=0, cassettes=tmp_path)
    assert await run(replay.ws_url) == (messages, 1011)


async def test_ws_cancelled_stream_is_not_saved(holy_mock_factory: Factory, tmp_path: Path) -> None:
    upstream = holy_mock_factory(speed=1)
    recorder = holy_mock_factory(record_upstream=upstream.url, record_dir=tmp_path)
    prompt = SHIPPED.get("long-markdown").match["prompt"]
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(recorder.ws_url, headers=AUTH) as ws:
            await ws.send_str(json.dumps(chat(prompt)))
            await ws.receive()
            await ws.send_str('{"type": "cancel"}')
            await ws.send_str('{"type": "ping"}')
            async for msg in ws:  # drain what was in flight until the pong
                if msg.type == aiohttp.WSMsgType.TEXT and '"pong"' in msg.data:
                    break
    await wait_for(lambda: outcomes(recorder) == ["completed"])
    assert not list(tmp_path.glob("*.json"))


async def test_ws_upstream_refusing_the_key_is_passed_on(
    holy_mock_factory: Factory, tmp_path: Path
) -> None:
    upstream = holy_mock_factory(keys=["only-this-key"])
    recorder = holy_mock_factory(record_upstream=upstream.url, record_dir=tmp_path)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await session.ws_connect(recorder.ws_url, headers=AUTH)
    assert info.value.status == 401
    assert not list(tmp_path.glob("*.json"))


async def test_record_mode_holds_one_upstream_session_for_the_app_life(
    holy_mock_factory: Factory, tmp_path: Path
) -> None:
    from mockserver._app import STATE

    upstream = holy_mock_factory()
    async with MockServer(record_upstream=upstream.url, record_dir=tmp_path) as recorder:
        session = recorder.app[STATE].recorder.session
        for prompt in ("one", "two"):
            await stream_raw(recorder.url, chat(prompt, stream=True, max_tokens=2))
        assert recorder.app[STATE].recorder.session is session and not session.closed
        assert outcomes(recorder) == ["completed", "completed"]
    assert session.closed
