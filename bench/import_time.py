"""Benchmark: wall time of ``import holynb`` (and of importing its first client) vs peers.

Each figure is the median of fresh interpreter runs (``python -X importtime`` is not used because
it adds overhead; we time ``import`` inside a new process, minus an empty interpreter start).
Target (DESIGN.md): ``import holynb`` <= 150 ms.
"""

from __future__ import annotations

import statistics
import subprocess
import sys

RUNS = 15

CASES = {
    "import holynb": "import holynb",
    "holynb.AsyncClient": "import holynb; holynb.AsyncClient",
    "import openai": "import openai",
    "import httpx": "import httpx",
    "import aiohttp": "import aiohttp",
}

PROBE = "import time; t=time.perf_counter(); {stmt}; print((time.perf_counter()-t)*1000)"


def measure(stmt: str) -> float:
    """Median milliseconds to execute ``stmt`` in a fresh interpreter."""
    samples = []
    for _ in range(RUNS):
        out = subprocess.run(
            [sys.executable, "-c", PROBE.format(stmt=stmt)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        samples.append(float(out.strip()))
    return statistics.median(samples)


def main() -> None:
    """Print a table of import times."""
    print(f"{'case':<22} {'median ms':>10}   ({RUNS} fresh interpreters each)")
    for name, stmt in CASES.items():
        print(f"{name:<22} {measure(stmt):>10.1f}")
    print("target: import holynb <= 150 ms")


if __name__ == "__main__":
    main()
