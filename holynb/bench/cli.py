"""``holynb bench``: its options, its run, and its progress bar (``holynb._cli`` delegates here)."""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from holynb._cli import _add_endpoint_arguments
from holynb._cli_advice import error_message
from holynb.bench.metrics import parse_goodput
from holynb.bench.run import DEFAULT_PROMPT, DEFAULT_REQUESTS, TRANSPORT_CHOICES

__all__ = ["ProgressBar", "build_parser", "run_cli"]

DESCRIPTION = (
    "Send streaming requests to an endpoint (default: the bundled mock) on an open-loop schedule "
    "— all at once, or at --request-rate with Poisson or gamma arrivals — and report time to "
    "first token, inter-token latency, time per output token, end-to-end latency, throughput, "
    "goodput and a per-second timeline — over SSE, WebSocket or both, speaking chat completions, "
    "OpenAI Responses, Anthropic Messages or several of them side by side (--api)."
)


def build_parser() -> argparse.ArgumentParser:
    """The ``holynb bench`` argument parser."""
    parser = argparse.ArgumentParser(prog="holynb bench", description=DESCRIPTION)
    _add_endpoint_arguments(parser, several_apis=True)
    # The shared flag's help names the chat default; a benchmark defaults to the offline mock.
    parser._option_string_actions["--base-url"].help = (
        "endpoint to benchmark, e.g. https://api.holysheep.ai/v1 "
        "(default: start the bundled mock server in-process)"
    )
    parser.add_argument("--model", help="model name (default: HOLYNB_MODEL or deepseek-v3.2)")

    load = parser.add_argument_group("load")
    size = load.add_mutually_exclusive_group()
    size.add_argument(
        "--requests",
        type=_positive_int,
        help=f"requests per wire (API × transport; default {DEFAULT_REQUESTS})",
    )
    size.add_argument(
        "--duration",
        type=_seconds,
        metavar="S",
        help="take arrivals for S seconds instead of a fixed number of requests",
    )
    load.add_argument(
        "--request-rate",
        type=_rate,
        default=math.inf,
        metavar="R",
        help="requests per second, arriving as a Poisson process (default inf: all at once)",
    )
    load.add_argument(
        "--burstiness",
        type=_rate,
        default=1.0,
        metavar="B",
        help="gamma shape of the arrival gaps: 1 Poisson (default), < 1 burstier, > 1 more "
        "regular, inf evenly spaced",
    )
    load.add_argument(
        "--max-concurrency",
        "--concurrency",
        dest="max_concurrency",
        type=_positive_int,
        metavar="N",
        help="at most N requests in flight; later arrivals wait for a free slot (default: no cap)",
    )
    load.add_argument(
        "--warmup", type=_non_negative_int, default=0, metavar="N",
        help="send N requests first and leave them out of the figures",
    )  # fmt: skip
    load.add_argument(
        "--goodput",
        nargs="+",
        type=_slo,
        metavar="KEY:MS",
        help="SLOs, e.g. ttft:500 tpot:50 e2el:3000; goodput counts completed requests that "
        "meet every one",
    )

    request = parser.add_argument_group("requests")
    request.add_argument(
        "--max-tokens", type=_positive_int, default=32, help="max_tokens per reply (default 32)"
    )
    request.add_argument(
        "--transport", choices=TRANSPORT_CHOICES, default="sse",
        help="sse, ws, or both side by side (default sse; Anthropic Messages has no ws)",
    )  # fmt: skip
    request.add_argument("--prompt", default=DEFAULT_PROMPT, help="the prompt sent every time")
    request.add_argument(
        "--seed",
        type=int,
        help="seeds the arrivals (default 0); also sent as X-Mock-Seed, with seed+i in "
        "request i's body (chat's seed, else metadata; a fresh mock repeats exactly)",
    )
    request.add_argument(
        "--unpooled", action="store_true", help="open a fresh client for every request"
    )
    request.add_argument(
        "--max-retries", type=_non_negative_int, default=0, help="client retries (default 0)"
    )

    mock = parser.add_argument_group("mock controls (sent as X-Mock-* headers; ignored elsewhere)")
    mock.add_argument("--mock-ttft-ms", type=_non_negative_float, help="mock TTFT in ms")
    mock.add_argument("--mock-tps", type=_non_negative_float, help="mock tokens/s (0 = max)")
    mock.add_argument("--mock-fault", help="mock fault spec, e.g. 'status:code=500,p=0.2'")

    output = parser.add_argument_group("output")
    output.add_argument(
        "--json", metavar="PATH|-", help="write the full result as JSON ('-': stdout)"
    )
    output.add_argument(
        "--csv", metavar="PATH|-", help="write one CSV row per request ('-': stdout)"
    )
    output.add_argument(
        "--timeline", action="store_true", help="print the per-second timeline after the table"
    )
    output.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return parser


def run_cli(args: argparse.Namespace) -> int:
    """Run ``holynb bench`` for parsed ``args``; 0 if every request completed, 1 if some failed."""
    from holynb._cli import _network
    from holynb._errors import HolyError
    from holynb.bench.run import plan_wires, run

    if args.duration is not None and math.isinf(args.request_rate) and not args.max_concurrency:
        print(
            "holynb bench: error: --duration at --request-rate inf needs --max-concurrency N "
            "(or give a finite --request-rate)",
            file=sys.stderr,
        )
        return 2
    # Machine-readable output on stdout pushes the human table to stderr.
    to_stdout = "-" in (args.json, args.csv)
    human = sys.stderr if to_stdout else sys.stdout
    client_options = _network(args)
    api = client_options.pop("api")  # each wire's client speaks its own API
    bar = None
    try:
        # Checked before the mock starts; what is left out is said before the run, once.
        _, skipped = plan_wires(api, args.transport)
        for wire, why in skipped.items():
            print(f"holynb bench: note: skipping {wire}: {why}", file=sys.stderr)
        if args.base_url is None:
            print(
                "no --base-url given: benchmarking the bundled mock server (in-process)",
                file=human,
            )
        bar = None if args.no_progress else ProgressBar(sys.stderr)
        result = run(
            args.base_url,
            model=args.model,
            requests=args.requests,
            duration_s=args.duration,
            request_rate=args.request_rate,
            burstiness=args.burstiness,
            max_concurrency=args.max_concurrency,
            warmup=args.warmup,
            goodput=dict(args.goodput or ()),
            max_tokens=args.max_tokens,
            transport=args.transport,
            api=api,
            prompt=args.prompt,
            seed=args.seed,
            mock_ttft_ms=args.mock_ttft_ms,
            mock_tps=args.mock_tps,
            mock_fault=args.mock_fault,
            pooled=not args.unpooled,
            max_retries=args.max_retries,
            client_options=client_options,
            progress=bar,
        )
    except (HolyError, ValueError, OSError) as exc:
        # The client's errors in command-line words (flags, not keyword arguments).
        text = error_message(exc) if isinstance(exc, HolyError) else exc
        print(f"holynb bench: error: {text}", file=sys.stderr)
        return 2
    finally:
        if bar is not None:
            bar.close()
    print(result.table(), file=human)
    if args.timeline:
        print("\n" + result.timeline(), file=human)
    for dest, writer in ((args.json, result.write_json), (args.csv, result.write_csv)):
        if dest == "-":
            writer(sys.stdout)
        elif dest:
            writer(dest)
            print(f"wrote {dest}", file=human)
    failed = sum(s.failed for s in result.summaries.values())
    return 1 if failed else 0


class ProgressBar:
    """Progress on stderr: a live line on a terminal, one summary line per wire otherwise.

    Called as ``bar(wire, done, total)`` with the wire's label; ``total`` is None in a
    time-limited run, where the line shows the count and the elapsed time instead of a bar.
    """

    def __init__(self, out: TextIO, *, width: int = 30, min_interval_s: float = 0.1) -> None:
        self.out = out
        self.width = width
        self.min_interval_s = min_interval_s
        self.tty = out.isatty()
        self._last_draw = 0.0
        self._started: dict[str, float] = {}
        self._done: dict[str, str] = {}  # "7" or "7/20"
        self._reported: set[str] = set()
        self._line_open = False

    def __call__(self, wire: str, done: int, total: int | None) -> None:
        now = time.perf_counter()
        if wire not in self._started:
            self._finish_others(wire)
            self._started[wire] = now
        self._done[wire] = str(done) if total is None else f"{done}/{total}"
        finished = done == total
        if self.tty and (finished or now - self._last_draw >= self.min_interval_s):
            if total is None:
                line = f"{wire:>3} {done} done · {now - self._started[wire]:.1f} s"
            else:
                filled = round(self.width * done / total)
                line = f"{wire:>3} [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total}"
            self.out.write(f"\r{line}")
            self._line_open = True
            self._last_draw = now
            if finished:
                self._end_line()
            self.out.flush()
        if finished:
            self._summary(wire)

    def close(self) -> None:
        """End a line left open and report the wires not yet reported."""
        self._finish_others(None)
        self.out.flush()

    def _finish_others(self, current: str | None) -> None:
        self._end_line()
        for wire in self._started:
            if wire != current:
                self._summary(wire)

    def _end_line(self) -> None:
        if self._line_open:
            self.out.write("\n")
            self._line_open = False

    def _summary(self, wire: str) -> None:
        if self.tty or wire in self._reported:
            return
        self._reported.add(wire)
        elapsed = time.perf_counter() - self._started[wire]
        self.out.write(f"{wire}: {self._done[wire]} requests done in {elapsed:.2f} s\n")


def _number(convert: Callable[[str], Any], minimum: float, what: str) -> Callable[[str], Any]:
    """An argparse ``type=``: ``convert`` the text and refuse values below ``minimum``."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not value >= minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum:g}, got {text}")
        return value

    return parse


def _positive(*, allow_inf: bool) -> Callable[[str], float]:
    """An argparse ``type=`` for a number greater than 0 (``inf`` only when ``allow_inf``)."""
    what = "a number or 'inf'" if allow_inf else "a number"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not value > 0 or (math.isinf(value) and not allow_inf):
            raise argparse.ArgumentTypeError(f"must be a number greater than 0, got {text}")
        return value

    return parse


def _slo(text: str) -> tuple[str, float]:
    try:
        ((key, ms),) = parse_goodput([text]).items()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return key, ms


_positive_int = _number(int, 1, "a whole number")
_non_negative_int = _number(int, 0, "a whole number")
_non_negative_float = _number(float, 0, "a number")
_rate = _positive(allow_inf=True)
_seconds = _positive(allow_inf=False)
