"""Record mode: proxy requests to a real upstream and save each response as a cassette.

When ``config.record_upstream`` is set, ``create_app`` opens one :class:`Recorder` with one
upstream ``aiohttp.ClientSession`` for the app's life (in its ``cleanup_ctx``) and routes::

    # any API's POST, once the JSON body is read (instead of building a reply):
    return await recorder.record_http(request, body, record, fmt, route)
    # GET /v1/ws/chat or /v1/responses, instead of the mock's own WebSocket handler:
    return await recorder.record_ws(request, record, fmt)

The upstream is an OpenAI-style base URL (``https://api.example.com/v1``): a request to the
mock's ``/v1/<path>`` goes to ``<upstream>/<path>``, one to ``/v1beta/<path>`` (Gemini) to
``<upstream without its /v1>/v1beta/<path>``. Every API records the same way; the cassette
names its ``api``.

``record`` is the request's journal record: it gets ``tick()`` per chunk relayed, ``cassette``
set to the saved cassette's name, and ``finish(outcome, status=...)`` with ``completed``,
``client_disconnected`` or ``error``. Nothing else of the mock is used: auth is the upstream's
business (the client's ``Authorization`` header or ``?key=`` is forwarded, never written
anywhere), and a recorded request is not answered from cassettes.

What is recorded, and when it is written to ``record_dir``:

- SSE: every read from the upstream is written to the client as soon as it arrives and recorded
  as one frame (its raw bytes and its offset from the moment the request was forwarded). The
  cassette is saved when the upstream ends the body, and also when the client hangs up after
  ``data: [DONE]`` arrived; a client that leaves mid-stream aborts the upstream request and
  nothing is saved.
- Non-streaming requests and upstream errors: the single body, as one frame. A request without
  a ``messages`` list is relayed but never saved (its cassette would match every request).
- An upstream that breaks a stream (connection closed or reset mid-body, WebSocket closed with
  an error code) is real behaviour worth replaying: the client's connection is broken the same
  way and the recording is saved with the matching ``fault`` (``disconnect:after=N``,
  ``reset:after=N``, ``ws-close:code=C,after=N``, N = frames recorded).
- WebSocket: client frames are forwarded to the upstream ``/ws/chat`` (``/responses``); each
  request frame (``response.create``) starts a recording of the server's messages, saved at
  ``[DONE]`` (a terminal ``response.*`` event) or an error frame (or, without it, at the next
  request or upstream close if a ``finish_reason`` was seen).
  ``pong`` replies are forwarded but not recorded; a cancelled stream is not saved.
- Headers come from :data:`HEADER_ALLOWLIST` only. Keys are scrubbed from everything written:
  the key values the client sent, ``Bearer ...``, ``sk-...`` tokens and ``key=``/``api_key=``/
  ``token=`` URL parameters become ``[REDACTED]``.

Files are named ``<prompt-slug>-[<api>-]<transport>-<hash>-<n>.json`` (no api part for chat);
``n`` counts recordings of the same request, so a
:class:`~mockserver._cassettes.CassetteStore` replays them in order.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from .._cassettes import Cassette, match_digest, normalise_request, save_cassette
from .._errors import MockError, error_body
from .._frames import Frame
from .._journal import Record
from .._wire import break_connection
from ..formats import Format, chat, responses
from .scrub import Scrubber, secrets_of

__all__ = ["FORWARDED_REQUEST_HEADERS", "HEADER_ALLOWLIST", "Recorder", "upstream_session"]

# Response headers worth replaying; everything else (cookies, hop-by-hop, tracing) is dropped.
HEADER_ALLOWLIST = frozenset({
    "content-type",
    "cache-control",
    "x-accel-buffering",
    "retry-after",
    "retry-after-ms",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-ratelimit-limit-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
    "openai-processing-ms",
})
# Request headers passed to the upstream besides Authorization (X-Mock-* too, so that a mock
# upstream can be steered while recording).
FORWARDED_REQUEST_HEADERS = ("accept", "openai-organization", "openai-project", "user-agent",
                             "x-api-key", "anthropic-version", "anthropic-beta",
                             "x-goog-api-key")
# What the end of a complete stream looks like, per API (a client may hang up right after it).
_DONE = {
    "chat": re.compile(rb"(?m)^data: ?\[DONE\]\r?$"),
    "responses": re.compile(rb"(?m)^event: ?response\.(?:completed|incomplete|failed)\r?$"),
    "anthropic": re.compile(rb"(?m)^event: ?message_stop\r?$"),
    "gemini": re.compile(rb'"finishReason"'),
    "gemini-array": re.compile(rb"\]\s*$"),
}


def _error(status: int, message: str) -> web.Response:
    body = error_body(message, type="server_error", code="upstream_error")
    return web.json_response(body, status=status)


def _slug(match: dict[str, Any]) -> str:
    """A file-name-safe start of the last user message ("request" when it has no ASCII words)."""
    prompt = normalise_request({"messages": match.get("messages", [])}).get("prompt", "")
    words = re.findall(r"[a-z0-9]+", prompt.lower())
    return "-".join(words[:6])[:40].strip("-") or "request"


def _was_reset(exc: BaseException) -> bool:
    # aiohttp reports a reset mid-body as ClientPayloadError whose text names the OS error.
    return isinstance(exc, aiohttp.ClientOSError) or "ConnectionResetError" in str(exc)


def _allowed_headers(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items() if k.lower() in HEADER_ALLOWLIST}


def upstream_session() -> aiohttp.ClientSession:
    """The one upstream session of record mode (made inside the running loop)."""
    # No total timeout: a recorded stream may be long; an idle upstream times out per read.
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=300)
    return aiohttp.ClientSession(timeout=timeout, auto_decompress=False)


class Recorder:
    """The record-mode proxy for one upstream base URL, saving cassettes into ``record_dir``.

    ``session`` is shared by every proxied request; its owner closes it.
    """

    def __init__(
        self, upstream: str, record_dir: str | Path | None, session: aiohttp.ClientSession
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.record_dir = Path(record_dir) if record_dir is not None else Path("cassettes")
        self.session = session

    def __repr__(self) -> str:
        upstream = Scrubber().text(self.upstream)
        return f"Recorder(upstream={upstream!r}, record_dir={self.record_dir})"

    def _forward_headers(self, request: web.Request) -> dict[str, str]:
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() in FORWARDED_REQUEST_HEADERS or k.lower().startswith("x-mock-")}
        if "Authorization" in request.headers:
            headers["Authorization"] = request.headers["Authorization"]
        # Compressed bodies arrive in bursts; identity keeps the upstream's chunk timing.
        headers["Accept-Encoding"] = "identity"
        return headers

    def _unreachable(
        self, scrubber: Scrubber, exc: BaseException, journal: Record
    ) -> web.Response:
        message = scrubber.text(
            f"record mode: cannot reach the upstream {self.upstream}: {exc.__class__.__name__}"
        )
        journal.finish("error", status=502, error=message)
        return _error(502, message)

    def save(self, cassette: Cassette, scrubber: Scrubber) -> Path:
        """Scrub a recording and write it as the next free ``<slug>-<transport>-<hash>-<n>``."""
        clean = Cassette(
            name="",
            match=scrubber.value(cassette.match),
            transport=cassette.transport,
            frames=scrubber.frames(cassette.frames),
            status=cassette.status,
            headers={k: scrubber.text(v) for k, v in cassette.headers.items()},
            fault=cassette.fault,
            api=cassette.api,
        )
        self.record_dir.mkdir(parents=True, exist_ok=True)
        api = "" if clean.api == "chat" else f"{clean.api}-"
        stem = f"{_slug(clean.match)}-{api}{clean.transport}-{match_digest(clean.match)}"
        # Write a hidden temporary file, then link it to the first free name: the link fails if
        # the name exists (concurrent recordings take the next number) and a reader never sees a
        # half-written cassette.
        tmp = save_cassette(clean, self.record_dir / f".{stem}.{os.getpid()}.{id(clean)}.tmp")
        try:
            n = 1
            while True:
                path = self.record_dir / f"{stem}-{n:03d}.json"
                clean.name = path.stem
                save_cassette(clean, tmp)  # the name is part of the file
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    n += 1
                    continue
                return path
        finally:
            tmp.unlink(missing_ok=True)

    def keep(self, recording: Cassette, scrubber: Scrubber, journal: Record) -> None:
        """Save a finished recording and name it in the journal record."""
        # A request without a messages list (the upstream refused it) would make a cassette
        # that matches every request: such replies are relayed but never saved.
        if "messages" in recording.match:
            journal.cassette = self.save(recording, scrubber).stem

    def _url(self, path: str) -> str:
        """Where a request to the mock's ``path`` goes upstream."""
        if path.startswith("/v1/"):
            return self.upstream + path[len("/v1"):]
        root = self.upstream[:-len("/v1")] if self.upstream.endswith("/v1") else self.upstream
        return root + path

    async def record_http(
        self, request: web.Request, body: Any, journal: Record,
        fmt: Format = chat, route: Any = None,  # type: ignore[assignment]
    ) -> web.StreamResponse:
        """Proxy one POST to the upstream and record the response.

        ``body`` is the decoded JSON; it is forwarded as is (the upstream validates it).
        """
        scrubber = Scrubber(secrets_of(request))
        fields = body if isinstance(body, dict) else {}
        streaming = fields.get("stream") is True or bool((route or {}).get("stream"))
        recording = Cassette(name="", match=_match_key(fields, fmt, route),
                             transport="sse" if streaming else "json", frames=[], api=fmt.API)
        model = fields.get("model") or (route or {}).get("model")
        journal.model = model if isinstance(model, str) else None
        journal.stream, journal.transport = streaming, recording.transport
        loop = asyncio.get_running_loop()
        http = self.session
        t0 = loop.time()
        try:
            upstream = await http.post(
                self._url(request.path),
                params=request.query,
                data=json.dumps(body, ensure_ascii=False).encode(),
                headers={**self._forward_headers(request), "Content-Type": "application/json"},
            )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return self._unreachable(scrubber, exc, journal)
        async with upstream:
            recording.status = upstream.status
            recording.headers = _allowed_headers(upstream.headers)
            event_stream = ("text/event-stream" in recording.headers.get("content-type", "")
                            or fmt.API == "gemini-array")
            if streaming and upstream.status < 400 and event_stream:
                return await self._relay_sse(request, upstream, recording, scrubber, t0,
                                             journal)
            try:
                data = await upstream.read()
            except (TimeoutError, aiohttp.ClientError) as exc:
                return self._unreachable(scrubber, exc, journal)
            recording.frames.append(Frame(round(loop.time() - t0, 6), data))
            self.keep(recording, scrubber, journal)
            journal.tick()
            journal.finish("completed" if upstream.status < 400 else "error",
                           status=upstream.status)
            return web.Response(status=upstream.status, body=data, headers=recording.headers)

    async def _relay_sse(
        self,
        request: web.Request,
        upstream: aiohttp.ClientResponse,
        recording: Cassette,
        scrubber: Scrubber,
        t0: float,
        journal: Record,
    ) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        resp = web.StreamResponse(status=upstream.status, headers=recording.headers)
        frames = recording.frames
        complete = client_gone = saved = False
        try:
            await resp.prepare(request)
            async for data in upstream.content.iter_any():
                frames.append(Frame(round(loop.time() - t0, 6), data))
                try:
                    await resp.write(data)
                except (ConnectionError, RuntimeError):
                    client_gone = True
                    break
                journal.tick()
            else:
                complete = True
                # Saved before the client sees the end, so the file exists once its read ends.
                self.keep(recording, scrubber, journal)
                saved = True
                try:
                    await resp.write_eof()
                except (ConnectionError, RuntimeError):
                    client_gone = True
        except asyncio.CancelledError:
            client_gone = True  # aiohttp cancels the handler of a client that hung up
            raise
        except (TimeoutError, aiohttp.ClientError) as exc:
            # The upstream broke mid-stream: break the client's body the same way, and keep the
            # failure as a replayable fault on the recording (it is real upstream behaviour).
            how = "reset" if _was_reset(exc) else "disconnect"
            break_connection(request.transport, reset=how == "reset")
            if frames:
                recording.fault = f"{how}:after={len(frames)}"
                self.keep(recording, scrubber, journal)
                saved = True
        finally:
            if not complete:
                upstream.close()  # stop the upstream generating for a client that is gone
            tail = b"".join(f.data for f in frames[-3:] if isinstance(f.data, bytes))
            if not saved and _DONE[recording.api].search(tail):
                self.keep(recording, scrubber, journal)
            outcome = "client_disconnected" if client_gone else "completed" if complete else "error"
            journal.finish(outcome, status=upstream.status)
        return resp

    async def record_ws(
        self, request: web.Request, journal: Record,
        fmt: Format = chat,  # type: ignore[assignment]
    ) -> web.StreamResponse:
        """Proxy one WebSocket (``/ws/chat``, or Responses' ``/responses``) to the upstream,
        recording each stream."""
        scrubber = Scrubber(secrets_of(request))
        scheme = "wss" if self.upstream.startswith("https") else "ws"
        url = self._url(request.path)
        url = scheme + url[url.index(":"):]
        headers = {}
        if "Authorization" in request.headers:
            headers["Authorization"] = request.headers["Authorization"]
        http = self.session
        try:
            upstream = await http.ws_connect(url, params=request.query, headers=headers,
                                             max_msg_size=0)
        except aiohttp.WSServerHandshakeError as exc:
            message = f"record mode: the upstream refused the WebSocket (HTTP {exc.status})"
            journal.finish("error", status=exc.status, error=message)
            return _error(exc.status, message)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return self._unreachable(scrubber, exc, journal)
        ws = web.WebSocketResponse(max_msg_size=0)
        session = _WSRecording(self, scrubber, journal, fmt)
        try:
            await ws.prepare(request)
            pumps = [asyncio.create_task(session.client_to_upstream(ws, upstream)),
                     asyncio.create_task(session.upstream_to_client(upstream, ws))]
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in pumps:
                    task.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
            if upstream.closed:
                code = _close_code(upstream.close_code)
                session.upstream_closed(code)
                if not ws.closed:
                    await ws.close(code=code)  # pass 1008, 1011, 1013 ... on
        finally:
            session.end(complete=False)
            await upstream.close()
            if not ws.closed:
                await ws.close()
            journal.finish("completed", status=101)
        return ws


def _close_code(code: int | None) -> int:
    """The upstream's close code as one we may send (1005/1006/1015 are never sent on the wire)."""
    if code is None or code == 1000:
        return 1000
    return 1011 if code in (1005, 1006, 1015) else code


def _match_key(body: dict[str, Any], fmt: Format = chat,  # type: ignore[assignment]
               route: Any = None) -> dict[str, Any]:
    """The key a recording is matched by: the whole normalised request (in its chat form)
    except ``prompt``; empty for a request the API would refuse."""
    try:
        chat_body = fmt.parse_request(body, route).chat
    except MockError:
        return {}
    return {k: v for k, v in normalise_request(chat_body).items() if k != "prompt"}


class _WSRecording:
    """The state of one proxied WebSocket: the stream being recorded, if any."""

    def __init__(self, recorder: Recorder, scrubber: Scrubber, journal: Record,
                 fmt: Format) -> None:
        self.fmt = fmt
        self.recorder = recorder
        self.scrubber = scrubber
        self.journal = journal
        self.current: Cassette | None = None
        self.t0 = 0.0
        self.finished = False  # a finish_reason chunk was seen in the current stream

    def start(self, body: dict[str, Any]) -> None:
        """A request frame went upstream: end any stream in progress and start recording."""
        self.end(complete=False)
        self.current = Cassette(name="", match=_match_key(body, self.fmt), transport="ws",
                                frames=[], api=self.fmt.API)
        self.t0 = asyncio.get_running_loop().time()
        self.finished = False

    def end(self, *, complete: bool) -> None:
        """Stop recording; save when the stream is complete or at least reached a finish_reason."""
        current, self.current = self.current, None
        if current is not None and current.frames and (complete or self.finished):
            self.recorder.keep(current, self.scrubber, self.journal)

    def upstream_closed(self, code: int) -> None:
        """The upstream closed the socket: a stream cut by an error code is kept as a fault."""
        current = self.current
        if current is not None and current.frames and code != 1000:
            current.fault = f"ws-close:code={code},after={len(current.frames)}"
            self.end(complete=True)

    def record(self, data: str | bytes) -> None:
        """Add one server message to the recording in progress."""
        if self.current is None:
            return
        msg: Any = None
        if isinstance(data, str):
            try:
                msg = json.loads(data)
            except json.JSONDecodeError:
                msg = None
            if isinstance(msg, dict) and msg.get("type") == "pong":
                return
        self.current.frames.append(Frame(round(asyncio.get_running_loop().time() - self.t0, 6),
                                         data))
        if isinstance(msg, dict):
            choices = msg.get("choices")
            if isinstance(choices, list) and any(
                isinstance(c, dict) and c.get("finish_reason") for c in choices
            ):
                self.finished = True
            if "error" in msg or msg.get("type") in responses.TERMINAL:
                self.end(complete=True)
        elif data == "[DONE]":
            self.end(complete=True)

    async def client_to_upstream(
        self, ws: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse
    ) -> None:
        """Forward the client's frames; a request frame starts a recording, cancel drops it."""
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                try:
                    body = json.loads(msg.data)
                except json.JSONDecodeError:
                    body = None
                if isinstance(body, dict) and ("messages" in body or
                                               body.get("type") == "response.create"):
                    self.start(body)
                elif isinstance(body, dict) and body.get("type") == "cancel":
                    self.current = None  # a cancelled stream is incomplete: never saved
                await upstream.send_str(msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await upstream.send_bytes(msg.data)

    async def upstream_to_client(
        self, upstream: aiohttp.ClientWebSocketResponse, ws: web.WebSocketResponse
    ) -> None:
        """Relay the upstream's messages to the client, recording them first."""
        async for msg in upstream:
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.record(msg.data)
                await ws.send_str(msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                self.record(msg.data)
                await ws.send_bytes(msg.data)
            else:
                continue
            self.journal.tick()
