"""Benchmark a streaming chat-completions endpoint: TTFT, ITL, TPOT, E2E latency and throughput.

``holynb bench`` (CLI) and :func:`run_bench` / :func:`run` (API) send ``requests`` streaming
requests, at most ``concurrency`` at a time, over SSE, WebSocket or both (one transport after the
other, reported side by side). With no base URL they start the bundled mock server in-process.

Metric definitions (aligned with vLLM's ``benchmarks/benchmark_serving.py``):

- **TTFT** (time to first token): from just before the request is sent (before the client is
  created when ``pooled=False``) to the arrival of the first non-empty content delta.
- **ITL** (inter-token latency): the gap between two consecutive content chunks of one reply.
  Every gap of every completed request is pooled into one distribution.
- **TPOT** (time per output token): per request, ``(e2e − TTFT) / (output_tokens − 1)``;
  requests with fewer than two output tokens have none.
- **E2E** (end-to-end latency): from sending the request to the end of the stream (``[DONE]``).
- **output tokens**: ``usage.completion_tokens`` when the server reports usage (the benchmark asks
  for it with ``stream_options.include_usage``), else the number of content chunks.
- **request throughput**: completed requests / duration; **output token throughput**: output
  tokens of completed requests / duration; **duration**: wall clock from the first request sent
  to the last one finished, per transport.

Latency figures (mean, p50, p90, p95, p99; percentiles by linear interpolation, as numpy) count
completed requests only. A failed request (any error, or a reply with no content) is counted in
``failed`` and by error type, and never stops the run. Retries are off by default
(``max_retries=0``) so that every failure is seen rather than hidden inside a latency figure.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from holynb._bench_metrics import (
    Distribution,
    RequestRecord,
    TransportSummary,
    percentile,
    summarise,
)
from holynb._bench_report import csv_text, table, to_dict, write_csv, write_json

__all__ = [
    "DEFAULT_PROMPT",
    "BenchResult",
    "Distribution",
    "ProgressBar",
    "RequestRecord",
    "TransportSummary",
    "add_cli_arguments",
    "percentile",
    "run",
    "run_bench",
    "run_cli",
]

DEFAULT_PROMPT = "Write a short story about a lighthouse keeper who collects lost letters."
TRANSPORT_CHOICES = ("sse", "ws", "both")

Progress = Callable[[str, int, int], None]
"""Called as ``progress(transport, done, total)``: first with ``done=0``, then per request."""


@dataclass(slots=True)
class BenchResult:
    """A finished benchmark: its settings, one summary per transport, and every request's record."""

    config: dict[str, Any]
    summaries: dict[str, TransportSummary]
    records: list[RequestRecord]

    def table(self) -> str:
        """A text table with one column per transport."""
        return table(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data: ``config``, ``summary`` per transport, ``requests``."""
        return to_dict(self)

    def write_json(self, out: str | Path | TextIO) -> None:
        """Write the result as JSON to a path or an open text file."""
        _write(out, lambda f: write_json(self, f))

    def write_csv(self, out: str | Path | TextIO) -> None:
        """Write one CSV row per request to a path or an open text file."""
        _write(out, lambda f: write_csv(self, f))

    def csv(self) -> str:
        """The per-request CSV as a string."""
        return csv_text(self)

    def __str__(self) -> str:
        return self.table()


async def run_bench(
    base_url: str | None = None,
    *,
    model: str | None = None,
    requests: int = 20,
    concurrency: int = 4,
    max_tokens: int = 32,
    transport: str = "sse",
    api_key: str | None = None,
    prompt: str = DEFAULT_PROMPT,
    headers: Mapping[str, str] | None = None,
    seed: int | None = None,
    mock_ttft_ms: float | None = None,
    mock_tps: float | None = None,
    mock_fault: str | None = None,
    pooled: bool = True,
    max_retries: int = 0,
    progress: Progress | None = None,
) -> BenchResult:
    """Run the benchmark and return its result (see the module docstring for the metrics).

    ``base_url=None`` starts the bundled mock server for the run (in a background thread, so its
    timing does not share this event loop). ``mock_ttft_ms``, ``mock_tps`` and ``mock_fault``
    are sent as ``X-Mock-*`` controls, which the mock honours and other servers ignore. Request
    ``i`` gets body ``seed`` ``seed + i`` and the run sends ``X-Mock-Seed: seed``: a run against
    a freshly started mock repeats exactly. ``pooled=False`` opens a fresh client per request.
    """
    from holynb._config import resolve_model

    _check_positive("requests", requests)
    _check_positive("concurrency", concurrency)
    _check_positive("max_tokens", max_tokens)
    if transport not in TRANSPORT_CHOICES:
        raise ValueError(
            f"transport must be one of {', '.join(TRANSPORT_CHOICES)}; got {transport!r}"
        )
    transports = ["sse", "ws"] if transport == "both" else [transport]
    model = resolve_model(model)
    controls = _mock_headers(mock_ttft_ms=mock_ttft_ms, mock_tps=mock_tps, mock_fault=mock_fault)
    controls.update(headers or {})

    async with _endpoint(base_url, api_key) as (url, key, bundled):
        bench = _Bench(
            base_url=url,
            api_key=key,
            model=model,
            prompt=prompt,
            max_tokens=max_tokens,
            headers=controls,
            seed=seed,
            pooled=pooled,
            max_retries=max_retries,
        )
        records: list[RequestRecord] = []
        summaries: dict[str, TransportSummary] = {}
        for name in transports:
            rows, duration = await bench.run_transport(name, requests, concurrency, progress)
            records += rows
            summaries[name] = summarise(name, rows, duration)

    config = {
        "base_url": url,
        "bundled_mock": bundled,
        "model": model,
        "requests": requests,
        "concurrency": concurrency,
        "max_tokens": max_tokens,
        "transports": transports,
        "pooled": pooled,
        "max_retries": max_retries,
        "seed": seed,
        "mock_ttft_ms": mock_ttft_ms,
        "mock_tps": mock_tps,
        "mock_fault": mock_fault,
        "prompt": prompt,
    }
    return BenchResult(config=config, summaries=summaries, records=records)


def run(base_url: str | None = None, **options: Any) -> BenchResult:
    """Blocking :func:`run_bench`; also works where an event loop is already running (Jupyter)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run_bench(base_url, **options))
    # A running loop (e.g. a notebook cell) cannot be blocked on: use a private loop in a thread.
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="holynb-bench") as pool:
        return pool.submit(asyncio.run, run_bench(base_url, **options)).result()


class _Bench:
    """The request loop shared by every transport of one run."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None,
        model: str,
        prompt: str,
        max_tokens: int,
        headers: dict[str, str],
        seed: int | None,
        pooled: bool,
        max_retries: int,
    ) -> None:
        self.client_options: dict[str, Any] = {
            "base_url": base_url,
            "api_key": api_key,
            "model": model,
            "max_retries": max_retries,
        }
        self.prompt = prompt
        # The client asks for the usage chunk itself (stream_options.include_usage).
        self.params: dict[str, Any] = {"max_tokens": max_tokens}
        self.headers = headers
        self.seed = seed
        self.pooled = pooled

    async def run_transport(
        self, transport: str, requests: int, concurrency: int, progress: Progress | None
    ) -> tuple[list[RequestRecord], float]:
        """Send ``requests`` requests over one transport; return their records and the duration."""
        from holynb._client import AsyncClient

        records: list[RequestRecord] = []
        pending = iter(range(requests))
        t0 = time.perf_counter()

        async def worker(shared: AsyncClient | None) -> None:
            for index in pending:  # one shared iterator: each index is taken by exactly one worker
                records.append(await self._one(shared, transport, index, t0))
                if progress is not None:
                    progress(transport, len(records), requests)

        shared = AsyncClient(transport=transport, **self.client_options) if self.pooled else None
        if progress is not None:
            progress(transport, 0, requests)
        try:
            workers = min(concurrency, requests)
            await asyncio.gather(*(worker(shared) for _ in range(workers)))
        finally:
            if shared is not None:
                await shared.aclose()
        duration = time.perf_counter() - t0
        records.sort(key=lambda r: r.index)
        return records, duration

    async def _one(self, shared: Any, transport: str, index: int, t0: float) -> RequestRecord:
        from holynb._client import AsyncClient
        from holynb._errors import ConfigError

        headers = dict(self.headers)
        params = dict(self.params)
        if self.seed is not None:
            # One X-Mock-Seed for the whole run, and a distinct body `seed` per request: the mock
            # keys its per-request RNG on (seed, request body), so draws don't depend on the
            # order in which concurrent requests arrive. A per-request header would change the
            # WebSocket URL (controls ride in its query) and cost a new connection per request.
            headers["X-Mock-Seed"] = str(self.seed)
            params["seed"] = self.seed + index
        start = time.perf_counter()
        record = RequestRecord(transport=transport, index=index, ok=False, start_s=start - t0)
        chunks = 0
        last = start
        try:
            async with contextlib.AsyncExitStack() as stack:
                client = shared
                if client is None:
                    client = await stack.enter_async_context(
                        AsyncClient(transport=transport, **self.client_options)
                    )
                stream = await stack.enter_async_context(
                    client.stream(self.prompt, extra_headers=headers, **params)
                )
                async for delta in stream:
                    now = time.perf_counter()
                    if not delta:
                        continue
                    if chunks == 0:
                        record.ttft_s = now - start
                    else:
                        record.itl_s.append(now - last)
                    last = now
                    chunks += 1
                end = time.perf_counter()
        except ConfigError:
            raise  # a bad setting fails every request: stop the run and say what to fix
        except Exception as exc:  # noqa: BLE001 — a failed request is data, not a crash
            record.error = _one_line(exc)
            record.tokens = chunks
            return record
        record.e2e_s = end - start
        record.tokens = stream.stats.completion_tokens or chunks
        if chunks == 0:
            record.error = "EmptyReply: the stream ended without any content"
        else:
            record.ok = True
        return record


@contextlib.asynccontextmanager
async def _endpoint(
    base_url: str | None, api_key: str | None
) -> AsyncIterator[tuple[str, str | None, bool]]:
    """Yield ``(base_url, api_key, bundled)``, starting the bundled mock when no URL is given."""
    from holynb._config import resolve_base_url

    if base_url is not None:
        yield resolve_base_url(base_url), api_key, False
        return
    from mockserver import MOCK_KEY, MockServer

    # The mock runs on its own loop in a background thread so that its timing is not skewed by
    # the client work on this loop.
    server = await asyncio.to_thread(MockServer().start)
    try:
        yield server.url, api_key or MOCK_KEY, True
    finally:
        await asyncio.to_thread(server.stop)


def _mock_headers(
    *, mock_ttft_ms: float | None, mock_tps: float | None, mock_fault: str | None
) -> dict[str, str]:
    headers: dict[str, str] = {}
    if mock_ttft_ms is not None:
        if mock_ttft_ms < 0:
            raise ValueError(f"mock_ttft_ms must be >= 0, got {mock_ttft_ms}")
        headers["X-Mock-TTFT-Ms"] = f"{mock_ttft_ms:g}"
    if mock_tps is not None:
        if mock_tps < 0:
            raise ValueError(f"mock_tps must be >= 0 (0 = as fast as possible), got {mock_tps}")
        headers["X-Mock-TPS"] = f"{mock_tps:g}"
    if mock_fault:
        headers["X-Mock-Fault"] = mock_fault
    return headers


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "no message"
    if len(text) > 200:
        text = text[:197] + "..."
    return f"{type(exc).__name__}: {text}"


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _write(out: str | Path | TextIO, write: Callable[[TextIO], None]) -> None:
    if isinstance(out, str | Path):
        with open(out, "w", encoding="utf-8", newline="") as f:
            write(f)
    else:
        write(out)


# --------------------------------------------------------------------------------------------
# Command line: ``holynb bench`` (the parser itself lives in holynb._cli)


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``holynb bench`` options to ``parser``."""
    parser.add_argument(
        "--base-url",
        help="endpoint to benchmark, e.g. https://api.holysheep.ai/v1 "
        "(default: start the bundled mock server in-process)",
    )
    parser.add_argument("--model", help="model name (default: HOLYNB_MODEL or deepseek-v3.2)")
    parser.add_argument("--requests", type=_positive_int, default=20, help="requests per transport")
    parser.add_argument("--concurrency", type=_positive_int, default=4, help="requests in flight")
    parser.add_argument("--max-tokens", type=_positive_int, default=32, help="max_tokens per reply")
    parser.add_argument(
        "--transport",
        choices=TRANSPORT_CHOICES,
        default="sse",
        help="sse, ws, or both side by side",
    )
    parser.add_argument("--prompt", default=DEFAULT_PROMPT, help="the prompt sent every time")
    parser.add_argument(
        "--json", metavar="PATH|-", help="write the full result as JSON ('-': stdout)"
    )
    parser.add_argument(
        "--csv", metavar="PATH|-", help="write one CSV row per request ('-': stdout)"
    )
    parser.add_argument(
        "--seed",
        type=int,
        help="X-Mock-Seed for the run; request i gets body seed seed+i (reproducible)",
    )
    parser.add_argument(
        "--mock-ttft-ms", type=_non_negative_float, help="mock TTFT in ms (sent as X-Mock-TTFT-Ms)"
    )
    parser.add_argument(
        "--mock-tps", type=_non_negative_float, help="mock tokens/s (sent as X-Mock-TPS; 0 = max)"
    )
    parser.add_argument(
        "--mock-fault", help="mock fault spec sent as X-Mock-Fault, e.g. 'status:code=500,p=0.2'"
    )
    parser.add_argument(
        "--unpooled", action="store_true", help="open a fresh client for every request"
    )
    parser.add_argument(
        "--max-retries", type=_non_negative_int, default=0, help="client retries (default 0)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def run_cli(args: argparse.Namespace) -> int:
    """Run ``holynb bench`` for parsed ``args``; 0 if every request completed, 1 if some failed."""
    from holynb._errors import HolyError

    # Machine-readable output on stdout pushes the human table to stderr.
    to_stdout = "-" in (args.json, args.csv)
    human = sys.stderr if to_stdout else sys.stdout
    if args.base_url is None:
        print("no --base-url given: benchmarking the bundled mock server (in-process)", file=human)
    bar = None if args.no_progress else ProgressBar(sys.stderr)
    try:
        result = run(
            args.base_url,
            model=args.model,
            requests=args.requests,
            concurrency=args.concurrency,
            max_tokens=args.max_tokens,
            transport=args.transport,
            prompt=args.prompt,
            seed=args.seed,
            mock_ttft_ms=args.mock_ttft_ms,
            mock_tps=args.mock_tps,
            mock_fault=args.mock_fault,
            pooled=not args.unpooled,
            max_retries=args.max_retries,
            progress=bar,
        )
    except (HolyError, ValueError, OSError) as exc:
        print(f"holynb bench: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if bar is not None:
            bar.close()
    print(result.table(), file=human)
    for dest, writer in ((args.json, result.write_json), (args.csv, result.write_csv)):
        if dest == "-":
            writer(sys.stdout)
        elif dest:
            writer(dest)
            print(f"wrote {dest}", file=human)
    failed = sum(s.failed for s in result.summaries.values())
    return 1 if failed else 0


class ProgressBar:
    """A one-line progress bar on a terminal (a single summary line per transport otherwise)."""

    def __init__(self, out: TextIO, *, width: int = 30, min_interval_s: float = 0.1) -> None:
        self.out = out
        self.width = width
        self.min_interval_s = min_interval_s
        self.tty = out.isatty()
        self._last_draw = 0.0
        self._started: dict[str, float] = {}
        self._line_open = False

    def __call__(self, transport: str, done: int, total: int) -> None:
        now = time.perf_counter()
        self._started.setdefault(transport, now)
        finished = done == total
        if self.tty and (finished or now - self._last_draw >= self.min_interval_s):
            filled = round(self.width * done / total)
            bar = "#" * filled + "." * (self.width - filled)
            self.out.write(f"\r{transport:>3} [{bar}] {done}/{total}")
            if finished:
                self.out.write("\n")
            self._line_open = not finished
            self.out.flush()
            self._last_draw = now
        elif not self.tty and finished:
            elapsed = now - self._started[transport]
            self.out.write(f"{transport}: {done}/{total} requests done in {elapsed:.2f} s\n")
            self.out.flush()

    def close(self) -> None:
        """End the line of a bar left unfinished (the run failed part way)."""
        if self._line_open:
            self.out.write("\n")
            self._line_open = False
        self.out.flush()


def _number(convert: Callable[[str], Any], minimum: int, what: str) -> Callable[[str], Any]:
    """An argparse ``type=``: ``convert`` the text and refuse values below ``minimum``."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {text}")
        return value

    return parse


_positive_int = _number(int, 1, "a whole number")
_non_negative_int = _number(int, 0, "a whole number")
_non_negative_float = _number(float, 0, "a number")
