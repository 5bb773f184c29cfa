"""Client throughput, CPU cost, capacity and warm TTFT: holynb SSE / WS vs openai SDK, httpx-sse;
chunks/s per API (chat completions, Responses over SSE and WebSocket, Anthropic Messages) vs the
official SDKs.

Run: ``python bench/client_throughput.py [--chunks 20000] [--runs 3] [--ttft-samples 300]
[--paced-streams 1000] [--paced-seconds 5] [--capacity 100,200,300,400,500,750,1000,1500,2000]``

Server side: the bundled mock cannot write 100k+ chunks/s (aiohttp spends several µs per
write), so this script starts its own tiny raw-asyncio server in a subprocess. It answers
``POST /v1/chat/completions`` with a pre-rendered SSE body (chunked transfer encoding, one HTTP
chunk per event, exactly as a streaming server flushes them) and ``GET /v1/ws/chat`` with
pre-rendered WebSocket text frames; likewise ``POST /v1/responses`` and ``GET /v1/responses``
(the Responses API's SSE and WebSocket mode) and ``POST /v1/messages`` (Anthropic Messages), the
same content in each API's events. Every peer reads the same events from the same server in
the same run, so the ratios compare client cost only. "chunks/s" counts content chunks delivered
to user code (the text extracted), request start to end of stream.

Paced streams: a second server process paces every stream at ``--tps`` (50) chunks/s, one
chunk per stream per 1/tps s, the streams spread over ten phases (it reports its own tick lag,
so a late server is not blamed on the client). Each client peer runs alone in a fresh child
process (one event loop: one client core) with ``--paced-streams`` concurrent streams; the child
measures its own CPU time (CPU ms per 1,000 chunks delivered) and the gaps between deltas as user
code sees them (ITL p99). The capacity search raises the number of streams over ``--capacity``
until ITL p99 passes 40 ms, and reports the most streams carried within it.

Warm TTFT overhead: p50 of request start to first content delta on an already-open connection,
holynb minus a raw socket (and minus raw httpx), against that server and against the bundled
mock (``python -m mockserver --ttft-ms 0 --tps 0``) in a subprocess.

The machine may be shared: CPU time per chunk (``cpu µs/chunk``) is printed beside every rate,
since it moves less than wall-clock rates when other processes compete for the cores.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

KEY = "sk-bench-local-key-0000"
MODEL = "deepseek-v3.2"
_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


# -- the server (runs in a subprocess) ------------------------------------------------------------


def render_chunks(n: int) -> list[str]:
    """``n`` content chunks, a finish chunk, a usage chunk (the JSON payloads)."""
    head = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000,
            "model": MODEL}
    out = []
    for i in range(n):
        delta = {"content": f" tok{i % 100}"}
        out.append(json.dumps({**head, "choices": [{"index": 0, "delta": delta,
                                                    "finish_reason": None}]}))
    out.append(json.dumps({**head, "choices": [{"index": 0, "delta": {},
                                                "finish_reason": "stop"}]}))
    out.append(json.dumps({**head, "choices": [],
                           "usage": {"prompt_tokens": 5, "completion_tokens": n,
                                     "total_tokens": n + 5}}))
    return out


def render_responses(n: int) -> list[tuple[str, str]]:
    """A Responses stream of ``n`` text deltas, as (event type, JSON payload) pairs."""
    item = {"id": "msg_bench", "type": "message", "role": "assistant", "status": "in_progress",
            "content": []}
    response = {"id": "resp_bench", "object": "response", "status": "in_progress", "model": MODEL,
                "output": [], "usage": None}
    text = "".join(f" tok{i % 100}" for i in range(n))
    done_item = {**item, "status": "completed",
                 "content": [{"type": "output_text", "text": text, "annotations": []}]}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": response},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {"type": "response.content_part.added", "item_id": "msg_bench", "output_index": 0,
         "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}},
    ]
    events += [{"type": "response.output_text.delta", "item_id": "msg_bench", "output_index": 0,
                "content_index": 0, "delta": f" tok{i % 100}", "logprobs": []}
               for i in range(n)]
    events += [
        {"type": "response.output_text.done", "item_id": "msg_bench", "output_index": 0,
         "content_index": 0, "text": text, "logprobs": []},
        {"type": "response.output_item.done", "output_index": 0, "item": done_item},
        {"type": "response.completed", "response": {
            **response, "status": "completed", "output": [done_item],
            "usage": {"input_tokens": 5, "output_tokens": n, "total_tokens": n + 5,
                      "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens_details": {"reasoning_tokens": 0}}}},
    ]
    for i, event in enumerate(events):
        event["sequence_number"] = i
    return [(e["type"], json.dumps(e)) for e in events]


def render_messages(n: int) -> list[tuple[str, str]]:
    """An Anthropic Messages stream of ``n`` text deltas, as (event type, JSON payload) pairs."""
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {
            "id": "msg_bench", "type": "message", "role": "assistant", "content": [],
            "model": MODEL, "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 5, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
    ]
    events += [{"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": f" tok{i % 100}"}} for i in range(n)]
    events += [
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": n}},
        {"type": "message_stop"},
    ]
    return [(e["type"], json.dumps(e)) for e in events]


def render_sse_body(events: list[tuple[str | None, str]]) -> bytes:
    """The HTTP/1.1 response: headers, then each SSE event as one chunked-encoding chunk."""
    parts = [
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"
    ]
    for name, payload in events:
        head = f"event: {name}\n" if name else ""
        event = f"{head}data: {payload}\n\n".encode()
        parts.append(b"%x\r\n%s\r\n" % (len(event), event))
    parts.append(b"0\r\n\r\n")
    return b"".join(parts)


def chat_events(n: int) -> list[tuple[str | None, str]]:
    """The chat-completions stream: unnamed events, then ``[DONE]``."""
    return [(None, payload) for payload in [*render_chunks(n), "[DONE]"]]


def render_ws_frames(payloads: list[str]) -> bytes:
    """Unmasked server text frames, one per payload."""
    out = bytearray()
    for payload in payloads:
        data = payload.encode()
        size = len(data)
        if size < 126:
            out += bytes([0x81, size])
        elif size < 65536:
            out += bytes([0x81, 126]) + size.to_bytes(2, "big")
        else:
            out += bytes([0x81, 127]) + size.to_bytes(8, "big")
        out += data
    return bytes(out)


async def _read_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> tuple[str, str, bytes]:
    """One request: (method, path, body); a WebSocket upgrade is accepted on the spot."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    body = b""
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    if "sec-websocket-key" in headers:
        accept = base64.b64encode(
            hashlib.sha1((headers["sec-websocket-key"] + _WS_GUID).encode()).digest()
        ).decode()
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept.encode() + b"\r\n\r\n"
        )
    return method, path, body


async def serve(big: int, small: int) -> None:
    """Answer requests with pre-rendered bodies; chat ``max_tokens`` <= small gets the small one."""
    bodies = {True: render_sse_body(chat_events(small)), False: render_sse_body(chat_events(big))}
    frames = {True: render_ws_frames([p for _, p in chat_events(small)]),
              False: render_ws_frames([p for _, p in chat_events(big)])}
    responses = render_responses(big)
    api_bodies = {"/v1/responses": render_sse_body(list(responses)),
                  "/v1/messages": render_sse_body(list(render_messages(big)))}
    responses_frames = render_ws_frames([p for _, p in responses])

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                method, path, body = await _read_request(reader, writer)
                if path.startswith("/v1/ws/chat"):
                    await serve_ws(reader, writer, "messages", frames)
                    return
                if method == "GET" and path.startswith("/v1/responses"):
                    await serve_ws(reader, writer, "input", {False: responses_frames})
                    return
                if method == "POST" and path.startswith("/v1/chat/completions"):
                    request = json.loads(body)
                    writer.write(bodies[request.get("max_tokens", 0) <= small])
                    await writer.drain()
                elif method == "POST" and path in api_bodies:
                    writer.write(api_bodies[path])
                    await writer.drain()
                else:
                    reply = b'{"error": {"message": "not found"}}'
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (len(reply), reply))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def serve_ws(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, field: str,
                       replies: dict[bool, bytes]) -> None:
        # A request frame has `field` (chat: messages, Responses: input); others are control.
        async for data in _ws_messages(reader, writer):
            obj = json.loads(data)
            if field in obj:
                writer.write(replies[len(replies) > 1 and obj.get("max_tokens", 0) <= small])
                await writer.drain()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    async with server:
        await server.serve_forever()


# -- the paced server (runs in a subprocess) ---------------------------------------------------

_PHASES = 10


def _frame(data: bytes) -> bytes:
    """One unmasked WebSocket text frame."""
    size = len(data)
    if size < 126:
        return bytes([0x81, size]) + data
    if size < 65536:
        return bytes([0x81, 126]) + size.to_bytes(2, "big") + data
    return bytes([0x81, 127]) + size.to_bytes(8, "big") + data


class _Paced:
    """One paced stream: writes its next chunk when its phase comes round."""

    __slots__ = ("writer", "items", "pos", "ws")

    def __init__(self, writer: asyncio.StreamWriter, items: list[bytes], ws: bool) -> None:
        self.writer = writer
        self.items = items
        self.pos = 0
        self.ws = ws


async def serve_paced(tps: float) -> None:
    """Pace every stream at ``tps`` chunks/s; print the port, then tick-lag stats on SIGTERM."""
    loop = asyncio.get_running_loop()
    phases: list[set[_Paced]] = [set() for _ in range(_PHASES)]
    rendered: dict[tuple[int, bool], list[bytes]] = {}
    lags: list[float] = []
    count = 0
    first_start: list[float] = []

    def items_for(n: int, ws: bool) -> list[bytes]:
        key = (n, ws)
        if key not in rendered:
            payloads = [p.encode() for p in render_chunks(n)]
            if ws:
                # Content chunks one per tick; the finish, usage and [DONE] go with the last one.
                frames = [_frame(p) for p in payloads] + [_frame(b"[DONE]")]
                rendered[key] = frames[: n - 1] + [b"".join(frames[n - 1 :])]
            else:
                events = [b"data: %s\n\n" % p for p in payloads] + [b"data: [DONE]\n\n"]
                chunks = [b"%x\r\n%s\r\n" % (len(e), e) for e in events]
                rendered[key] = chunks[: n - 1] + [b"".join(chunks[n - 1 :]) + b"0\r\n\r\n"]
        return rendered[key]

    def start(writer: asyncio.StreamWriter, n: int, ws: bool) -> None:
        nonlocal count
        if not first_start:
            first_start.append(loop.time())
        phases[count % _PHASES].add(_Paced(writer, items_for(max(n, 1), ws), ws))
        count += 1

    async def ticker() -> None:
        tick = 1 / tps / _PHASES
        due = loop.time()
        i = 0
        while True:
            due += tick
            await asyncio.sleep(max(0.0, due - loop.time()))
            if first_start and due > first_start[0] + 1.0:  # past the opening burst
                lags.append(loop.time() - due)
            phase = phases[i % _PHASES]
            i += 1
            for stream in list(phase):
                if stream.writer.is_closing():  # the client left (or was stopped)
                    phase.discard(stream)
                    continue
                stream.writer.write(stream.items[stream.pos])
                stream.pos += 1
                if stream.pos == len(stream.items):
                    phase.discard(stream)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                method, path, body = await _read_request(reader, writer)
                if path.startswith("/v1/ws/chat"):
                    async for data in _ws_messages(reader, writer):
                        if b'"messages"' in data:
                            start(writer, json.loads(data).get("max_tokens", 1), True)
                    return
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n")
                start(writer, json.loads(body).get("max_tokens", 1), False)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    task = asyncio.create_task(ticker())
    stop = asyncio.Event()
    loop.add_signal_handler(15, stop.set)
    async with server:
        await stop.wait()
    task.cancel()
    if lags:
        lags.sort()
        print(json.dumps({"lag_p99_ms": lags[int(len(lags) * 0.99)] * 1000}), flush=True)


async def _ws_messages(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Any:
    """Client text messages of a WebSocket (answering ping and close)."""
    while True:
        b1, b2 = await reader.readexactly(2)
        opcode, size = b1 & 0x0F, b2 & 0x7F
        if size == 126:
            size = int.from_bytes(await reader.readexactly(2), "big")
        elif size == 127:
            size = int.from_bytes(await reader.readexactly(8), "big")
        mask = await reader.readexactly(4) if b2 & 0x80 else b"\0\0\0\0"
        raw = await reader.readexactly(size)
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(raw)) if size < 4096 else bytes(
            x ^ y for x, y in zip(raw, mask * (size // 4 + 1), strict=False))
        if opcode == 0x8:
            writer.write(b"\x88\x00")
            return
        if opcode == 0x9:
            writer.write(bytes([0x8A, len(data)]) + data)
            continue
        yield data


# -- the peers ----------------------------------------------------------------------------------


def _messages() -> list[dict[str, str]]:
    return [{"role": "user", "content": "Write a long story."}]


async def peer_holynb(
    base: str, n: int, transport: str, api: str = "chat"
) -> Callable[[], Awaitable[int]]:
    import holynb

    client = holynb.AsyncClient(base_url=base, api_key=KEY, model=MODEL, transport=transport,
                                api=api)

    async def run() -> int:
        count = 0
        async with client.stream(_messages(), max_tokens=n) as s:
            async for _delta in s:
                count += 1
        return count

    run.close = client.aclose  # type: ignore[attr-defined]
    return run


async def peer_openai(base: str, n: int) -> Callable[[], Awaitable[int]]:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base, api_key=KEY, max_retries=0)

    async def run() -> int:
        count = 0
        stream = await client.chat.completions.create(
            model=MODEL, messages=_messages(), max_tokens=n, stream=True
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                count += 1
        return count

    run.close = client.close  # type: ignore[attr-defined]
    return run


async def peer_openai_responses(base: str, n: int) -> Callable[[], Awaitable[int]]:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base, api_key=KEY, max_retries=0)

    async def run() -> int:
        count = 0
        stream = await client.responses.create(
            model=MODEL, input=_messages(), max_output_tokens=n, stream=True
        )
        async for event in stream:
            if event.type == "response.output_text.delta" and event.delta:
                count += 1
        return count

    run.close = client.close  # type: ignore[attr-defined]
    return run


async def peer_anthropic(base: str, n: int) -> Callable[[], Awaitable[int]]:
    from anthropic import AsyncAnthropic

    # The Anthropic SDK appends /v1/messages to its base URL.
    client = AsyncAnthropic(base_url=base.removesuffix("/v1"), api_key=KEY, max_retries=0)

    async def run() -> int:
        count = 0
        stream = await client.messages.create(
            model=MODEL, messages=_messages(), max_tokens=n, stream=True  # type: ignore[arg-type]
        )
        async for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                count += 1
        return count

    run.close = client.close  # type: ignore[attr-defined]
    return run


async def peer_httpx_sse(base: str, n: int) -> Callable[[], Awaitable[int]]:
    import httpx
    from httpx_sse import aconnect_sse

    client = httpx.AsyncClient(headers={"Authorization": f"Bearer {KEY}"}, timeout=None)
    body = {"model": MODEL, "messages": _messages(), "max_tokens": n, "stream": True}

    async def run() -> int:
        count = 0
        async with aconnect_sse(client, "POST", f"{base}/chat/completions", json=body) as es:
            async for sse in es.aiter_sse():
                if sse.data == "[DONE]":
                    break
                chunk = json.loads(sse.data)
                if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                    count += 1
        return count

    run.close = client.aclose  # type: ignore[attr-defined]
    return run


async def peer_aiohttp_raw(base: str, n: int) -> Callable[[], Awaitable[int]]:
    """The transport's ceiling: aiohttp ``readany()`` on the same body, no decoding at all.

    holynb's SSE path is this loop plus SSE decoding, orjson and delivery; the row shows how
    much of the per-chunk cost is aiohttp's (one ``StreamReader`` step per HTTP chunk)."""
    import aiohttp

    session = aiohttp.ClientSession()
    body = json.dumps({"model": MODEL, "messages": _messages(), "max_tokens": n, "stream": True})
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}

    async def run() -> int:
        async with session.post(f"{base}/chat/completions", data=body, headers=headers) as r:
            size = 0
            while raw := await r.content.readany():
                size += len(raw)
        return n if size else 0  # the chunks the body carried (counted by the server's render)

    run.close = session.close  # type: ignore[attr-defined]
    return run


async def throughput(
    name: str, run: Callable[[], Awaitable[int]], n: int, runs: int
) -> tuple[float, float]:
    """Median chunks/s over ``runs`` and the median client CPU µs per chunk."""
    await run()  # warm-up: connection open, imports, caches
    rates = []
    cpus = []
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        count = await run()
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        if count != n:
            raise RuntimeError(f"{name}: expected {n} chunks, got {count}")
        rates.append(count / elapsed)
        cpus.append(cpu / count * 1e6)
    await run.close()  # type: ignore[attr-defined]
    return statistics.median(rates), statistics.median(cpus)


async def api_table(
    base: str, n: int, runs: int, chat: tuple[float, float]
) -> dict[str, tuple[float, float]]:
    """Chunks/s per API: holynb on each API and transport beside each API's official SDK."""
    peers = [
        ("responses", "holynb SSE", peer_holynb(base, n, "sse", "responses")),
        ("responses", "holynb WebSocket", peer_holynb(base, n, "ws", "responses")),
        ("responses", "openai SDK", peer_openai_responses(base, n)),
        ("messages", "holynb SSE", peer_holynb(base, n, "sse", "messages")),
        ("messages", "anthropic SDK", peer_anthropic(base, n)),
    ]
    rates = {("chat", "holynb SSE"): chat}
    for api, name, make in peers:
        rates[api, name] = await throughput(f"{api} {name}", await make, n, runs)
    print(f"\nper API ({n} text deltas a stream, the same content in each API's events)")
    print(f"{'API':<12}{'client':<20}{'chunks/s':>12}{'× SDK':>9}{'cpu µs/chunk':>15}")
    sdk = {"chat": chat[0], "responses": rates["responses", "openai SDK"][0],
           "messages": rates["messages", "anthropic SDK"][0]}
    for (api, name), (rate, cpu) in rates.items():
        ratio = f"{rate / sdk[api]:>8.1f}×" if api != "chat" else f"{'':>9}"
        print(f"{api:<12}{name:<20}{rate:>12,.0f}{ratio}{cpu:>15.2f}")
    return {f"{api} {name}": value for (api, name), value in rates.items()}


# -- paced streams: CPU per chunk and ITL at many concurrent streams ---------------------------


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


async def paced_child(peer: str, base: str, streams: int, seconds: float, tps: float) -> None:
    """Run ``streams`` concurrent paced streams with one peer; print a JSON line of figures."""
    n = max(2, int(tps * seconds))
    gaps: list[float] = []
    delivered = 0
    errors = 0

    def stream_factory() -> tuple[Callable[[], Any], Callable[[], Awaitable[None]]]:
        if peer == "raw":
            return _raw_stream(base, lambda: n), _nothing
        if peer.startswith("holynb"):
            import holynb

            client = holynb.AsyncClient(
                base_url=base, api_key=KEY, model=MODEL, transport=peer.split("-")[1],
                max_connections=streams + 10, ws_pool_size=streams + 10,
                first_token_timeout=120, idle_timeout=60,
            )

            async def one(times: list[float]) -> None:
                async with client.stream(_messages(), max_tokens=n) as s:
                    async for _delta in s:
                        times.append(time.perf_counter())

            return one, client.aclose
        import httpx
        from openai import AsyncOpenAI

        http = httpx.AsyncClient(limits=httpx.Limits(max_connections=streams + 10),
                                 timeout=httpx.Timeout(120.0))
        oai = AsyncOpenAI(base_url=base, api_key=KEY, max_retries=0, http_client=http)

        async def one(times: list[float]) -> None:
            stream = await oai.chat.completions.create(
                model=MODEL, messages=_messages(), max_tokens=n, stream=True
            )
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    times.append(time.perf_counter())

        return one, oai.close

    one, close = stream_factory()
    # Warm-up (not measured): imports, the first connection, caches.
    n, warm = 2, n
    await one([])
    n = warm

    all_times: list[list[float]] = []

    async def run_one() -> None:
        nonlocal errors
        times: list[float] = []
        all_times.append(times)
        try:
            await one(times)
        except Exception:
            errors += 1

    cpu0, wall0 = time.process_time(), time.perf_counter()
    tasks = [asyncio.create_task(run_one()) for _ in range(streams)]
    # A client that cannot keep up is measured over a bounded window, then stopped.
    _, late = await asyncio.wait(tasks, timeout=seconds * 2 + 2)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    for task in late:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await close()
    # ITL in the steady state: from the moment every stream has its first delta (the opening
    # burst of connections is not a gap between tokens).
    firsts = [times[0] for times in all_times if times]
    steady = max(firsts) if firsts else 0.0
    for times in all_times:
        delivered += len(times)
        gaps.extend(b - a for a, b in zip(times, times[1:], strict=False) if a >= steady)
    print(json.dumps({
        "peer": peer, "streams": streams, "chunks": delivered, "errors": errors,
        "unfinished": len(late), "cpu_s": cpu, "wall_s": wall,
        "cpu_ms_per_1000": cpu / max(delivered, 1) * 1e6,
        "itl_p50_ms": _percentile(gaps, 0.5) * 1000, "itl_p99_ms": _percentile(gaps, 0.99) * 1000,
    }), flush=True)


def _raw_stream(base: str, tokens: Callable[[], int]) -> Callable[[list[float]], Awaitable[None]]:
    """The floor: one asyncio task per stream reading its socket with ``StreamReader.read``
    and counting content chunks by a byte search: no HTTP parser, no SSE or JSON decoding."""
    host, port = base.split("//")[1].split("/")[0].split(":")

    async def one(times: list[float]) -> None:
        body = json.dumps({"model": MODEL, "messages": _messages(), "max_tokens": tokens(),
                           "stream": True}).encode()
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\nContent-Length: %d"
                     b"\r\n\r\n%s" % (host.encode(), len(body), body))
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                now = time.perf_counter()
                times.extend([now] * data.count(b'"content"'))
                if data.endswith(b"0\r\n\r\n"):
                    return
        finally:
            writer.close()

    return one


async def _nothing() -> None:
    return None


def run_paced(peer: str, base: str, streams: int, seconds: float, tps: float) -> dict[str, Any]:
    """One paced run in a fresh child process (one event loop, one core)."""
    out = subprocess.run(
        [sys.executable, __file__, "--paced-child", peer, "--base", base,
         "--paced-streams", str(streams), "--paced-seconds", str(seconds), "--tps", str(tps)],
        capture_output=True, text=True, timeout=seconds * 20 + 60, check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


@contextlib.contextmanager
def _paced_server(tps: float) -> Iterator[tuple[str, dict[str, Any]]]:
    """The paced server in a subprocess; yields (base URL, dict filled with its lag at exit)."""
    proc = subprocess.Popen([sys.executable, __file__, "--serve-paced", "--tps", str(tps)],
                            stdout=subprocess.PIPE, text=True)
    stats: dict[str, Any] = {}
    try:
        port = int(proc.stdout.readline())  # type: ignore[union-attr]
        yield f"http://127.0.0.1:{port}/v1", stats
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
        for line in out.splitlines():
            with contextlib.suppress(ValueError):
                stats.update(json.loads(line))


PACED_PEERS = {"holynb SSE": "holynb-sse", "holynb WebSocket": "holynb-ws",
               "openai SDK (AsyncOpenAI)": "openai",
               "raw asyncio reads (floor)": "raw"}


def paced_tables(args: argparse.Namespace) -> dict[str, Any]:
    """CPU per 1,000 chunks at --paced-streams, then the capacity search; returns the figures."""
    tps, seconds = args.tps, args.paced_seconds
    figures: dict[str, Any] = {"cpu": {}, "capacity": {}}
    print(f"\n{args.paced_streams} concurrent streams at {tps:g} tok/s for {seconds:g} s, each "
          "client alone in one process (one core):")
    print(f"{'client':<28}{'CPU ms/1,000 chunks':>21}{'ITL p50':>10}{'ITL p99':>10}"
          f"{'chunks':>10}{'unfinished':>12}{'server lag p99':>16}")
    for name, peer in PACED_PEERS.items():
        with _paced_server(tps) as (base, server):
            result = run_paced(peer, base, args.paced_streams, seconds, tps)
        figures["cpu"][name] = result["cpu_ms_per_1000"]
        print(f"{name:<28}{result['cpu_ms_per_1000']:>18.1f} ms{result['itl_p50_ms']:>8.1f}ms"
              f"{result['itl_p99_ms']:>8.1f}ms{result['chunks']:>10,}{result['unfinished']:>12}"
              f"{server.get('lag_p99_ms', float('nan')):>14.1f}ms")
    print(f"\ncapacity: most concurrent {tps:g} tok/s streams one client core carries with ITL "
          "p99 <= 40 ms")
    for name, peer in PACED_PEERS.items():
        steps = args.openai_capacity if peer == "openai" else args.capacity
        best = 0
        trail = []
        for streams in steps:
            with _paced_server(tps) as (base, server):
                result = run_paced(peer, base, streams, seconds, tps)
            ok = result["itl_p99_ms"] <= 40 and not result["errors"] and not result["unfinished"]
            trail.append(f"{streams}: {result['itl_p99_ms']:.0f} ms"
                         f" (server lag {server.get('lag_p99_ms', float('nan')):.1f})")
            if not ok:
                break
            best = streams
        figures["capacity"][name] = best
        print(f"  {name:<28}{best:>6}   ITL p99 by streams: {'; '.join(trail)}")
    return figures


# -- warm TTFT ----------------------------------------------------------------------------------


async def ttft_holynb(base: str, samples: int, transport: str) -> list[float]:
    import holynb

    out = []
    async with holynb.AsyncClient(base_url=base, api_key=KEY, transport=transport) as client:
        for i in range(samples + 10):
            async with client.stream(_messages(), max_tokens=1) as s:
                async for _ in s:
                    pass
            if i >= 10:
                out.append(s.stats.ttft_s)
    return out


async def ttft_raw_socket(base: str, samples: int) -> list[float]:
    host, port = base.split("//")[1].split("/")[0].split(":")
    body = json.dumps({"model": MODEL, "messages": _messages(), "max_tokens": 1,
                       "stream": True}).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (host.encode(), KEY.encode(), len(body), body)
    )
    reader, writer = await asyncio.open_connection(host, int(port))
    out = []
    for i in range(samples + 10):
        t0 = time.perf_counter()
        writer.write(request)
        buf = b""
        while b'"content"' not in buf:
            buf += await reader.read(65536)
        first = time.perf_counter() - t0
        while not buf.endswith(b"0\r\n\r\n"):
            buf += await reader.read(65536)
        if i >= 10:
            out.append(first)
    writer.close()
    return out


async def ttft_raw_httpx(base: str, samples: int) -> list[float]:
    import httpx

    body = {"model": MODEL, "messages": _messages(), "max_tokens": 1, "stream": True}
    out = []
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {KEY}"}) as client:
        for i in range(samples + 10):
            t0 = time.perf_counter()
            async with client.stream("POST", f"{base}/chat/completions", json=body) as r:
                first = None
                async for raw in r.aiter_raw():
                    if first is None and b'"content"' in raw:
                        first = time.perf_counter() - t0
            if i >= 10:
                out.append(first)
    return out


def _p50_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


async def ttft_table(base: str, k: int, server: str) -> float:
    """Print warm TTFT p50 of raw socket, raw httpx and holynb; return holynb SSE's overhead."""
    holy_sse = _p50_ms(await ttft_holynb(base, k, "sse"))
    holy_ws = _p50_ms(await ttft_holynb(base, k, "ws"))
    raw_sock = _p50_ms(await ttft_raw_socket(base, k))
    raw_httpx = _p50_ms(await ttft_raw_httpx(base, k))
    print(f"\nwarm-connection TTFT p50 over {k} requests, {server}:")
    print(f"  raw socket       {raw_sock:7.3f} ms")
    print(f"  raw httpx        {raw_httpx:7.3f} ms")
    print(f"  holynb SSE       {holy_sse:7.3f} ms   overhead vs raw socket "
          f"{holy_sse - raw_sock:+.3f} ms, vs raw httpx {holy_sse - raw_httpx:+.3f} ms")
    print(f"  holynb WebSocket {holy_ws:7.3f} ms   overhead vs raw socket "
          f"{holy_ws - raw_sock:+.3f} ms")
    return holy_sse - raw_sock


@contextlib.contextmanager
def _mock_process() -> Iterator[str]:
    """The bundled mock in a subprocess at full speed; yields its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mockserver", "--port", "0", "--ttft-ms", "0", "--tps", "0",
         "--speed", "0", "--no-cassettes"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        for line in proc.stdout:  # type: ignore[union-attr]
            match = re.search(r"http://[\w.:]+/v1", line)
            if match:
                yield match.group(0)
                break
        else:
            raise RuntimeError("the mock server did not print its URL")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _steps(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ttft-samples", type=int, default=300)
    parser.add_argument("--tps", type=float, default=50.0)
    parser.add_argument("--paced-streams", type=int, default=1000)
    parser.add_argument("--paced-seconds", type=float, default=5.0)
    parser.add_argument(
        "--capacity", type=_steps, default=_steps("100,200,300,400,500,750,1000,1500,2000")
    )
    parser.add_argument("--openai-capacity", type=_steps, default=_steps("25,50,100,200,300"))
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-paced", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--paced-child", help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        await serve(args.chunks, 1)
        return
    if args.serve_paced:
        await serve_paced(args.tps)
        return
    if args.paced_child:
        await paced_child(args.paced_child, args.base, args.paced_streams, args.paced_seconds,
                          args.tps)
        return

    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"({os.cpu_count()} cores)")
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--chunks", str(args.chunks)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(server.stdout.readline())  # type: ignore[union-attr]
        base = f"http://127.0.0.1:{port}/v1"
        n = args.chunks
        print(f"server: raw asyncio subprocess, pre-rendered replies of {n} content chunks, "
              f"ttft 0, on {base}")
        rates: dict[str, tuple[float, float]] = {}
        peers = [
            ("holynb SSE", peer_holynb(base, n, "sse")),
            ("holynb WebSocket", peer_holynb(base, n, "ws")),
            ("httpx-sse + json.loads", peer_httpx_sse(base, n)),
            ("openai SDK (AsyncOpenAI)", peer_openai(base, n)),
            ("aiohttp readany, no decoding", peer_aiohttp_raw(base, n)),
        ]
        for name, make in peers:
            rates[name] = await throughput(name, await make, n, args.runs)
        base_rate = rates["openai SDK (AsyncOpenAI)"][0]
        print(f"\n{'client':<28}{'chunks/s':>12}{'× openai SDK':>15}{'cpu µs/chunk':>15}")
        for name, (rate, cpu) in rates.items():
            print(f"{name:<28}{rate:>12,.0f}{rate / base_rate:>14.1f}×{cpu:>15.2f}")
        api_rates = await api_table(base, n, args.runs, rates["holynb SSE"])

        k = args.ttft_samples
        overhead = await ttft_table(base, k, "the raw bench server")
        with _mock_process() as mock_base:
            overhead_mock = await ttft_table(mock_base, k, "the bundled mock, --ttft-ms 0")
    finally:
        server.terminate()
        server.wait(timeout=10)
    paced = paced_tables(args)

    sse, ws = rates["holynb SSE"][0], rates["holynb WebSocket"][0]
    capacity = paced["capacity"]["holynb SSE"]
    checks = [
        ("SSE >= 250k chunks/s", sse >= 250_000),
        ("SSE >= 25x openai SDK", sse >= 25 * base_rate),
        ("WS >= SSE", ws >= sse),
        ("warm TTFT overhead <= 1 ms p50", max(overhead, overhead_mock) <= 1.0),
        (f"capacity >= 500 streams at {args.tps:g} tok/s", capacity >= 500),
        # CPU per chunk, which competing processes move less than rates (a shared machine).
        ("Responses SSE CPU/chunk <= 1.25x chat SSE",
         api_rates["responses holynb SSE"][1] <= 1.25 * rates["holynb SSE"][1]),
        ("Messages SSE CPU/chunk <= 1.25x chat SSE",
         api_rates["messages holynb SSE"][1] <= 1.25 * rates["holynb SSE"][1]),
    ]
    print("\ntargets: " + "; ".join(f"{what}: {'met' if ok else 'MISSED'}" for what, ok in checks))
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    asyncio.run(main())
