"""A loopback server for the Responses and Anthropic Messages APIs that plays documentation
streams (``doc_streams``) verbatim, with faults on request.

``POST /v1/responses`` (SSE or JSON), ``GET /v1/responses`` (the Responses WebSocket mode),
``POST /v1/messages`` (SSE or JSON), ``GET /v1/models`` (OpenAI's list for a Bearer key,
Anthropic's paged list for ``x-api-key``). Controls, as headers (HTTP) or query parameters
(WebSocket): ``X-Script`` (which stream), ``X-Fault`` (``status:code=429,retry_after=1`` |
``cut:after=N`` (connection dropped) | ``end:after=N`` (the body ends, no end event) |
``malformed:at=N`` | ``error:at=N`` | ``stall:after=N`` | ``pings:ms=N`` | ``gap:ms=N``),
``X-Fault-Times`` (the fault applies to the first N requests that carry it).
Every request is recorded in ``app[SEEN]``; streams the client left early in ``app[LEFT]``.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import doc_streams as doc
from aiohttp import WSMsgType, web
from client_helpers import KEY

SEEN: web.AppKey[list[dict[str, Any]]] = web.AppKey("seen", list)
LEFT: web.AppKey[list[str]] = web.AppKey("left", list)
_COUNTS: web.AppKey[Counter[str]] = web.AppKey("counts", Counter)


def _compact(text: str) -> str:
    return json.dumps(json.loads(text), separators=(",", ":"))


def _deltas(words: list[str]) -> list[str]:
    """Text deltas in the documented ``response.output_text.delta`` form, numbered."""
    template = json.loads(doc.OUTPUT_TEXT_DELTA)
    return [json.dumps({**template, "delta": w, "sequence_number": i + 2})
            for i, w in enumerate(words)]


STORY_WORDS = [w + " " for w in doc.UNICORN.split(" ")]
REASONING_ITEM = {"id": "rs_6806bfca0b2481918a5748308061a2600d3ce51bdffd5476",
                  "type": "reasoning", "summary": []}

RESPONSES: dict[str, list[str]] = {
    "text": [doc.RESPONSE_CREATED, doc.RESPONSE_IN_PROGRESS, doc.OUTPUT_ITEM_ADDED,
             doc.CONTENT_PART_ADDED, doc.OUTPUT_TEXT_DELTA, doc.OUTPUT_TEXT_DONE,
             doc.CONTENT_PART_DONE, doc.OUTPUT_ITEM_DONE, doc.RESPONSE_COMPLETED],
    "story": [doc.RESPONSE_CREATED, doc.OUTPUT_ITEM_ADDED, *_deltas(STORY_WORDS),
              doc.OUTPUT_ITEM_DONE, doc.RESPONSE_COMPLETED],
    "tool": [doc.RESPONSE_CREATED, *doc.FUNCTION_CALL_EVENTS, doc.RESPONSE_COMPLETED],
    "reasoning": [
        doc.RESPONSE_CREATED,
        json.dumps({"type": "response.output_item.added", "output_index": 0,
                    "item": REASONING_ITEM, "sequence_number": 2}),
        doc.REASONING_SUMMARY_PART_ADDED, doc.REASONING_SUMMARY_TEXT_DELTA,
        doc.REASONING_SUMMARY_TEXT_DONE, doc.REASONING_SUMMARY_PART_DONE,
        json.dumps({"type": "response.output_item.done", "output_index": 0,
                    "item": {**REASONING_ITEM, "summary": [
                        {"type": "summary_text", "text": doc.SUMMARY}]},
                    "sequence_number": 7}),
        doc.OUTPUT_ITEM_ADDED, doc.CONTENT_PART_ADDED, doc.OUTPUT_TEXT_DELTA,
        doc.OUTPUT_ITEM_DONE, doc.RESPONSE_COMPLETED,
    ],
    "failed": [doc.RESPONSE_CREATED, *_deltas(STORY_WORDS[:3]), doc.RESPONSE_FAILED],
    "error": [doc.RESPONSE_CREATED, *_deltas(STORY_WORDS[:3]), doc.ERROR_EVENT],
    "incomplete": [doc.RESPONSE_CREATED, *_deltas(STORY_WORDS[:3]), doc.RESPONSE_INCOMPLETE],
    "doc-arguments-delta": [doc.RESPONSE_CREATED, doc.FUNCTION_CALL_ARGUMENTS_DELTA,
                            doc.RESPONSE_COMPLETED],
}


def _sse_events(body: str) -> list[str]:
    return [block + "\n\n" for block in body.strip("\n").split("\n\n")]


def _story_messages() -> list[str]:
    head = _sse_events(doc.ANTHROPIC_BASIC)
    delta = ('event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, '
             '"delta": {"type": "text_delta", "text": %s}}\n\n')
    return head[:3] + [delta % json.dumps(w) for w in STORY_WORDS] + head[5:]


MESSAGES: dict[str, list[str]] = {
    "basic": _sse_events(doc.ANTHROPIC_BASIC),
    "tool": _sse_events(doc.ANTHROPIC_TOOL_USE),
    "thinking": _sse_events(doc.ANTHROPIC_THINKING),
    "story": _story_messages(),
}

# Non-streamed replies: the Messages API reference's and the tool-use guide's examples, and the
# Responses reference's completed response / the function-calling guide's output.
MESSAGE_REPLIES: dict[str, dict[str, Any]] = {
    "basic": {
        "content": [{"text": "Hi! My name is Claude.", "type": "text"}],
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
        "model": "claude-3-7-sonnet-20250219",
        "role": "assistant",
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "type": "message",
        "usage": {"input_tokens": 2095, "output_tokens": 503},
    },
    "tool": {
        "id": "msg_01Aq9w938a90dw8q",
        "model": "claude-opus-4-1-20250805",
        "stop_reason": "tool_use",
        "role": "assistant",
        "content": [
            {"type": "text", "text": "I'll check the current weather in San Francisco for you."},
            {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
             "input": {"location": "San Francisco, CA", "unit": "celsius"}},
        ],
    },
}
RESPONSE_REPLIES: dict[str, dict[str, Any]] = {
    "text": json.loads(doc.RESPONSE_COMPLETED)["response"],
    "tool": {**json.loads(doc.RESPONSE_COMPLETED)["response"], "output": [
        {"type": "function_call", "id": "fc_12345xyz", "call_id": "call_12345xyz",
         "name": "get_weather", "arguments": "{\"location\":\"Paris, France\"}"}]},
}

ANTHROPIC_MODELS = [{"type": "model", "id": f"claude-{n}", "display_name": f"Claude {n}",
                     "created_at": "2025-02-19T00:00:00Z"} for n in ("opus-4", "sonnet-4",
                                                                   "haiku-4")]


def _controls(request: web.Request) -> dict[str, str]:
    def get(name: str) -> str:
        return request.headers.get(name, request.query.get(name, ""))

    return {"script": get("X-Script"), "fault": get("X-Fault"), "times": get("X-Fault-Times")}


def _fault(request: web.Request, controls: dict[str, str]) -> tuple[str, dict[str, float]]:
    """The fault to apply to this request: (name, arguments), or ("", {})."""
    spec = controls["fault"]
    if not spec:
        return "", {}
    if controls["times"]:
        counts = request.app[_COUNTS]
        counts[spec] += 1
        if counts[spec] > int(controls["times"]):
            return "", {}
    name, _, rest = spec.partition(":")
    args = {k: float(v) for k, v in (p.split("=", 1) for p in rest.split(",") if p)}
    return name, args


def _record(request: web.Request, body: Any, transport: str) -> None:
    request.app[SEEN].append({"method": request.method, "path": request.path,
                              "headers": dict(request.headers), "body": body,
                              "transport": transport})


def _openai_error(status: int, message: str, code: str) -> dict[str, Any]:
    kinds = {401: "invalid_request_error", 429: "requests", 500: "server_error"}
    return {"error": {"message": message, "type": kinds.get(status, "server_error"),
                      "param": None, "code": code}}


def _anthropic_error(status: int, message: str) -> dict[str, Any]:
    kinds = {401: "authentication_error", 429: "rate_limit_error", 529: "overloaded_error",
             500: "api_error"}
    return {"type": "error", "error": {"type": kinds.get(status, "api_error"),
                                       "message": message},
            "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"}


def _status_reply(api: str, args: dict[str, float]) -> web.Response:
    status = int(args.get("code", 500))
    headers = {}
    if "retry_after" in args:
        headers["retry-after"] = f"{args['retry_after']:g}"
    message = {401: "invalid x-api-key" if api == "messages" else "Incorrect API key provided",
               429: "Number of requests has exceeded your rate limit",
               529: "Overloaded"}.get(status, "Internal server error")
    body = (_anthropic_error(status, message) if api == "messages"
            else _openai_error(status, message, {429: "rate_limit_exceeded"}.get(status, "")))
    return web.json_response(body, status=status, headers=headers)


def _authorized(request: web.Request, api: str) -> bool:
    if api == "messages":
        return (request.headers.get("x-api-key") == KEY
                and "anthropic-version" in request.headers)
    return request.headers.get("Authorization") == f"Bearer {KEY}"


async def _play_sse(request: web.Request, events: list[str], fault: str,
                    args: dict[str, float], error_event: str) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
    await response.prepare(request)
    at = int(args.get("at", args.get("after", -1)))
    try:
        if fault == "pings":
            while True:
                await response.write(b'event: ping\ndata: {"type": "ping"}\n\n')
                await asyncio.sleep(args.get("ms", 50) / 1000)
        for i, event in enumerate(events):
            if i == at:
                if fault == "cut":
                    request.transport.close()
                    return response
                if fault == "end":
                    break
                if fault == "stall":
                    await _stall(request)
                if fault == "malformed":
                    event = 'data: {"type": "response.output_te\n\n'
                if fault == "error":
                    await response.write(error_event.encode())
                    return response
            await response.write(event.encode())
            if fault == "gap":
                await asyncio.sleep(args.get("ms", 0) / 1000)
        await response.write_eof()
    except ConnectionResetError:
        request.app[LEFT].append(request.path)
    except asyncio.CancelledError:
        request.app[LEFT].append(request.path)
        raise
    return response


async def _stall(request: web.Request) -> None:
    """Send nothing until the client goes away (bounded: 30 s)."""
    for _ in range(3000):
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        await asyncio.sleep(0.01)


def _responses_sse(events: list[str]) -> list[str]:
    out = []
    for text in events:
        try:
            kind = json.loads(text)["type"]
        except ValueError:
            kind = "response.function_call_arguments.delta"
        data = "".join(f"data: {line}\n" for line in text.split("\n"))
        out.append(f"event: {kind}\n{data}\n")
    return out


def create_app() -> web.Application:
    """The Responses + Messages server."""
    routes = web.RouteTableDef()

    @routes.post("/v1/responses")
    async def responses(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        _record(request, body, "sse" if body.get("stream") else "json")
        if not _authorized(request, "responses"):
            return web.json_response(_openai_error(401, "Incorrect API key provided: sk-…2d",
                                                   "invalid_api_key"), status=401)
        controls = _controls(request)
        fault, args = _fault(request, controls)
        if fault == "status":
            return _status_reply("responses", args)
        script = controls["script"] or "text"
        if not body.get("stream"):
            return web.json_response(RESPONSE_REPLIES[script])
        error = f"event: error\ndata: {_compact(doc.ERROR_EVENT)}\n\n"
        return await _play_sse(request, _responses_sse(RESPONSES[script]), fault, args, error)

    @routes.get("/v1/responses")
    async def responses_ws(request: web.Request) -> web.StreamResponse:
        if not _authorized(request, "responses"):
            return web.json_response(_openai_error(401, "Incorrect API key provided: sk-…2d",
                                                   "invalid_api_key"), status=401)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        controls = _controls(request)
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                create = json.loads(msg.data)
                _record(request, create, "ws")
                await _play_ws(request, ws, create, controls)
        finally:
            if not ws.closed:
                await ws.close()
        return ws

    async def _play_ws(request: web.Request, ws: web.WebSocketResponse,
                       create: dict[str, Any], controls: dict[str, str]) -> None:
        if create.get("type") != "response.create":
            await ws.send_str(json.dumps({"type": "error", "status": 400, "error": {
                "type": "invalid_request_error", "message": "expected response.create"}}))
            return
        fault, args = _fault(request, controls)
        if fault == "status":
            status = int(args.get("code", 500))
            error: dict[str, Any] = {"type": "error", "status": status, "error": {
                "type": "invalid_request_error" if status < 500 else "server_error",
                "code": {429: "rate_limit_exceeded"}.get(status), "message": f"HTTP {status}"}}
            if "retry_after" in args:
                error["error"]["headers"] = {"retry-after": f"{args['retry_after']:g}"}
            await ws.send_str(json.dumps(error))
            return
        at = int(args.get("at", args.get("after", -1)))
        try:
            for i, frame in enumerate(RESPONSES[controls["script"] or "text"]):
                if i == at:
                    if fault == "cut":
                        await ws.close(code=1011, message=b"cut")
                        return
                    if fault == "stall":
                        await _stall(request)
                    if fault == "malformed":
                        frame = '{"type": "response.output_te'
                    if fault == "error":
                        await ws.send_str(_compact(doc.ERROR_EVENT))
                        return
                if ws.closed:
                    break
                await ws.send_str(frame)
                if fault == "gap":
                    await asyncio.sleep(args.get("ms", 0) / 1000)
            else:
                return
        except ConnectionResetError:
            pass
        request.app[LEFT].append("ws")

    @routes.post("/v1/messages")
    async def messages(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        _record(request, body, "sse" if body.get("stream") else "json")
        if not _authorized(request, "messages"):
            return web.json_response(_anthropic_error(401, "invalid x-api-key"), status=401)
        controls = _controls(request)
        fault, args = _fault(request, controls)
        if fault == "status":
            return _status_reply("messages", args)
        script = controls["script"] or "basic"
        if script == "overloaded":
            events = _sse_events(doc.ANTHROPIC_OVERLOADED)
        elif not body.get("stream"):
            return web.json_response(MESSAGE_REPLIES[script])
        else:
            events = MESSAGES[script]
        return await _play_sse(request, events, fault, args, doc.ANTHROPIC_OVERLOADED)

    @routes.get("/v1/models")
    async def models(request: web.Request) -> web.Response:
        _record(request, None, "json")
        if "x-api-key" in request.headers:
            if not _authorized(request, "messages"):
                return web.json_response(_anthropic_error(401, "invalid x-api-key"), status=401)
            limit = int(request.query.get("limit", "2"))
            after = request.query.get("after_id")
            start = 0 if after is None else [m["id"] for m in ANTHROPIC_MODELS].index(after) + 1
            page = ANTHROPIC_MODELS[start:start + limit]
            return web.json_response({"data": page, "has_more": start + limit < len(
                ANTHROPIC_MODELS), "first_id": page[0]["id"], "last_id": page[-1]["id"]})
        if not _authorized(request, "responses"):
            return web.json_response(_openai_error(401, "Incorrect API key", "invalid_api_key"),
                                     status=401)
        return web.json_response({"object": "list", "data": [
            {"id": "gpt-4o-mini", "object": "model", "created": 1, "owned_by": "openai"}]})

    app = web.Application()
    app[SEEN] = []
    app[LEFT] = []
    app[_COUNTS] = Counter()
    app.add_routes(routes)
    return app
