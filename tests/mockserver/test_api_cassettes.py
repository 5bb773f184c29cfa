"""One reply, any wire: shipped cassettes (recorded as chat completions) served in every API,
and record mode per API against a second mock as the upstream — byte-identical replay at the
recorded offsets."""

from __future__ import annotations

import json
from collections.abc import Callable
from itertools import accumulate
from pathlib import Path

import aiohttp
import httpx
import pytest
from mockutil import assert_paced_like, raw_request

from mockserver import MOCK_KEY, MockServer
from mockserver._cassettes import SHIPPED_DIR, CassetteStore, load_cassette
from mockserver._frames import Frame
from mockserver.formats import anthropic, decoded, gemini, responses

KEY = "holy-test-key-2b7e15d9c4a8"  # not sk-shaped: only the exact-value scrub can catch it
SHIPPED = CassetteStore(SHIPPED_DIR)
Factory = Callable[..., MockServer]


def request_for(api: str, prompt: str, *, stream: bool, max_tokens: int = 4000
                ) -> tuple[str, dict, dict]:
    """(path, body, headers) of one request in ``api``."""
    if api == "responses":
        return "/v1/responses", {"model": "gpt-4.1", "input": prompt, "stream": stream,
                                 "max_output_tokens": max_tokens}, {"Authorization":
                                                                    f"Bearer {KEY}"}
    if api == "anthropic":
        return "/v1/messages", {"model": "claude-sonnet-4.5", "max_tokens": max_tokens,
                                "stream": stream,
                                "messages": [{"role": "user", "content": prompt}]}, {
            "x-api-key": KEY, "anthropic-version": "2023-06-01", "Authorization": ""}
    method = "streamGenerateContent" if stream else "generateContent"
    query = "?alt=sse" if api == "gemini" and stream else ""
    return (f"/v1beta/models/gemini-2.5-flash:{method}{query}",
            {"contents": [{"role": "user", "parts": [{"text": prompt}]}],
             "generationConfig": {"maxOutputTokens": max_tokens}},
            {"x-goog-api-key": KEY, "Authorization": ""})


def read(api: str, body: bytes, transport: str) -> object:
    fmt = {"responses": responses, "anthropic": anthropic, "gemini": gemini,
           "gemini-array": gemini.ARRAY}[api]
    return fmt.read_reply([Frame(0.0, body)], transport)


@pytest.mark.parametrize("name", sorted(c.name for c in SHIPPED.cassettes))
@pytest.mark.parametrize("api", ["responses", "anthropic", "gemini"])
@pytest.mark.parametrize("stream", [False, True])
def test_shipped_cassettes_serve_every_api(holy_mock_factory: Factory, name: str, api: str,
                                           stream: bool) -> None:
    mock = holy_mock_factory(speed=0)
    cassette = SHIPPED.get(name)
    want = cassette.reply()
    path, body, headers = request_for(api, cassette.match["prompt"], stream=stream)
    r = raw_request(mock.url, path, body, headers=headers)
    assert r.status == 200, r.body[:300]
    got = read(api, r.body, "sse" if stream else "json")
    assert got.text == want.text  # type: ignore[attr-defined]
    assert "".join(got.reasoning) == "".join(want.reasoning)  # type: ignore[attr-defined]
    assert [(c.name, json.loads("".join(c.arguments))) for c in got.tool_calls] == [  # type: ignore[attr-defined]
        (c.name, json.loads("".join(c.arguments))) for c in want.tool_calls]
    record = mock.journal()[-1]
    assert (record["api"], record["cassette"], record["outcome"]) == (api, name, "completed")


@pytest.mark.parametrize("fmt", [responses, anthropic, gemini])
def test_a_cassette_rendered_in_another_api_keeps_its_offsets(fmt: object) -> None:
    cassette = SHIPPED.get("reasoning-answer")
    reply = cassette.reply()
    frames = list(fmt.reply_frames(reply, "sse"))  # type: ignore[attr-defined]
    events = decoded(frames, "sse")
    again = fmt.read_reply(events)  # type: ignore[attr-defined]
    assert again.times == reply.times  # every delta at its recorded offset
    assert again.text == reply.text and again.reasoning == reply.reasoning


async def stream_through(url: str, path: str, body: dict, headers: dict) -> list[bytes]:
    pieces: list[bytes] = []
    async with httpx.AsyncClient(timeout=30) as client, client.stream(
            "POST", url.removesuffix("/v1") + path, json=body, headers=headers) as r:
        assert r.status_code == 200, await r.aread()
        async for piece in r.aiter_raw():
            pieces.append(piece)
    return pieces


@pytest.mark.parametrize("api", ["responses", "anthropic", "gemini", "gemini-array"])
async def test_record_then_replay_per_api(holy_mock_factory: Factory, tmp_path: Path,
                                          api: str) -> None:
    upstream = holy_mock_factory(ttft_ms=40, tps=100, seed=3, cassettes=())
    recorder = holy_mock_factory(record_upstream=upstream.url, record_dir=tmp_path)
    path, body, headers = request_for(api.removesuffix("-array"), "Record me", stream=True,
                                      max_tokens=20)
    if api == "gemini-array":
        path = path.replace("?alt=sse", "")
    passed = await stream_through(recorder.url, path, body, headers)
    (rec,) = [load_cassette(p) for p in tmp_path.glob("*.json")]
    assert (rec.api, rec.transport, rec.status, rec.fault) == (api, "sse", 200, None)
    assert b"".join(f.data for f in rec.frames) == b"".join(passed)  # type: ignore[misc]
    assert rec.match["messages"][-1] == {"role": "user", "content": "Record me"}
    schedule = upstream.journal()[-1]["schedule"]
    deltas = rec.reply().times
    assert len(deltas) == len(schedule) == 20
    assert_paced_like(schedule, deltas)  # recorded at the upstream's offsets
    assert KEY not in "".join(p.read_text(encoding="utf-8") for p in tmp_path.glob("*.json"))
    assert recorder.journal()[-1]["api"] == api

    replay = holy_mock_factory(speed=0, cassettes=tmp_path, strict=True)
    pieces = await stream_through(replay.url, path, body, headers)
    assert b"".join(pieces) == b"".join(passed)
    assert set(accumulate(len(f.data) for f in rec.frames)) <= set(accumulate(map(len, pieces)))
    assert replay.journal()[-1]["cassette"] == rec.name


async def test_websocket_mode_record_then_replay(holy_mock_factory: Factory,
                                                 tmp_path: Path) -> None:
    upstream = holy_mock_factory(ttft_ms=20, tps=200, seed=1, cassettes=())
    recorder = holy_mock_factory(record_upstream=upstream.url, record_dir=tmp_path)
    create = {"type": "response.create", "model": "gpt-4.1", "input": "Over the socket",
              "max_output_tokens": 16}

    async def exchange(mock: MockServer) -> list[str]:
        url = mock.url.replace("http://", "ws://") + "/responses"
        async with aiohttp.ClientSession() as session, session.ws_connect(
                url, headers={"Authorization": f"Bearer {KEY}"}) as ws:
            await ws.send_str(json.dumps(create))
            messages: list[str] = []
            while not messages or json.loads(messages[-1])["type"] not in responses.TERMINAL:
                messages.append((await ws.receive(timeout=5)).data)
        return messages

    first = await exchange(recorder)
    (rec,) = [load_cassette(p) for p in tmp_path.glob("*.json")]
    assert (rec.api, rec.transport) == ("responses", "ws")
    assert [f.data for f in rec.frames] == first
    replay = holy_mock_factory(speed=0, cassettes=tmp_path)
    assert await exchange(replay) == first
    # the WebSocket recording answers the SSE stream with named events
    r = raw_request(replay.url, "/v1/responses", {k: v for k, v in create.items()
                                                  if k != "type"} | {"stream": True},
                    headers={"Authorization": f"Bearer {MOCK_KEY}"})
    names = [line[len("event: "):] for line in r.body.decode().splitlines()
             if line.startswith("event: ")]
    assert names == [json.loads(m)["type"] for m in first]
