"""WebSocket transport: ``/v1/ws/chat`` (protocol in ``shared/DESIGN.md``) and the Responses
API's WebSocket mode on ``/v1/responses``.

One connection carries many requests, one stream at a time. The handler's receive loop reads
every client frame; a request frame goes through the pipeline and its plan is handed to the
pacer, which writes the frames at their deadlines while the loop keeps reading — so ``ping``,
``cancel``, ``pause`` and ``resume`` act mid-stream. A ``cancel`` ends the stream at once (even
one that has not sent a frame yet, or that arrived in the same TCP write as its request): the
pacer stops it, ``[DONE]`` is written and the record is finished, before the next frame is read.

Recoverable errors are ``{"error": {...}}`` frames and keep the socket open; auth failures close
with 1008, "try again later" with 1013, server faults with 1011.

In Responses WebSocket mode the client sends ``{"type": "response.create", ...}`` (the POST body
without ``stream``), the events come back one per text message, errors are
``{"type": "error", "status": N, "error": {...}}`` events, and ``previous_response_id`` continues
a response made on this connection (or a stored one). The chat protocol's ``ping``, ``cancel``,
``pause`` and ``resume`` control frames work there too (mock extensions).
"""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import Any

from aiohttp import WSMsgType, web
from aiohttp.abc import AbstractStreamWriter

from ._config import mask_key
from ._controls import RequestControls
from ._errors import MockError
from ._faults import Plan
from ._http import hung_up
from ._journal import Record
from ._pacing import ENDED, QueuedSink, Stream
from ._pipeline import InjectedStatus, Pipeline
from ._state import MockState
from ._wire import break_connection
from .formats import Format, chat, parse_json
from .formats.chat import DONE_WS

__all__ = ["WSSink", "serve_ws"]

log = logging.getLogger("mockserver")
# Status faults that end the connection, with their close codes; others keep it open.
_CLOSING_STATUS = {401: 1008, 403: 1008, 503: 1013}


def _frame_header(opcode: int, length: int, *, fin: bool = True) -> bytes:
    first = (0x80 if fin else 0) | opcode
    if length < 126:
        return bytes((first, length))
    if length < 1 << 16:
        return struct.pack("!BBH", first, 126, length)
    return struct.pack("!BBQ", first, 127, length)


class WSSink(QueuedSink):
    """Messages written straight to the transport as RFC 6455 frames.

    aiohttp's writer is async and always sets FIN; writing frames here lets the pacer send
    synchronously and lets a ``fragment`` fault split one message into a first frame and
    continuation frames of ``fragment_size`` bytes (written together, so nothing interleaves).
    Server frames are unmasked, and the endpoint negotiates no compression.
    """

    __slots__ = ("_fragment",)

    def __init__(self, writer: AbstractStreamWriter, fragment_size: int | None = None) -> None:
        super().__init__(writer)
        self._fragment = fragment_size

    def write(self, data: bytes | str) -> None:
        """Queue one message: text for ``str``, binary for ``bytes``."""
        payload = data.encode() if isinstance(data, str) else data
        opcode = 0x1 if isinstance(data, str) else 0x2
        size = self._fragment
        if not size or len(payload) <= size:
            self._out.append(_frame_header(opcode, len(payload)) + payload)
            return
        pieces = [payload[i:i + size] for i in range(0, len(payload), size)]
        self._out.extend(
            _frame_header(opcode if i == 0 else 0x0, len(p), fin=i == len(pieces) - 1) + p
            for i, p in enumerate(pieces)
        )

    def heartbeat(self) -> None:
        """Queue a ping frame."""
        self._out.append(_frame_header(0x9, 9) + b"heartbeat")

    def write_whole(self, text: str) -> None:
        """Write one text message now, never fragmented."""
        payload = text.encode()
        self._out.append(_frame_header(0x1, len(payload)) + payload)
        self.flush()


class _Connection:
    """One WebSocket connection: the receive loop, and the stream in progress if any."""

    def __init__(
        self,
        request: web.Request,
        ws: web.WebSocketResponse,
        writer: AbstractStreamWriter,
        state: MockState,
        pipeline: Pipeline,
        controls: RequestControls,
        key: str | None,
        fmt: Format,
    ) -> None:
        self.fmt = fmt
        self.memory: dict[str, str] = {}  # Responses this connection made (previous_response_id)
        self.request = request
        self.ws = ws
        self.writer = writer
        self.state = state
        self.pipeline = pipeline
        self.controls = controls
        self.key = key
        self.loop = asyncio.get_running_loop()
        self.stream: Stream | None = None
        self.sink: WSSink | None = None
        self.record: Record | None = None
        self.task: asyncio.Task[None] | None = None
        self.last_activity = self.loop.time()

    @property
    def streaming(self) -> bool:
        return self.stream is not None and self.stream.state != ENDED

    async def send_error(self, err: MockError) -> None:
        await self.ws.send_str(self.fmt.ws_error(err))

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
        kind = obj.get("type") if isinstance(obj, dict) else None
        if kind is not None and kind != "response.create" and "messages" not in obj:
            await self.on_control(kind)
        elif self.streaming:
            end = "[DONE]" if self.fmt is chat else "its response.completed event"
            await self.send_error(
                MockError(
                    409,
                    f"A stream is already in progress on this connection; wait for {end} or "
                    'send {"type":"cancel"} first.',
                    code="stream_in_progress",
                )
            )
        else:
            await self.start(data)

    async def on_control(self, kind: Any) -> None:
        stream = self.stream
        if kind == "ping":
            await self.ws.send_str('{"type":"pong"}')
        elif kind == "cancel":
            self.cancel()
        elif kind == "pause":
            if stream is not None:
                stream.pause(self.loop.time())
        elif kind == "resume":
            if stream is not None:
                self.state.pacer.resume(stream, self.loop.time())
        else:
            await self.send_error(
                MockError(
                    400,
                    f"Unknown control frame type {kind!r}; expected ping, cancel, pause or resume.",
                    code="unknown_control",
                )
            )

    def cancel(self) -> None:
        """End the stream in progress now: ``[DONE]`` goes out (chat) and the record is
        finished, whether or not the stream's task has run yet."""
        stream, record, sink = self.stream, self.record, self.sink
        if stream is None or stream.state == ENDED or record is None or sink is None:
            return  # nothing to cancel
        stream.end("cancelled")
        record.finish("cancelled")
        if self.fmt is not chat:
            return
        try:
            sink.write_whole(DONE_WS)
        except ConnectionError:
            pass  # the client left already; the record says cancelled, as it asked

    # -- one stream ----------------------------------------------------------------------------

    async def start(self, body: str) -> None:
        arrived = self.loop.time()
        state = self.state
        record = state.journal.begin("WS", self.request.path, "ws")
        record.stream = True
        try:
            answer = self.pipeline.answer(body, self.controls, self.key, record, websocket=True,
                                          fmt=self.fmt, memory=self.memory)
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
        if answer.status >= 400:
            record.finish("error", status=answer.status, error="cassette error response")
            await self.ws.send_str(self.fmt.recorded_ws_error(answer.body(), answer.status))
            return
        record.status = 200
        plan = answer.plan
        self.sink = WSSink(self.writer, plan.fragment_size)
        self.stream = Stream(plan, self.sink, start=arrived, speed=state.config.speed,
                             on_frame=record.tick)
        self.record = record
        self.task = asyncio.create_task(self.drive(self.stream, plan, record))

    async def drive(self, stream: Stream, plan: Plan, record: Record) -> None:
        """The stream's task: wait for its end, then end it as the plan says."""
        state = self.state
        state.stream_started()
        try:
            await state.pacer.run(stream)
            if stream.result == "eof":
                record.finish(plan.outcome)
                if plan.end in ("close", "reset"):
                    break_connection(self.request.transport, reset=plan.end == "reset")
                elif plan.end == "ws-close":
                    await self.ws.close(code=plan.close_code or 1011, message=b"injected close")
            elif stream.result == "gone":
                hung_up(record, state)
            elif stream.result == "error":
                log.error("WebSocket stream of record %d failed", record.id,
                          exc_info=stream.error)
                record.finish("error", error=f"internal mock error: "
                                             f"{type(stream.error).__name__}")
                await self.ws.close(code=1011, message=b"internal mock error")
        except asyncio.CancelledError:
            hung_up(record, state)
            raise
        except ConnectionError:
            hung_up(record, state)
        finally:
            state.stream_ended()
            self.last_activity = self.loop.time()  # idle time counts from the stream's end

    async def stop(self) -> None:
        """The connection is over: a stream still running lost its client."""
        if self.stream is not None:
            self.stream.end("gone")
        if self.task is not None and not self.task.done():
            try:
                await self.task
            except (asyncio.CancelledError, ConnectionError):
                pass


async def serve_ws(
    request: web.Request, state: MockState, pipeline: Pipeline,
    fmt: Format = chat,  # type: ignore[assignment]
) -> web.StreamResponse:
    """``GET /v1/ws/chat`` (or ``/v1/responses``): authenticate (401 JSON before upgrade), then
    serve the protocol."""
    if state.recorder is not None:
        record = state.journal.begin(request.method, request.path, "ws")
        record.api = fmt.API
        return await state.recorder.record_ws(request, record, fmt)
    key = fmt.api_key(request.headers, request.query)
    try:
        controls = pipeline.admit(key, request.query, path="ws", fmt=fmt)
    except MockError as err:
        record = state.journal.begin(request.method, request.path, "ws")
        record.api = fmt.API
        record.key = mask_key(key) if key else None
        record.finish("error", status=err.status, error=err.message)
        return fmt.error_response(err)
    ws = web.WebSocketResponse(
        # timeout bounds how long a close waits for the client's close frame (shutdown, faults)
        autoping=True, compress=False, max_msg_size=state.config.max_body_bytes, timeout=2.0
    )
    if not ws.can_prepare(request).ok:
        return fmt.error_response(MockError(
            400, "This endpoint speaks WebSocket; connect with a WebSocket client.",
            code="websocket_required",
        ))
    try:
        writer = await ws.prepare(request)
    except ConnectionError:
        log.info("client hung up during the WebSocket handshake: %s", request.path)
        return ws
    assert writer is not None
    conn = _Connection(request, ws, writer, state, pipeline, controls, key, fmt)
    state.websockets.add(ws)
    try:
        await conn.run()
    except ConnectionError:
        pass  # the client vanished while we were answering it; the journal has the record
    finally:
        state.websockets.discard(ws)
        await conn.stop()
    return ws
