"""HTTP transport: every API's POST — read the body, ask the pipeline, write the plan.

A streamed answer (``sse``) sends its head at once and then every frame as one HTTP chunk at its
deadline (the pacer writes them); a non-streaming answer (``json``) is sent whole when it is
ready, with a ``Content-Length``. Either ends as the plan says: normally, with a clean close
before the body is complete, or with a TCP reset.

A body that does not arrive within ``body_timeout_s`` is answered 408 and the connection closed;
a declared length over ``max_body_bytes`` is answered 413 at once. A client that hangs up is one
INFO log line and a ``client_disconnected`` record, never a traceback. Errors are written in
the request's API (its format's ``error_response``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from ._errors import MockError
from ._faults import Plan
from ._journal import Record
from ._pacing import QueuedSink, Stream
from ._pipeline import Answer, InjectedStatus, Pipeline
from ._state import MockState
from ._wire import break_connection, flush
from .formats import Format, chat, parse_json

__all__ = ["HTTPSink", "serve_http"]

log = logging.getLogger("mockserver")
# Recorded headers that describe the recorded connection, not this one.
_HOP_HEADERS = {"content-length", "transfer-encoding", "connection", "content-encoding"}


def hung_up(record: Record, state: MockState) -> None:
    """Close the record of a request whose client went away, with one log line."""
    if record.finished:
        return
    record.finish("error" if state.draining else "client_disconnected")
    log.info("client hung up: %s %s (record %d, %d frames sent)", record.method, record.path,
             record.id, record.chunks_sent)


class HTTPSink(QueuedSink):
    """Frames of an HTTP body written straight to the transport: one HTTP chunk per frame when
    the body is chunked (a stream), raw bytes otherwise (a body with a Content-Length).
    ``keepalive`` is the API's heartbeat (an SSE comment, an Anthropic ``ping`` event)."""

    __slots__ = ("_chunked", "_keepalive")

    def __init__(self, writer: AbstractStreamWriter, keepalive: bytes | None = None) -> None:
        super().__init__(writer)
        self._chunked = bool(getattr(writer, "chunked", False))
        self._keepalive = keepalive or chat.HEARTBEAT

    def write(self, data: bytes | str) -> None:
        """Queue one frame (bytes)."""
        assert isinstance(data, bytes)
        self._out.append(b"%x\r\n%b\r\n" % (len(data), data) if self._chunked else data)

    def heartbeat(self) -> None:
        """Queue the API's keep-alive."""
        self.write(self._keepalive)


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


async def serve_http(
    request: web.Request, state: MockState, pipeline: Pipeline, record: Record, arrived: float,
    *, fmt: Format = chat, route: Mapping[str, str] | None = None,  # type: ignore[assignment]
) -> web.StreamResponse:
    """Answer one request in the API ``fmt``: read, plan (pipeline), write (stream or body)."""
    key = fmt.api_key(request.headers, request.query)
    record.api = fmt.API
    try:
        try:
            body = await read_body(request, state)
        except MockError as err:
            record.finish("error", status=err.status, error=err.message)
            resp = fmt.error_response(err)
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
                return await state.recorder.record_http(request, parse_json(body), record, fmt,
                                                       route)
            controls = pipeline.admit(key, request.headers, fmt=fmt)
            answer = pipeline.answer(body, controls, key, record, fmt=fmt, route=route)
        except InjectedStatus as injected:
            err = injected.error
            record.finish("fault:status", status=err.status, error=err.message)
            return fmt.error_response(err)
        except MockError as err:
            record.finish("error", status=err.status, error=err.message)
            return fmt.error_response(err)
        if answer.status >= 400:
            record.finish("error", status=answer.status, error="cassette error response")
            return web.Response(status=answer.status, body=answer.body(),
                                headers=_headers(answer, drop=set()))
        state.stream_started()
        try:
            if answer.path == "sse":
                return await _stream(request, state, answer, record, arrived, fmt)
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
    request: web.Request, state: MockState, answer: Answer, record: Record, arrived: float,
    fmt: Format,
) -> web.StreamResponse:
    """A stream (SSE, or Gemini's JSON array): the head now, every frame at its deadline, then
    the plan's end."""
    ours = {k.lower() for k in fmt.SSE_HEADERS}
    resp = web.StreamResponse(status=200, headers={**fmt.SSE_HEADERS,
                                                   **_headers(answer, drop=ours)})
    writer = await resp.prepare(request)
    assert writer is not None
    record.status = 200
    plan = answer.plan
    stream = Stream(plan, HTTPSink(writer, plan.heartbeat), start=arrived,
                    speed=state.config.speed, on_frame=record.tick)
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
