"""A thousand concurrent streams end with every socket closed and no task left behind."""

from __future__ import annotations

import asyncio
import os
import time

import psutil
from client_helpers import KEY, PROMPT

from holynb import AsyncClient

STREAMS = 1000


def _open_sockets() -> int:
    return sum(1 for c in psutil.Process().net_connections(kind="tcp"))


async def _settle(baseline: int) -> int:
    # The mock (a thread of this process) closes its side a moment after the client does.
    deadline = time.monotonic() + 5
    while (count := _open_sockets()) > baseline and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return count


async def test_thousand_concurrent_streams(holy_mock, transport):
    baseline = _open_sockets()
    fds = len(os.listdir("/proc/self/fd"))
    tasks_before = asyncio.all_tasks()
    async with AsyncClient(base_url=holy_mock.url, api_key=KEY, transport=transport) as client:

        async def one(i: int) -> str:
            async with client.stream(f"{PROMPT} #{i}", max_tokens=8) as s:
                async for _ in s:
                    pass
            assert s.done and s.stats.tokens == 8
            return s.text

        texts = await asyncio.gather(*(one(i) for i in range(STREAMS)))
        assert len(texts) == STREAMS and all(texts)
        assert _open_sockets() > baseline  # keep-alive pool in use until closed
    assert await _settle(baseline) <= baseline
    assert len(os.listdir("/proc/self/fd")) <= fds + 2
    assert not asyncio.all_tasks() - tasks_before - {asyncio.current_task()}
    outcomes = {r["outcome"] for r in holy_mock.journal() if r["method"] in ("POST", "WS")}
    assert outcomes == {"completed"}
