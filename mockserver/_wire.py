"""Ending a TCP connection on purpose: a clean FIN, or a reset, after what was written left."""

from __future__ import annotations

import asyncio
import socket
import struct

__all__ = ["break_connection", "flush"]


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


async def flush(transport: asyncio.WriteTransport | None, limit_s: float = 1.0) -> None:
    """Wait (bounded) until the transport's buffer reached the kernel."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit_s
    while transport is not None and transport.get_write_buffer_size() and loop.time() < end:
        await asyncio.sleep(0.001)
