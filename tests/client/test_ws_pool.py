"""WebSocket specifics: backpressure, heartbeat, reconnecting a pooled socket the server closed."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web
from client_helpers import PROMPT, collect

from holynb import AsyncClient
from holynb._retry import RetryEvent
from holynb._transports.ws import HIGH_WATER


async def test_slow_consumer_pauses_and_resumes_the_server(holy_mock, make_client):
    client = make_client(holy_mock, transport="ws")
    deltas: list[str] = []
    async with client.stream(PROMPT, max_tokens=600, extra_headers={"X-Mock-TPS": "4000"}) as s:
        async for delta in s:
            if not deltas:
                await asyncio.sleep(0.25)  # fall behind: ~1000 tokens' worth of time
                conn = s._attempt._conn
                # The server was asked to pause: the backlog stopped near the high-water mark.
                assert conn.paused and conn.pauses == 1
                assert HIGH_WATER < len(conn.buf) < HIGH_WATER + 60
            deltas.append(delta)
    assert len(deltas) == 600 and s.done
    assert not conn.paused  # resumed once drained


async def test_heartbeat_keeps_idle_pooled_socket_open(holy_mock_factory, make_client):
    mock = holy_mock_factory(idle_timeout_s=0.3)
    client = make_client(mock, transport="ws", ping_interval=0.1)
    async with client.stream(PROMPT, max_tokens=3) as s:
        await collect(s)
    (first,) = client._ws["chat"]._conns
    await asyncio.sleep(0.7)  # longer than the server's idle timeout
    assert not first.closed
    async with client.stream(PROMPT, max_tokens=3) as s:
        await collect(s)
    assert client._ws["chat"]._conns == {first}


async def test_pooled_socket_closed_by_server_is_replaced(holy_mock_factory, make_client):
    mock = holy_mock_factory(idle_timeout_s=0.2)
    client = make_client(mock, transport="ws", ping_interval=60)
    async with client.stream(PROMPT, max_tokens=3) as s:
        await collect(s)
    (first,) = client._ws["chat"]._conns
    await asyncio.sleep(0.5)
    assert first.closed  # the server closed it while idle
    async with client.stream(PROMPT, max_tokens=3) as s:
        assert len(await collect(s)) == 3
    assert s.stats.retries == 0 and first not in client._ws["chat"]._conns


class IdleCloser:
    """A plain aiohttp server in the Responses API's WebSocket mode (not the project's mock):
    it answers one ``response.create``, then closes the idle socket — with a close frame
    (``close``) or by dropping the TCP connection without one (``drop``)."""

    def __init__(self, how: str) -> None:
        self.how = how
        self.connections = 0
        self.requests = 0
        self.closed = asyncio.Event()

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        self.connections += 1
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        msg = await ws.receive()
        if msg.type is web.WSMsgType.TEXT and json.loads(msg.data)["type"] == "response.create":
            self.requests += 1
            for n, word in enumerate(["Hi", " there"]):
                await ws.send_json({"type": "response.output_text.delta", "delta": word,
                                    "item_id": "msg_1", "output_index": 0, "content_index": 0,
                                    "sequence_number": n})
            await ws.send_json({"type": "response.completed", "sequence_number": 2, "response": {
                "id": "resp_1", "object": "response", "status": "completed", "output": [],
                "usage": {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}}})
        await asyncio.sleep(0.05)
        if self.how == "drop":
            request.transport.close()  # no close frame: the client finds a dead socket
        else:
            await ws.close()
        self.closed.set()
        return ws


@pytest.mark.parametrize("how", ["close", "drop"])
async def test_stale_websocket_of_another_server_is_replaced_without_a_retry(how):
    server = IdleCloser(how)
    app = web.Application()
    app.router.add_get("/v1/responses", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    events: list[RetryEvent] = []
    try:
        async with AsyncClient(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-test-key-1",
                               api="responses", transport="ws", max_retries=0,
                               on_retry=events.append, ping_interval=60) as client:
            for _ in range(3):
                async with client.stream(PROMPT) as s:
                    assert await collect(s) == ["Hi", " there"]
                assert s.finish_reason == "stop" and s.stats.retries == 0
                # The next stream goes out only once the server has closed the idle socket.
                await asyncio.wait_for(server.closed.wait(), 10)
                server.closed.clear()
                await asyncio.sleep(0.02)
    finally:
        await runner.cleanup()
    assert server.connections == 3 and server.requests == 3 and events == []
