"""Server-sent events over one pooled ``httpx.AsyncClient`` (HTTP/1.1, keep-alive)."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import httpx

from holynb._chunks import error_from_status
from holynb._config import scrub
from holynb._errors import APIStatusError, StreamInterrupted, StreamTimeout
from holynb._retry import retry_after_from_headers
from holynb._stats import StreamStats
from holynb._transport_http import PooledHTTP11Transport
from holynb.sse import SSEDecoder, SSEError

__all__ = ["SSEAttempt", "SSETransport", "connect_error"]

_MAX_ERROR_BODY = 64 * 1024


def connect_error(
    exc: BaseException, url: str, timeout: float | None, key: str | None
) -> StreamTimeout | StreamInterrupted:
    """Map a failure to connect or send to StreamTimeout(connect) or StreamInterrupted."""
    if isinstance(exc, httpx.PoolTimeout):
        return StreamTimeout(
            f"Every pooled connection to {url} stayed busy for {timeout} s — run fewer "
            "streams at once or raise max_connections=... / connect_timeout=...",
            phase="connect",
            timeout=timeout or 0.0,
        )
    if isinstance(exc, httpx.TimeoutException):
        return StreamTimeout(
            f"Could not connect to {url} within {timeout} s (connect_timeout) — check the "
            "base URL and the network, or raise connect_timeout=...",
            phase="connect",
            timeout=timeout or 0.0,
        )
    detail = scrub(str(exc) or type(exc).__name__, key)
    return StreamInterrupted(
        f"Could not connect to {url}: {detail} — check the base URL (HOLYSHEEP_BASE_URL) "
        "and that the server is running."
    )


class SSETransport:
    """Sends chat requests with ``stream: true`` and reads the SSE body in large reads."""

    def __init__(self, *, key: str, base_url: str, max_connections: int) -> None:
        self._key = key
        keepalive = min(max_connections, 100)
        transport: httpx.AsyncBaseTransport | None = None
        if not _proxied(base_url):
            # The fast pool (see _transport_http); with a proxy configured, httpx's own.
            transport = PooledHTTP11Transport(
                max_connections=max_connections, max_keepalive=keepalive, keepalive_expiry=30.0
            )
        self.http = httpx.AsyncClient(
            transport=transport,
            http1=True,
            http2=False,
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=keepalive,
                keepalive_expiry=30.0,
            ),
            # Read timeouts are enforced per phase by the stream (first token, idle, total).
            timeout=httpx.Timeout(10.0, read=None),
            headers={"Authorization": f"Bearer {key}", "Accept-Encoding": "identity"},
        )

    async def open(
        self,
        url: str,
        body: dict[str, Any],
        *,
        headers: dict[str, str] | None,
        connect_timeout: float | None,
        stats: StreamStats,
    ) -> SSEAttempt:
        """POST the request and check the response; return an attempt ready to read."""
        request = self.http.build_request(
            "POST",
            url,
            content=json.dumps(body).encode(),
            headers={
                "Content-Type": "application/json",
                "Accept": "text/event-stream",
                **(headers or {}),
            },
            timeout=httpx.Timeout(connect_timeout, read=None),
        )
        try:
            response = await self.http.send(request, stream=True)
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            raise connect_error(exc, url, connect_timeout, self._key) from None
        try:
            if response.status_code >= 400:
                raise await self._status_error(response, url)
            ctype = response.headers.get("content-type", "")
            if "text/event-stream" not in ctype:
                body_text = await _read_some(response)
                raise APIStatusError(
                    f"Expected response header Content-Type to contain 'text/event-stream', got "
                    f"{ctype or 'nothing'!r} from {url} — check that the base URL points to an "
                    "OpenAI-compatible API (ending in /v1) that supports streaming.",
                    status_code=response.status_code,
                    body=scrub(body_text.decode("utf-8", "replace"), self._key),
                )
        except BaseException:
            await response.aclose()
            raise
        return SSEAttempt(response, stats)

    async def _status_error(self, response: httpx.Response, url: str) -> APIStatusError:
        return error_from_status(
            response.status_code,
            await _read_some(response),
            url=url,
            key=self._key,
            retry_after=retry_after_from_headers(response.headers),
        )

    async def aclose(self) -> None:
        """Close every pooled connection."""
        await self.http.aclose()


def _proxied(base_url: str) -> bool:
    """True if the environment routes ``base_url`` through a proxy (HTTP(S)_PROXY, NO_PROXY)."""
    host = urllib.parse.urlsplit(base_url).hostname or ""
    proxies = urllib.request.getproxies()
    scheme = base_url.split("://", 1)[0]
    if not (proxies.get(scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(host)


async def _read_some(response: httpx.Response) -> bytes:
    """Up to 64 KiB of an error body (what arrived before a read failure, if one happens)."""
    data = bytearray()
    try:
        async for part in response.aiter_raw():
            data += part
            if len(data) >= _MAX_ERROR_BODY:
                break
    except httpx.HTTPError:
        pass
    return bytes(data[:_MAX_ERROR_BODY])


class SSEAttempt:
    """One HTTP response being read: raw bytes → SSE events → data payloads."""

    __slots__ = ("_response", "_raw", "_feed", "_stats")

    def __init__(self, response: httpx.Response, stats: StreamStats) -> None:
        self._response = response
        self._raw: AsyncIterator[bytes] = response.aiter_raw()
        self._feed = SSEDecoder().feed
        self._stats = stats

    async def read(self) -> list[str] | None:
        """The data payloads of the next network read ([] if none completed); None at the end."""
        try:
            raw = await self._raw.__anext__()
        except StopAsyncIteration:
            return None
        except httpx.TransportError as exc:
            detail = str(exc) or "connection reset by the server"
            raise StreamInterrupted(
                f"The connection dropped mid-stream ({type(exc).__name__}: {detail}) — "
                "retry the request; the text received so far is in .partial_text."
            ) from None
        self._stats.bytes += len(raw)
        try:
            events = self._feed(raw)
        except SSEError as exc:
            raise StreamInterrupted(f"Could not decode the event stream: {exc}.") from None
        out: list[str] = []
        add = out.append
        for event in events:
            kind = event.event
            if kind == "message":
                add(event.data)
            elif kind == "error":
                add(_as_error_payload(event.data))
            # Other event types are not part of the chat-completions stream: ignored.
        return out

    async def finish(self) -> None:
        """After [DONE]: read the rest of the body so the connection goes back to the pool."""
        try:
            async for _ in self._raw:
                pass
        except httpx.TransportError:
            pass  # the reply is complete; a connection that broke after it is just not reused
        finally:
            await self._response.aclose()

    async def abort(self) -> None:
        """Close the response now; a half-read connection is closed, never pooled."""
        await self._response.aclose()


def _as_error_payload(data: str) -> str:
    """``event: error`` data as an ``{"error": ...}`` payload (its data may be plain text)."""
    try:
        obj = json.loads(data)
    except ValueError:
        obj = None
    if isinstance(obj, dict) and "error" in obj:
        return data
    message = obj if isinstance(obj, dict) else {"message": data or "error event"}
    return json.dumps({"error": message})
