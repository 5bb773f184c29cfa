"""Server-sent events over the client's aiohttp session: one POST, the body read in large reads."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from holynb._apis.base import APISpec
from holynb._config import scrub
from holynb._errors import APIStatusError, StreamInterrupted
from holynb._stats import StreamStats
from holynb._transports.session import Session, read_some
from holynb.sse import ServerSentEvent, SSEDecoder, SSEError

__all__ = ["SSEAttempt", "open_sse"]

_READ_ERRORS = (aiohttp.ClientError, OSError)


async def open_sse(
    session: Session,
    api: APISpec,
    body: dict[str, Any],
    *,
    headers: dict[str, str],
    connect_timeout: float | None,
    stats: StreamStats,
) -> SSEAttempt:
    """POST the request to ``api``'s path and check the response; return an attempt to read."""
    url = session.url(api.path)
    response = await session.request(
        "POST",
        url,
        data=orjson.dumps(body),
        headers={"Content-Type": "application/json", "Accept": "text/event-stream",
                 **session.auth_for(api), **headers},
        connect_timeout=connect_timeout,
        path=api.path,
    )
    error: Exception | None = None
    try:
        ctype = response.headers.get("Content-Type", "")
        if "text/event-stream" not in ctype:
            error = await _not_a_stream(session, api, response, ctype)
    except BaseException:
        response.close()
        raise
    if error is not None:
        response.close()
        raise error
    return SSEAttempt(session, response, stats)


async def _not_a_stream(
    session: Session, api: APISpec, response: aiohttp.ClientResponse, ctype: str
) -> APIStatusError:
    raw = await read_some(response)
    url = session.shown(str(response.url))
    if "json" in ctype or raw[:1] == b"{":
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            payload = None
        if isinstance(payload, dict) and "error" in payload:
            return session.error_body(payload, str(response.url), response.status)
    text = raw.decode("utf-8", "replace")
    return APIStatusError(
        f"Expected response header Content-Type to contain 'text/event-stream', got "
        f"{ctype or 'nothing'!r} from {url}",
        hint=f"check that the base URL points to an API (ending in /v1) that serves "
        f"{api.label} at {api.path} and supports streaming",
        status_code=response.status,
        body=scrub(text, *session.secrets),
    )


class SSEAttempt:
    """One HTTP response being read: raw bytes → SSE events, one batch per network read."""

    __slots__ = ("_session", "_response", "_read", "_feed", "_stats")

    kind = "sse"

    def __init__(
        self, session: Session, response: aiohttp.ClientResponse, stats: StreamStats
    ) -> None:
        self._session = session
        self._response = response
        self._read = response.content.readany
        self._feed = SSEDecoder().feed
        self._stats = stats

    async def read(self) -> list[ServerSentEvent] | None:
        """The events completed by the next network read ([] if none); None at the end."""
        try:
            raw = await self._read()
        except _READ_ERRORS as exc:
            error = self._session.interrupted(exc, "mid-stream")
        else:
            if not raw:
                return None
            self._stats.bytes += len(raw)
            try:
                return self._feed(raw)
            except SSEError as exc:
                error = StreamInterrupted(f"Could not decode the event stream: {exc}")
        raise error

    async def finish(self) -> None:
        """After [DONE]: read the rest of the body so the connection goes back to the pool."""
        try:
            while await self._read():
                pass
        except _READ_ERRORS:
            self._response.close()  # the reply is complete; a broken connection is not reused
        else:
            self._response.release()

    async def abort(self) -> None:
        """Close the response now; a half-read connection is closed, never pooled."""
        self._response.close()
