"""The WebSocket endpoint ``/v1/ws/chat`` (protocol in ``shared/DESIGN.md``).

One connection carries many requests, one stream at a time. The handler's receive loop stays
responsive while a stream runs in its own task, so ``ping``, ``cancel``, ``pause`` and
``resume`` act mid-stream. Recoverable errors are ``{"error": {...}}`` frames and keep the socket
open; auth failures close with 1008, "try again later" with 1013, server faults with 1011.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import struct
from typing import Any

from aiohttp import WSMsgType, web

from ._app import STATE, bearer_key
from ._config import ControlError, RequestControls, mask_key, parse_controls
from ._errors import MockError
from ._faults import Plan, plan_reply
from ._frames import join_frames
from ._journal import Record
from ._request import parse_chat_request, parse_json
from ._sse import break_connection, sleep_until
from ._state import InjectedStatus, MockState, Reply, scrub

__all__ = ["ws_chat"]

log = logging.getLogger("mockserver")
# Status faults that end the connection, with their close codes; others keep it open.
_CLOSING_STATUS = {401: 1008, 403: 1008, 503: 1013}


def _error_frame(err: MockError) -> str:
    body = err.body()
    # Not in OpenAI's error object, but a WebSocket client has no HTTP status to look at.
    body["error"]["status"] = err.status
    if err.retry_after is not None:
        body["error"]["retry_after"] = err.retry_after
    return json.dumps(body)


def _recorded_error(reply: Reply) -> str:
    """A recorded HTTP error body as a WebSocket error frame (with its status)."""
    raw = join_frames(reply.frames)
    try:
        body = json.loads(raw)
        body["error"]["status"] = reply.status
    except (ValueError, TypeError, KeyError):
        body = {"error": {"message": raw.decode("utf-8", "replace"), "type": "server_error",
                          "param": None, "code": None, "status": reply.status}}
    return json.dumps(body)


def _frame_header(opcode: int, length: int, *, fin: bool) -> bytes:
    first = (0x80 if fin else 0) | opcode
    if length < 126:
        return struct.pack("!BB", first, length)
    if length < 1 << 16:
        return struct.pack("!BBH", first, 126, length)
    return struct.pack("!BBQ", first, 127, length)


def send_fragmented(transport: asyncio.Transport | None, data: bytes | str, size: int) -> None:
    """Write one message as several frames (first + continuations) of ``size`` payload bytes.

    aiohttp's writer always sets FIN, so there is no public way to send continuation frames;
    this writes RFC 6455 frames straight to the transport (server frames are unmasked, and the
    endpoint negotiates no compression so the payload needs no RSV bits). Callers hold the send
    lock so no other frame can interleave with the fragments.
    """
    if transport is None or transport.is_closing():
        raise ConnectionResetError("Cannot write to closing transport")
    payload = data.encode() if isinstance(data, str) else data
    opcode = 0x1 if isinstance(data, str) else 0x2
    pieces = [payload[i : i + size] for i in range(0, len(payload), size)] or [b""]
    for i, piece in enumerate(pieces):
        header = _frame_header(opcode if i == 0 else 0x0, len(piece), fin=i == len(pieces) - 1)
        transport.write(header + piece)


class _Connection:
    """One WebSocket connection: the receive loop plus at most one stream task."""

    def __init__(
        self,
        request: web.Request,
        ws: web.WebSocketResponse,
        state: MockState,
        controls: RequestControls,
        key: str | None,
    ) -> None:
        self.request = request
        self.ws = ws
        self.state = state
        self.controls = controls
        self.key = key
        self.loop = asyncio.get_running_loop()
        self.send_lock = asyncio.Lock()
        self.task: asyncio.Task[None] | None = None
        self.running = asyncio.Event()
        self.running.set()
        self.paused_at: float | None = None
        self.paused_total = 0.0
        self.cancelled = False
        self.last_activity = self.loop.time()

    @property
    def streaming(self) -> bool:
        return self.task is not None and not self.task.done()

    async def send(self, text: str) -> None:
        async with self.send_lock:
            await self.ws.send_str(text)

    async def send_error(self, err: MockError) -> None:
        await self.send(_error_frame(err))

    # -- receive loop --------------------------------------------------------------------------

    async def run(self) -> None:
        idle = self.state.config.idle_timeout_s
        while not self.ws.closed:
            if self.streaming:
                timeout = idle
            else:
                timeout = self.last_activity + idle - self.loop.time()
                if timeout <= 0:
                    await self.ws.close(code=1001, message=b"idle timeout")
                    return
            try:
                msg = await self.ws.receive(timeout=max(timeout, 0.001))
            except TimeoutError:
                continue
            self.last_activity = self.loop.time()
            if msg.type == WSMsgType.TEXT:
                try:
                    await self.on_text(msg.data)
                except (asyncio.CancelledError, ConnectionError):
                    raise
                except Exception as exc:  # a bug answers with an error frame, socket stays open
                    log.exception("WebSocket frame handling failed")
                    await self.send_error(MockError(
                        500, f"Internal mock error: {type(exc).__name__}", type="server_error"
                    ))
            elif msg.type == WSMsgType.BINARY:
                await self.send_error(
                    MockError(400, "Binary frames are not supported; send JSON text frames.",
                              code="unsupported_frame")
                )
            elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED,
                              WSMsgType.ERROR):
                return

    async def on_text(self, data: str) -> None:
        try:
            obj = parse_json(data)
        except MockError as err:
            await self.send_error(err)
            return
        if isinstance(obj, dict) and "type" in obj and "messages" not in obj:
            await self.on_control(obj["type"])
        elif self.streaming:
            await self.send_error(
                MockError(
                    409,
                    "A stream is already in progress on this connection; wait for [DONE] or "
                    'send {"type":"cancel"} first.',
                    code="stream_in_progress",
                )
            )
        else:
            await self.start(obj)

    async def on_control(self, kind: Any) -> None:
        if kind == "ping":
            await self.send('{"type":"pong"}')
        elif kind == "cancel":
            if self.task is not None and not self.task.done():
                self.cancelled = True
                self.task.cancel()
                # Wait for the stream's [DONE]: a request sent right after the cancel must
                # not find the stream still running (and get stream_in_progress).
                await asyncio.wait([self.task])
        elif kind == "pause":
            if self.running.is_set():
                self.running.clear()
                self.paused_at = self.loop.time()
        elif kind == "resume":
            if not self.running.is_set():
                self.paused_total += self.loop.time() - (self.paused_at or self.loop.time())
                self.paused_at = None
                self.running.set()
        else:
            await self.send_error(
                MockError(
                    400,
                    f"Unknown control frame type {kind!r}; expected ping, cancel, pause or resume.",
                    code="unknown_control",
                )
            )

    # -- one stream ----------------------------------------------------------------------------

    async def start(self, body: Any) -> None:
        arrived = self.loop.time()
        state = self.state
        record = state.journal.begin("WS", self.request.path, "ws")
        record.key = mask_key(self.key) if self.key else None
        record.stream = True
        record.controls = self.controls.public()
        try:
            req = parse_chat_request(body)
            record.model = req.model
            record.request = scrub(req.raw, self.key)
            state.check_rate(self.key)
            reply = state.build_reply(req, self.controls, "ws", record)
        except InjectedStatus as injected:
            err = injected.error
            record.finish("fault:status", status=err.status, error=err.message)
            await self.send_error(err)
            if err.status in _CLOSING_STATUS:
                reason = err.message[:100].encode()
                await self.ws.close(code=_CLOSING_STATUS[err.status], message=reason)
            return
        except MockError as err:
            record.finish("error", status=err.status, error=err.message)
            await self.send_error(err)
            return
        except Exception as exc:  # a bug: run() answers with an error frame
            record.finish("error", status=500, error=f"internal mock error: {type(exc).__name__}")
            raise
        if reply.status >= 400:
            record.finish("error", status=reply.status, error="cassette error response")
            await self.send(_recorded_error(reply))
            return
        record.status = 200
        self.running.set()
        self.paused_at, self.paused_total, self.cancelled = None, 0.0, False
        self.task = asyncio.create_task(self.stream(reply, record, arrived))

    async def stream(self, reply: Reply, record: Record, arrived: float) -> None:
        plan = plan_reply(reply.frames, reply.faults, transport="ws", done="[DONE]")
        speed = self.state.config.speed
        self.state.stream_started()
        try:
            await self._send_plan(plan, record, speed, arrived)
            record.finish(plan.outcome)
            await self._end(plan)
        except asyncio.CancelledError:
            if self.cancelled:
                record.finish("cancelled")
                with contextlib.suppress(ConnectionError):  # the client may be gone already
                    await self.send("[DONE]")
            else:
                record.finish("error" if self.state.draining else "client_disconnected")
                raise
        except ConnectionError:
            record.finish("client_disconnected")
        except Exception as exc:  # a bug must not leave the client waiting: close 1011
            log.exception("WebSocket stream failed")
            record.finish("error", error=f"internal mock error: {type(exc).__name__}")
            await self.ws.close(code=1011, message=b"internal mock error")
        finally:
            self.state.stream_ended()
            self.last_activity = self.loop.time()  # idle time counts from the stream's end

    async def _wait_turn(self, at: float, start: float, speed: float) -> None:
        """Sleep until the frame is due, holding while paused (pauses freeze the schedule)."""
        while True:
            if not self.running.is_set():
                await self.running.wait()
            deadline = start + self.paused_total + (at / speed if speed > 0 else 0.0)
            if self.loop.time() >= deadline:
                if self.running.is_set():
                    return
                continue
            await sleep_until(deadline, precise=self.state.precise())
            if self.running.is_set():
                return

    async def _send_plan(self, plan: Plan, record: Record, speed: float, start: float) -> None:
        hb = plan.heartbeat_s
        next_hb = hb if hb else math.inf
        for frame in plan.frames:
            frame_at = frame.at / speed if speed > 0 else 0.0
            while next_hb < frame_at:
                await self._wait_turn(next_hb, start, 1.0)
                await self.ws.ping(b"heartbeat")
                next_hb += hb  # type: ignore[operator]
            await self._wait_turn(frame.at, start, speed)
            async with self.send_lock:
                if plan.fragment_size:
                    send_fragmented(self.request.transport, frame.data, plan.fragment_size)
                elif isinstance(frame.data, str):
                    await self.ws.send_str(frame.data)
                else:
                    await self.ws.send_bytes(frame.data)
            record.tick()

    async def _end(self, plan: Plan) -> None:
        if plan.end in ("close", "reset"):
            break_connection(self.request.transport, reset=plan.end == "reset")
        elif plan.end == "ws-close":
            await self.ws.close(code=plan.close_code or 1011, message=b"injected close")

    async def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            try:
                await self.task
            except (asyncio.CancelledError, ConnectionError):
                pass


async def ws_chat(request: web.Request) -> web.StreamResponse:
    """``GET /v1/ws/chat``: authenticate (401 JSON before upgrade), then serve the protocol."""
    state = request.app[STATE]
    if state.config.record_upstream:
        from ._record import proxy_ws

        record = state.journal.begin(request.method, request.path, "ws")
        return await proxy_ws(request, state, record)
    key = bearer_key(request) or request.query.get("key") or None
    try:
        state.authorize(key)
        try:
            controls = parse_controls(request.query)
        except ControlError as exc:
            raise MockError(400, str(exc), code="invalid_mock_control") from None
    except MockError as err:
        record = state.journal.begin(request.method, request.path, "ws")
        record.key = mask_key(key) if key else None
        record.finish("error", status=err.status, error=err.message)
        return err.response()
    ws = web.WebSocketResponse(
        # timeout bounds how long a close waits for the client's close frame (shutdown, faults)
        autoping=True, compress=False, max_msg_size=state.config.max_body_bytes, timeout=2.0
    )
    if not ws.can_prepare(request).ok:
        return MockError(
            400, "This endpoint speaks WebSocket; connect with a WebSocket client.",
            code="websocket_required",
        ).response()
    await ws.prepare(request)
    conn = _Connection(request, ws, state, controls, key)
    state.websockets.add(ws)
    try:
        await conn.run()
    except ConnectionError:
        pass  # the client vanished while we were answering it; the journal has the record
    finally:
        state.websockets.discard(ws)
        await conn.stop()
    return ws
