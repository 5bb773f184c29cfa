"""Benchmark records and their summary statistics (pure functions, no I/O).

Definitions follow vLLM's ``benchmarks/benchmark_serving.py``; they are written out in the
docstring of :mod:`holynb.bench` and in ``docs/bench.md``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

METRICS: tuple[str, ...] = ("ttft", "itl", "tpot", "e2e")
STATS: tuple[str, ...] = ("mean", "p50", "p90", "p95", "p99")


def percentile(values: Sequence[float], p: float) -> float | None:
    """The ``p``-th percentile by linear interpolation (numpy's default); None if empty."""
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be between 0 and 100, got {p}")
    return _interpolate(sorted(values), p) if values else None


def _interpolate(ordered: Sequence[float], p: float) -> float:
    rank = p / 100 * (len(ordered) - 1)
    lo = math.floor(rank)
    hi = math.ceil(rank)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


@dataclass(frozen=True, slots=True)
class Distribution:
    """Mean and percentiles of one metric, in milliseconds, over ``count`` samples."""

    count: int
    mean: float
    p50: float
    p90: float
    p95: float
    p99: float

    @classmethod
    def of_seconds(cls, samples_s: Sequence[float]) -> Distribution | None:
        """Summarise samples given in seconds (reported in ms); None when there are none."""
        if not samples_s:
            return None
        ms = sorted(s * 1000.0 for s in samples_s)
        return cls(
            count=len(ms),
            mean=math.fsum(ms) / len(ms),
            p50=_interpolate(ms, 50),
            p90=_interpolate(ms, 90),
            p95=_interpolate(ms, 95),
            p99=_interpolate(ms, 99),
        )


@dataclass(slots=True)
class RequestRecord:
    """What one benchmark request measured (times in seconds from the request's start)."""

    transport: str
    index: int
    ok: bool
    start_s: float  # offset from the start of this transport's run
    ttft_s: float | None = None
    itl_s: list[float] = field(default_factory=list)
    e2e_s: float | None = None
    tokens: int = 0
    error: str | None = None

    @property
    def tpot_s(self) -> float | None:
        """(e2e − TTFT) / (tokens − 1); None for failed requests and single-token replies."""
        if not self.ok or self.ttft_s is None or self.e2e_s is None or self.tokens < 2:
            return None
        return (self.e2e_s - self.ttft_s) / (self.tokens - 1)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with times in milliseconds."""
        return {
            "transport": self.transport,
            "index": self.index,
            "ok": self.ok,
            "start_ms": _ms(self.start_s),
            "ttft_ms": _ms(self.ttft_s),
            "tpot_ms": _ms(self.tpot_s),
            "e2e_ms": _ms(self.e2e_s),
            "tokens": self.tokens,
            "itl_ms": [s * 1000.0 for s in self.itl_s],
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class TransportSummary:
    """Aggregate figures for one transport's run (latencies in ms, throughput per second)."""

    transport: str
    requests: int
    completed: int
    failed: int
    duration_s: float
    total_output_tokens: int
    request_throughput: float
    output_token_throughput: float
    ttft_ms: Distribution | None
    itl_ms: Distribution | None
    tpot_ms: Distribution | None
    e2e_ms: Distribution | None
    errors: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    def flat(self) -> dict[str, float | int | None]:
        """One flat row, e.g. ``{"ttft_p50_ms": 120.4, ...}`` (handy for DataFrames and plots)."""
        row: dict[str, float | int | None] = {
            "completed": self.completed,
            "failed": self.failed,
            "request_throughput": self.request_throughput,
            "output_token_throughput": self.output_token_throughput,
        }
        for metric in METRICS:
            dist = getattr(self, f"{metric}_ms")
            for stat in STATS:
                row[f"{metric}_{stat}_ms"] = None if dist is None else getattr(dist, stat)
        return row


def summarise(
    transport: str, records: Iterable[RequestRecord], duration_s: float
) -> TransportSummary:
    """Aggregate one transport's records; only completed requests count towards latency figures.

    ``duration_s`` is the wall-clock time of the whole run (first request sent to last one
    finished), the denominator of both throughputs.
    """
    rows = [r for r in records if r.transport == transport]
    done = [r for r in rows if r.ok]
    tokens = sum(r.tokens for r in done)
    errors = Counter((r.error or "error").split(":", 1)[0] for r in rows if not r.ok)
    return TransportSummary(
        transport=transport,
        requests=len(rows),
        completed=len(done),
        failed=len(rows) - len(done),
        duration_s=duration_s,
        total_output_tokens=tokens,
        request_throughput=len(done) / duration_s if duration_s > 0 else 0.0,
        output_token_throughput=tokens / duration_s if duration_s > 0 else 0.0,
        ttft_ms=Distribution.of_seconds([r.ttft_s for r in done if r.ttft_s is not None]),
        itl_ms=Distribution.of_seconds([gap for r in done for gap in r.itl_s]),
        tpot_ms=Distribution.of_seconds([t for r in done if (t := r.tpot_s) is not None]),
        e2e_ms=Distribution.of_seconds([r.e2e_s for r in done if r.e2e_s is not None]),
        errors=dict(sorted(errors.items())),
    )


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0
