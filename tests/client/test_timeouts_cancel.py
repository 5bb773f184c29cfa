"""Timeout phases and cancellation (the upstream sees the disconnect within 100 ms)."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from client_helpers import KEY, PROMPT, client_sockets, collect, wait_ended

from holynb import AsyncClient, StreamTimeout


async def test_first_token_timeout(holy_mock, make_client, transport):
    client = make_client(holy_mock, transport=transport, first_token_timeout=0.1, max_retries=3)
    stream = client.stream(PROMPT, extra_headers={"X-Mock-Fault": "stall:after=0,ms=2000"})
    with pytest.raises(StreamTimeout) as info:
        async with stream:
            await collect(stream)
    assert info.value.phase == "first_token" and info.value.partial_text == ""
    assert "first_token_timeout" in str(info.value)
    assert stream.stats.retries == 0  # a stalled server is not hammered with retries


async def test_idle_timeout_keeps_partial_text(holy_mock, make_client, transport):
    client = make_client(holy_mock, transport=transport)
    deltas: list[str] = []
    with pytest.raises(StreamTimeout) as info:
        async with client.stream(
            PROMPT,
            max_tokens=20,
            idle_timeout=0.1,  # per call, over the client's default
            extra_headers={"X-Mock-Fault": "stall:after=3,ms=2000"},
        ) as s:
            async for delta in s:
                deltas.append(delta)
    assert info.value.phase == "idle" and len(deltas) == 3
    assert info.value.partial_text == "".join(deltas) == s.text


async def test_total_timeout(holy_mock, make_client, transport):
    # 200 tokens at 100 tok/s take 2 s; the total limit cuts the stream after a few deltas (0.5 s
    # leaves room for a slow connect on a loaded machine).
    client = make_client(holy_mock, transport=transport, total_timeout=0.5)
    deltas: list[str] = []
    with pytest.raises(StreamTimeout) as info:
        async with client.stream(PROMPT, max_tokens=200, extra_headers={"X-Mock-TPS": "100"}) as s:
            async for delta in s:
                deltas.append(delta)
    assert info.value.phase == "total" and deltas
    assert info.value.partial_text == "".join(deltas)
    assert s.stats.total_s is not None and s.stats.total_s < 1.5


async def test_slow_consumer_is_not_an_idle_timeout(holy_mock, make_client, transport):
    client = make_client(holy_mock, transport=transport, idle_timeout=0.1)
    async with client.stream(PROMPT, max_tokens=5) as s:
        async for _ in s:
            await asyncio.sleep(0.15)  # the data is already here: no stall upstream
    assert s.done


@pytest.fixture
def blackhole():
    """A listening socket whose backlog is full, so that new connections hang in SYN."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    fillers = []
    for _ in range(8):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(server.getsockname())
        except BlockingIOError:
            pass
        fillers.append(s)
    yield f"http://127.0.0.1:{server.getsockname()[1]}/v1"
    for s in fillers:
        s.close()
    server.close()


async def test_connect_timeout(blackhole, transport):
    async with AsyncClient(
        base_url=blackhole, api_key=KEY, transport=transport, connect_timeout=0.1, max_retries=0
    ) as client:
        with pytest.raises(StreamTimeout) as info:
            async with client.stream(PROMPT) as s:
                await collect(s)
    assert info.value.phase == "connect" and "connect_timeout" in str(info.value)


def _disconnect_outcome(transport: str) -> str:
    # Over WebSocket holynb sends {"type":"cancel"}: the mock journals "cancelled".
    return "client_disconnected" if transport == "sse" else "cancelled"


async def test_leaving_early_closes_upstream_within_100ms(holy_mock, make_client, transport):
    client = make_client(holy_mock, transport=transport)
    async with client.stream(PROMPT, max_tokens=500, extra_headers={"X-Mock-TPS": "100"}) as s:
        async for _ in s:
            if len(s.text.split()) >= 3:
                break
        left = time.time()
    record = await wait_ended(holy_mock)
    assert record["outcome"] == _disconnect_outcome(transport)
    assert record["ended"] - left < 0.1
    assert not s.done and s.stats.total_s is not None
    if transport == "sse":
        # The half-read connection was closed, not pooled.
        assert client_sockets(holy_mock.url) == 0


async def test_cancelling_the_task_closes_upstream(holy_mock, make_client, transport):
    client = make_client(holy_mock, transport=transport)
    first = asyncio.Event()

    async def consume() -> None:
        async with client.stream(
            PROMPT, max_tokens=500, extra_headers={"X-Mock-TPS": "100"}
        ) as s:
            async for _ in s:
                first.set()

    task = asyncio.create_task(consume())
    await first.wait()
    task.cancel()
    cancelled = time.time()
    with pytest.raises(asyncio.CancelledError):
        await task
    record = await wait_ended(holy_mock)
    assert record["outcome"] == _disconnect_outcome(transport)
    assert record["ended"] - cancelled < 0.1


async def test_aclose_from_another_task_ends_iteration(holy_mock, make_client, transport):
    client = make_client(holy_mock, transport=transport)
    stream = client.stream(PROMPT, max_tokens=500, extra_headers={"X-Mock-TPS": "100"})
    got: list[str] = []

    async def consume() -> None:
        async with stream:
            async for delta in stream:
                got.append(delta)

    task = asyncio.create_task(consume())
    while len(got) < 2:
        await asyncio.sleep(0.005)
    await stream.aclose()
    await asyncio.wait_for(task, 2)  # iteration ends quietly
    record = await wait_ended(holy_mock)
    assert record["outcome"] == _disconnect_outcome(transport)


async def test_ws_connection_reused_after_cancel(holy_mock, make_client):
    client = make_client(holy_mock, transport="ws")
    async with client.stream(PROMPT, max_tokens=500, extra_headers={"X-Mock-TPS": "200"}) as s:
        async for _ in s:
            break
    await wait_ended(holy_mock)
    await asyncio.sleep(0.05)  # the cancel's [DONE] comes back; the socket returns to the pool
    # Same mock controls (they ride on the WebSocket URL), so the same pooled socket applies.
    async with client.stream(PROMPT, max_tokens=5, extra_headers={"X-Mock-TPS": "200"}) as s:
        assert len(await collect(s)) == 5
    assert len(client._ws["chat"]._conns) == 1


@pytest.mark.parametrize(("fault", "phase"), [
    ("stall:after=0,ms=2000;heartbeat:ms=20", "first_token"),
    ("stall:after=3,ms=2000;heartbeat:ms=20", "idle"),
])
async def test_heartbeats_do_not_hide_a_stall(holy_mock, make_client, transport, fault, phase):
    # Only the phase under test has a short limit, so a slow start on a loaded machine cannot
    # turn an idle stall into a first-token one.
    short, long = 0.2, 5.0
    client = make_client(
        holy_mock, transport=transport, max_retries=0,
        first_token_timeout=short if phase == "first_token" else long,
        idle_timeout=short if phase == "idle" else long,
    )
    stream = client.stream(PROMPT, max_tokens=10, extra_headers={"X-Mock-Fault": fault})
    with pytest.raises(StreamTimeout) as info:
        async with stream:
            await collect(stream)
    assert info.value.phase == phase
    assert info.value.partial_text == stream.text


async def test_read_watchdog_rearms_and_is_cleared(holy_mock, make_client, transport):
    # Chunks 50 ms apart with a 0.3 s idle timeout for ~1 s: the watchdog fires early and
    # re-arms without ever cancelling the read; it is cleared when the stream ends.
    client = make_client(holy_mock, transport=transport, idle_timeout=0.3)
    async with client.stream(PROMPT, max_tokens=20, extra_headers={"X-Mock-TPS": "20"}) as s:
        assert len(await collect(s)) == 20
    assert s.done and s._timer is None
    with pytest.raises(StreamTimeout):
        async with client.stream(
            PROMPT, max_tokens=20, idle_timeout=0.1,
            extra_headers={"X-Mock-Fault": "stall:after=2,ms=2000"},
        ) as s:
            await collect(s)
    assert s._timer is None
