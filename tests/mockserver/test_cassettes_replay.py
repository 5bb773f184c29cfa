"""Shipped cassettes replayed through a running mock: same bytes, same pieces, same schedule."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from itertools import accumulate
from pathlib import Path

import aiohttp
import httpx
import pytest

from mockserver import MOCK_KEY, MockServer
from mockserver._cassettes import SHIPPED_DIR, Cassette, CassetteStore, save_cassette
from mockserver._frames import Frame

AUTH = {"Authorization": f"Bearer {MOCK_KEY}"}
STORE = CassetteStore(SHIPPED_DIR)
SSE_NAMES = sorted(c.name for c in STORE.cassettes if c.transport == "sse")
ALL_NAMES = sorted(c.name for c in STORE.cassettes)


def writes_of(frames: list[Frame]) -> list[bytes]:
    """The payload of each SSE write."""
    return [f.data if isinstance(f.data, bytes) else f.data.encode() for f in frames]


def prompt_of(c: Cassette) -> str:
    return c.match["prompt"]


def request_for(c: Cassette, **params: object) -> dict:
    return {"model": "gpt-4.1", "messages": [{"role": "user", "content": prompt_of(c)}], **params}


async def read_raw(
    url: str, body: dict, headers: dict | None = None
) -> tuple[list[bytes], list[float]]:
    """The body's pieces as httpx receives them, with their arrival offsets."""
    pieces: list[bytes] = []
    arrivals: list[float] = []
    async with httpx.AsyncClient(timeout=30) as client:
        t0 = time.perf_counter()
        async with client.stream("POST", f"{url}/chat/completions", json=body,
                                 headers={**AUTH, **(headers or {})}) as r:
            assert r.status_code == 200, await r.aread()
            assert r.headers["content-type"].startswith("text/event-stream")
            async for piece in r.aiter_raw():
                pieces.append(piece)
                arrivals.append(time.perf_counter() - t0)
    return pieces, arrivals


def boundaries(pieces: list[bytes]) -> set[int]:
    return set(accumulate(len(p) for p in pieces))


async def read_ws(url: str, body: dict) -> list[str | bytes]:
    messages: list[str | bytes] = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, headers=AUTH) as ws:
            await ws.send_str(json.dumps(body))
            async for msg in ws:
                messages.append(msg.data)
                if msg.data == "[DONE]":
                    break
    return messages


@pytest.fixture
def fast_mock(holy_mock_factory: Callable[..., MockServer]) -> MockServer:
    return holy_mock_factory(speed=0)


@pytest.mark.parametrize("name", SSE_NAMES)
async def test_sse_replay_is_byte_identical_write_by_write(
    fast_mock: MockServer, name: str
) -> None:
    c = STORE.get(name)
    pieces, _ = await read_raw(fast_mock.url, request_for(c, stream=True))
    writes = writes_of(c.frames)
    assert b"".join(pieces) == b"".join(writes)
    # Every recorded write boundary is a boundary on the wire (a read may split one write,
    # but two writes never arrive merged into one HTTP chunk).
    assert boundaries(writes) <= boundaries(pieces)
    (record,) = fast_mock.journal()
    assert (record["cassette"], record["outcome"]) == (name, "completed")


async def test_thai_writes_split_characters_on_the_wire(fast_mock: MockServer) -> None:
    c = STORE.get("thai-answer")
    pieces, _ = await read_raw(fast_mock.url, request_for(c, stream=True))
    split = [p for p in pieces if not p.endswith(b"\n\n")]
    assert split, "some writes end inside an event"
    with pytest.raises(UnicodeDecodeError):
        split[0].decode("utf-8")


async def test_cassette_selected_by_name_header(fast_mock: MockServer) -> None:
    c = STORE.get("code-answer")
    body = {"model": "gpt-4.1", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    pieces, _ = await read_raw(fast_mock.url, body, {"X-Mock-Cassette": "code-answer"})
    assert b"".join(pieces) == b"".join(writes_of(c.frames))


async def test_offsets_are_honoured_at_speed(holy_mock_factory: Callable[..., MockServer]) -> None:
    """Nothing arrives before its scheduled offset; the stream is not much later either."""
    speed = 4.0
    mock = holy_mock_factory(speed=speed)
    c = STORE.get("usage-chunk")
    pieces, arrivals = await read_raw(mock.url, request_for(c, stream=True))
    ends = list(accumulate(len(f.data) for f in c.frames))
    got = dict(zip(accumulate(len(p) for p in pieces), arrivals, strict=True))
    for end, frame in zip(ends, c.frames, strict=True):
        assert got[end] >= frame.at / speed - 0.002
    assert arrivals[-1] < c.frames[-1].at / speed + 1.5  # generous: a loaded 2-core machine


@pytest.mark.parametrize("name", ALL_NAMES)
async def test_ws_replay_sends_the_cassette_messages(fast_mock: MockServer, name: str) -> None:
    c = STORE.get(name)
    messages = await read_ws(fast_mock.ws_url, request_for(c))
    assert messages == [f.data for f in c.frames_for("ws")]


async def test_ws_cassette_over_sse(fast_mock: MockServer) -> None:
    c = STORE.get("ws-haiku")
    pieces, _ = await read_raw(fast_mock.url, request_for(c, stream=True))
    assert b"".join(pieces) == b"".join(writes_of(c.frames_for("sse")))


@pytest.mark.parametrize("name", ["long-markdown", "tool-calls", "usage-chunk", "ws-haiku"])
async def test_non_streaming_request_gets_the_assembled_body(
    fast_mock: MockServer, name: str
) -> None:
    c = STORE.get(name)
    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.post(f"{fast_mock.url}/chat/completions", json=request_for(c),
                              headers=AUTH)
    assert r.status_code == 200
    assert r.json() == json.loads(c.frames_for("json")[0].data)


async def test_openai_sdk_reads_the_tool_call_cassette(fast_mock: MockServer) -> None:
    openai = pytest.importorskip("openai")
    c = STORE.get("tool-calls")
    async with openai.AsyncOpenAI(base_url=fast_mock.url, api_key=MOCK_KEY) as client:
        stream = await client.chat.completions.create(
            model="deepseek-v3.2", stream=True,
            messages=[{"role": "user", "content": prompt_of(c)}],
        )
        args: dict[int, str] = {}
        finish = None
        async for chunk in stream:
            for choice in chunk.choices:
                for call in choice.delta.tool_calls or []:
                    args[call.index] = args.get(call.index, "") + (call.function.arguments or "")
                finish = choice.finish_reason or finish
    assert finish == "tool_calls"
    assert [json.loads(a)["city"] for _, a in sorted(args.items())] == ["Bangkok", "Chiang Mai"]


async def test_strict_mock_explains_a_miss(holy_mock_factory: Callable[..., MockServer]) -> None:
    mock = holy_mock_factory(speed=0, strict=True)
    body = {"model": "gpt-4.1", "stream": True,
            "messages": [{"role": "user", "content": "Write a haiku about WebSocket servers."}]}
    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.post(f"{mock.url}/chat/completions", json=body, headers=AUTH)
    assert r.status_code == 400
    assert "closest is 'ws-haiku' (ws-haiku.json): prompt differs at character 29" in (
        r.json()["error"]["message"]
    )


async def test_recorded_sequences_replay_in_order_and_reset(
    holy_mock_factory: Callable[..., MockServer], tmp_path: Path
) -> None:
    base = STORE.get("code-answer")
    done = base.frames[-1]
    for n in (1, 2):  # two recordings of one request: each a single chunk, then [DONE]
        c = Cassette(name=f"seq-{n}", match={"prompt": "seq"}, transport="sse",
                     frames=[base.frames[n], done], headers=base.headers)
        save_cassette(c, tmp_path / f"seq-{n}.json")
    mock = holy_mock_factory(speed=0, cassettes=tmp_path)
    body = {"model": "gpt-4.1", "stream": True, "messages": [{"role": "user", "content": "seq"}]}

    async def first_write() -> bytes:
        pieces, _ = await read_raw(mock.url, body)
        return pieces[0]

    got = [await first_write() for _ in range(3)]
    assert got == [base.frames[1].data, base.frames[2].data, base.frames[1].data]
    mock.reset()
    assert await first_write() == base.frames[1].data
