"""Benchmark records, their summary statistics, goodput and the per-second timeline (pure, no I/O).

Definitions follow vLLM's ``benchmarks/serve.py``; they are written out in the docstring of
:mod:`holynb.bench` and in ``docs/bench.md``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

METRICS: tuple[str, ...] = ("ttft", "itl", "tpot", "e2e")
STATS: tuple[str, ...] = ("mean", "p50", "p90", "p95", "p99")
# vLLM calls end-to-end latency "e2el"; the JSON output and --goodput use its names.
VLLM_METRIC = {"ttft": "ttft", "itl": "itl", "tpot": "tpot", "e2e": "e2el"}
GOODPUT_METRICS: tuple[str, ...] = ("ttft", "tpot", "e2el")


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
    """Mean, standard deviation and percentiles of one metric, in ms, over ``count`` samples."""

    count: int
    mean: float
    std: float  # population standard deviation (numpy's np.std, as vLLM reports)
    p50: float
    p90: float
    p95: float
    p99: float

    @property
    def median(self) -> float:
        """The same as ``p50``."""
        return self.p50

    @classmethod
    def of_seconds(cls, samples_s: Sequence[float]) -> Distribution | None:
        """Summarise samples given in seconds (reported in ms); None when there are none."""
        if not samples_s:
            return None
        ms = sorted(s * 1000.0 for s in samples_s)
        mean = math.fsum(ms) / len(ms)
        return cls(
            count=len(ms),
            mean=mean,
            std=math.sqrt(math.fsum((x - mean) ** 2 for x in ms) / len(ms)),
            p50=_interpolate(ms, 50),
            p90=_interpolate(ms, 90),
            p95=_interpolate(ms, 95),
            p99=_interpolate(ms, 99),
        )


@dataclass(slots=True)
class RequestRecord:
    """What one benchmark request measured.

    ``scheduled_s``, ``start_s`` and ``end_s`` are offsets from the start of the run: when the
    request arrived (joined the client's queue), when it was sent (after waiting for a free slot
    under ``max_concurrency``) and when its stream ended, completed or not. ``ttft_s``, ``itl_s``
    and ``e2e_s`` are durations measured from ``start_s``. ``api`` is the API the client spoke
    (``"chat"``, ``"responses"``, ``"messages"``), set by :func:`~holynb.bench.measure_stream`.
    """

    transport: str
    index: int
    ok: bool
    start_s: float
    scheduled_s: float | None = None  # None: sent the moment it arrived
    ttft_s: float | None = None
    itl_s: list[float] = field(default_factory=list)
    e2e_s: float | None = None
    end_s: float | None = None
    tokens: int = 0
    error: str | None = None
    api: str | None = None

    @property
    def tpot_s(self) -> float | None:
        """(e2e − TTFT) / (tokens − 1); None for failed requests and single-token replies."""
        if not self.ok or self.ttft_s is None or self.e2e_s is None or self.tokens < 2:
            return None
        return (self.e2e_s - self.ttft_s) / (self.tokens - 1)

    @property
    def wait_s(self) -> float:
        """Time between arriving and being sent: the wait for a free slot, or the client's lag."""
        return 0.0 if self.scheduled_s is None else self.start_s - self.scheduled_s

    @property
    def chunk_times_s(self) -> list[float]:
        """Offsets from the start of the run at which content chunks arrived."""
        if self.ttft_s is None:
            return []
        t = self.start_s + self.ttft_s
        times = [t]
        for gap in self.itl_s:
            t += gap
            times.append(t)
        return times

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with times in milliseconds."""
        return {
            "api": self.api,
            "transport": self.transport,
            "index": self.index,
            "ok": self.ok,
            "scheduled_ms": _ms(self.scheduled_s),
            "start_ms": _ms(self.start_s),
            "end_ms": _ms(self.end_s),
            "ttft_ms": _ms(self.ttft_s),
            "tpot_ms": _ms(self.tpot_s),
            "e2e_ms": _ms(self.e2e_s),
            "tokens": self.tokens,
            "itl_ms": [s * 1000.0 for s in self.itl_s],
            "error": self.error,
        }


def parse_goodput(slos: Mapping[str, float] | Iterable[str] | None) -> dict[str, float]:
    """SLOs in ms keyed ``ttft``, ``tpot``, ``e2el``, from a mapping or ``KEY:MS`` strings.

    ``e2e`` is accepted for ``e2el`` (holynb's and vLLM's names for end-to-end latency).
    """
    if slos is None:
        return {}
    pairs: list[tuple[str, object]] = []
    if isinstance(slos, Mapping):
        pairs = list(slos.items())
    else:
        for item in [slos] if isinstance(slos, str) else slos:
            name, sep, value = str(item).partition(":")
            if not sep:
                raise ValueError(
                    f"goodput SLO {item!r} must look like KEY:MS, e.g. ttft:500 (milliseconds)"
                )
            pairs.append((name, value))
    parsed: dict[str, float] = {}
    for name, value in pairs:
        key = "e2el" if name.strip().lower() == "e2e" else name.strip().lower()
        if key not in GOODPUT_METRICS:
            raise ValueError(
                f"goodput metric must be one of {', '.join(GOODPUT_METRICS)}; got {name!r}"
            )
        try:
            ms = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ValueError(
                f"goodput {key} must be a number of milliseconds, got {value!r}"
            ) from None
        if not ms >= 0 or math.isinf(ms):
            raise ValueError(f"goodput {key} must be a finite number of ms >= 0, got {value!r}")
        parsed[key] = ms
    return parsed


def meets_slos(record: RequestRecord, slos: Mapping[str, float]) -> bool:
    """True when a completed request meets every SLO given (DistServe's goodput, as vLLM counts it).

    A reply of one token has no TPOT; like vLLM, it counts as TPOT 0 (it meets a TPOT SLO).
    """
    if not record.ok:
        return False
    values = {"ttft": record.ttft_s, "tpot": record.tpot_s or 0.0, "e2el": record.e2e_s}
    return all(
        (value := values[key]) is not None and value * 1000.0 <= limit
        for key, limit in slos.items()
    )


@dataclass(frozen=True, slots=True)
class TimelineSecond:
    """What happened during one second of the run, ``[second, second + 1)`` from its start."""

    second: int
    in_flight: float  # mean number of requests in flight over the second
    peak_in_flight: int  # most requests in flight at any instant of the second
    started: int  # requests sent
    completed: int  # requests that completed
    errors: int  # requests that failed
    output_tokens: float  # tokens of completed requests that arrived in this second


def timeline(records: Sequence[RequestRecord]) -> list[TimelineSecond]:
    """Per-second activity from the first request to the end of the last one.

    Output tokens are counted when their chunk arrived, for completed requests (so the timeline
    adds up to ``total_output_tokens``); when the server reported more tokens than chunks, each
    chunk carries ``tokens / chunks`` of them.
    """
    spans = [(r.start_s, r.end_s) for r in records if r.end_s is not None]
    if not spans:
        return []
    horizon = max(end for _, end in spans)
    seconds = max(1, math.ceil(horizon))
    in_flight = [0.0] * seconds
    peak = [0] * seconds
    started = [0] * seconds
    completed = [0] * seconds
    errors = [0] * seconds
    tokens = [0.0] * seconds

    def bucket(t: float) -> int:
        return min(max(int(t), 0), seconds - 1)

    for record in records:
        if record.end_s is None:
            continue
        start, end = record.start_s, record.end_s
        started[bucket(start)] += 1
        (completed if record.ok else errors)[bucket(end)] += 1
        for s in range(bucket(start), bucket(end) + 1):
            in_flight[s] += max(0.0, min(end, s + 1) - max(start, s))
        if record.ok:
            times = record.chunk_times_s
            weight = record.tokens / len(times) if times else 0.0
            for t in times:
                tokens[bucket(t)] += weight
    # Peak concurrency: sweep start (+1) and end (-1) events in time order; at a tie the end
    # comes first, so a request that starts as another ends does not count twice.
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    level = 0
    i = 0
    for s in range(seconds):
        peak[s] = level  # in flight as the second begins
        while i < len(events) and (s == seconds - 1 or events[i][0] < s + 1):
            level += events[i][1]
            peak[s] = max(peak[s], level)
            i += 1
    # The last second may be partial: average over the part of it the run covered.
    last_len = horizon - (seconds - 1) if horizon > seconds - 1 else 1.0
    return [
        TimelineSecond(
            second=s,
            in_flight=in_flight[s] / (last_len if s == seconds - 1 else 1.0),
            peak_in_flight=peak[s],
            started=started[s],
            completed=completed[s],
            errors=errors[s],
            output_tokens=tokens[s],
        )
        for s in range(seconds)
    ]


@dataclass(frozen=True, slots=True)
class TransportSummary:
    """Aggregate figures for one wire's run — a transport, and the API spoken over it when
    ``api`` is set — (latencies in ms, throughput per second).

    Names follow vLLM's result JSON where the concept is the same (``request_throughput``,
    ``output_throughput``, ``request_goodput``, ``max_output_tokens_per_s``, ...).
    """

    transport: str
    requests: int
    completed: int
    failed: int
    duration: float  # seconds, from the first request sent to the last one finished
    total_output_tokens: int
    request_throughput: float
    output_throughput: float
    good_requests: int | None  # completed requests meeting every SLO (None: no --goodput)
    request_goodput: float | None
    max_output_tokens_per_s: float
    max_concurrent_requests: int
    ttft_ms: Distribution | None
    itl_ms: Distribution | None
    tpot_ms: Distribution | None
    e2e_ms: Distribution | None
    error_types: dict[str, int]
    timeline: tuple[TimelineSecond, ...] = ()
    api: str | None = None  # None: every API's records over ``transport``

    def covers(self, record: RequestRecord) -> bool:
        """Whether ``record`` went over this summary's wire."""
        return _on_wire(record, self.transport, self.api)

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON-ready data with vLLM's names (``mean_ttft_ms``, ``p99_itl_ms``, ...)."""
        data: dict[str, Any] = {
            "api": self.api,
            "transport": self.transport,
            "requests": self.requests,
            "completed": self.completed,
            "failed": self.failed,
            "duration": self.duration,
            "total_output_tokens": self.total_output_tokens,
            "request_throughput": self.request_throughput,
            "output_throughput": self.output_throughput,
            "good_requests": self.good_requests,
            "request_goodput": self.request_goodput,
            "max_output_tokens_per_s": self.max_output_tokens_per_s,
            "max_concurrent_requests": self.max_concurrent_requests,
        }
        for metric in METRICS:
            dist: Distribution | None = getattr(self, f"{metric}_ms")
            name = VLLM_METRIC[metric]
            data[f"count_{name}"] = 0 if dist is None else dist.count
            for stat in ("mean", "median", "std", *STATS[1:]):
                data[f"{stat}_{name}_ms"] = None if dist is None else getattr(dist, stat)
        data["error_types"] = dict(self.error_types)
        data["timeline"] = [asdict(second) for second in self.timeline]
        return data


def summarise(
    transport: str,
    records: Iterable[RequestRecord],
    duration_s: float,
    *,
    goodput: Mapping[str, float] | None = None,
    api: str | None = None,
) -> TransportSummary:
    """Aggregate the records of one wire: those over ``transport`` (and ``api``, when given).
    Only completed requests count towards latency figures.

    ``duration_s`` is the wall-clock time of the whole run (first request sent to last one
    finished), the denominator of every throughput. ``goodput`` holds SLOs in ms (see
    :func:`parse_goodput`); without it ``good_requests`` and ``request_goodput`` are None.
    """
    rows = [r for r in records if _on_wire(r, transport, api)]
    done = [r for r in rows if r.ok]
    tokens = sum(r.tokens for r in done)
    errors = Counter((r.error or "error").split(":", 1)[0] for r in rows if not r.ok)
    per_second = timeline(rows)
    good = None if not goodput else sum(meets_slos(r, goodput) for r in done)

    def per_s(count: float) -> float:
        return count / duration_s if duration_s > 0 else 0.0

    return TransportSummary(
        transport=transport,
        requests=len(rows),
        completed=len(done),
        failed=len(rows) - len(done),
        duration=duration_s,
        total_output_tokens=tokens,
        request_throughput=per_s(len(done)),
        output_throughput=per_s(tokens),
        good_requests=good,
        request_goodput=None if good is None else per_s(good),
        max_output_tokens_per_s=max((s.output_tokens for s in per_second), default=0.0),
        max_concurrent_requests=max((s.peak_in_flight for s in per_second), default=0),
        ttft_ms=Distribution.of_seconds([r.ttft_s for r in done if r.ttft_s is not None]),
        itl_ms=Distribution.of_seconds([gap for r in done for gap in r.itl_s]),
        tpot_ms=Distribution.of_seconds([t for r in done if (t := r.tpot_s) is not None]),
        e2e_ms=Distribution.of_seconds([r.e2e_s for r in done if r.e2e_s is not None]),
        error_types=dict(sorted(errors.items())),
        timeline=tuple(per_second),
        api=api,
    )


def _on_wire(record: RequestRecord, transport: str, api: str | None) -> bool:
    return record.transport == transport and api in (None, record.api)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0
