"""The aiohttp application: routes, error middleware, the HTTP chat handler, control API."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ._config import ControlError, MockConfig, mask_key, parse_controls
from ._errors import MockError, error_body
from ._faults import plan_reply
from ._frames import join_frames
from ._journal import Record
from ._request import parse_chat_request, parse_json
from ._sse import SSE_HEADERS, break_connection, sleep_until, write_sse
from ._state import InjectedStatus, MockState, Reply, scrub

__all__ = ["STATE", "create_app"]

log = logging.getLogger("mockserver")
STATE = web.AppKey("state", MockState)
routes = web.RouteTableDef()


def bearer_key(request: web.Request) -> str | None:
    """The key from ``Authorization: Bearer <key>`` (None when absent)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


# -- errors as OpenAI JSON ---------------------------------------------------------------------

_HTTP_ERRORS = {
    404: ("invalid_request_error", "unknown_url"),
    405: ("invalid_request_error", "method_not_allowed"),
    413: ("invalid_request_error", "request_too_large"),
}


@web.middleware
async def openai_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Turn aiohttp's HTML/plain errors (404, 405, 413, crashes) into OpenAI error JSON."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        type_, code = _HTTP_ERRORS.get(exc.status, ("invalid_request_error", None))
        if exc.status == 404:
            message = f"Unknown request URL: {request.method} {request.path}. Please check the URL."
        elif exc.status == 405:
            allowed = ", ".join(sorted(getattr(exc, "allowed_methods", ()) or ()))
            message = f"Method {request.method} is not allowed for {request.path}; use {allowed}."
        elif exc.status == 413:
            limit = request.app[STATE].config.max_body_bytes
            message = f"The request body is too large; the limit is {limit} bytes."
        else:
            message = exc.reason
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return web.json_response(
            error_body(message, type=type_, code=code), status=exc.status, headers=headers
        )
    except (asyncio.CancelledError, ConnectionError):
        raise
    except Exception as exc:  # a bug in the mock must still answer in OpenAI format
        log.exception("unhandled error in %s %s", request.method, request.path)
        return web.json_response(
            error_body(f"Internal mock error: {type(exc).__name__}", type="server_error"),
            status=500,
        )


# -- chat completions over HTTP ----------------------------------------------------------------

# Recorded headers that describe the recorded connection, not this one.
_HOP_HEADERS = {"content-length", "transfer-encoding", "connection", "content-encoding"}


def _headers(reply: Reply) -> dict[str, str]:
    return {k: v for k, v in (reply.headers or {}).items() if k.lower() not in _HOP_HEADERS}


@routes.post("/v1/chat/completions")
async def chat_completions(request: web.Request) -> web.StreamResponse:
    """OpenAI chat completions: streaming (SSE) or one JSON body."""
    arrived = asyncio.get_running_loop().time()
    state = request.app[STATE]
    record = state.journal.begin(request.method, request.path, "json")
    # Whatever ends the request — a hang-up while the body is read, a bug — closes its record
    # (only the first finish counts, so the outcomes set below stand).
    try:
        return await _chat(request, state, record, arrived)
    except (asyncio.CancelledError, ConnectionError):
        record.finish("error" if state.draining else "client_disconnected")
        raise
    except web.HTTPException as exc:  # 413 from reading the body; the middleware answers
        record.finish("error", status=exc.status, error=exc.reason)
        raise
    except Exception as exc:
        record.finish("error", status=500, error=f"internal mock error: {type(exc).__name__}")
        raise


async def _chat(
    request: web.Request, state: MockState, record: Record, arrived: float
) -> web.StreamResponse:
    key = bearer_key(request)
    record.key = mask_key(key) if key else None
    try:
        if state.config.record_upstream:
            # Record mode: the upstream authenticates; the mock only relays and records.
            from ._record import proxy_http

            return await proxy_http(request, parse_json(await request.read()), state, record)
        state.authorize(key)
        try:
            controls = parse_controls(request.headers)
        except ControlError as exc:
            raise MockError(400, str(exc), code="invalid_mock_control") from None
        req = parse_chat_request(parse_json(await request.read()))
        record.model, record.stream = req.model, req.stream
        record.transport = "sse" if req.stream else "json"
        record.request = scrub(req.raw, key)
        record.controls = controls.public()
        state.check_rate(key)
        reply = state.build_reply(req, controls, record.transport, record)
    except InjectedStatus as injected:
        record.finish("fault:status", status=injected.error.status, error=injected.error.message)
        return injected.error.response()
    except MockError as err:
        record.finish("error", status=err.status, error=err.message)
        return err.response()
    if reply.status >= 400:
        record.finish("error", status=reply.status, error="cassette error response")
        return web.Response(
            status=reply.status, body=join_frames(reply.frames), headers=_headers(reply)
        )
    speed = state.config.speed
    state.stream_started()
    try:
        if req.stream:
            return await _stream_sse(request, state, reply, record, speed, arrived)
        return await _respond_json(request, reply, record, speed, arrived)
    finally:
        state.stream_ended()


async def _stream_sse(
    request: web.Request,
    state: MockState,
    reply: Reply,
    record: Record,
    speed: float,
    arrived: float,
) -> web.StreamResponse:
    plan = plan_reply(reply.frames, reply.faults, transport="sse", done=b"data: [DONE]\n\n")
    ours = {k.lower() for k in SSE_HEADERS}
    headers = {k: v for k, v in _headers(reply).items() if k.lower() not in ours}
    resp = web.StreamResponse(status=200, headers={**SSE_HEADERS, **headers})
    await resp.prepare(request)
    record.status = 200
    try:
        await write_sse(
            request, resp, plan, speed=speed, start=arrived, on_frame=record.tick,
            precise=state.precise,
        )
    except ConnectionError:
        raise
    except Exception as exc:
        # The 200 head is out, so no error JSON can follow (the middleware's answer would be
        # written into the body): break the stream instead, as a failing upstream would.
        log.exception("SSE stream failed")
        record.finish("error", error=f"internal mock error: {type(exc).__name__}")
        break_connection(request.transport, reset=False)
        return resp
    record.finish(plan.outcome)
    return resp


async def _respond_json(
    request: web.Request, reply: Reply, record: Record, speed: float, start: float
) -> web.StreamResponse:
    """Non-streaming: wait the whole schedule, then one body; some faults apply."""
    faults = reply.faults
    frames = list(reply.frames)
    delay = frames[-1].at if frames else 0.0
    if "stall" in faults:
        delay += faults["stall"].params["ms"] / 1000
    await sleep_until(start + delay / speed if speed > 0 else start)
    body = join_frames(frames)
    for name in ("disconnect", "reset"):
        if name in faults:
            break_connection(request.transport, reset=name == "reset")
            record.finish(f"fault:{name}")
            return web.Response(status=200)
    outcome = "completed"
    if "malformed" in faults:
        body = body[: len(body) // 2]
        outcome = "fault:malformed"
    elif "stall" in faults:
        outcome = "fault:stall"
    record.chunks_sent = 1
    record.finish(outcome, status=200)
    headers = {k: v for k, v in _headers(reply).items() if k.lower() != "content-type"}
    headers["Content-Type"] = "application/json"
    return web.Response(status=200, body=body, headers=headers)


# -- models and control API --------------------------------------------------------------------


@routes.get("/v1/models")
async def models(request: web.Request) -> web.Response:
    """The models this mock serves (authenticated, like the real endpoint)."""
    state = request.app[STATE]
    try:
        state.authorize(bearer_key(request))
    except MockError as err:
        return err.response()
    data = [
        {"id": m, "object": "model", "created": 1_735_689_600, "owned_by": "holynb-mock"}
        for m in state.models()
    ]
    return web.json_response({"object": "list", "data": data})


@routes.get("/_mock/journal")
async def journal(request: web.Request) -> web.Response:
    """All request records, oldest first."""
    return web.json_response(request.app[STATE].journal.snapshot())


@routes.post("/_mock/reset")
async def reset(request: web.Request) -> web.Response:
    """Clear journal, cassette sequences, rate limits and repeat counters."""
    request.app[STATE].reset()
    return web.json_response({"ok": True})


@routes.get("/_mock/config")
async def config(request: web.Request) -> web.Response:
    """The running configuration (keys reduced to a count) and served models."""
    state = request.app[STATE]
    return web.json_response({**state.config.public(), "models": state.models()})


def create_app(config: MockConfig | None = None, **options: Any) -> web.Application:
    """Build the mock's aiohttp application from a config (or keyword options)."""
    from ._config import make_config
    from ._ws import ws_chat

    if config is None:
        config = make_config(**options)
    elif options:
        raise TypeError("pass either a MockConfig or keyword options, not both")
    app = web.Application(middlewares=[openai_errors], client_max_size=config.max_body_bytes)
    app[STATE] = MockState(config)
    app.add_routes(routes)
    app.router.add_get("/v1/ws/chat", ws_chat)
    app.on_shutdown.append(_drain)
    return app


async def _drain(app: web.Application) -> None:
    """On shutdown: let open streams finish (bounded), then close WebSockets (1001)."""
    state = app[STATE]
    state.draining = True
    try:
        await asyncio.wait_for(state.idle.wait(), state.config.drain_timeout_s)
    except TimeoutError:
        log.warning("drain timeout: %d streams still open", state.active)
    for ws in list(state.websockets):
        await ws.close(code=1001, message=b"server shutting down")
