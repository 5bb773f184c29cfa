"""Locust's statistics of a :class:`holynb.loadtest.HolyUser` run as holynb's report.

:class:`HolyUser` reports every stream to Locust as entries named ``ttft``, ``itl``, ``tpot`` and
``e2e`` with request type ``SSE`` or ``WS`` (response times in ms; ``e2e``'s size is the stream's
output tokens). :class:`LoadReport` reads them back — from a live ``RequestStats`` (the master's
or a local runner's ``environment.stats``) or from the ``PREFIX_stats.csv`` Locust writes with
``--csv PREFIX`` — and prints holynb's table: streams, throughput and percentiles per metric.
This module does not import Locust (whose import monkey-patches the process).

The percentiles are Locust's own: it keeps response times in buckets (1 ms below 100 ms, 10 ms
below 1 s, 100 ms below 10 s), and its CSV writes them as whole milliseconds; means are exact.
Like any Locust entry, a failed ``e2e`` counts in ``e2e``'s response times (time to the failure).
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

__all__ = ["METRIC_NAMES", "LoadReport", "LocustMetric"]

METRIC_NAMES: tuple[str, ...] = ("ttft", "itl", "tpot", "e2e")
REQUEST_TYPES: tuple[str, ...] = ("SSE", "WS")
_PERCENTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}


@dataclass(frozen=True, slots=True)
class LocustMetric:
    """One Locust entry (e.g. ``SSE ttft``): counts, rates and response times in ms."""

    count: int  # every event, failed ones included (Locust's "Request Count")
    failures: int
    per_s: float  # events per second over the run (Locust's "Requests/s")
    failures_per_s: float
    avg_size: float  # e2e: output tokens per stream
    mean: float | None
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    max: float | None


@dataclass(slots=True)
class LoadReport:
    """``metrics[request_type][name]`` for ``SSE``/``WS`` and ``ttft``/``itl``/``tpot``/``e2e``."""

    metrics: dict[str, dict[str, LocustMetric]]
    errors: list[dict[str, Any]] = field(default_factory=list)  # request_type, name, error, count

    @classmethod
    def from_stats(cls, stats: Any) -> LoadReport:
        """Read a live Locust ``RequestStats`` (e.g. ``environment.stats`` on the master)."""
        metrics: dict[str, dict[str, LocustMetric]] = {}
        for entry in stats.entries.values():
            if entry.method not in REQUEST_TYPES or entry.name not in METRIC_NAMES:
                continue
            has = entry.num_requests > 0
            percentiles = {
                k: entry.get_response_time_percentile(q) if has else None
                for k, q in _PERCENTILES.items()
            }
            metrics.setdefault(entry.method, {})[entry.name] = LocustMetric(
                count=entry.num_requests,
                failures=entry.num_failures,
                per_s=entry.total_rps,
                failures_per_s=entry.total_fail_per_sec,
                avg_size=entry.avg_content_length,
                mean=entry.avg_response_time if has else None,
                max=entry.max_response_time if has else None,
                **percentiles,
            )
        errors = [
            {
                "request_type": e.method,
                "name": e.name,
                "error": e.error if isinstance(e.error, str) else repr(e.error),
                "count": e.occurrences,
            }
            for e in stats.errors.values()
            if e.method in REQUEST_TYPES
        ]
        return cls(_ordered(metrics), errors)

    @classmethod
    def from_csv(cls, path: str | Path) -> LoadReport:
        """Read ``PREFIX_stats.csv`` (and ``PREFIX_failures.csv`` beside it, if any).

        ``path`` may also be the ``--csv`` prefix itself.
        """
        stats_path = Path(path)
        if not stats_path.name.endswith("_stats.csv"):
            stats_path = stats_path.with_name(stats_path.name + "_stats.csv")
        with open(stats_path, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        if rows and not {"Type", "Name", "Request Count", "50%"} <= set(rows[0]):
            raise ValueError(f"{stats_path} is not a Locust stats CSV (written by --csv PREFIX)")
        metrics: dict[str, dict[str, LocustMetric]] = {}
        for row in rows:
            if row["Type"] not in REQUEST_TYPES or row["Name"] not in METRIC_NAMES:
                continue
            metrics.setdefault(row["Type"], {})[row["Name"]] = LocustMetric(
                count=int(row["Request Count"]),
                failures=int(row["Failure Count"]),
                per_s=float(row["Requests/s"]),
                failures_per_s=float(row["Failures/s"]),
                avg_size=float(row["Average Content Size"]),
                mean=_number(row["Average Response Time"]),
                p50=_number(row["50%"]),
                p90=_number(row.get("90%")),
                p95=_number(row.get("95%")),
                p99=_number(row.get("99%")),
                max=_number(row["Max Response Time"]),
            )
        errors: list[dict[str, Any]] = []
        failures_path = stats_path.with_name(
            stats_path.name.removesuffix("_stats.csv") + "_failures.csv"
        )
        if failures_path.exists():
            with open(failures_path, encoding="utf-8", newline="") as f:
                errors = [
                    {
                        "request_type": row["Method"],
                        "name": row["Name"],
                        "error": row["Error"],
                        "count": int(row["Occurrences"]),
                    }
                    for row in csv.DictReader(f)
                    if row["Method"] in REQUEST_TYPES
                ]
        return cls(_ordered(metrics), errors)

    def streams(self, request_type: str) -> tuple[int, int]:
        """``(completed, failed)`` streams of one request type (from its ``e2e`` entry)."""
        e2e = self.metrics.get(request_type, {}).get("e2e")
        return (0, 0) if e2e is None else (e2e.count - e2e.failures, e2e.failures)

    def table(self) -> str:
        """holynb's table: one column per request type, one row per figure."""
        kinds = list(self.metrics)
        if not kinds:
            return "holynb report: no ttft, itl, tpot or e2e entries of a HolyUser in these stats"
        rows: list[tuple[str, list[str]]] = [
            ("streams ok / failed", ["{} / {}".format(*self.streams(k)) for k in kinds])
        ]
        e2e = [self.metrics[k].get("e2e") for k in kinds]
        rows.append(("streams per second", [_fmt(m and m.per_s) for m in e2e]))
        rows.append(("output tokens per stream", [_fmt(m and m.avg_size, 1) for m in e2e]))
        rows.append(
            ("output throughput (tok/s)", [_fmt(m and m.avg_size * m.per_s, 1) for m in e2e])
        )
        for name in METRIC_NAMES:
            entries = [self.metrics[k].get(name) for k in kinds]
            for stat in ("mean", "p50", "p90", "p95", "p99"):
                rows.append(
                    (f"{name.upper()} {stat} (ms)", [_fmt(m and getattr(m, stat)) for m in entries])
                )
        label_w = max(len(label) for label, _ in rows)
        col_w = max(10, *(len(v) for _, values in rows for v in values))
        header = " " * label_w + "".join(f"  {k:>{col_w}}" for k in kinds)
        lines = [
            "holynb report of a Locust run (percentiles in Locust's buckets: 1 ms below 100 ms, "
            "10 ms below 1 s)",
            "",
            header,
            "-" * len(header),
        ]
        lines += [
            f"{label:<{label_w}}" + "".join(f"  {v:>{col_w}}" for v in values)
            for label, values in rows
        ]
        for error in self.errors:
            lines.append(
                f"{error['count']} × {error['request_type']} {error['name']}: {error['error']}"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data: ``metrics[request_type][name]`` as dicts, and ``errors``."""
        return {
            "metrics": {
                kind: {name: asdict(m) for name, m in names.items()}
                for kind, names in self.metrics.items()
            },
            "errors": list(self.errors),
        }

    def write_json(self, out: TextIO) -> None:
        """Write :meth:`to_dict` as indented JSON."""
        json.dump(self.to_dict(), out, indent=2)
        out.write("\n")


def _ordered(metrics: dict[str, dict[str, LocustMetric]]) -> dict[str, dict[str, LocustMetric]]:
    return {
        kind: {n: metrics[kind][n] for n in METRIC_NAMES if n in metrics[kind]}
        for kind in REQUEST_TYPES
        if kind in metrics
    }


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _number(text: str | None) -> float | None:
    if text in (None, "", "N/A"):
        return None
    return float(text)
