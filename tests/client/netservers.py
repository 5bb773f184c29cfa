"""Small real servers for the network tests: an upstream, a raw-bytes server, a proxy, a CA.

The upstream is an aiohttp app that speaks the chat-completions API over SSE, JSON and
WebSocket, with reasoning chunks on request; the raw server answers with exactly the bytes a
test hands it; the proxy forwards plain HTTP requests and tunnels CONNECT (https, wss).
Everything binds port 0 on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

MODEL = "deepseek-v3.2"
CONTENT = ["The ", "answer ", "is 42."]


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    """One chat.completion.chunk object."""
    return {
        "id": "chatcmpl-net",
        "object": "chat.completion.chunk",
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


def reply_chunks(reasoning: int, field_name: str) -> list[dict[str, Any]]:
    """``reasoning`` thinking chunks in ``delta.<field_name>``, then the content, then usage."""
    out = [chunk({"role": "assistant", "content": None, field_name: f"think{i} "})
           for i in range(reasoning)]
    out += [chunk({"content": text}) for text in CONTENT]
    out.append(chunk({}, "stop"))
    usage = {"prompt_tokens": 5, "completion_tokens": reasoning + len(CONTENT),
             "total_tokens": 5 + reasoning + len(CONTENT)}
    if reasoning:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    out.append({"id": "chatcmpl-net", "object": "chat.completion.chunk", "model": MODEL,
                "choices": [], "usage": usage})
    return out


@dataclass
class Upstream:
    """A running upstream app: ``.url`` (base URL ending /v1), ``.seen`` request records."""

    url: str
    seen: list[dict[str, Any]] = field(default_factory=list)


def upstream_app(seen: list[dict[str, Any]], *, max_msg: int = 4 * 1024 * 1024) -> web.Application:
    """The chat-completions upstream. Controls, as headers (SSE, JSON) or query parameters (WS):
    ``X-Reasoning`` (thinking chunks), ``X-Field`` (``reasoning_content`` | ``reasoning``),
    ``X-Gap-Ms`` (pause between chunks)."""
    routes = web.RouteTableDef()

    def controls(request: web.Request) -> tuple[int, str, float]:
        def get(name: str, default: str) -> str:
            return request.headers.get(name, request.query.get(name, default))

        return (int(get("X-Reasoning", "0")), get("X-Field", "reasoning_content"),
                float(get("X-Gap-Ms", "0")) / 1000)

    def record(request: web.Request, body: Any = None) -> None:
        seen.append({"method": request.method, "path": request.path,
                     "headers": dict(request.headers), "body": body})

    @routes.post("/v1/chat/completions")
    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        record(request, body)
        reasoning, field_name, gap = controls(request)
        if not body.get("stream"):
            message = {"role": "assistant", "content": "".join(CONTENT)}
            if reasoning:
                message[field_name] = "thinking"
            return web.json_response({
                "id": "chatcmpl-net", "object": "chat.completion", "model": MODEL,
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
            })
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for item in reply_chunks(reasoning, field_name):
            await response.write(f"data: {json.dumps(item)}\n\n".encode())
            if gap:
                await asyncio.sleep(gap)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    @routes.get("/v1/models")
    async def models(request: web.Request) -> web.Response:
        record(request)
        return web.json_response({"object": "list", "data": [{"id": MODEL, "object": "model"}]})

    @routes.get("/v1/ws/chat")
    async def ws_chat(request: web.Request) -> web.WebSocketResponse:
        record(request)
        reasoning, field_name, gap = controls(request)
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                break
            if len(msg.data) > max_msg:
                await ws.close(code=1009, message=b"message too big")
                break
            if '"ping"' in msg.data:
                await ws.send_str('{"type": "pong"}')
                continue
            if '"messages"' not in msg.data:
                continue
            for item in reply_chunks(reasoning, field_name):
                await ws.send_str(json.dumps(item))
                if gap:
                    await asyncio.sleep(gap)
            await ws.send_str("[DONE]")
        return ws

    app = web.Application()
    app.add_routes(routes)
    return app


async def start_app(app: web.Application, ssl_context: ssl.SSLContext | None = None,
                    host: str = "127.0.0.1") -> tuple[web.AppRunner, int]:
    """Run ``app`` on port 0; return its runner (to clean up) and port."""
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One HTTP request: its head and its body (Content-Length bodies)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head, await reader.readexactly(length)


class Proxy:
    """A forwarding HTTP proxy with CONNECT tunnels; ``.requests`` logs (method, target)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Proxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
            self.requests.append((method, target))
            if method == "CONNECT":
                host, port = target.rsplit(":", 1)
                up_reader, up_writer = await asyncio.open_connection(host, int(port))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                url = urllib.parse.urlsplit(target)
                up_reader, up_writer = await asyncio.open_connection(url.hostname, url.port or 80)
                lines = head.decode("latin-1").split("\r\n")
                path = url.path + (f"?{url.query}" if url.query else "")
                out = [f"{method} {path} HTTP/1.1"]
                upgrade = any(line.lower().startswith("upgrade:") for line in lines)
                for line in lines[1:]:
                    name = line.split(":", 1)[0].lower()
                    if not line or name.startswith("proxy-") or (name == "connection" and
                                                                  not upgrade):
                        continue
                    out.append(line)
                if not upgrade:
                    out.append("Connection: close")  # one request per forwarded connection
                up_writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1"))
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            writer.close()
