"""bench/client_throughput.py runs end to end (tiny sizes; figures are not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "client_throughput.py"


def test_bench_script_prints_every_peer():
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--chunks", "300", "--runs", "1", "--ttft-samples", "5",
         "--paced-streams", "10", "--paced-seconds", "0.5", "--capacity", "10,20",
         "--openai-capacity", "5"],
        capture_output=True, text=True, timeout=200, check=True,
    ).stdout
    for label in ["holynb SSE", "holynb WebSocket", "httpx-sse + json.loads",
                  "openai SDK (AsyncOpenAI)", "raw socket", "raw httpx", "the bundled mock",
                  "CPU ms/1,000 chunks", "capacity:", "ITL p99 by streams", "targets:",
                  "load average at end"]:
        assert label in out, out
