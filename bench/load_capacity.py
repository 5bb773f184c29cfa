"""How many requests per second one load generator sustains before its own overhead shows.

    python bench/load_capacity.py                   # full ladder (~4 min)
    python bench/load_capacity.py --quick           # fewer, shorter steps

Against one mock (``python -m mockserver``, TTFT 50 ms, 100 tokens/s, 20 tokens per reply, in
its own process; ``--mock-workers N`` once the mock has ``--workers``) the script climbs a
ladder of request rates with three load generators:

- ``holynb bench``: one process, evenly spaced arrivals (``--request-rate R --burstiness inf
  --duration S``);
- Locust, one worker: ``locust --processes 1`` (a master and one forked worker) running
  :class:`holynb.loadtest.HolyUser` users paced at one stream per second, each at a random
  phase (R users = R req/s, spread over each second like the bench's arrivals);
- Locust, two workers: the same with ``--processes 2``.

At each rate it records TTFT p50 (Locust's is in whole milliseconds below 100 ms), the achieved
request rate, failures, the CPU time all of the generator's processes spent per stream, and how
busy the mock was (CPU seconds per second: near 1.0 per mock process, the mock is the limit, not
the generator). A generator *sustains* a rate while its TTFT p50 stays within 5 ms of its own
p50 at the lowest rate, nothing fails and it achieves at least 90% of the rate; the script prints
the highest such rate per generator. The mock's overhead is the same for all three: compare the
generators with each other at one rate, and rerun on a quiet machine (the load average is
printed before and after).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mock_timing import start_mock  # noqa: E402 — one way to start the mock for benchmarks

from holynb.bench.locust_stats import LoadReport  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-holynb-mock"
BUDGET_MS = 5.0

# Locust starts floor(-r) users in the same instant, and paced users stay in step: without the
# random offset, arrivals would come in bursts rather than spread over each second.
LOCUSTFILE = textwrap.dedent(
    """
    import random

    import gevent
    from locust import constant_pacing

    from holynb.loadtest import HolyUser


    class Paced(HolyUser):
        wait_time = constant_pacing(1.0)  # one stream per user per second
        max_tokens = {max_tokens}

        def on_start(self):
            super().on_start()
            gevent.sleep(random.random())  # a random phase within the pacing period
    """
)


@dataclass
class Point:
    rate: float
    ttft_p50_ms: float | None
    achieved: float
    failed: int
    cpu_ms_per_stream: float | None
    mock_busy: float = 0.0  # mock CPU seconds per second of the step

    def ok(self, baseline: float | None) -> bool:
        return (
            self.ttft_p50_ms is not None
            and baseline is not None
            and self.ttft_p50_ms - baseline <= BUDGET_MS
            and self.failed == 0
            and self.achieved >= 0.9 * self.rate
        )


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def env() -> dict[str, str]:
    values = {k: v for k, v in os.environ.items() if not k.startswith(("HOLYSHEEP_", "HOLYNB_"))}
    values["HOLYSHEEP_API_KEY"] = KEY
    return values


def bench_point(url: str, rate: float, duration: float, max_tokens: int) -> Point:
    """One ``holynb bench`` process at ``rate`` for ``duration`` seconds."""
    cpu = children_cpu_s()
    proc = subprocess.run(
        [sys.executable, "-m", "holynb", "bench", "--base-url", url,
         "--request-rate", str(rate), "--burstiness", "inf", "--duration", str(duration),
         "--warmup", "10",
         "--max-tokens", str(max_tokens), "--seed", "1", "--json", "-", "--no-progress"],
        capture_output=True, text=True, env=env(), cwd=ROOT, timeout=duration + 120,
    )  # fmt: skip
    cpu = children_cpu_s() - cpu
    if proc.returncode not in (0, 1):
        raise SystemExit(f"holynb bench failed: {proc.stderr.strip()[-500:]}")
    summary = json.loads(proc.stdout)["summary"]["sse"]
    streams = summary["completed"] + summary["failed"]
    return Point(
        rate=rate,
        ttft_p50_ms=summary["median_ttft_ms"],
        achieved=summary["requests"] / duration,
        failed=summary["failed"],
        cpu_ms_per_stream=1000 * cpu / (streams + 10) if streams else None,
    )


def locust_point(
    url: str, rate: float, duration: float, max_tokens: int, processes: int, workdir: Path
) -> Point:
    """``locust --processes N`` with ``rate`` users paced at one stream per second each."""
    locustfile = workdir / "capacity_locustfile.py"
    locustfile.write_text(LOCUSTFILE.format(max_tokens=max_tokens))
    prefix = workdir / f"locust_{processes}_{rate:g}"
    users = int(rate)
    ramp = 2.0  # spawn plus the random phase; --reset-stats drops it
    cpu = children_cpu_s()
    proc = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless",
         "--processes", str(processes), "-u", str(users), "-r", str(users / ramp),
         "--run-time", f"{ramp + duration + 1:g}s", "--reset-stats", "--stop-timeout", "2",
         "--host", url, "--csv", str(prefix), "--only-summary"],
        capture_output=True, text=True, env=env(), cwd=workdir, timeout=duration + 120,
    )  # fmt: skip
    cpu = children_cpu_s() - cpu
    if proc.returncode not in (0, 1):
        raise SystemExit(f"locust failed: {proc.stderr.strip()[-800:]}")
    report = LoadReport.from_csv(prefix)
    e2e = report.metrics.get("SSE", {}).get("e2e")
    ttft = report.metrics.get("SSE", {}).get("ttft")
    ok, failed = report.streams("SSE")
    return Point(
        rate=rate,
        ttft_p50_ms=None if ttft is None else ttft.p50,
        achieved=0.0 if e2e is None else e2e.per_s,
        failed=failed,
        cpu_ms_per_stream=1000 * cpu / (ok + failed) if ok + failed else None,
    )


def process_cpu_s(pid: int) -> float:
    """CPU seconds used so far by a process and its children (the mock and its workers)."""
    proc = psutil.Process(pid)
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        times = p.cpu_times()
        total += times.user + times.system
    return total


def climb(
    name: str, rates: list[float], measure: Callable[[float], Point], mock_pid: int
) -> list[Point]:
    """Measure rising rates until two in a row miss the budget (noise allows one)."""
    points: list[Point] = []
    misses = 0
    for rate in rates:
        mock_cpu, wall = process_cpu_s(mock_pid), time.perf_counter()
        point = measure(rate)
        point.mock_busy = (process_cpu_s(mock_pid) - mock_cpu) / (time.perf_counter() - wall)
        points.append(point)
        baseline = points[0].ttft_p50_ms
        status = "ok" if point.ok(baseline) else "over"
        print(
            f"{name:<16} {rate:>6g} req/s  TTFT p50 {fmt(point.ttft_p50_ms):>7} ms  "
            f"achieved {point.achieved:7.1f}/s  failed {point.failed:>3}  "
            f"CPU {fmt(point.cpu_ms_per_stream):>6} ms/stream  mock busy {point.mock_busy:4.2f}  "
            f"{status}",
            flush=True,
        )
        misses = 0 if point.ok(baseline) else misses + 1
        if misses == 2:
            break
    return points


def sustained(points: list[Point]) -> float | None:
    baseline = points[0].ttft_p50_ms if points else None
    best = None
    for point in points:
        if not point.ok(baseline):
            break
        best = point.rate
    return best


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short ladder, 3 s per step")
    parser.add_argument("--duration", type=float, help="seconds per step (default 6; quick 3)")
    parser.add_argument("--rates", help="comma-separated request rates to climb")
    parser.add_argument("--ttft-ms", type=float, default=50.0)
    parser.add_argument("--tps", type=float, default=100.0)
    parser.add_argument("--max-tokens", type=int, default=20)
    parser.add_argument("--mock-workers", type=int, help="mock worker processes (--workers N)")
    args = parser.parse_args()
    duration = args.duration or (3.0 if args.quick else 6.0)
    default_rates = "10,40,80,160,320" if args.quick else "10,40,80,120,160,240,320,480,640"
    rates = [float(r) for r in (args.rates or default_rates).split(",")]
    mock_args = ["--ttft-ms", f"{args.ttft_ms:g}", "--tps", f"{args.tps:g}", "--seed", "1"]

    print(f"load before: {uptime()}")
    print(
        f"mock: TTFT {args.ttft_ms:g} ms, {args.tps:g} tok/s, {args.max_tokens} tokens/reply, "
        f"{args.mock_workers or 1} process(es); {duration:g} s per step; budget: TTFT p50 "
        f"within {BUDGET_MS:g} ms of the generator's own p50 at {rates[0]:g} req/s"
    )
    mock = start_mock(args.mock_workers or 1, *mock_args)
    url, mock_pid = mock.url, mock.procs[0].pid
    results: dict[str, list[Point]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            results["holynb bench"] = climb(
                "holynb bench",
                rates,
                lambda r: bench_point(url, r, duration, args.max_tokens),
                mock_pid,
            )
            for processes in (1, 2):
                name = f"Locust {processes} worker{'s' if processes > 1 else ''}"
                results[name] = climb(
                    name,
                    rates,
                    lambda r, n=processes: locust_point(
                        url, r, duration, args.max_tokens, n, workdir
                    ),
                    mock_pid,
                )
    finally:
        mock.stop()
    print(f"load after: {uptime()}")
    print("\nhighest rate sustained (TTFT p50 within 5 ms of the generator's low-rate p50):")
    for name, points in results.items():
        best = sustained(points)
        cpu = next((p.cpu_ms_per_stream for p in points if p.rate == best), None)
        print(
            f"  {name:<16} {'-' if best is None else f'{best:g} req/s':>12}"
            f"  (low-rate p50 {fmt(points[0].ttft_p50_ms)} ms; CPU {fmt(cpu)} ms per stream)"
        )


if __name__ == "__main__":
    main()
