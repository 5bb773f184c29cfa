"""Timing fidelity and capacity of the mock server, against minimal reference servers in one run.

    python bench/mock_timing.py                 # full run (~2 min)
    python bench/mock_timing.py --quick         # 500 and 1,000 streams, 1 worker (~30 s)
    python bench/mock_timing.py --streams 2000 --workers 2
    python bench/mock_timing.py --quick --api responses anthropic gemini   # every API's wire

Every server and the measuring client run in separate processes. For a configured TTFT
(120 ms) and rate (50 tok/s, no jitter, 100 tokens a stream, starts spread evenly over 1 s) the
client reports the error of the time to first token and of every inter-chunk gap it observes
(p50/p99 of the absolute error, ms) and the drift (how late the last chunk is against its ideal
time), at 100, 500, 1,000 and 2,000 concurrent streams, served by 1 and by 2 processes, for:

- ``mock``: ``python -m mockserver --workers N`` (generated replies, no cassettes);
- ``raw``: a minimal raw-asyncio paced server written below — an ``asyncio.Protocol`` that reads
  the request, then one coroutine per stream sleeping to each absolute deadline and writing
  pre-encoded chunks (the same bytes the mock sends) straight to the transport; N processes share
  the port with ``SO_REUSEPORT`` like the mock's workers.

``--api`` picks the wire (``chat`` by default; ``responses``, ``anthropic``, ``gemini``): the
request goes to that API's endpoint, the reference servers send that API's bytes for the same
reply at the same offsets, and the client times that API's delta events (``output_text.delta``,
``text_delta``, one Gemini chunk) — the structural events around them (``response.created``,
``message_start``, ``content_block_stop``, ...) are not tokens and are not timed.

Capacity: chunks/s each server delivers at speed 0 to 8 concurrent 5,000-token streams, the mock
against ``bare``, an aiohttp handler that writes the same pre-encoded bytes with
``await resp.write(chunk)`` and nothing else. ``--aiohttp-reference`` times the same handler
paced like ``raw`` as a third server: what aiohttp's own request handling costs at each size.

The client is a raw ``epoll`` loop over non-blocking sockets (no asyncio, no HTTP library): it
connects every stream before the clock starts (TTFT counts from sending the request, as with a
warm pool), timestamps each read and counts the SSE events in it, so that measuring costs a few
microseconds per read and the client is not what lags. Targets (DESIGN.md): at 1,000 streams the
mock's gap and TTFT error p99 within 1.5x of ``raw``; capacity >= 0.85x ``bare``; with 2 workers
at 2,000 streams gap error p99 <= 15 ms. Print ``uptime`` with the figures: the machine's load
shifts them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import select
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-holynb-mock"
HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
        b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n")
# api -> (path, body for N tokens, headers, marker of one delta event, marker of the end)
WIRES = {
    "chat": ("/v1/chat/completions",
             lambda n: {"model": "gpt-4.1", "messages": [{"role": "user", "content": "b"}],
                        "stream": True, "max_tokens": n},
             {"Authorization": f"Bearer {KEY}"}, b'data: {"id"', b"data: [DONE]"),
    "responses": ("/v1/responses",
                  lambda n: {"model": "gpt-4.1", "input": "b", "stream": True,
                             "max_output_tokens": n},
                  {"Authorization": f"Bearer {KEY}"}, b"event: response.output_text.delta",
                  b"event: response.incomplete"),
    "anthropic": ("/v1/messages",
                  lambda n: {"model": "claude-sonnet-4.5", "max_tokens": n, "stream": True,
                             "messages": [{"role": "user", "content": "b"}]},
                  {"x-api-key": KEY, "anthropic-version": "2023-06-01"}, b'"text_delta"',
                  b"event: message_stop"),
    "gemini": ("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
               lambda n: {"contents": [{"parts": [{"text": "b"}]}],
                          "generationConfig": {"maxOutputTokens": n}},
               {"x-goog-api-key": KEY}, b'data: {"candidates"', b'"finishReason"'),
}


# -- the servers -----------------------------------------------------------------------------


def chunk_frames(api: str, tokens: int, ttft_s: float = 0.0, gap_s: float = 0.0
                 ) -> list[tuple[float, bytes]]:
    """(offset, bytes) of the SSE frames the mock sends in ``api`` for a generated
    ``tokens``-token reply on the schedule TTFT + i * gap."""
    sys.path.insert(0, str(ROOT))
    from mockserver._generate import generate_reply
    from mockserver.formats.registry import FORMATS

    reply = generate_reply("gpt-4.1", [{"role": "user", "content": "b"}], max_tokens=tokens,
                           reasoning=0, include_usage=False, seed=0,
                           reply_id="chatcmpl-000000000000000000000000",
                           times=[ttft_s + i * gap_s for i in range(tokens)])
    return [(f.at, f.data) for f in FORMATS[api].reply_frames(reply, "sse")]  # type: ignore[misc]


def raw_worker(port: int, ttft_ms: float, tps: float, tokens: int, api: str) -> None:
    """One process of the minimal raw-asyncio paced server (replies pre-encoded at start)."""
    chunks = [(at, b"%x\r\n%b\r\n" % (len(d), d))
              for at, d in chunk_frames(api, tokens, ttft_ms / 1000, 1 / tps if tps else 0.0)]

    class Serve(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            self.buf = b""

        def data_received(self, data: bytes) -> None:
            self.buf += data
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            length = int(re.search(rb"(?i)content-length: *(\d+)", self.buf).group(1))
            if len(self.buf) < end + 4 + length:
                return
            self.buf = b""
            asyncio.get_running_loop().create_task(self.pace())

        async def pace(self) -> None:
            loop = asyncio.get_running_loop()
            start = loop.time()
            self.transport.write(HEAD)
            for at, chunk in chunks:
                delay = start + at - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                if self.transport.is_closing():
                    return
                self.transport.write(chunk)
            self.transport.write(b"0\r\n\r\n")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        server = await loop.create_server(Serve, "127.0.0.1", port, reuse_port=True)
        print("ready", flush=True)
        await stop.wait()
        server.close()

    asyncio.run(main())


def aiohttp_worker(port: int, ttft_ms: float, tps: float, tokens: int, api: str) -> None:
    """One process of a minimal aiohttp handler pacing the same pre-encoded frames as ``raw``
    (absolute deadlines, one sleep per frame): what aiohttp's own HTTP machinery costs. At
    ``tps`` 0 every frame is due at once: ``bare``, the capacity reference."""
    from aiohttp import web

    frames = chunk_frames(api, tokens, ttft_ms / 1000, 1 / tps if tps else 0.0)

    async def answer(request: web.Request) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await request.read()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await resp.prepare(request)
        for at, chunk in frames:
            if at and (delay := start + at - loop.time()) > 0:
                await asyncio.sleep(delay)
            await resp.write(chunk)
        await resp.write_eof()
        return resp

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        app = web.Application()
        app.router.add_post("/{path:.*}", answer)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, reuse_port=True).start()
        print("ready", flush=True)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())


class Server:
    """A server under test: its processes and its base URL."""

    def __init__(self, label: str, procs: list[subprocess.Popen[str]], url: str,
                 reserved: socket.socket | None = None) -> None:
        self.label, self.procs, self.url, self.reserved = label, procs, url, reserved

    def stop(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout:
                proc.stdout.close()
        if self.reserved is not None:
            self.reserved.close()


def _popen(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)


def start_mock(workers: int, *flags: str) -> Server:
    proc = _popen("-m", "mockserver", "--port", "0", "--no-cassettes", "--workers",
                  str(workers), *flags)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url:
        proc.wait(10)
        raise SystemExit(f"the mock did not start ({' '.join(flags)}, {workers} worker(s)): "
                         f"exit code {proc.returncode}")
    return Server("mock", [proc], url)


def start_raw(workers: int, ttft_ms: float, tps: float, tokens: int, api: str,
              kind: str = "raw") -> Server:
    """``workers`` processes of the raw-asyncio (or, ``kind="aiohttp"``, the minimal aiohttp)
    paced reference on one port."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))  # reserves the port; the workers listen on it
    port = sock.getsockname()[1]
    procs = [_popen(__file__, f"--{kind}-worker", str(port), str(ttft_ms), str(tps),
                    str(tokens), api) for _ in range(workers)]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return Server(kind, procs, f"http://127.0.0.1:{port}/v1", sock)


def start_bare(tokens: int, api: str) -> Server:
    """The capacity reference: the minimal aiohttp handler, every frame due at once."""
    server = start_raw(1, 0.0, 0.0, tokens, api, "aiohttp")
    server.label = "bare"
    return server


# -- the measuring client (its own process) -----------------------------------------------


def measure(url: str, streams: int, tokens: int, spread_s: float, timeout_s: float,
            api: str = "chat") -> dict:
    """Run ``streams`` streams with starts spread over ``spread_s``; return what was seen.

    Per stream: the send time, the time of every delta event of the API (events in one read
    share its time) and whether the end of the stream arrived.
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path, make_body, headers, marker, end_marker = WIRES[api]
    if api == "anthropic":
        # Anthropic's required max_tokens only caps a generated reply: ask for the length.
        headers = {**headers, "X-Mock-Tokens": str(tokens + 1)}
    body = json.dumps(make_body(tokens)).encode()
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{head}"
               f"Content-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    keep = max(len(marker), len(end_marker)) - 1
    socks = []
    for _ in range(streams):
        s = socket.create_connection((host, port))
        s.setblocking(False)
        socks.append(s)
    ep = select.epoll(streams + 1)
    by_fd = {s.fileno(): i for i, s in enumerate(socks)}
    for s in socks:
        ep.register(s.fileno(), select.EPOLLIN)
    sent = [0.0] * streams
    times: list[list[float]] = [[] for _ in range(streams)]
    head = [True] * streams
    tail = [b""] * streams
    done = [False] * streams
    remaining = streams
    t0 = time.perf_counter() + 0.05
    due = [t0 + spread_s * i / streams for i in range(streams)]
    next_send = 0
    end = t0 + spread_s + timeout_s
    perf = time.perf_counter
    while remaining and perf() < end:
        now = perf()
        while next_send < streams and due[next_send] <= now:
            sent[next_send] = perf()
            socks[next_send].send(request)
            next_send += 1
        wait = due[next_send] - perf() if next_send < streams else 0.05
        for fd, _ in ep.poll(max(0.0, min(wait, 0.05))):
            i = by_fd[fd]
            try:
                data = socks[i].recv(262144)
            except BlockingIOError:
                continue
            stamp = perf()
            if not data:
                ep.unregister(fd)
                if not done[i]:
                    done[i] = True
                    remaining -= 1
                continue
            if head[i]:
                buf = tail[i] + data
                cut = buf.find(b"\r\n\r\n")
                if cut < 0:
                    tail[i] = buf
                    continue
                head[i] = False
                tail[i] = b""
                data = buf[cut + 4:]
            joined = tail[i] + data  # the tail is shorter than a marker: nothing counts twice
            times[i].extend([stamp] * joined.count(marker))
            finished = end_marker in joined
            tail[i] = joined[-keep:]
            if finished and not done[i]:
                done[i] = True
                remaining -= 1
                ep.unregister(fd)
    for s in socks:
        s.close()
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    return {"sent": sent, "times": times, "complete": streams - remaining,
            "client_busy": (cpu.ru_utime + cpu.ru_stime) / (perf() - t0)}


def client_main(args: list[str]) -> None:
    url, streams, tokens, spread, timeout, api = args
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < min(hard, int(streams) + 64):  # one socket per stream
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    result = measure(url, int(streams), int(tokens), float(spread), float(timeout), api)
    json.dump(result, sys.stdout)


def run_client(url: str, streams: int, tokens: int, spread_s: float, timeout_s: float,
               api: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--client", url, str(streams), str(tokens), str(spread_s),
         str(timeout_s), api], cwd=ROOT, capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout)


# -- figures ---------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def errors(result: dict, ttft_s: float, gap_s: float, tokens: int) -> dict[str, list[float]]:
    te, ge, de = [], [], []
    for sent, times in zip(result["sent"], result["times"], strict=True):
        if not times:
            continue
        te.append(abs(times[0] - sent - ttft_s) * 1000)
        ge.extend(abs(b - a - gap_s) * 1000 for a, b in zip(times, times[1:], strict=False))
        if len(times) == tokens:
            de.append((times[-1] - sent - ttft_s - (tokens - 1) * gap_s) * 1000)
    return {"ttft": te, "gap": ge, "drift": de}


def row(api: str, label: str, workers: int, streams: int, e: dict[str, list[float]],
        result: dict) -> str:
    return (f"| {api} | {label:<4} | {workers} | {streams:>5} | "
            f"{statistics.median(e['ttft']):6.2f} | "
            f"{pct(e['ttft'], .99):7.2f} | {statistics.median(e['gap']):5.2f} | "
            f"{pct(e['gap'], .99):6.2f} | {pct(e['drift'], .99):7.2f} | "
            f"{result['complete']}/{streams} | {result['client_busy']:.0%} |")


def capacity(server: Server, streams: int, tokens: int, api: str) -> float:
    result = run_client(server.url, streams, tokens, 0.0, 120.0, api)
    stamps = [t for times in result["times"] for t in times]
    return len(stamps) / (max(stamps) - min(result["sent"]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ttft-ms", type=float, default=120.0)
    p.add_argument("--tps", type=float, default=50.0)
    p.add_argument("--tokens", type=int, default=100, help="tokens per stream (default 100)")
    p.add_argument("--spread-ms", type=float, default=1000.0,
                   help="spread stream starts over this time (default 1000)")
    p.add_argument("--streams", type=int, nargs="+", default=[100, 500, 1000, 2000])
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--quick", action="store_true", help="500 and 1,000 streams, 1 worker")
    p.add_argument("--no-capacity", action="store_true", help="skip the speed-0 capacity run")
    p.add_argument("--api", nargs="+", choices=list(WIRES), default=["chat"],
                   help="the API wire(s) to measure (default chat)")
    p.add_argument("--client", nargs=6, help=argparse.SUPPRESS)
    p.add_argument("--aiohttp-reference", action="store_true",
                   help="also time a minimal paced aiohttp handler (what aiohttp itself costs)")
    p.add_argument("--raw-worker", nargs=5, help=argparse.SUPPRESS)
    p.add_argument("--aiohttp-worker", nargs=5, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.client:
        client_main(args.client)
        return
    if args.raw_worker:
        port, ttft, tps, tokens, api = args.raw_worker
        raw_worker(int(port), float(ttft), float(tps), int(tokens), api)
        return
    if args.aiohttp_worker:
        port, ttft, tps, tokens, api = args.aiohttp_worker
        aiohttp_worker(int(port), float(ttft), float(tps), int(tokens), api)
        return
    if args.quick:
        args.streams, args.workers = [500, 1000], [1]
    ttft_s, gap_s = args.ttft_ms / 1000, 1 / args.tps
    load = os.getloadavg()
    print(f"mock timing: TTFT {args.ttft_ms:g} ms, {args.tps:g} tok/s, no jitter, "
          f"{args.tokens} tokens a stream, starts spread over {args.spread_ms:g} ms; "
          f"load average before the run {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("absolute errors in ms (drift: how late the last chunk is); client, servers and "
          "workers in separate processes\n")
    print("| api | server | workers | streams | TTFT p50 | TTFT p99 | gap p50 | gap p99 "
          "| drift p99 | complete | client busy |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    ratios = []
    kinds = ["raw", "aiohttp"] if args.aiohttp_reference else ["raw"]
    timeout = args.tokens / args.tps + 30
    for api in args.api:
        for workers in args.workers:
            mock = start_mock(workers, "--ttft-ms", str(args.ttft_ms), "--tps", str(args.tps),
                              "--jitter-ms", "0")
            servers = [mock] + [start_raw(workers, args.ttft_ms, args.tps, args.tokens, api,
                                          kind) for kind in kinds]
            try:
                for streams in args.streams:
                    found = {}
                    for server in servers:
                        result = run_client(server.url, streams, args.tokens,
                                            args.spread_ms / 1000, timeout, api)
                        e = errors(result, ttft_s, gap_s, args.tokens)
                        found[server.label] = e
                        print(row(api, server.label, workers, streams, e, result), flush=True)
                    r = found["raw"]
                    for label in ("mock", "aiohttp"):
                        if (m := found.get(label)) is not None:
                            ratios.append((label, api, workers, streams,
                                           pct(m["gap"], .99) / pct(r["gap"], .99),
                                           pct(m["ttft"], .99) / pct(r["ttft"], .99),
                                           pct(m["gap"], .99)))
            finally:
                for server in servers:
                    server.stop()
    print("\n<server> / raw, p99 error ratios (target for the mock <= 1.5 at 1,000 streams):")
    for label, api, workers, streams, gap, ttft, gap_p99 in ratios:
        goal = " (goal: gap p99 <= 15 ms)" if workers == 2 and streams == 2000 else ""
        print(f"  {label} {api}: {workers} worker(s), {streams:>5} streams: gap {gap:.2f}x, "
              f"TTFT {ttft:.2f}x; {label} gap p99 {gap_p99:.1f} ms{goal}")
    for api in [] if args.no_capacity else args.api:
        mock = start_mock(1, "--speed", "0")
        bare = start_bare(5000, api)
        try:
            rates = {s.label: capacity(s, 8, 5000, api) for s in (mock, bare)}
        finally:
            mock.stop()
            bare.stop()
        print(f"\ncapacity at speed 0, {api} (8 streams x 5,000 chunks, one process each): mock "
              f"{rates['mock']:,.0f} chunks/s, bare aiohttp {rates['bare']:,.0f} chunks/s "
              f"= {rates['mock'] / rates['bare']:.2f}x (target >= 0.85x)")
    load = os.getloadavg()
    print(f"load average after the run {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
