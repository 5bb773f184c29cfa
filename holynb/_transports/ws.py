"""WebSocket streams over the client's aiohttp session: pooled sockets, heartbeat, backpressure.

An API's :class:`~holynb._apis.base.WSProtocol` says how it streams: holynb's chat protocol
(DESIGN.md: the request as one JSON text frame, one chunk per frame, ``[DONE]``, control frames
``{"type": "ping" | "pause" | "resume" | "cancel"}``) or the Responses API's WebSocket mode
(``response.create`` events in, the stream's events out, no control frames: a stream is stopped
by closing its socket, idle sockets are kept alive with WebSocket pings).
A connection carries one stream at a time and goes back to the pool when its stream ended.
A pooled socket already closed by the server is dropped before the request is sent; once the
request was sent, any failure is the stream's to retry (counted), never re-sent silently here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

import aiohttp

from holynb._apis.base import APISpec, WSProtocol
from holynb._apis.errors import error_from_payload
from holynb._config import scrub
from holynb._errors import APIStatusError, AuthenticationError, StreamInterrupted
from holynb._stats import StreamStats
from holynb._transports.session import Session

__all__ = ["HIGH_WATER", "WSAttempt", "WSTransport"]

log = logging.getLogger("holynb")

# Backpressure: ask the server to pause above this many unconsumed messages; the next read()
# takes them all and asks it to resume.
HIGH_WATER = 100
# After a cancel, how long to wait for the server to end the stream before closing the socket.
CANCEL_DRAIN_S = 2.0
# What sending on a socket that is closing or gone raises.
_SEND_ERRORS = (aiohttp.ClientError, ConnectionError, RuntimeError)


class _Conn:
    """One WebSocket plus the task that reads it into ``buf`` (also while idle in the pool)."""

    def __init__(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        pool_key: tuple[Any, ...],
        protocol: WSProtocol,
    ) -> None:
        self.ws = ws
        self.pool_key = pool_key
        self.protocol = protocol
        self.buf: deque[str] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.closed = False
        self.close_code: int | None = None  # from the server's close frame
        self.close_reason = ""
        self.paused = False
        self.pauses = 0  # pause frames sent (backpressure episodes)
        self.loop = asyncio.get_running_loop()
        self.last_sent = self.loop.time()
        self.reader = asyncio.create_task(self._read_loop())

    async def send(self, text: str) -> None:
        self.last_sent = self.loop.time()
        await self.ws.send_str(text)

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _read_loop(self) -> None:
        ws = self.ws
        buf = self.buf
        text_type = aiohttp.WSMsgType.TEXT
        binary_type = aiohttp.WSMsgType.BINARY
        pongs = self.protocol.ping is not None
        pause = self.protocol.pause
        try:
            while True:
                msg = await ws.receive()
                kind = msg.type
                if kind is text_type:
                    data = msg.data
                elif kind is binary_type:
                    data = msg.data.decode("utf-8", "replace")
                else:
                    # CLOSE, CLOSING, CLOSED or ERROR; a CLOSE carries the server's code and reason.
                    if kind is aiohttp.WSMsgType.CLOSE:
                        self.close_code = msg.data if isinstance(msg.data, int) else None
                        if isinstance(msg.extra, str):
                            self.close_reason = msg.extra
                    elif kind is aiohttp.WSMsgType.ERROR:
                        self.close_reason = str(msg.data)
                    break
                if pongs and len(data) < 40 and '"pong"' in data:
                    continue
                buf.append(data)
                if self.waiter is not None:
                    self._wake()
                if pause is not None and not self.paused and len(buf) > HIGH_WATER:
                    self.paused = True
                    self.pauses += 1
                    await self.send(pause)
        except Exception:  # any failure to read means the socket is unusable
            pass
        finally:
            self.closed = True
            self._wake()

    async def wait(self) -> None:
        """Wait until a message arrives or the socket closes."""
        self.waiter = self.loop.create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None

    async def close(self) -> None:
        self.closed = True
        self.reader.cancel()
        with contextlib.suppress(Exception):
            await self.ws.close()
        await asyncio.wait([self.reader])


class WSTransport:
    """A pool of WebSocket connections to an API's WebSocket path, reused one stream at a time."""

    def __init__(
        self, session: Session, api: APISpec, *, pool_size: int, ping_interval: float
    ) -> None:
        assert api.ws is not None and api.ws_path is not None
        scheme, rest = session.base_url.split("://", 1)
        self.url = f"{'wss' if scheme == 'https' else 'ws'}://{rest}{api.ws_path}"
        self.api = api
        self.protocol = api.ws
        self._session = session
        self._pool_size = pool_size
        self._ping_interval = ping_interval
        self._idle: dict[tuple[Any, ...], list[_Conn]] = {}
        self._conns: set[_Conn] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._pinger: asyncio.Task[None] | None = None
        self._closing = False

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def open(
        self,
        body: dict[str, Any],
        *,
        query: dict[str, str],
        connect_timeout: float | None,
        stats: StreamStats,
    ) -> WSAttempt:
        """Send the request on a pooled (or new) connection; return the attempt to read."""
        pool_key = tuple(sorted(query.items()))
        text = self.protocol.request(body)
        conn = self._take_idle(pool_key)
        attempt: WSAttempt | None = None
        if conn is not None:
            try:
                await conn.send(text)
                attempt = WSAttempt(self, conn, stats)
            except _SEND_ERRORS:
                # The socket was found closing before the request went out: nothing was sent.
                await self._drop(conn)
        if attempt is None:
            conn = await self._connect(query, pool_key, connect_timeout)
            await self._send_request(conn, text)
            attempt = WSAttempt(self, conn, stats)
        try:
            await attempt.first()
        except BaseException:
            await attempt.abort()
            raise
        return attempt

    async def _send_request(self, conn: _Conn, text: str) -> None:
        """Send the request on a new connection; on failure close it and raise StreamInterrupted."""
        try:
            await conn.send(text)
        except _SEND_ERRORS:
            await self._drop(conn)
            error = StreamInterrupted(
                f"The WebSocket to {self._session.shown(self.url)} closed while sending the "
                "request",
                hint="retry the request",
            )
        else:
            return
        raise error

    def _take_idle(self, pool_key: tuple[Any, ...]) -> _Conn | None:
        idle = self._idle.get(pool_key)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                conn.buf.clear()
                return conn
            self._conns.discard(conn)
        return None

    async def _connect(
        self, query: dict[str, str], pool_key: tuple[Any, ...], connect_timeout: float | None
    ) -> _Conn:
        ping = self.protocol.ping
        ws = await self._session.ws_connect(
            self.url,
            api=self.api,
            query=query,
            connect_timeout=connect_timeout,
            heartbeat=None if ping is not None else self._ping_interval,
        )
        conn = _Conn(ws, pool_key, self.protocol)
        self._conns.add(conn)
        if ping is not None and self._pinger is None:
            self._pinger = asyncio.create_task(self._ping_loop(ping))
        return conn

    async def _ping_loop(self, ping: str) -> None:
        # App-level heartbeat: keeps idle pooled sockets (and paused streams) from being closed
        # by the server's idle timeout.
        interval = self._ping_interval
        while True:
            await asyncio.sleep(interval / 2)
            now = asyncio.get_running_loop().time()
            for conn in list(self._conns):
                if not conn.closed and now - conn.last_sent >= interval:
                    with contextlib.suppress(*_SEND_ERRORS):
                        await conn.send(ping)

    def release(self, conn: _Conn) -> None:
        """Return a connection whose stream ended to the pool (or close it if the pool is full)."""
        if conn.closed:
            self._conns.discard(conn)
            return
        idle = self._idle.setdefault(conn.pool_key, [])
        if sum(map(len, self._idle.values())) >= self._pool_size:
            self._spawn(self._drop(conn))
            return
        conn.buf.clear()
        conn.paused = False
        idle.append(conn)

    async def _drop(self, conn: _Conn) -> None:
        self._conns.discard(conn)
        await conn.close()

    def cancel(self, conn: _Conn) -> None:
        """Stop the stream running on ``conn``: send cancel, then reuse or close it (an API
        without a cancel frame: close it, which is what stops the server's stream)."""
        if conn.closed:
            self._conns.discard(conn)
            return
        self._spawn(self._cancel(conn))

    async def _cancel(self, conn: _Conn) -> None:
        # Reuse the socket only once the server ended the stream: a late chunk or end frame
        # must not be read as part of the connection's next stream.
        protocol = self.protocol
        try:
            if protocol.cancel is None:
                raise TimeoutError
            await conn.send(protocol.cancel)
            if conn.paused and protocol.resume is not None:
                conn.paused = False
                await conn.send(protocol.resume)
            async with asyncio.timeout(CANCEL_DRAIN_S):
                while True:
                    while conn.buf:
                        if protocol.ends([conn.buf.popleft()]):
                            self.release(conn)
                            return
                    if conn.closed or self._closing:
                        break
                    await conn.wait()
        except (TimeoutError, *_SEND_ERRORS):
            pass
        await self._drop(conn)

    async def aclose(self) -> None:
        """Close every connection and the session."""
        # Background drains stop at once and close their sockets (never cancelled halfway
        # through a close handshake, which would leak the connection).
        self._closing = True
        for conn in list(self._conns):
            conn._wake()
        if self._pinger is not None:
            self._pinger.cancel()
            await asyncio.gather(self._pinger, return_exceptions=True)
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        conns = list(self._conns)
        self._conns.clear()
        self._idle.clear()
        await asyncio.gather(*(conn.close() for conn in conns), return_exceptions=True)


# Server close code -> (error class, status it stands for, what happened, hint).
_CLOSE_ERRORS = {
    1008: (AuthenticationError, 401, "policy violation, often a refused key", "check the API key"),
    1009: (
        APIStatusError,
        413,
        "the request is too large",
        "send fewer or shorter messages (this is not retried)",
    ),
    1011: (APIStatusError, 500, "server error", "retry later"),
    1013: (APIStatusError, 503, "the server is busy", "try again later"),
}


class WSAttempt:
    """One stream on a pooled connection."""

    __slots__ = ("_transport", "_conn", "_stats", "_ended")

    kind = "ws"

    def __init__(self, transport: WSTransport, conn: _Conn, stats: StreamStats) -> None:
        self._transport = transport
        self._conn = conn
        self._stats = stats
        self._ended = False

    async def first(self) -> None:
        """Wait for the first message, so that a refused request raises here as over HTTP."""
        conn = self._conn
        while not conn.buf:
            if conn.closed:
                self._closed_end()
                raise StreamInterrupted(
                    f"The WebSocket {self._transport._session.shown(self._transport.url)} closed "
                    "before the reply started",
                    hint="retry the request",
                )
            await conn.wait()
        payload = self._transport.protocol.error(conn.buf[0])
        if payload is not None:
            conn.buf.popleft()
            self._ended = True  # an error frame ends the stream; the socket stays usable
            raise error_from_payload(
                payload, secrets=self._transport._session.secrets, where="over WebSocket"
            )

    async def read(self) -> list[str] | None:
        """All messages received since the last call (waiting for one); None at the end."""
        conn = self._conn
        buf = conn.buf
        while not buf:
            if self._ended:
                return None  # aborted (e.g. aclose() from another task)
            if conn.closed:
                return self._closed_end()
            await conn.wait()
        items = list(buf)
        buf.clear()
        protocol = self._transport.protocol
        if conn.paused and protocol.resume is not None:
            conn.paused = False
            # A socket gone meanwhile is seen as closed by the next read(), not raised here.
            with contextlib.suppress(*_SEND_ERRORS):
                await conn.send(protocol.resume)
        # Bytes as on the wire (UTF-8); isascii() is O(1), so the common case costs no encode.
        self._stats.bytes += sum(len(m) if m.isascii() else len(m.encode()) for m in items)
        if protocol.ends(items):
            self._ended = True
        return items

    def _closed_end(self) -> None:
        self._ended = True
        conn = self._conn
        code = conn.close_code
        self._transport._conns.discard(conn)
        if code in _CLOSE_ERRORS:
            cls, status, what, hint = _CLOSE_ERRORS[code]
            reason = scrub(conn.close_reason, *self._transport._session.secrets)
            detail = f" ({reason})" if reason else ""
            raise cls(
                f"The server closed the WebSocket with code {code}{detail}: {what}",
                hint=hint,
                status_code=status,
            )
        if conn.close_reason and code is None:
            reason = scrub(conn.close_reason, *self._transport._session.secrets)
            raise StreamInterrupted(
                f"The WebSocket failed: {reason}",
                hint="retry the request",
            )
        return None

    async def finish(self) -> None:
        """The stream ended (its end frame came): the connection goes back to the pool."""
        self._transport.release(self._conn)

    async def abort(self) -> None:
        """Stop now: cancel the server's stream (the socket is reused once it ends) or drop it."""
        if self._ended:
            if not self._conn.closed:
                self._transport.release(self._conn)
            return
        self._ended = True
        self._conn._wake()  # a read() waiting in another task returns None
        self._transport.cancel(self._conn)
