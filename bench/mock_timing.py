"""Timing fidelity of the mock server, measured by a client in a separate process.

    python bench/mock_timing.py                     # full run (~30 s)
    python bench/mock_timing.py --quick             # smaller counts

The mock runs as ``python -m mockserver`` (a subprocess, its own event loop and core); this
process is the client. For a configured TTFT and tokens/s with no jitter it reports the error of
the client-observed time to first token and of every inter-chunk gap (p50/p95/p99 of the absolute
error) at 1, 100 and 500 concurrent streams, and the maximum chunks/s the mock sends at speed 0.

Targets (DESIGN.md): TTFT error p95 <= 2 ms at one stream; gap error p99 <= 10 ms at 500 streams.

For comparison, the same load runs against a *naive* server in a second subprocess that sleeps
each gap (``await asyncio.sleep(gap)`` per token, as many mock servers do): its late wake-ups
accumulate, which the absolute-deadline scheduler of the mock avoids.

Connections are opened before the clock starts (TTFT is measured from sending the request, as a
client with a warm pool sees it). The client is a bare asyncio protocol that timestamps events
as bytes arrive, so that the measuring process costs as little as possible per event. Stream
starts are spread evenly over ``--spread-ms`` (1 s: 500 arrivals/s, as independent users; a
stream of 100 tokens lasts 2.1 s, so all 500 overlap); ``--sync-start`` starts them all in the
same instant instead (a 500-request burst the server has to absorb before its first token).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-holynb-mock"


def start_mock(*args: str) -> tuple[subprocess.Popen[str], str]:
    """Run ``python -m mockserver --port 0 ...`` and return (process, base URL)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mockserver", "--port", "0", "--no-cassettes", *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def start_naive(ttft_ms: float, tps: float) -> tuple[subprocess.Popen[str], str]:
    """The comparison server: sleeps each gap relative to the previous write."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--naive-server", str(ttft_ms), str(tps)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout:
        proc.stdout.close()


def naive_server(ttft_ms: float, tps: float) -> None:
    """Serve SSE with relative sleeps (the approach the mock's scheduler replaces)."""
    from aiohttp import web

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await asyncio.sleep(ttft_ms / 1000)
        for i in range(body.get("max_tokens", 64)):
            if i:
                await asyncio.sleep(1 / tps)
            chunk = {"object": "chat.completion.chunk",
                     "choices": [{"index": 0, "delta": {"content": f" t{i}"}}]}
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await resp.write(b"data: [DONE]\n\n")
        return resp

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print(f"http://127.0.0.1:{runner.addresses[0][1]}/v1", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


class _StreamProtocol(asyncio.Protocol):
    """A minimal HTTP/1.1 SSE reader: timestamps every event as its bytes arrive.

    Cheaper per event than any HTTP client library, so that with 500 streams the measuring
    process is not what lags. Events in the same read share its timestamp.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.times: list[float] = []
        self.done = asyncio.get_running_loop().create_future()
        self.head = True
        self.tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if self.head:
            buf = self.tail + data
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.tail = buf
                return
            if not buf.startswith(b"HTTP/1.1 200"):
                self.done.set_exception(RuntimeError(buf[:200].decode(errors="replace")))
                return
            self.head = False
            self.tail = b""
            data = buf[end + 4 :]
        # Each event ends with a blank line; the chunked framing adds no "\n\n" of its own.
        # The previous read's last bytes are kept so a split "\n\n" or "[DONE]" still counts.
        n = (self.tail[-1:] + data).count(b"\n\n")
        finished = b"data: [DONE]" in self.tail + data
        self.times.extend([now] * (n - 1 if finished else n))
        self.tail = data[-16:]
        if finished and not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(exc or ConnectionError("closed before [DONE]"))


async def one_stream(
    host: str, port: int, tokens: int, delay: float
) -> tuple[float, list[float], float]:
    """(TTFT s, inter-chunk gaps s, last chunk time s) of one stream, as this client sees it."""
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_connection(_StreamProtocol, host, port)
    try:
        body = json.dumps({"model": "gpt-4.1", "messages": [{"role": "user", "content": "b"}],
                           "stream": True, "max_tokens": tokens}).encode()
        request = (
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        await asyncio.sleep(delay)  # connected before the clock starts, like a warm pool
        t0 = time.perf_counter()
        transport.write(request)
        await proto.done
    finally:
        transport.close()
    times = proto.times
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    return times[0] - t0, gaps, times[-1] - t0


async def run_load(
    url: str, streams: int, tokens: int, spread_s: float, *, sync_start: bool, rounds: int = 1
) -> tuple[list[float], list[float], list[float]]:
    """Run ``streams`` concurrent streams (``rounds`` times); return TTFTs, gaps, last times."""
    parts = urlsplit(url)
    ttfts: list[float] = []
    gaps: list[float] = []
    lasts: list[float] = []
    for _ in range(rounds):
        delays = [0.0 if sync_start else spread_s * i / streams for i in range(streams)]
        results = await asyncio.gather(
            *(one_stream(parts.hostname or "", parts.port or 80, tokens, d) for d in delays)
        )
        for ttft, g, last in results:
            ttfts.append(ttft)
            gaps.extend(g)
            lasts.append(last)
    return ttfts, gaps, lasts


async def max_chunks_per_s(url: str, streams: int, tokens: int) -> float:
    """Chunks/s delivered by a speed-0 server to ``streams`` concurrent readers."""
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), headers={"Authorization": f"Bearer {KEY}"},
    ) as session:
        async def one() -> int:
            body = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "fast"}],
                    "stream": True, "max_tokens": tokens}
            n = 0
            async with session.post(f"{url}/chat/completions", json=body) as resp:
                async for data in resp.content.iter_any():
                    n += data.count(b"\n\n")
            return n - 1  # [DONE]

        t0 = time.perf_counter()
        counts = await asyncio.gather(*(one() for _ in range(streams)))
        return sum(counts) / (time.perf_counter() - t0)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def row(label: str, streams: int, ttfts: list[float], gaps: list[float], lasts: list[float],
        ttft_s: float, last_s: float, gap_s: float) -> str:
    te = [abs(t - ttft_s) * 1000 for t in ttfts]
    ge = [abs(g - gap_s) * 1000 for g in gaps]
    de = [(t - last_s) * 1000 for t in lasts]
    return (f"| {label:<6} | {streams:>7} | {statistics.median(te):6.2f} | {pct(te, .95):6.2f} | "
            f"{pct(te, .99):6.2f} | {statistics.median(ge):6.2f} | {pct(ge, .95):6.2f} | "
            f"{pct(ge, .99):6.2f} | {statistics.median(de):6.2f} | {pct(de, .99):6.2f} | "
            f"{len(gaps):>6} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ttft-ms", type=float, default=120.0)
    p.add_argument("--tps", type=float, default=50.0)
    p.add_argument("--tokens", type=int, default=100,
                   help="tokens per stream at 100 and 500 streams (1 stream: 30 x 10 tokens)")
    p.add_argument("--spread-ms", type=float, default=1000.0,
                   help="spread stream starts over this time (default 1000)")
    p.add_argument("--quick", action="store_true", help="fewer rounds (~10 s)")
    p.add_argument("--sync-start", action="store_true", help="start all streams at once")
    p.add_argument("--no-naive", action="store_true", help="skip the naive comparison server")
    p.add_argument("--naive-server", nargs=2, type=float, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.naive_server:
        naive_server(*args.naive_server)
        return
    ttft_s, gap_s = args.ttft_ms / 1000, 1 / args.tps
    # (streams, rounds, tokens): one stream runs many short requests for TTFT samples.
    plan = [(1, 10 if args.quick else 30, 10), (100, 1 if args.quick else 2, args.tokens),
            (500, 1, args.tokens)]
    servers = [("mock", start_mock("--ttft-ms", str(args.ttft_ms), "--tps", str(args.tps),
                                   "--jitter-ms", "0"))]
    if not args.no_naive:
        servers.append(("naive", start_naive(args.ttft_ms, args.tps)))
    print(f"mock timing fidelity: TTFT {args.ttft_ms:g} ms, {args.tps:g} tok/s, no jitter, "
          f"{args.tokens} tokens/stream, starts "
          f"{'together' if args.sync_start else f'spread over {args.spread_ms:g} ms'}")
    print("absolute errors in ms; drift = how late the last chunk is against its ideal time")
    print("(TTFT + (n-1)/tps after the request); client and server in separate processes\n")
    print("| server | streams | TTFT p50 | p95 | p99 | gap p50 | p95 | p99 | drift p50 | p99 "
          "| gaps |")
    print("|--------|--------:|-------:|-------:|-------:|-------:|-------:|-------:|-------:|"
          "-------:|-------:|")
    try:
        for streams, rounds, tokens in plan:
            for label, (_proc, url) in servers:
                ttfts, gaps, lasts = asyncio.run(run_load(
                    url, streams, tokens, args.spread_ms / 1000,
                    sync_start=args.sync_start, rounds=rounds,
                ))
                last_s = ttft_s + (tokens - 1) * gap_s
                print(row(label, streams, ttfts, gaps, lasts, ttft_s, last_s, gap_s), flush=True)
    finally:
        for _label, (proc, _url) in servers:
            stop(proc)
    proc, url = start_mock("--speed", "0")
    try:
        rate = asyncio.run(max_chunks_per_s(url, 8, 2000 if args.quick else 5000))
    finally:
        stop(proc)
    print(f"\nmax chunks/s at speed 0 (8 concurrent streams, one client process): {rate:,.0f}")
    print("targets: TTFT error p95 <= 2 ms at 1 stream; gap error p99 <= 10 ms at 500 streams")


if __name__ == "__main__":
    main()
