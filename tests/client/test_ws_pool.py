"""WebSocket specifics: backpressure, heartbeat, reconnecting a pooled socket the server closed."""

from __future__ import annotations

import asyncio

from client_helpers import PROMPT, collect

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
