"""The aiohttp application: routes, the error middleware, the control API, lifecycle.

``create_app`` assembles the parts: shared state (``_state``), the request pipeline
(``_pipeline``), the transports (``_http``, ``_ws``) and, in ``cleanup_ctx``, what lives as long
as the app — record mode's one upstream session, a multi-worker store's sync timer and file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from ._config import MockConfig, make_config
from ._controls import ControlError, bounded
from ._errors import MockError
from ._http import serve_http
from ._latency import PROFILES
from ._pipeline import Pipeline
from ._record import Recorder, upstream_session
from ._state import MockState
from ._store import DEFAULT_PAGE, JOURNAL_SIZE, SYNC_S, SharedStore
from ._ws import serve_ws
from .formats import Format, anthropic, chat, gemini, responses

__all__ = ["PIPELINE", "STATE", "create_app"]

log = logging.getLogger("mockserver")
STATE = web.AppKey("state", MockState)
PIPELINE = web.AppKey("pipeline", Pipeline)
routes = web.RouteTableDef()


# -- errors in the API the request was made to -------------------------------------------------

_HTTP_CODES = {404: "unknown_url", 405: "method_not_allowed", 413: "request_too_large"}


def format_for(request: web.Request) -> Format:
    """The API a request's path belongs to (its errors are worded in that API)."""
    path = request.path
    if path.startswith("/v1beta/"):
        return gemini  # type: ignore[return-value]
    if path.startswith("/v1/messages") or (
            path == "/v1/models" and "anthropic-version" in request.headers):
        return anthropic  # type: ignore[return-value]
    return chat  # type: ignore[return-value]


@web.middleware
async def api_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Turn aiohttp's HTML/plain errors (404, 405, 413, crashes) into the API's error JSON."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
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
        resp = format_for(request).error_response(
            MockError(exc.status, message, code=_HTTP_CODES.get(exc.status)))
        resp.headers.update({k: v for k, v in exc.headers.items() if k.lower() == "allow"})
        return resp
    except (asyncio.CancelledError, ConnectionError):
        raise
    except Exception as exc:  # a bug in the mock must still answer in the API's format
        log.exception("unhandled error in %s %s", request.method, request.path)
        return format_for(request).error_response(
            MockError(500, f"Internal mock error: {type(exc).__name__}", "server_error"))


# -- the APIs ----------------------------------------------------------------------------------


async def _serve(request: web.Request, fmt: Format,
                 route: dict[str, str] | None = None) -> web.StreamResponse:
    arrived = asyncio.get_running_loop().time()
    state = request.app[STATE]
    record = state.journal.begin(request.method, request.path, "json")
    try:
        return await serve_http(request, state, request.app[PIPELINE], record, arrived,
                                fmt=fmt, route=route)
    except Exception as exc:  # a bug: the record closes, the middleware answers 500
        record.finish("error", status=500, error=f"internal mock error: {type(exc).__name__}")
        raise


@routes.post("/v1/chat/completions")
async def chat_completions(request: web.Request) -> web.StreamResponse:
    """OpenAI chat completions: streaming (SSE) or one JSON body."""
    return await _serve(request, chat)  # type: ignore[arg-type]


@routes.get("/v1/ws/chat")
async def ws_chat(request: web.Request) -> web.StreamResponse:
    """The chat WebSocket (protocol in ``shared/DESIGN.md``)."""
    return await serve_ws(request, request.app[STATE], request.app[PIPELINE])


@routes.post("/v1/responses")
async def responses_create(request: web.Request) -> web.StreamResponse:
    """OpenAI Responses: streaming (SSE events) or the response object."""
    return await _serve(request, responses)  # type: ignore[arg-type]


@routes.get("/v1/responses")
async def responses_ws(request: web.Request) -> web.StreamResponse:
    """The Responses API's WebSocket mode."""
    return await serve_ws(request, request.app[STATE], request.app[PIPELINE],
                          responses)  # type: ignore[arg-type]


@routes.post("/v1/messages")
async def messages(request: web.Request) -> web.StreamResponse:
    """Anthropic Messages: streaming (SSE events) or the message object."""
    route = {"anthropic-version": request.headers.get("anthropic-version", "")}
    return await _serve(request, anthropic, route)  # type: ignore[arg-type]


@routes.post(r"/v1beta/models/{call:[^/]+}")
async def generate_content(request: web.Request) -> web.StreamResponse:
    """Gemini ``models/{model}:generateContent`` and ``:streamGenerateContent`` (``?alt=sse``
    for SSE, else a JSON array)."""
    model, _, method = request.match_info["call"].rpartition(":")
    if method not in ("generateContent", "streamGenerateContent") or not model:
        raise web.HTTPNotFound()
    stream = method == "streamGenerateContent"
    fmt = gemini.ARRAY if stream and request.query.get("alt") != "sse" else gemini
    return await _serve(request, fmt, {"model": model, "stream": "1" if stream else ""})


def _models(request: web.Request) -> list[str]:
    return sorted(request.app[STATE].models)


def _display(model: str) -> str:
    return model.replace("-", " ").title().replace("Gpt", "GPT")


@routes.get("/v1/models")
async def models(request: web.Request) -> web.Response:
    """The models this mock serves (authenticated, like the real endpoint), in OpenAI's list
    shape — or Anthropic's when the request carries an ``anthropic-version`` header."""
    fmt = format_for(request)
    try:
        request.app[PIPELINE].authorize(fmt.api_key(request.headers, request.query), fmt)
    except MockError as err:
        return fmt.error_response(err)
    names = _models(request)
    if fmt is anthropic:
        data = [{"type": "model", "id": m, "display_name": _display(m),
                 "created_at": "2025-01-01T00:00:00Z"} for m in names]
        return web.json_response({"data": data, "has_more": False,
                                  "first_id": names[0] if names else None,
                                  "last_id": names[-1] if names else None})
    data = [{"id": m, "object": "model", "created": 1_735_689_600, "owned_by": "holynb-mock"}
            for m in names]
    return web.json_response({"object": "list", "data": data})


def _gemini_model(name: str) -> dict[str, object]:
    return {"name": f"models/{name}", "version": "001", "displayName": _display(name),
            "description": "A model served by the holynb mock.", "inputTokenLimit": 1_048_576,
            "outputTokenLimit": 65_536, "supportedGenerationMethods": [
                "generateContent", "streamGenerateContent", "countTokens"],
            "temperature": 1.0, "topP": 0.95, "topK": 64, "thinking": name in PROFILES}


@routes.get("/v1beta/models")
async def gemini_models(request: web.Request) -> web.Response:
    """The served models in Gemini's ``models.list`` shape."""
    try:
        request.app[PIPELINE].authorize(gemini.api_key(request.headers, request.query), gemini)
    except MockError as err:
        return gemini.error_response(err)
    return web.json_response({"models": [_gemini_model(m) for m in _models(request)]})


@routes.get(r"/v1beta/models/{model:[^/:]+}")
async def gemini_model(request: web.Request) -> web.Response:
    """One served model in Gemini's ``models.get`` shape (404 ``NOT_FOUND`` if unknown)."""
    try:
        request.app[PIPELINE].authorize(gemini.api_key(request.headers, request.query), gemini)
    except MockError as err:
        return gemini.error_response(err)
    name = request.match_info["model"]
    if name not in request.app[STATE].models:
        return gemini.error_response(MockError(404, f"models/{name} is not found for API "
                                                    "version v1beta.", "NOT_FOUND"))
    return web.json_response(_gemini_model(name))


# -- control API -------------------------------------------------------------------------------


def _int_param(request: web.Request, name: str, default: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        return bounded(raw, name, 0, hi, kind=int)
    except ControlError as exc:
        raise MockError(400, str(exc), param=name, code="invalid_value") from None


@routes.get("/_mock/journal")
async def journal(request: web.Request) -> web.Response:
    """Request records, oldest first: ``?after=ID`` (records after that id) and ``?limit=N``
    (default 1000); a ``Link: <...>; rel="next"`` header points at the next page."""
    try:
        after = _int_param(request, "after", 0, 2**62)
        limit = _int_param(request, "limit", DEFAULT_PAGE, JOURNAL_SIZE)
    except MockError as err:
        return chat.error_response(err)
    records = request.app[STATE].journal.page(after=after, limit=limit + 1)
    headers = {}
    if len(records) > limit:
        records = records[:limit]
        headers["Link"] = f'</_mock/journal?after={records[-1]["id"]}&limit={limit}>; rel="next"'
    return web.json_response(records, headers=headers)


@routes.post("/_mock/reset")
async def reset(request: web.Request) -> web.Response:
    """Clear journal, cassette sequences, rate limits and repeat counters (of every worker)."""
    request.app[STATE].reset()
    return web.json_response({"ok": True})


@routes.get("/_mock/config")
async def config(request: web.Request) -> web.Response:
    """The running configuration (keys reduced to a count) and served models."""
    state = request.app[STATE]
    return web.json_response({**state.config.public(), "models": sorted(state.models)})


# -- assembly ----------------------------------------------------------------------------------


async def _resources(app: web.Application) -> AsyncIterator[None]:
    """What lives as long as the app: record mode's upstream session, the shared store."""
    state = app[STATE]
    config = state.config
    session = None
    if config.record_upstream:
        session = upstream_session()
        state.recorder = Recorder(config.record_upstream, config.record_dir, session)
    sync = None
    if isinstance(state.store, SharedStore):
        sync = asyncio.create_task(_sync_forever(state.store))
    try:
        yield
    finally:
        if sync is not None:
            sync.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sync
        if session is not None:
            await session.close()
        state.store.close()


async def _sync_forever(store: SharedStore) -> None:
    """Flush this worker's journal to the shared store every ``SYNC_S``."""
    while True:
        await asyncio.sleep(SYNC_S)
        store.sync()


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


def create_app(
    config: MockConfig | None = None,
    *,
    shared: str | Path | None = None,
    slot: int = 0,
    **options: Any,
) -> web.Application:
    """Build the mock's aiohttp application from a config (or keyword options).

    ``shared`` is the SQLite file the workers of a multi-process server share and ``slot`` this
    worker's number (see ``_workers``); leave them out for one process.
    """
    if config is None:
        config = make_config(**options)
    elif options:
        raise TypeError("pass either a MockConfig or keyword options, not both")
    app = web.Application(middlewares=[api_errors], client_max_size=config.max_body_bytes)
    state = MockState(config, shared=shared, slot=slot)
    app[STATE] = state
    app[PIPELINE] = Pipeline(state)
    app.add_routes(routes)
    app.cleanup_ctx.append(_resources)
    app.on_shutdown.append(_drain)
    return app
