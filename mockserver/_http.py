"""HTTP transport: ``POST /v1/chat/completions`` — read the body, ask the pipeline, write the plan.

A streamed answer (``sse``) sends its head at once and then every frame as one HTTP chunk at its
deadline (the pacer writes them); a non-streaming answer (``json``) is sent whole when it is
ready, with a ``Content-Length``. Either ends as the plan says: normally, with a clean close
before the body is complete, or with a TCP reset.

A body that does not arrive within ``body_timeout_s`` is answered 408 and the connection closed;
a declared length over ``max_body_bytes`` is answered 413 at once. A client that hangs up is one
INFO log line and a ``client_disconnected`` record, never a traceback.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from ._errors import MockError
from ._faults import Plan
from ._journal import Record
from ._pacing import QueuedSink, Stream
from ._pipeline import Answer, InjectedStatus, Pipeline
from ._state import MockState
from ._wire import break_connection, flush
from .formats import parse_json
from .formats.chat import SSE_HEADERS

__all__ = ["HTTPSink", "bearer_key", "serve_chat"]

log = logging.getLogger("mockserver")
HEARTBEAT = b": heartbeat\n\n"
# Recorded headers that describe the recorded connection, not this one.
_HOP_HEADERS = {"content-length", "transfer-encoding", "connection", "content-encoding"}


def bearer_key(request: web.Request) -> str | None:
    """The key from ``Authorization: Bearer <key>`` (None when absent)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def hung_up(record: Record, state: MockState) -> None:
    """Close the record of a request whose client went away, with one log line."""
    if record.finished:
        return
    record.finish("error" if state.draining else "client_disconnected")
    log.info("client hung up: %s %s (record %d, %d frames sent)", record.method, record.path,
             record.id, record.chunks_sent)


class HTTPSink(QueuedSink):
    """Frames of an HTTP body written straight to the transport: one HTTP chunk per frame when
    the body is chunked (a stream), raw bytes otherwise (a body with a Content-Length)."""

    __slots__ = ("_chunked",)

    def __init__(self, writer: AbstractStreamWriter) -> None:
        super().__init__(writer)
        self._chunked = bool(getattr(writer, "chunked", False))

    def write(self, data: bytes | str) -> None:
        """Queue one frame (bytes)."""
        assert isinstance(data, bytes)
        self._out.append(b"%x\r\n%b\r\n" % (len(data), data) if self._chunked else data)

    def heartbeat(self) -> None:
        """Queue an SSE comment line."""
        self.write(HEARTBEAT)


async def read_body(request: web.Request, state: MockState) -> bytes:
    """The request body, within the body timeout and size limit (408 / 413 otherwise)."""
    config = state.config
    if request.content_length is not None and request.content_length > config.max_body_bytes:
        raise MockError(413, f"The request body is too large; the limit is "
                             f"{config.max_body_bytes} bytes.", code="request_too_large")
    try:
        async with asyncio.timeout(config.body_timeout_s):
            return await request.read()
    except TimeoutError:
        raise MockError(408, f"The request body did not arrive within "
                             f"{config.body_timeout_s:g} s; send the whole body promptly.",
                        "timeout_error", None, "request_timeout") from None
    except web.HTTPRequestEntityTooLarge:
        raise MockError(413, f"The request body is too large; the limit is "
                             f"{config.max_body_bytes} bytes.", code="request_too_large") from None


def _headers(answer: Answer, *, drop: set[str]) -> dict[str, str]:
    return {k: v for k, v in (answer.headers or {}).items()
            if k.lower() not in _HOP_HEADERS and k.lower() not in drop}


async def serve_chat(
    request: web.Request, state: MockState, pipeline: Pipeline, record: Record, arrived: float
) -> web.StreamResponse:
    """Answer one chat request: read, plan (pipeline), write (stream or body)."""
    key = bearer_key(request)
    try:
        try:
            body = await read_body(request, state)
        except MockError as err:
            record.finish("error", status=err.status, error=err.message)
            resp = err.response()
            resp.force_close()  # the connection is not reused: its body was not read
            if err.status == 408:
                # The client stopped sending: close now (aiohttp would wait for the rest).
                await resp.prepare(request)
                await resp.write_eof()
                if request.transport is not None:
                    request.transport.close()  # after what was written has gone out
            # A body over the limit may still be arriving: aiohttp reads and drops it for a
            # bounded time after the answer, so the client is not reset mid-send.
            return resp
        try:
            if state.recorder is not None:
                # Record mode: the upstream authenticates; the mock only relays and records.
                return await state.recorder.record_chat(request, parse_json(body), record)
            controls = pipeline.admit(key, request.headers)
            answer = pipeline.answer(body, controls, key, record)
        except InjectedStatus as injected:
            err = injected.error
            record.finish("fault:status", status=err.status, error=err.message)
            return err.response()
        except MockError as err:
            record.finish("error", status=err.status, error=err.message)
            return err.response()
        if answer.status >= 400:
            record.finish("error", status=answer.status, error="cassette error response")
            return web.Response(status=answer.status, body=answer.body(),
                                headers=_headers(answer, drop=set()))
        state.stream_started()
        try:
            if answer.path == "sse":
                return await _stream(request, state, answer, record, arrived)
            return await _body(request, state, answer, record, arrived)
        finally:
            state.stream_ended()
    except asyncio.CancelledError:
        hung_up(record, state)  # aiohttp cancels the handler of a client that left
        raise
    except ConnectionError:
        hung_up(record, state)
        return web.Response(status=499)  # never sent: the connection is gone


async def _stream(
    request: web.Request, state: MockState, answer: Answer, record: Record, arrived: float
) -> web.StreamResponse:
    """SSE: the head now, every frame at its deadline, then the plan's end."""
    ours = {k.lower() for k in SSE_HEADERS}
    resp = web.StreamResponse(status=200, headers={**SSE_HEADERS,
                                                   **_headers(answer, drop=ours)})
    writer = await resp.prepare(request)
    assert writer is not None
    record.status = 200
    plan = answer.plan
    stream = Stream(plan, HTTPSink(writer), start=arrived, speed=state.config.speed,
                    on_frame=record.tick)
    await state.pacer.run(stream)
    return await _end(request, state, resp, plan, stream, record)


async def _body(
    request: web.Request, state: MockState, answer: Answer, record: Record, arrived: float
) -> web.StreamResponse:
    """JSON: wait until the reply is ready (stalls included), then send it whole — or end the
    connection instead, as the plan says."""
    plan = answer.plan
    frames = list(plan.frames)
    speed = state.config.speed
    ready = frames[0].at if frames else answer.end
    delay = arrived + (ready / speed if speed > 0 else 0.0) - asyncio.get_running_loop().time()
    if delay > 0:
        await asyncio.sleep(delay)
    if not frames:
        break_connection(request.transport, reset=plan.end == "reset")
        record.finish(plan.outcome)
        return web.Response(status=499)  # never sent: the connection is gone
    size = sum(len(f.data) for f in frames)
    headers = _headers(answer, drop={"content-type"})
    resp = web.StreamResponse(status=200, headers={**headers,
                                                   "Content-Type": "application/json"})
    resp.content_length = size
    writer = await resp.prepare(request)
    assert writer is not None
    record.status = 200
    plan.frames = frames
    # The body is due now; slices (a slice fault) follow it at their own spacing.
    now = asyncio.get_running_loop().time()
    stream = Stream(plan, HTTPSink(writer), start=now - frames[0].at, speed=1.0,
                    on_frame=record.tick)
    await state.pacer.run(stream)
    return await _end(request, state, resp, plan, stream, record)


async def _end(
    request: web.Request,
    state: MockState,
    resp: web.StreamResponse,
    plan: Plan,
    stream: Stream,
    record: Record,
) -> web.StreamResponse:
    """After the last frame: finish the body, or break the connection as the plan says."""
    if stream.result == "gone":
        hung_up(record, state)
        return resp
    if stream.result == "error":
        # The head is out, so no error JSON can follow (the middleware's answer would be
        # written into the body): break the stream instead, as a failing upstream would.
        log.error("stream of record %d failed", record.id, exc_info=stream.error)
        record.finish("error", error=f"internal mock error: {type(stream.error).__name__}")
        break_connection(request.transport, reset=False)
        return resp
    if plan.end in ("close", "reset"):
        # A FIN (or RST) before the body is complete: "connection closed early".
        await flush(request.transport)
        break_connection(request.transport, reset=plan.end == "reset")
    else:
        await resp.write_eof()
    record.finish(plan.outcome)
    return resp
