"""A lean HTTP/1.1 connection pool mounted as the transport of holynb's ``httpx.AsyncClient``.

Why not httpcore: a streaming server flushes each SSE event as its own chunked-encoding chunk,
and httpcore/h11 hand the body up one chunk at a time through several generator layers
(~8 µs per chunk, a ceiling near 120k chunks/s before any parsing). This transport reads the
socket in large pieces and decodes the chunked framing of everything that arrived in one pass,
so the SSE decoder sees whole batches of events. It speaks only what the client needs: HTTP/1.1
(RFC 9112) with Content-Length, chunked or read-until-close bodies, keep-alive reuse, TLS.
It raises httpx's exception types, so callers handle it like any httpx transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from typing import Any

import httpx

__all__ = ["PooledHTTP11Transport"]

_READ_SIZE = 256 * 1024
_MAX_HEAD = 64 * 1024
_NO_BODY_STATUS = frozenset({204, 304})


class _Connection:
    __slots__ = ("reader", "writer", "origin", "idle_since")

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, origin: tuple[Any, ...]
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.origin = origin
        self.idle_since = 0.0

    def usable(self) -> bool:
        return not self.writer.is_closing() and not self.reader.at_eof()

    def close(self) -> None:
        self.writer.close()


class _ChunkedDecoder:
    """Decodes ``Transfer-Encoding: chunked`` framing of many chunks per call (RFC 9112 §7.1)."""

    __slots__ = ("_buf", "_left", "_crlf", "_trailers", "done")

    def __init__(self) -> None:
        self._buf = b""
        self._left = 0  # data bytes still due in the current chunk
        self._crlf = False  # the CRLF after a chunk's data is still due
        self._trailers = False  # after the last (0-size) chunk: trailer lines until an empty one
        self.done = False

    def feed(self, data: bytes) -> bytes:
        buf = self._buf + data if self._buf else data
        out: list[bytes] = []
        pos = 0
        end = len(buf)
        while pos < end:
            if not self._left and not self._crlf and not self._trailers:
                # Fast path: a whole chunk (size line, data, CRLF) is in the buffer.
                eol = buf.find(b"\r\n", pos)
                if eol > pos:
                    try:
                        size = int(buf[pos:eol], 16)
                    except ValueError:
                        size = -1  # chunk extensions or garbage: the general path decides
                    start = eol + 2
                    stop = start + size
                    if size > 0 and stop + 2 <= end:
                        if buf[stop : stop + 2] != b"\r\n":
                            raise httpx.RemoteProtocolError(
                                "chunked body: missing CRLF after chunk data"
                            )
                        out.append(buf[start:stop])
                        pos = stop + 2
                        continue
            left = self._left
            if left:
                take = left if left <= end - pos else end - pos
                out.append(buf[pos : pos + take])
                pos += take
                self._left = left - take
                if not self._left:
                    self._crlf = True
                continue
            if self._crlf:
                if end - pos < 2:
                    break
                if buf[pos : pos + 2] != b"\r\n":
                    raise httpx.RemoteProtocolError("chunked body: missing CRLF after chunk data")
                self._crlf = False
                pos += 2
                continue
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                break
            line = buf[pos:eol]
            pos = eol + 2
            if self._trailers:
                if not line:
                    self.done = True
                    break
                continue
            try:
                size = int(line.split(b";", 1)[0], 16)
            except ValueError:
                raise httpx.RemoteProtocolError(
                    f"chunked body: bad chunk size line {line[:40]!r}"
                ) from None
            if size:
                self._left = size
            else:
                self._trailers = True
        self._buf = buf[pos:] if pos < end else b""
        if len(self._buf) > _MAX_HEAD:
            raise httpx.RemoteProtocolError("chunked body: chunk size line too long")
        return b"".join(out) if len(out) != 1 else out[0]


class _Body(httpx.AsyncByteStream):
    """The response body; on close the connection returns to the pool only if fully read."""

    def __init__(
        self,
        pool: PooledHTTP11Transport,
        conn: _Connection,
        *,
        length: int | None,
        chunked: bool,
        keep_alive: bool,
        read_timeout: float | None,
        leftover: bytes,
    ) -> None:
        self._pool = pool
        self._conn = conn
        self._length = length
        self._chunked = _ChunkedDecoder() if chunked else None
        self._keep_alive = keep_alive
        self._timeout = read_timeout
        self._leftover = leftover
        self._complete = length == 0
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        reader = self._conn.reader
        chunked = self._chunked
        remaining = self._length
        data = self._leftover
        self._leftover = b""
        while not self._complete:
            if not data:
                try:
                    async with asyncio.timeout(self._timeout):
                        data = await reader.read(_READ_SIZE)
                except TimeoutError:
                    raise httpx.ReadTimeout("timed out reading the response body") from None
                except OSError as exc:
                    raise httpx.ReadError(str(exc) or "connection reset by peer") from None
                if not data:
                    if chunked is None and remaining is None:
                        self._complete = True  # body delimited by connection close
                        self._keep_alive = False
                        return
                    raise httpx.RemoteProtocolError(
                        "peer closed connection without sending complete message body"
                    )
            if chunked is not None:
                out = chunked.feed(data)
                if chunked.done:
                    self._complete = True
            elif remaining is not None:
                out = data[:remaining]
                remaining -= len(out)
                if remaining <= 0:
                    self._complete = True
            else:
                out = data
            data = b""
            if out:
                yield out

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        conn = self._conn
        if self._complete and self._keep_alive and conn.usable():
            self._pool._release(conn)
        else:
            # Half-read (cancelled, failed) or not reusable: close the socket now so the
            # server sees the disconnect at once; never pool it.
            self._pool._discard(conn)
        self._pool._slots.release()


class PooledHTTP11Transport(httpx.AsyncBaseTransport):
    """HTTP/1.1 keep-alive pool: reuses idle connections per origin, up to the given limits."""

    def __init__(
        self,
        *,
        max_connections: int = 1000,
        max_keepalive: int = 100,
        keepalive_expiry: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._max_connections = max_connections
        self._max_keepalive = max_keepalive
        self._expiry = keepalive_expiry
        self._ssl = ssl_context
        self._idle: dict[tuple[Any, ...], list[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._slots_: asyncio.Semaphore | None = None

    @property
    def _slots(self) -> asyncio.Semaphore:
        if self._slots_ is None:
            self._slots_ = asyncio.Semaphore(self._max_connections)
        return self._slots_

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        url = request.url
        scheme = url.scheme
        port = url.port or (443 if scheme == "https" else 80)
        origin = (scheme, url.host, port)
        try:
            async with asyncio.timeout(timeouts.get("pool")):
                await self._slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("timed out waiting for a free connection") from None
        try:
            body = await request.aread()
            head = _request_head(request, len(body))
            for reused in (True, False):
                conn = self._take_idle(origin) if reused else None
                if reused and conn is None:
                    continue
                if conn is None:
                    conn = await self._connect(origin, timeouts.get("connect"))
                try:
                    status, reason, headers, leftover = await self._exchange(
                        conn, head + body, timeouts
                    )
                except (httpx.RemoteProtocolError, httpx.ReadError):
                    self._discard(conn)
                    # An idle keep-alive socket the server had closed: retry on a new one.
                    if reused:
                        continue
                    raise
                except BaseException:
                    self._discard(conn)
                    raise
                break
        except BaseException:
            self._slots.release()
            raise
        return self._response(request, conn, status, reason, headers, leftover, timeouts)

    def _response(
        self,
        request: httpx.Request,
        conn: _Connection,
        status: int,
        reason: bytes,
        headers: list[tuple[bytes, bytes]],
        leftover: bytes,
        timeouts: dict[str, Any],
    ) -> httpx.Response:
        lookup = {k.lower(): v for k, v in headers}
        connection = lookup.get(b"connection", b"").lower()
        keep_alive = b"close" not in connection
        chunked = b"chunked" in lookup.get(b"transfer-encoding", b"").lower()
        length: int | None = None
        if request.method == "HEAD" or status in _NO_BODY_STATUS or 100 <= status < 200:
            length = 0
        elif not chunked and b"content-length" in lookup:
            try:
                length = int(lookup[b"content-length"])
            except ValueError:
                self._discard(conn)
                self._slots.release()
                raise httpx.RemoteProtocolError("invalid Content-Length header") from None
        elif not chunked:
            keep_alive = False
        stream = _Body(
            self,
            conn,
            length=length,
            chunked=chunked,
            keep_alive=keep_alive,
            read_timeout=timeouts.get("read"),
            leftover=leftover,
        )
        return httpx.Response(
            status,
            headers=headers,
            stream=stream,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason},
        )

    async def _exchange(
        self, conn: _Connection, data: bytes, timeouts: dict[str, Any]
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]], bytes]:
        try:
            async with asyncio.timeout(timeouts.get("write")):
                conn.writer.write(data)
                await conn.writer.drain()
        except TimeoutError:
            raise httpx.WriteTimeout("timed out sending the request") from None
        except OSError as exc:
            raise httpx.RemoteProtocolError(f"connection closed while sending: {exc}") from None
        buf = b""
        try:
            async with asyncio.timeout(timeouts.get("read")):
                while True:
                    part = await conn.reader.read(_READ_SIZE)
                    if not part:
                        raise httpx.RemoteProtocolError(
                            "server disconnected without sending a response"
                        )
                    buf += part
                    end = buf.find(b"\r\n\r\n")
                    if end >= 0:
                        status, reason, headers = _parse_head(buf[:end])
                        if status == 100:
                            buf = buf[end + 4 :]
                            continue
                        return status, reason, headers, buf[end + 4 :]
                    if len(buf) > _MAX_HEAD:
                        raise httpx.RemoteProtocolError("response head too large")
        except TimeoutError:
            raise httpx.ReadTimeout("timed out waiting for the response") from None
        except OSError as exc:
            raise httpx.ReadError(str(exc) or "connection reset by peer") from None

    def _take_idle(self, origin: tuple[Any, ...]) -> _Connection | None:
        idle = self._idle.get(origin)
        now = asyncio.get_running_loop().time()
        while idle:
            conn = idle.pop()
            if conn.usable() and now - conn.idle_since < self._expiry:
                return conn
            self._discard(conn)
        return None

    async def _connect(self, origin: tuple[Any, ...], timeout: float | None) -> _Connection:
        scheme, host, port = origin
        context = None
        if scheme == "https":
            context = self._ssl or httpx.create_ssl_context()
            self._ssl = context
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    host,
                    port,
                    ssl=context,
                    server_hostname=host if context else None,
                    limit=_READ_SIZE,
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"timed out connecting to {host}:{port}") from None
        except OSError as exc:
            raise httpx.ConnectError(str(exc) or f"cannot connect to {host}:{port}") from None
        conn = _Connection(reader, writer, origin)
        self._open.add(conn)
        return conn

    def _release(self, conn: _Connection) -> None:
        idle = self._idle.setdefault(conn.origin, [])
        if len(idle) >= self._max_keepalive:
            self._discard(conn)
            return
        conn.idle_since = asyncio.get_running_loop().time()
        idle.append(conn)

    def _discard(self, conn: _Connection) -> None:
        self._open.discard(conn)
        conn.close()

    async def aclose(self) -> None:
        conns = list(self._open)
        self._open.clear()
        self._idle.clear()
        for conn in conns:
            conn.close()
        for conn in conns:
            with contextlib.suppress(OSError, ssl.SSLError):
                await conn.writer.wait_closed()


def _request_head(request: httpx.Request, length: int) -> bytes:
    target = request.url.raw_path or b"/"
    lines = [b"%s %s HTTP/1.1" % (request.method.encode(), target)]
    has_length = False
    for name, value in request.headers.raw:
        lower = name.lower()
        if lower == b"transfer-encoding":
            continue  # the body is always sent whole, with Content-Length
        if lower == b"content-length":
            has_length = True
        lines.append(name + b": " + value)
    if not has_length and (length or request.method in ("POST", "PUT", "PATCH")):
        lines.append(b"Content-Length: %d" % length)
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _parse_head(head: bytes) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise httpx.RemoteProtocolError(f"not an HTTP/1.1 response: {lines[0][:60]!r}")
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise httpx.RemoteProtocolError(f"malformed response header line {line[:60]!r}")
        headers.append((name.strip(), value.strip()))
    return int(parts[1]), parts[2] if len(parts) > 2 else b"", headers
