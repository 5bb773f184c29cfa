"""Helpers shared by the client tests (imported as a plain module: tests/ has no packages)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

# Recognisable so that the masking tests can search every output for it.
KEY = "sk-holynb-test-SECRET-5f3a9c1e7b2d"
PROMPT = "Tell me about streaming."


# The paths of requests that stream a reply, in every API (HTTP POSTs and WebSocket streams).
_STREAM_PATHS = ("/chat/completions", "/ws/chat", "/responses", "/messages")


def stream_records(mock: Any) -> list[dict[str, Any]]:
    """Journal records of reply requests, whatever the API (not model listings)."""
    return [
        r
        for r in mock.journal()
        if r["method"] in ("POST", "WS") and r["path"].endswith(_STREAM_PATHS)
    ]


async def wait_ended(mock: Any, *, timeout: float = 2.0) -> dict[str, Any]:
    """Poll the journal until the last reply request has ended; return it."""
    deadline = time.monotonic() + timeout
    while True:
        records = stream_records(mock)
        if records and records[-1]["ended"] is not None:
            return records[-1]
        if time.monotonic() > deadline:
            raise AssertionError(f"no ended record in the journal: {records[-1:]}")
        await asyncio.sleep(0.005)


async def collect(stream: Any) -> list[str]:
    """All deltas of a stream (entered by the caller)."""
    return [delta async for delta in stream]


def client_sockets(url: str) -> int:
    """Open TCP connections from this process to the server at ``url`` (client side only)."""
    import psutil

    port = int(url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
    return sum(
        1
        for c in psutil.Process().net_connections(kind="tcp")
        if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
    )


async def stream_and_json_errors(client: Any, error: type[BaseException]) -> tuple[Any, Any, Any]:
    """Run a stream and ``models()`` that must both raise ``error``: (stream, its error, the
    JSON request's error)."""
    import pytest

    stream = client.stream(PROMPT)
    with pytest.raises(error) as stream_info:
        async with stream:
            await collect(stream)
    with pytest.raises(error) as json_info:
        await client.models()
    return stream, stream_info.value, json_info.value


WEATHER_PROMPT = "What is the weather in Bangkok and Chiang Mai right now?"
WEATHER_TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]


def script(name: str, fault: str = "", times: int = 0) -> dict[str, str]:
    """Headers for the Responses + Messages test server: which documentation stream to play,
    a fault, and for how many requests (0: every one)."""
    headers = {"X-Script": name}
    if fault:
        headers["X-Fault"] = fault
    if times:
        headers["X-Fault-Times"] = str(times)
    return headers
