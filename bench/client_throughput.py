"""Client throughput and warm TTFT overhead: holynb SSE / WebSocket vs openai SDK vs httpx-sse.

Run: ``python bench/client_throughput.py [--chunks 20000] [--runs 3] [--ttft-samples 300]``

Server side: the bundled mock cannot write 100k+ chunks/s (aiohttp spends several µs per
write), so this script starts its own tiny raw-asyncio server in a subprocess. It answers
``POST /v1/chat/completions`` with a pre-rendered SSE body (chunked transfer encoding, one HTTP
chunk per event, exactly as a streaming server flushes them) and ``GET /v1/ws/chat`` with
pre-rendered WebSocket text frames. Every peer reads the same events from the same server in
the same run, so the ratios compare client cost only. "chunks/s" counts content chunks delivered
to user code (the text extracted), request start to end of stream.

Warm TTFT overhead: p50 of request start to first content delta on an already-open connection,
holynb minus a raw socket (and minus raw httpx), against that server and against the bundled
mock (``python -m mockserver --ttft-ms 0 --tps 0``) in a subprocess.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator

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


def render_sse_body(n: int) -> bytes:
    """The HTTP/1.1 response: headers, then each SSE event as one chunked-encoding chunk."""
    parts = [
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"
    ]
    for payload in [*render_chunks(n), "[DONE]"]:
        event = f"data: {payload}\n\n".encode()
        parts.append(b"%x\r\n%s\r\n" % (len(event), event))
    parts.append(b"0\r\n\r\n")
    return b"".join(parts)


def render_ws_frames(n: int) -> bytes:
    """Unmasked server text frames for each chunk and the final ``[DONE]``."""
    out = bytearray()
    for payload in [*render_chunks(n), "[DONE]"]:
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


async def serve(big: int, small: int) -> None:
    """Answer chat requests with pre-rendered bodies; ``max_tokens`` <= small gets the small one."""
    bodies = {True: render_sse_body(small), False: render_sse_body(big)}
    frames = {True: render_ws_frames(small), False: render_ws_frames(big)}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
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
                if path.startswith("/v1/ws/chat"):
                    accept = base64.b64encode(
                        hashlib.sha1((headers["sec-websocket-key"] + _WS_GUID).encode()).digest()
                    ).decode()
                    writer.write(
                        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                        b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                        + accept.encode() + b"\r\n\r\n"
                    )
                    await serve_ws(reader, writer)
                    return
                if method == "POST" and path.startswith("/v1/chat/completions"):
                    request = json.loads(body)
                    writer.write(bodies[request.get("max_tokens", 0) <= small])
                    await writer.drain()
                else:
                    reply = b'{"error": {"message": "not found"}}'
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (len(reply), reply))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def serve_ws(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            b1, b2 = await reader.readexactly(2)
            opcode, size = b1 & 0x0F, b2 & 0x7F
            if size == 126:
                size = int.from_bytes(await reader.readexactly(2), "big")
            elif size == 127:
                size = int.from_bytes(await reader.readexactly(8), "big")
            mask = await reader.readexactly(4) if b2 & 0x80 else b"\0\0\0\0"
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(await reader.readexactly(size)))
            if opcode == 0x8:
                writer.write(b"\x88\x00")
                return
            if opcode == 0x9:
                writer.write(bytes([0x8A, len(data)]) + data)
                continue
            obj = json.loads(data)
            if "messages" in obj:
                writer.write(frames[obj.get("max_tokens", 0) <= small])
                await writer.drain()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    async with server:
        await server.serve_forever()


# -- the peers ----------------------------------------------------------------------------------


def _messages() -> list[dict[str, str]]:
    return [{"role": "user", "content": "Write a long story."}]


async def peer_holynb(base: str, n: int, transport: str) -> Callable[[], Awaitable[int]]:
    import holynb

    client = holynb.AsyncClient(base_url=base, api_key=KEY, model=MODEL, transport=transport)

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


async def throughput(name: str, run: Callable[[], Awaitable[int]], n: int, runs: int) -> float:
    await run()  # warm-up: connection open, imports, caches
    rates = []
    for _ in range(runs):
        t0 = time.perf_counter()
        count = await run()
        elapsed = time.perf_counter() - t0
        if count != n:
            raise RuntimeError(f"{name}: expected {n} chunks, got {count}")
        rates.append(count / elapsed)
    await run.close()  # type: ignore[attr-defined]
    return statistics.median(rates)


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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ttft-samples", type=int, default=300)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        await serve(args.chunks, 1)
        return

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
        rates: dict[str, float] = {}
        peers = [
            ("holynb SSE", peer_holynb(base, n, "sse")),
            ("holynb WebSocket", peer_holynb(base, n, "ws")),
            ("httpx-sse + json.loads", peer_httpx_sse(base, n)),
            ("openai SDK (AsyncOpenAI)", peer_openai(base, n)),
        ]
        for name, make in peers:
            rates[name] = await throughput(name, await make, n, args.runs)
        base_rate = rates["openai SDK (AsyncOpenAI)"]
        print(f"\n{'client':<28}{'chunks/s':>12}{'× openai SDK':>15}")
        for name, rate in rates.items():
            print(f"{name:<28}{rate:>12,.0f}{rate / base_rate:>14.1f}×")

        k = args.ttft_samples
        overhead = await ttft_table(base, k, "the raw bench server")
        with _mock_process() as mock_base:
            overhead_mock = await ttft_table(mock_base, k, "the bundled mock, --ttft-ms 0")
        ok_rate = rates["holynb SSE"] >= 100_000 and rates["holynb SSE"] >= 15 * base_rate
        ok_ttft = max(overhead, overhead_mock) <= 1.0
        print(f"\ntargets: SSE >= 100k chunks/s and >= 15x openai: {'met' if ok_rate else 'MISSED'}"
              f"; warm TTFT overhead <= 1 ms p50: {'met' if ok_ttft else 'MISSED'}")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    asyncio.run(main())
