"""One aiohttp ``ClientSession`` per client: connector, TLS, proxies, redirects, error mapping.

Every request of a client — SSE streams, JSON calls and WebSocket handshakes — goes through
:class:`Session`, so all of them trust the same CAs, take the same proxy and report failures
the same way. aiohttp's exceptions are mapped to holynb's here and never leak upward; mapped
errors are raised outside the ``except`` block, so no aiohttp exception (whose request info
holds the ``Authorization`` header) hangs on ``__context__``.

Redirects are followed here, not by aiohttp: 307/308 keep the method and body (at most
:data:`MAX_REDIRECTS`), 301/302/303 end a POST with an error naming the new location, and the
auth headers (each API's, see :meth:`Session.auth_for`) go only to the base URL's origin.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import ssl
import urllib.parse
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

from holynb import __version__
from holynb._apis.base import APISpec
from holynb._apis.errors import error_from_payload, error_from_status, one_line, redirect_error
from holynb._config import mask_url, scrub
from holynb._errors import (
    APIStatusError,
    ConnectError,
    HolyError,
    StreamInterrupted,
    StreamTimeout,
)
from holynb._retry import retry_after_from_headers
from holynb._transports.config import NetConfig

__all__ = ["MAX_REDIRECTS", "Session", "connect_failure"]

log = logging.getLogger("holynb")

MAX_REDIRECTS = 5
_MAX_ERROR_BODY = 64 * 1024
_LARGE_BODY = 1024 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_TLS_HINT = (
    "if the server uses a private CA pass verify='/path/to/ca.pem' (or set SSL_CERT_FILE); "
    "verify=False turns checking off"
)
_PROXY_HINT = "check proxy= or HTTPS_PROXY / HTTP_PROXY (NO_PROXY lists hosts reached directly)"
_URL_HINT = "check the base URL (HOLYSHEEP_BASE_URL or base_url=) and that the server is running"
# Headers that carry credentials: never sent to another origin.
_AUTH_HEADERS = frozenset({"authorization", "x-api-key"})


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port


def _host(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    return f"{host}:{parts.port}" if parts.port else host


class Session:
    """The network session of one client (created lazily inside the running loop)."""

    def __init__(
        self,
        *,
        base_url: str,
        key: str,
        net: NetConfig,
        max_connections: int,
    ) -> None:
        parts = urllib.parse.urlsplit(base_url)
        self._basic: dict[str, str] | None = None
        if parts.username or parts.password:
            # As httpx and the openai SDK do: URL credentials are sent as HTTP Basic auth.
            user = urllib.parse.unquote(parts.username or "")
            password = urllib.parse.unquote(parts.password or "")
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            self._basic = {"Authorization": f"Basic {token}"}
            host = parts.netloc.rpartition("@")[2]
            base_url = urllib.parse.urlunsplit(parts._replace(netloc=host))
        self.base_url = base_url
        # The URL's password (or its user name when there is no password: then it is the token).
        self.secrets: tuple[str | None, ...] = (key, parts.password or parts.username or None)
        self.key = key
        self._origin = _origin(base_url)
        self._net = net
        self._max_connections = max_connections
        self._http: aiohttp.ClientSession | None = None
        self._proxies: dict[tuple[str, str, int | None], str | None] = {}

    # -- the aiohttp session ---------------------------------------------------------------------

    @property
    def http(self) -> aiohttp.ClientSession:
        """The aiohttp session (made on first use, inside the running loop)."""
        if self._http is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                limit_per_host=0,
                ssl=self._net.tls.context,
                keepalive_timeout=30.0,
            )
            self._http = aiohttp.ClientSession(
                connector=connector,
                trust_env=False,  # the proxy policy was resolved at client creation
                headers={"User-Agent": f"holynb/{__version__} aiohttp/{aiohttp.__version__}"},
                # aiohttp's default read_bufsize (64 KiB) is kept: with larger ones its flow
                # control re-enters the parser once per HTTP chunk (~30% more CPU per chunk).
                timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
            )
            # aiohttp silently re-sends an idempotent request (GET /models) once when a reused
            # connection fails after the request was written; holynb counts every such re-send.
            self._http._retry_connection = False
        return self._http

    async def aclose(self) -> None:
        """Close every pooled connection."""
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    def url(self, path: str) -> str:
        """``base_url + path``."""
        return self.base_url + path

    def shown(self, url: str) -> str:
        """``url`` as shown in messages (no credentials)."""
        return mask_url(url)

    def proxy_for(self, url: str) -> str | None:
        """The proxy for ``url`` (cached per origin)."""
        origin = _origin(url)
        try:
            return self._proxies[origin]
        except KeyError:
            proxy = self._proxies[origin] = self._net.proxy.for_url(url)
            return proxy

    def auth_for(self, api: APISpec) -> dict[str, str]:
        """The auth headers of ``api`` (HTTP Basic instead when the base URL has credentials)."""
        return dict(self._basic) if self._basic is not None else api.auth_headers(self.key)

    def headers_for(self, url: str, headers: Mapping[str, str]) -> dict[str, str]:
        """Request headers as given for the base URL's origin; without credentials elsewhere."""
        if _origin(url) == self._origin:
            return dict(headers)
        return {k: v for k, v in headers.items() if k.lower() not in _AUTH_HEADERS}

    # -- HTTP requests ---------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        url: str,
        *,
        data: bytes | None,
        headers: Mapping[str, str],
        connect_timeout: float | None,
        path: str,
    ) -> aiohttp.ClientResponse:
        """Send a request (following redirects); return a 2xx response, or raise the error.

        ``path`` is the API path asked for (``/chat/completions``...), for the redirect advice.
        """
        timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout, sock_read=None)
        for hop in range(MAX_REDIRECTS + 1):
            response = await self._send(method, url, data, headers, timeout)
            status = response.status
            if status in _REDIRECTS and "Location" in response.headers:
                location = urllib.parse.urljoin(url, response.headers["Location"])
                response.release()
                if status not in (307, 308) and method != "GET":
                    asked = urllib.parse.urlsplit(url).path
                    suffix = path if asked.endswith(path) else asked
                    raise redirect_error(
                        status, method, self.shown(url), self.shown(location), suffix
                    )
                if hop == MAX_REDIRECTS:
                    raise APIStatusError(
                        f"More than {MAX_REDIRECTS} redirects from {self.shown(self.base_url)}",
                        hint="check the base URL",
                        status_code=status,
                        location=self.shown(location),
                    )
                log.debug("redirect %d to %s", status, self.shown(location))
                url = location
                continue
            if status >= 400:
                error = await self.status_error(response, url)
                response.release()
                raise error
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(
        self,
        method: str,
        url: str,
        data: bytes | None,
        headers: Mapping[str, str],
        timeout: aiohttp.ClientTimeout,
    ) -> aiohttp.ClientResponse:
        proxy = self.proxy_for(url)
        # aiohttp writes a large bytes body in one call that blocks the loop; a file object is
        # streamed in pieces. A fresh one per send, so a redirect or retry re-sends it whole.
        body: bytes | io.BytesIO | None = data
        if data is not None and len(data) > _LARGE_BODY:
            body = io.BytesIO(data)
        try:
            return await self.http.request(
                method,
                url,
                data=body,
                headers=self.headers_for(url, headers),
                proxy=proxy,
                timeout=timeout,
                allow_redirects=False,
            )
        except (aiohttp.ClientError, OSError, TimeoutError, ssl.SSLError) as exc:
            error = self.connect_failure(exc, url, proxy, timeout.connect)
        raise error

    async def status_error(self, response: aiohttp.ClientResponse, url: str) -> APIStatusError:
        """The error for an HTTP error response (its body read, up to 64 KiB)."""
        return error_from_status(
            response.status,
            await read_some(response),
            url=self.shown(url),
            secrets=self.secrets,
            key=self.key,
            retry_after=retry_after_from_headers(response.headers),
        )

    async def request_json(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        *,
        api: APISpec,
        headers: Mapping[str, str],
        connect_timeout: float | None,
        query: str = "",
    ) -> tuple[Any, int]:
        """One JSON request of ``api``; returns (the decoded body, its size in bytes)."""
        url = self.url(path) + query
        send = {"Accept": "application/json", **self.auth_for(api), **headers}
        data = None
        if body is not None:
            data = orjson.dumps(body)
            send["Content-Type"] = "application/json"
        response = await self.request(
            method, url, data=data, headers=send, connect_timeout=connect_timeout, path=path
        )
        try:
            raw = await response.read()
        except (aiohttp.ClientError, OSError) as exc:
            error = self.interrupted(exc, "while reading the reply")
        else:
            error = None
        finally:
            response.release()
        if error is not None:
            raise error
        try:
            decoded = orjson.loads(raw)
        except orjson.JSONDecodeError:
            decoded = None
        if decoded is None:
            start = scrub(raw[:80].decode("utf-8", "replace"), *self.secrets)
            raise APIStatusError(
                f"{method} {self.shown(url)} did not return JSON ({start!r})",
                hint="check that the base URL points to an OpenAI-compatible API (ending in /v1)",
                status_code=response.status,
                body=scrub(raw.decode("utf-8", "replace"), *self.secrets),
            )
        # An error object, not a reply (a Responses reply has "error": null, a failed one the
        # error's details).
        if isinstance(decoded, dict) and decoded.get("error") and "choices" not in decoded:
            raise self.error_body(decoded, url, response.status)
        return decoded, len(raw)

    def error_body(self, payload: Any, url: str, status: int) -> APIStatusError:
        """A 2xx reply whose JSON body is an error object: the server's message, not 'no data'."""
        return error_from_payload(
            payload,
            secrets=self.secrets,
            where=f"in a {status} reply from {self.shown(url)}",
            default_status=status,
        )

    # -- WebSocket -------------------------------------------------------------------------------

    async def ws_connect(
        self,
        url: str,
        *,
        api: APISpec,
        query: Mapping[str, str],
        connect_timeout: float | None,
        heartbeat: float | None = None,
    ) -> aiohttp.ClientWebSocketResponse:
        """Open a WebSocket to ``url`` (same TLS, proxy and auth as HTTP requests);
        ``heartbeat`` sends WebSocket pings that often (for APIs without an app-level ping)."""
        proxy = self.proxy_for(url)
        try:
            async with asyncio.timeout(connect_timeout):
                return await self.http.ws_connect(
                    url,
                    params=dict(query) or None,
                    headers=self.headers_for(url, self.auth_for(api)),
                    proxy=proxy,
                    autoping=True,
                    heartbeat=heartbeat,
                    max_msg_size=16 * 1024 * 1024,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0),
                )
        except aiohttp.WSServerHandshakeError as exc:
            error = self._handshake_error(exc, url)
        except (aiohttp.ClientError, OSError, TimeoutError, ssl.SSLError) as exc:
            error = self.connect_failure(exc, url, proxy, connect_timeout)
        raise error

    def _handshake_error(self, exc: aiohttp.WSServerHandshakeError, url: str) -> HolyError:
        status = exc.status or 0
        headers = exc.headers or {}
        if status >= 400:
            return error_from_status(
                status,
                str(exc.message or "").encode(),
                url=self.shown(url),
                secrets=self.secrets,
                key=self.key,
                retry_after=retry_after_from_headers({k.lower(): v for k, v in headers.items()}),
            )
        return StreamInterrupted(
            f"The server refused the WebSocket upgrade at {self.shown(url)} (status {status})",
            hint="use transport='sse', or check the base URL",
        )

    # -- failures --------------------------------------------------------------------------------

    def interrupted(self, exc: BaseException, when: str) -> StreamInterrupted:
        """A connection that failed after the request was sent."""
        return StreamInterrupted(
            f"The connection to {_host(self.base_url)} dropped {when} ({_why(exc, self.secrets)})",
            hint="retry the request",
        )

    def connect_failure(
        self, exc: BaseException, url: str, proxy: str | None, timeout: float | None
    ) -> HolyError:
        """Map a failure to connect or to send a request."""
        return connect_failure(
            exc,
            url=self.shown(url),
            host=_host(url),
            proxy=None if proxy is None else mask_url(proxy),
            timeout=timeout,
            secrets=self.secrets,
            pool_full=self._pool_full(),
        )

    def _pool_full(self) -> bool:
        http = self._http
        connector = None if http is None else http.connector
        if connector is None or not connector.limit:
            return False
        # aiohttp has no public count of connections in use.
        return len(getattr(connector, "_acquired", ())) >= connector.limit


def connect_failure(
    exc: BaseException,
    *,
    url: str,
    host: str,
    proxy: str | None,
    timeout: float | None,
    secrets: tuple[str | None, ...],
    pool_full: bool = False,
) -> HolyError:
    """aiohttp's connection errors → ConnectError / StreamTimeout(connect) / StreamInterrupted."""
    detail = one_line(scrub(_reason(exc), *secrets), 160)
    proxy_host = _host(proxy) if proxy else ""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return ConnectError(
            f"The TLS certificate of {host} was refused: {detail}",
            kind="tls",
            host=host,
            hint=_TLS_HINT,
        )
    if isinstance(exc, aiohttp.ClientConnectorSSLError | ssl.SSLError) or (
        isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, ssl.SSLError)
    ):
        return ConnectError(
            f"The TLS handshake with {host} failed: {detail}", kind="tls", host=host, hint=_TLS_HINT
        )
    if isinstance(exc, aiohttp.ClientProxyConnectionError) or (
        proxy and isinstance(exc, aiohttp.ClientConnectorError)
    ):
        # Through a proxy, the only connection holynb makes is to the proxy.
        return ConnectError(
            f"Could not connect to the proxy {proxy}: {detail}",
            kind="proxy",
            host=proxy_host,
            hint=_PROXY_HINT,
        )
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        reason = one_line(str(exc.message or ""), 60)
        return ConnectError(
            f"The proxy {proxy} refused to connect to {host} (HTTP {exc.status}"
            + (f" {reason})" if reason else ")"),
            kind="proxy",
            host=proxy_host,
            hint=_PROXY_HINT,
        )
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return ConnectError(
            f"Could not resolve the host {host}: {detail}", kind="dns", host=host, hint=_URL_HINT
        )
    if isinstance(exc, TimeoutError):
        if pool_full:
            return StreamTimeout(
                f"Every pooled connection to {host} stayed busy for {timeout} s",
                hint="run fewer streams at once or raise max_connections=... / connect_timeout=...",
                phase="connect",
                timeout=timeout or 0.0,
            )
        via = f" through the proxy {proxy}" if proxy else ""
        return StreamTimeout(
            f"Could not connect to {url}{via} within {timeout} s",
            hint="check the base URL and the network, or raise connect_timeout=...",
            phase="connect",
            timeout=timeout or 0.0,
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        refused = isinstance(exc.os_error, ConnectionRefusedError)
        return ConnectError(
            f"Could not connect to {url}: {'connection refused' if refused else detail}",
            kind="refused" if refused else "other",
            host=host,
            hint=_URL_HINT,
        )
    return StreamInterrupted(
        f"The connection to {host} closed before the reply started ({_why(exc, secrets)})",
        hint="retry the request",
    )


def _why(exc: BaseException, secrets: tuple[str | None, ...]) -> str:
    """Why a connection broke after the request was sent, in a few words."""
    if isinstance(exc, aiohttp.ClientPayloadError):
        text = str(exc)
        if "content-encoding" in text.lower():
            return "the compressed body could not be decoded"
        return "the body ended before it was complete"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server disconnected"
    if isinstance(exc, ConnectionResetError) or getattr(exc, "errno", None) == 104:
        return "connection reset by the server"
    return one_line(scrub(str(exc) or type(exc).__name__, *secrets), 120)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cert = exc.certificate_error
        return getattr(cert, "verify_message", None) or getattr(cert, "reason", None) or str(cert)
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        if isinstance(os_error, ssl.SSLError):
            return os_error.reason or str(os_error)
        return os_error.strerror or str(os_error) or type(os_error).__name__
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    return str(exc) or type(exc).__name__


async def read_some(response: aiohttp.ClientResponse) -> bytes:
    """Up to 64 KiB of an error body (what arrived before a read failure, if one happens)."""
    data = bytearray()
    try:
        while len(data) < _MAX_ERROR_BODY:
            part = await response.content.readany()
            if not part:
                break
            data += part
    except (aiohttp.ClientError, OSError):
        pass
    return bytes(data[:_MAX_ERROR_BODY])
