"""The WebSocket endpoint: protocol (DESIGN.md), errors, close codes and every fault."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from mockutil import AUTH, chat, raw_ws_frames, wait_for

from mockserver import MOCK_KEY, MockServer


@asynccontextmanager
async def connect(
    mock: MockServer, query: str = "", **kw
) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(mock.ws_url + query, headers=AUTH, **kw) as ws:
            yield ws


async def collect(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5) -> list[str]:
    """Text messages until [DONE], an error frame, or the socket closes."""
    out: list[str] = []
    while True:
        msg = await ws.receive(timeout=timeout)
        if msg.type != aiohttp.WSMsgType.TEXT:
            return out
        out.append(msg.data)
        if msg.data == "[DONE]" or msg.data.startswith('{"error"'):
            return out


def request(content: str = "ws", **params) -> str:
    return json.dumps(chat(content, **{"max_tokens": 6, **params}))


async def test_stream_and_connection_reuse(holy_mock: MockServer) -> None:
    async with connect(holy_mock) as ws:
        for i in range(3):
            await ws.send_str(request(str(i), stream_options={"include_usage": True}))
            msgs = await collect(ws)
            assert msgs[-1] == "[DONE]"
            chunks = [json.loads(m) for m in msgs[:-1]]
            assert len(chunks) == 7  # 6 tokens + usage
            assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
            assert chunks[5]["choices"][0]["finish_reason"] == "length"
            assert chunks[6]["choices"] == [] and chunks[6]["usage"]["completion_tokens"] == 6
    records = holy_mock.journal()
    assert [r["transport"] for r in records] == ["ws"] * 3
    assert all(r["outcome"] == "completed" and r["chunks_sent"] == 8 for r in records)


async def test_same_text_as_sse(holy_mock: MockServer) -> None:
    import httpx

    async with connect(holy_mock) as ws:
        await ws.send_str(request("compare"))
        msgs = await collect(ws)
    ws_text = "".join(json.loads(m)["choices"][0]["delta"]["content"] for m in msgs[:-1])
    r = httpx.post(f"{holy_mock.url}/chat/completions", json=json.loads(request("compare")),
                   headers=AUTH)
    assert r.json()["choices"][0]["message"]["content"] == ws_text


@pytest.mark.parametrize("how", ["header", "query"])
async def test_auth_by_header_or_query(holy_mock: MockServer, how: str) -> None:
    async with aiohttp.ClientSession() as session:
        if how == "header":
            ws = await session.ws_connect(holy_mock.ws_url, headers=AUTH)
        else:
            ws = await session.ws_connect(f"{holy_mock.ws_url}?key={MOCK_KEY}")
        await ws.send_str('{"type":"ping"}')
        assert (await ws.receive(timeout=5)).data == '{"type":"pong"}'
        await ws.close()


@pytest.mark.parametrize("query", ["", "?key=YOUR_HOLYSHEEP_API_KEY"])
async def test_bad_key_is_401_json_before_upgrade(holy_mock: MockServer, query: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(holy_mock.ws_url.replace("ws://", "http://") + query, headers={
            "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        }) as r:
            assert r.status == 401
            assert (await r.json())["error"]["type"] == "invalid_request_error"


async def test_bad_control_query_is_400_and_plain_get_is_400(holy_mock: MockServer) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await session.ws_connect(holy_mock.ws_url + "?X-Mock-Fault=nope", headers=AUTH)
        assert info.value.status == 400
        async with session.get(holy_mock.ws_url.replace("ws://", "http://"), headers=AUTH) as r:
            assert r.status == 400
            assert (await r.json())["error"]["code"] == "websocket_required"


async def test_ping_pong_mid_stream(holy_mock_factory) -> None:
    mock = holy_mock_factory(tps=100)
    async with connect(mock) as ws:
        await ws.send_str(request(max_tokens=10))
        first = await ws.receive(timeout=5)
        assert json.loads(first.data)["object"] == "chat.completion.chunk"
        await ws.send_str('{"type":"ping"}')
        msgs = await collect(ws)
        assert '{"type":"pong"}' in msgs
        assert len([m for m in msgs if m.startswith('{"id"')]) == 9


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "invalid_json"),
        ('{"type":"dance"}', "unknown_control"),
        ('{"model":"gpt-4.1"}', "missing_required_parameter"),
        ('[1,2,3]', "invalid_type"),
        ('{"model":"gpt-9","messages":[{"role":"user","content":"x"}]}', "model_not_found"),
        (json.dumps(chat(max_tokens=-1)), "invalid_value"),
    ],
)
async def test_bad_frames_get_error_frames_and_socket_stays_open(
    holy_mock: MockServer, frame: str, code: str
) -> None:
    async with connect(holy_mock) as ws:
        await ws.send_str(frame)
        err = json.loads((await ws.receive(timeout=5)).data)["error"]
        assert err["code"] == code and set(err) >= {"message", "type", "code"}
        await ws.send_bytes(b"\x00\x01")
        assert json.loads((await ws.receive(timeout=5)).data)["error"]["code"] == \
            "unsupported_frame"
        await ws.send_str(request())
        assert (await collect(ws))[-1] == "[DONE]"


async def test_one_stream_at_a_time(holy_mock_factory) -> None:
    mock = holy_mock_factory(tps=100)
    async with connect(mock) as ws:
        await ws.send_str(request(max_tokens=10))
        await ws.receive(timeout=5)
        await ws.send_str(request("second"))
        msgs = await collect(ws)
        errors = [m for m in msgs if m.startswith('{"error"')]
        assert len(errors) == 1 and "stream_in_progress" in errors[0]
        if msgs[-1] != "[DONE]":
            msgs = await collect(ws)
        assert msgs[-1] == "[DONE]"


async def test_cancel_stops_the_stream_and_sends_done(holy_mock_factory) -> None:
    mock = holy_mock_factory(tps=20)
    async with connect(mock) as ws:
        await ws.send_str(request(max_tokens=50))
        await ws.receive(timeout=5)
        sent = time.monotonic()
        await ws.send_str('{"type":"cancel"}')
        msgs = await collect(ws)
        assert msgs[-1] == "[DONE]" and len(msgs) <= 3
        assert time.monotonic() - sent < 0.1  # generous upper bound
        await ws.send_str(request("after cancel", max_tokens=3))
        assert len(await collect(ws)) == 4  # the connection is reused
    assert mock.journal()[0]["outcome"] == "cancelled"


async def test_pause_holds_frames_until_resume(holy_mock_factory) -> None:
    mock = holy_mock_factory(tps=50)
    async with connect(mock) as ws:
        await ws.send_str(request(max_tokens=20))
        await ws.receive(timeout=5)
        await ws.send_str('{"type":"pause"}')
        await asyncio.sleep(0.05)  # let in-flight frames land
        while True:
            try:
                await ws.receive(timeout=0.05)
            except TimeoutError:
                break
        with pytest.raises(TimeoutError):
            await ws.receive(timeout=0.3)  # 15 frames would be due in this time
        await ws.send_str('{"type":"resume"}')
        msgs = await collect(ws)
        assert msgs[-1] == "[DONE]"
    assert mock.journal()[0]["chunks_sent"] == 21


async def test_idle_connection_is_closed_and_pings_keep_it_open(holy_mock_factory) -> None:
    mock = holy_mock_factory(idle_timeout_s=0.5)
    async with connect(mock) as ws:
        for _ in range(8):  # 0.8 s in total, pinging every 0.1 s
            await asyncio.sleep(0.1)
            await ws.send_str('{"type":"ping"}')
            assert (await ws.receive(timeout=5)).data == '{"type":"pong"}'
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1001


async def test_idle_time_counts_from_the_end_of_a_stream(holy_mock_factory) -> None:
    mock = holy_mock_factory(idle_timeout_s=0.5, tps=10)
    async with connect(mock) as ws:
        await ws.send_str(request(max_tokens=9))  # streams for ~0.8 s, longer than the timeout
        assert (await collect(ws))[-1] == "[DONE]"
        await ws.send_str('{"type":"ping"}')
        assert (await ws.receive(timeout=5)).data == '{"type":"pong"}'


async def test_client_disconnect_mid_stream_is_journaled(holy_mock_factory) -> None:
    mock = holy_mock_factory(tps=20)
    async with connect(mock) as ws:
        await ws.send_str(request(max_tokens=50))
        await ws.receive(timeout=5)
    closed = time.time()
    rec = wait_for(lambda: next((r for r in mock.journal() if r["ended"]), None), timeout=2)
    assert rec["outcome"] == "client_disconnected" and rec["ended"] - closed < 0.1


# -- faults over WebSocket -----------------------------------------------------------------------


async def test_status_fault_error_frame_keeps_socket_open(holy_mock: MockServer) -> None:
    async with connect(holy_mock, "?X-Mock-Fault=status:code=429,retry_after=1.5") as ws:
        for _ in range(2):
            await ws.send_str(request())
            err = json.loads((await ws.receive(timeout=5)).data)["error"]
            assert (err["status"], err["code"], err["retry_after"]) == (429, "rate_limit_exceeded",
                                                                        1.5)
    assert holy_mock.journal()[-1]["outcome"] == "fault:status"


@pytest.mark.parametrize(("status", "close_code"), [(401, 1008), (403, 1008), (503, 1013)])
async def test_status_fault_closing_codes(holy_mock: MockServer, status: int, close_code: int):
    async with connect(holy_mock, f"?X-Mock-Fault=status:code={status}") as ws:
        await ws.send_str(request())
        assert json.loads((await ws.receive(timeout=5)).data)["error"]["status"] == status
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == close_code


async def test_ws_close_fault(holy_mock: MockServer) -> None:
    async with connect(holy_mock, "?X-Mock-Fault=ws-close:code=1011,after=2") as ws:
        await ws.send_str(request())
        msgs = []
        while True:
            msg = await ws.receive(timeout=5)
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            msgs.append(msg.data)
        assert len(msgs) == 2 and msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1011
    assert holy_mock.journal()[-1]["outcome"] == "fault:ws-close"


@pytest.mark.parametrize("fault", ["disconnect:after=3", "reset:after=3"])
async def test_disconnect_and_reset_drop_the_socket(holy_mock: MockServer, fault: str) -> None:
    async with connect(holy_mock, f"?X-Mock-Fault={fault}") as ws:
        await ws.send_str(request())
        texts = []
        while True:
            msg = await ws.receive(timeout=5)
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            texts.append(msg.data)
        assert "[DONE]" not in texts and len(texts) <= 3
        assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR,
                            aiohttp.WSMsgType.CLOSE)
        assert ws.close_code not in (1000, 1001)
    assert holy_mock.journal()[-1]["outcome"] == f"fault:{fault.split(':')[0]}"


async def test_malformed_error_event_no_done_crlf(holy_mock: MockServer) -> None:
    async with connect(holy_mock, "?X-Mock-Fault=malformed:at=2") as ws:
        await ws.send_str(request())
        msgs = await collect(ws)
        with pytest.raises(json.JSONDecodeError):
            json.loads(msgs[1])
        assert msgs[-1] == "[DONE]" and len(msgs) == 8 and "\r" not in "".join(msgs)
    async with connect(holy_mock, "?X-Mock-Fault=error-event:at=3") as ws:
        await ws.send_str(request())
        msgs = await collect(ws)
        assert len(msgs) == 3 and json.loads(msgs[-1])["error"]["status"] == 500
        await ws.send_str('{"type":"ping"}')  # recoverable: the socket is still open
        assert (await ws.receive(timeout=5)).data == '{"type":"pong"}'
    async with connect(holy_mock, "?X-Mock-Fault=no-done") as ws:
        await ws.send_str(request())
        msgs = [(await ws.receive(timeout=5)).data for _ in range(6)]
        assert "[DONE]" not in msgs
        with pytest.raises(TimeoutError):
            await ws.receive(timeout=0.2)


async def test_stall_and_heartbeat_pings(holy_mock: MockServer) -> None:
    async with connect(holy_mock, "?X-Mock-Fault=stall:after=1,ms=250;heartbeat:ms=50",
                       autoping=False) as ws:
        await ws.send_str(request(max_tokens=3))
        pings, texts = 0, []
        while True:
            msg = await ws.receive(timeout=5)
            if msg.type == aiohttp.WSMsgType.PING:
                pings += 1
                await ws.pong(msg.data)
            elif msg.type == aiohttp.WSMsgType.TEXT:
                texts.append(msg.data)
                if msg.data == "[DONE]":
                    break
        assert pings >= 3 and len(texts) == 4


def test_fragmented_messages_on_the_raw_wire(holy_mock: MockServer) -> None:
    query = "?X-Mock-Fault=fragment:size=7"
    frames = raw_ws_frames(holy_mock.url, request(max_tokens=4), query=query)
    assert frames[0][1] == 0x1 and frames[0][0] is False  # a text frame without FIN
    assert any(op == 0x0 for _, op, _ in frames)  # continuation frames
    assert all(len(p) <= 7 for _, _, p in frames)
    messages, parts = [], []
    for fin, _, payload in frames:
        parts.append(payload)
        if fin:
            messages.append(b"".join(parts).decode())
            parts = []
    assert messages[-1] == "[DONE]" and len(messages) == 5
    assert all(json.loads(m)["object"] == "chat.completion.chunk" for m in messages[:-1])


async def test_fragmented_messages_reassemble_in_a_normal_client(holy_mock: MockServer) -> None:
    async with connect(holy_mock) as ws:
        await ws.send_str(request("frag"))
        plain = await collect(ws)
    holy_mock.reset()
    async with connect(holy_mock, "?X-Mock-Fault=slice:size=3") as ws:
        await ws.send_str(request("frag"))
        assert await collect(ws) == plain


async def test_per_connection_latency_controls(holy_mock: MockServer) -> None:
    async with connect(holy_mock, "?X-Mock-TTFT-Ms=5&X-Mock-TPS=400&X-Mock-Seed=9") as ws:
        await ws.send_str(request())
        await collect(ws)
    rec = holy_mock.journal()[-1]
    assert rec["latency"]["ttft_ms"] == 5 and rec["latency"]["tps"] == 400
    assert rec["controls"]["seed"] == 9


async def test_oversize_frame_closes_with_1009(holy_mock_factory) -> None:
    mock = holy_mock_factory(max_body_bytes=2048)
    async with connect(mock) as ws:
        await ws.send_str(request("x" * 5000))
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1009


async def test_request_right_after_cancel_is_served(holy_mock_factory) -> None:
    mock = holy_mock_factory(tps=20)
    async with connect(mock) as ws:
        await ws.send_str(request(max_tokens=50))
        await ws.receive(timeout=5)
        # Back to back, without waiting for the cancelled stream's [DONE].
        await ws.send_str('{"type":"cancel"}')
        await ws.send_str(request("after cancel", max_tokens=3))
        assert (await collect(ws))[-1] == "[DONE]"  # the cancelled stream
        msgs = await collect(ws)
        assert msgs[-1] == "[DONE]" and len(msgs) == 4, msgs
    assert [r["outcome"] for r in mock.journal()] == ["cancelled", "completed"]
