"""WebSocket transport over aiohttp: pooled connections, heartbeat, backpressure, cancel.

Protocol (DESIGN.md): the client sends the chat request as one JSON text frame; the server
answers one chunk JSON per text frame and a final ``[DONE]`` frame. Control frames
``{"type": "ping" | "pause" | "resume" | "cancel"}``; the server answers ping with pong.
A connection carries one stream at a time and goes back to the pool after ``[DONE]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from typing import Any

import aiohttp

from holynb._chunks import error_from_payload, error_from_status
from holynb._config import scrub
from holynb._errors import (
    APIStatusError,
    AuthenticationError,
    HolyError,
    StreamInterrupted,
    StreamTimeout,
)
from holynb._retry import retry_after_from_headers
from holynb._stats import StreamStats

__all__ = ["WSAttempt", "WSTransport"]

log = logging.getLogger("holynb")

# Backpressure: ask the server to pause above this many unconsumed messages; the next read()
# takes them all and asks it to resume.
HIGH_WATER = 100
# After a cancel, how long to wait for the server to end the stream before closing the socket.
CANCEL_DRAIN_S = 2.0
_PING = '{"type": "ping"}'
_PAUSE = '{"type": "pause"}'
_RESUME = '{"type": "resume"}'
_CANCEL = '{"type": "cancel"}'
_DONE = "[DONE]"
# What sending on a socket that is closing or gone raises.
_SEND_ERRORS = (aiohttp.ClientError, ConnectionError, RuntimeError)


class _Conn:
    """One WebSocket plus the task that reads it into ``buf`` (also while idle in the pool)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, pool_key: tuple[Any, ...]) -> None:
        self.ws = ws
        self.pool_key = pool_key
        self.buf: deque[str] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.closed = False
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
        try:
            while True:
                msg = await ws.receive()
                kind = msg.type
                if kind is text_type:
                    data = msg.data
                elif kind is binary_type:
                    data = msg.data.decode("utf-8", "replace")
                else:
                    # CLOSE, CLOSING, CLOSED or ERROR; a CLOSE carries the server's reason.
                    if kind is aiohttp.WSMsgType.CLOSE and isinstance(msg.extra, str):
                        self.close_reason = msg.extra
                    break
                if len(data) < 40 and '"pong"' in data:
                    continue
                buf.append(data)
                if self.waiter is not None:
                    self._wake()
                if not self.paused and len(buf) > HIGH_WATER:
                    self.paused = True
                    self.pauses += 1
                    await self.send(_PAUSE)
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
    """A pool of WebSocket connections to ``<base_url>/ws/chat`` reused one stream at a time."""

    def __init__(self, *, base_url: str, key: str, pool_size: int, ping_interval: float) -> None:
        scheme, rest = base_url.split("://", 1)
        self.url = f"{'wss' if scheme == 'https' else 'ws'}://{rest}/ws/chat"
        self._key = key
        self._pool_size = pool_size
        self._ping_interval = ping_interval
        self._session: aiohttp.ClientSession | None = None
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
        text = json.dumps(body)
        conn = self._take_idle(pool_key)
        attempt: WSAttempt | None = None
        if conn is not None:
            try:
                await conn.send(text)
                attempt = WSAttempt(self, conn, text, query, connect_timeout, stats, reused=True)
            except _SEND_ERRORS:
                await self._drop(conn)
        if attempt is None:
            conn = await self._connect(query, pool_key, connect_timeout)
            await self._send_request(conn, text)
            attempt = WSAttempt(self, conn, text, query, connect_timeout, stats, reused=False)
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
        except _SEND_ERRORS as exc:
            await self._drop(conn)
            raise StreamInterrupted(
                f"The WebSocket to {self.url} closed while sending the request ({exc}) — retry."
            ) from None

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
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0),
                headers={"Authorization": f"Bearer {self._key}"},
            )
        try:
            async with asyncio.timeout(connect_timeout):
                ws = await self._session.ws_connect(
                    self.url,
                    params=query or None,
                    autoping=True,
                    max_msg_size=16 * 1024 * 1024,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0),
                )
        except TimeoutError:
            raise StreamTimeout(
                f"Could not open the WebSocket {self.url} within {connect_timeout} s "
                "(connect_timeout) — check the base URL and the network, or raise connect_timeout.",
                phase="connect",
                timeout=connect_timeout or 0.0,
            ) from None
        except aiohttp.WSServerHandshakeError as exc:
            raise self._handshake_error(exc) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise StreamInterrupted(
                f"Could not connect to {self.url}: {scrub(str(exc), self._key)} — check the base "
                "URL (HOLYSHEEP_BASE_URL) and that the server offers WebSocket streaming."
            ) from None
        conn = _Conn(ws, pool_key)
        self._conns.add(conn)
        if self._pinger is None:
            self._pinger = asyncio.create_task(self._ping_loop())
        return conn

    def _handshake_error(self, exc: aiohttp.WSServerHandshakeError) -> HolyError:
        status = exc.status or 0
        if status >= 400:
            headers = exc.headers or {}
            return error_from_status(
                status,
                scrub(str(exc.message or ""), self._key).encode(),
                url=self.url,
                key=self._key,
                retry_after=retry_after_from_headers({k.lower(): v for k, v in headers.items()}),
            )
        return StreamInterrupted(
            f"The server refused the WebSocket upgrade at {self.url} (status {status}) — "
            "use transport='sse' or check the base URL."
        )

    async def _ping_loop(self) -> None:
        # App-level heartbeat: keeps idle pooled sockets (and paused streams) from being closed
        # by the server's idle timeout.
        interval = self._ping_interval
        while True:
            await asyncio.sleep(interval / 2)
            now = asyncio.get_running_loop().time()
            for conn in list(self._conns):
                if not conn.closed and now - conn.last_sent >= interval:
                    with contextlib.suppress(*_SEND_ERRORS):
                        await conn.send(_PING)

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
        """Stop the stream running on ``conn``: send cancel, then reuse or close it."""
        if conn.closed:
            self._conns.discard(conn)
            return
        self._spawn(self._cancel(conn))

    async def _cancel(self, conn: _Conn) -> None:
        # Reuse the socket only once the server ended the stream: a late chunk or [DONE] must
        # not be read as part of the connection's next stream.
        try:
            await conn.send(_CANCEL)
            if conn.paused:
                conn.paused = False
                await conn.send(_RESUME)
            async with asyncio.timeout(CANCEL_DRAIN_S):
                while True:
                    while conn.buf:
                        if conn.buf.popleft() == _DONE:
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
        if self._session is not None:
            await self._session.close()
            self._session = None


_CLOSE_ERRORS = {
    1008: (AuthenticationError, 401, "policy violation (often a refused key) — check the API key"),
    1011: (APIStatusError, 500, "server error — retry later"),
    1013: (APIStatusError, 503, "try again later — the server is busy"),
}


class WSAttempt:
    """One stream on a pooled connection."""

    __slots__ = ("_transport", "_conn", "_text", "_query", "_timeout", "_stats", "_reused",
                 "_received", "_ended")

    def __init__(
        self,
        transport: WSTransport,
        conn: _Conn,
        text: str,
        query: dict[str, str],
        connect_timeout: float | None,
        stats: StreamStats,
        *,
        reused: bool,
    ) -> None:
        self._transport = transport
        self._conn = conn
        self._text = text
        self._query = query
        self._timeout = connect_timeout
        self._stats = stats
        self._reused = reused
        self._received = False
        self._ended = False

    async def first(self) -> None:
        """Wait for the first message, so that a refused request raises here as over HTTP."""
        conn = self._conn
        while not conn.buf:
            if conn.closed:
                if self._reused:
                    await self._reconnect()
                    conn = self._conn
                    continue
                self._closed_end()
                raise StreamInterrupted(
                    f"The WebSocket {self._transport.url} closed before the reply started — retry."
                )
            await conn.wait()
        head = conn.buf[0]
        if head.startswith('{"error"'):
            conn.buf.popleft()
            self._ended = True  # an error frame ends the stream; the socket stays usable
            try:
                payload = json.loads(head)
            except ValueError:
                payload = {"error": {"message": head}}
            raise error_from_payload(payload, key=self._transport._key, where="over WebSocket")

    async def read(self) -> list[str] | None:
        """All messages received since the last call (waiting for one); None at the end."""
        conn = self._conn
        buf = conn.buf
        while not buf:
            if self._ended:
                return None  # aborted (e.g. aclose() from another task)
            if conn.closed:
                if self._reused and not self._received:
                    # The pooled socket was closed while idle: reconnect and resend, once.
                    await self._reconnect()
                    conn = self._conn
                    buf = conn.buf
                    continue
                return self._closed_end()
            await conn.wait()
        items = list(buf)
        buf.clear()
        self._received = True
        if conn.paused:
            conn.paused = False
            # A socket gone meanwhile is seen as closed by the next read(), not raised here.
            with contextlib.suppress(*_SEND_ERRORS):
                await conn.send(_RESUME)
        # Bytes as on the wire (UTF-8); isascii() is O(1), so the common case costs no encode.
        self._stats.bytes += sum(len(m) if m.isascii() else len(m.encode()) for m in items)
        last = items[-1]
        # [DONE] ends a stream; so does an error frame (the socket stays usable).
        if last == _DONE or last.startswith('{"error"') or _DONE in items:
            self._ended = True
        return items

    async def _reconnect(self) -> None:
        transport = self._transport
        transport._conns.discard(self._conn)
        pool_key = self._conn.pool_key
        self._conn = await transport._connect(self._query, pool_key, self._timeout)
        self._reused = False
        await transport._send_request(self._conn, self._text)

    def _closed_end(self) -> None:
        self._ended = True
        code = self._conn.ws.close_code
        self._transport._conns.discard(self._conn)
        if code in _CLOSE_ERRORS:
            cls, status, advice = _CLOSE_ERRORS[code]
            reason = scrub(self._conn.close_reason, self._transport._key)
            detail = f" ({reason})" if reason else ""
            raise cls(
                f"The server closed the WebSocket with code {code}{detail}: {advice}.",
                status_code=status,
            )
        return None

    async def finish(self) -> None:
        """The stream ended with [DONE]: the connection goes back to the pool."""
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
