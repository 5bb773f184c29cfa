"""``holynb-mock`` / ``python -m mockserver``: run the mock upstream from a shell."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

from ._latency import JITTERS, PROFILES
from ._server import MOCK_KEY, MockServer

__all__ = ["build_parser", "main"]

DEFAULT_PORT = 8765


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to render ``--help`` in the docs)."""
    p = argparse.ArgumentParser(
        prog="holynb-mock",
        description="Offline OpenAI-compatible upstream: SSE + WebSocket chat completions with "
        "per-model latency, cassettes and injectable faults. Prints its base URL, then serves "
        "until SIGINT/SIGTERM, draining open streams before exiting.",
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port (default {DEFAULT_PORT}; 0 picks a free one)")
    p.add_argument("--cassettes", action="append", metavar="PATH",
                   help="cassette file or folder (repeatable; default: the shipped cassettes)")
    p.add_argument("--no-cassettes", action="store_true", help="serve generated replies only")
    p.add_argument("--ttft-ms", type=float, help="time to first token for every model (ms)")
    p.add_argument("--tps", type=float, help="tokens per second for every model (0 = max speed)")
    p.add_argument("--jitter-ms", type=float, help="jitter added to the TTFT and each gap (ms)")
    p.add_argument("--jitter", choices=JITTERS,
                   help="jitter distribution (default: uniform when --jitter-ms is set)")
    p.add_argument("--seed", type=int, help="seed for ids, jitter and fault probabilities")
    p.add_argument("--speed", type=float, default=1.0,
                   help="time scale for schedules and cassettes (2 = twice as fast, 0 = no waits)")
    p.add_argument("--fault", help="faults applied to every request, e.g. 'disconnect:after=5'")
    p.add_argument("--keys", help="comma-separated accepted API keys (default: any real key)")
    p.add_argument("--idle-timeout", type=float, default=120.0, metavar="S",
                   help="close idle WebSocket connections after S seconds (default 120)")
    p.add_argument("--strict", action="store_true",
                   help="answer only from cassettes; explain misses with a 400")
    p.add_argument("--record-upstream", metavar="URL",
                   help="record mode: proxy to this base URL and save cassettes")
    p.add_argument("--record-dir", metavar="DIR", help="where record mode writes cassettes")
    p.add_argument("--rate-limit", metavar="N/s",
                   help="token bucket per key, e.g. '10/s' or '600/min'")
    p.add_argument("--drain-timeout", type=float, default=10.0, metavar="S",
                   help="on shutdown, wait up to S seconds for open streams (default 10)")
    return p


async def _serve(server: MockServer) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await server.astart()
    try:
        print(server.url, flush=True)
        models = ", ".join(sorted(PROFILES))
        print(
            f"holynb mock serving {models} — key {MOCK_KEY} (or any non-placeholder key); "
            "Ctrl+C to stop",
            file=sys.stderr,
            flush=True,
        )
        await stop.wait()
        print("draining open streams…", file=sys.stderr, flush=True)
    finally:
        await server.astop()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until SIGINT/SIGTERM; return the exit code."""
    args = build_parser().parse_args(argv)
    try:
        server = MockServer(
            host=args.host,
            port=args.port,
            cassettes=() if args.no_cassettes else args.cassettes,
            ttft_ms=args.ttft_ms,
            tps=args.tps,
            jitter_ms=args.jitter_ms,
            jitter=args.jitter,
            seed=args.seed,
            speed=args.speed,
            fault=args.fault,
            keys=args.keys,
            idle_timeout_s=args.idle_timeout,
            strict=args.strict,
            record_upstream=args.record_upstream,
            record_dir=args.record_dir,
            rate_limit=args.rate_limit,
            drain_timeout_s=args.drain_timeout,
        )
        asyncio.run(_serve(server))
    except (ValueError, OSError) as exc:
        print(f"holynb-mock: error: {exc}", file=sys.stderr)
        return 2
    return 0
