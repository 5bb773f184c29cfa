"""The SSE writer: sends a :class:`~mockserver._faults.Plan` at absolute deadlines.

Every frame is due at ``start + frame.at / speed`` on the loop clock. Sleeping until an absolute
deadline (rather than sleeping each gap) means late wake-ups never accumulate into drift: a frame
that was late does not delay the next one.
"""

from __future__ import annotations

import asyncio
import math
import socket
import struct
from collections.abc import Callable

from aiohttp import web

from ._faults import Plan

__all__ = [
    "DONE",
    "SSE_HEADERS",
    "break_connection",
    "encode_event",
    "sleep_until",
    "write_sse",
]

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "Connection": "keep-alive",
    "X-Accel-Buffering": "no",
}
DONE = b"data: [DONE]\n\n"
HEARTBEAT = b": heartbeat\n\n"


def encode_event(payload: str) -> bytes:
    """One ``data:`` event carrying a JSON payload."""
    return b"data: " + payload.encode() + b"\n\n"


# epoll timeouts are whole milliseconds, rounded up, so a timer fires 0-1 ms late. A precise
# wait sleeps to 1 ms before the deadline and then yields to the loop until it is reached.
_SPIN_S = 0.001


async def sleep_until(deadline: float, *, precise: bool = False) -> None:
    """Sleep until the loop clock reaches ``deadline`` (returns at once if it has passed).

    ``precise`` finishes the wait by yielding to the loop until the deadline (sub-millisecond
    accuracy, at the cost of a busy loop for the last millisecond).
    """
    loop = asyncio.get_running_loop()
    delay = deadline - loop.time()
    if delay <= 0:
        return
    if not precise:
        await asyncio.sleep(delay)
        return
    if delay > _SPIN_S:
        await asyncio.sleep(delay - _SPIN_S)
    while loop.time() < deadline:
        await asyncio.sleep(0)


def break_connection(transport: asyncio.BaseTransport | None, *, reset: bool) -> None:
    """End a connection early: a clean FIN, or with ``reset`` a TCP RST (SO_LINGER 0 makes
    close() discard the socket instead of sending a FIN)."""
    if transport is None:
        return
    if not reset:
        transport.close()
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def _flush(transport: asyncio.WriteTransport | None, limit_s: float = 1.0) -> None:
    """Wait (bounded) until the transport's buffer reached the kernel."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit_s
    while transport is not None and transport.get_write_buffer_size() and loop.time() < end:
        await asyncio.sleep(0.001)


async def write_sse(
    request: web.Request,
    resp: web.StreamResponse,
    plan: Plan,
    *,
    speed: float,
    start: float,
    on_frame: Callable[[], None],
    precise: Callable[[], bool] = lambda: False,
) -> None:
    """Send the plan's frames on a prepared response and end it as the plan says.

    ``start`` is the loop time the request arrived: offsets count from there, so the time
    spent parsing and preparing is part of the TTFT instead of being added to it.
    ``precise()`` says whether the loop is quiet enough for sub-millisecond waits.
    Raises ``ConnectionError`` when the client went away.
    """
    hb = plan.heartbeat_s
    next_hb = start + hb if hb else math.inf
    size = plan.slice_size
    for frame in plan.frames:
        deadline = start + frame.at / speed if speed > 0 else start
        while next_hb < deadline:
            await sleep_until(next_hb, precise=precise())
            await resp.write(HEARTBEAT)
            next_hb += hb  # type: ignore[operator]
        await sleep_until(deadline, precise=precise())
        data = frame.data if isinstance(frame.data, bytes) else encode_event(frame.data)
        if size:
            for i in range(0, len(data), size):
                if i and plan.slice_gap_s:
                    await asyncio.sleep(plan.slice_gap_s)
                await resp.write(data[i : i + size])
        else:
            await resp.write(data)
        on_frame()
    if plan.end in ("close", "reset"):
        # A FIN (or RST) before the chunked body is complete: "connection closed early".
        await _flush(request.transport)
        break_connection(request.transport, reset=plan.end == "reset")
    else:
        await resp.write_eof()
