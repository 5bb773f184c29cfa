"""A finished benchmark (:class:`BenchResult`) as a text table, a timeline, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from holynb.bench.metrics import (
    METRICS,
    STATS,
    Distribution,
    RequestRecord,
    TimelineSecond,
    TransportSummary,
    meets_slos,
)

__all__ = ["BenchResult", "timeline_table"]

CSV_FIELDS = (
    "api",
    "transport",
    "index",
    "ok",
    "good",
    "scheduled_ms",
    "start_ms",
    "end_ms",
    "ttft_ms",
    "tpot_ms",
    "e2e_ms",
    "itl_mean_ms",
    "tokens",
    "error",
)


@dataclass(slots=True)
class BenchResult:
    """A finished benchmark: its settings, one summary per wire (keyed by its label: ``"sse"``,
    or ``"chat/sse"`` when several APIs ran), and every request's record."""

    config: dict[str, Any]
    summaries: dict[str, TransportSummary]
    records: list[RequestRecord]

    def table(self) -> str:
        """A text table with one column per wire."""
        return _table(self)

    def timeline(self) -> str:
        """The per-second timeline of each wire as text tables."""
        return "\n\n".join(
            f"{t} timeline\n{timeline_table(s.timeline)}" for t, s in self.summaries.items()
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data: ``config``, ``summary`` per wire (vLLM's names), ``requests``."""
        return {
            "config": dict(self.config),
            "summary": {t: s.to_dict() for t, s in self.summaries.items()},
            "requests": [r.to_dict() for r in self.records],
        }

    def write_json(self, out: str | Path | TextIO) -> None:
        """Write :meth:`to_dict` as indented JSON to a path or an open text file."""

        def write(f: TextIO) -> None:
            json.dump(self.to_dict(), f, indent=2)
            f.write("\n")

        _write(out, write)

    def write_csv(self, out: str | Path | TextIO) -> None:
        """Write one CSV row per request (ms; ``itl_mean_ms`` averages the request's gaps)."""
        _write(out, lambda f: _write_csv(self, f))

    def csv(self) -> str:
        """The per-request CSV as a string."""
        buf = io.StringIO()
        _write_csv(self, buf)
        return buf.getvalue()

    def __str__(self) -> str:
        return self.table()


def timeline_table(seconds: Sequence[TimelineSecond]) -> str:
    """One row per second: requests in flight (mean, peak), sent, completed, errors, tokens/s."""
    header = f"{'second':>6}  {'in flight':>9}  {'peak':>4}  {'sent':>5}  {'done':>5}  "
    header += f"{'errors':>6}  {'output tok/s':>12}"
    lines = [header, "-" * len(header)]
    for s in seconds:
        lines.append(
            f"{s.second:>6}  {s.in_flight:>9.1f}  {s.peak_in_flight:>4}  {s.started:>5}  "
            f"{s.completed:>5}  {s.errors:>6}  {s.output_tokens:>12.0f}"
        )
    return "\n".join(lines)


def _table(result: BenchResult) -> str:
    """A fixed-width table: one row per figure, one column per wire."""
    summaries = list(result.summaries.values())
    rows: list[tuple[str, list[str]]] = [
        ("requests ok / failed", [f"{s.completed} / {s.failed}" for s in summaries]),
        ("duration (s)", [f"{s.duration:.2f}" for s in summaries]),
        ("request throughput (req/s)", [f"{s.request_throughput:.2f}" for s in summaries]),
    ]
    if result.config.get("goodput"):
        rows.append(("request goodput (req/s)", [f"{s.request_goodput:.2f}" for s in summaries]))
        rows.append(
            ("requests meeting the SLOs", [f"{s.good_requests} / {s.requests}" for s in summaries])
        )
    rows += [
        ("output tokens", [str(s.total_output_tokens) for s in summaries]),
        ("output throughput (tok/s)", [f"{s.output_throughput:.1f}" for s in summaries]),
        ("peak output (tok/s)", [f"{s.max_output_tokens_per_s:.0f}" for s in summaries]),
        ("peak requests in flight", [str(s.max_concurrent_requests) for s in summaries]),
    ]
    for metric in METRICS:
        for stat in STATS:
            values = [_stat(getattr(s, f"{metric}_ms"), stat) for s in summaries]
            rows.append((f"{metric.upper()} {stat} (ms)", values))
    for name in sorted({name for s in summaries for name in s.error_types}):
        rows.append((f"errors: {name}", [str(s.error_types.get(name, 0)) for s in summaries]))

    label_w = max(len(label) for label, _ in rows)
    col_w = max(10, *(len(v) for _, values in rows for v in values), *map(len, result.summaries))
    header = " " * label_w + "".join(f"  {wire:>{col_w}}" for wire in result.summaries)
    lines = [_title(result.config), header, "-" * len(header)]
    lines += [
        f"{label:<{label_w}}" + "".join(f"  {v:>{col_w}}" for v in vals) for label, vals in rows
    ]
    # The first failure of each wire says why, in the client's own words.
    for wire, summary in result.summaries.items():
        error = next((r.error for r in result.records if summary.covers(r) and r.error), None)
        if error:
            lines.append(f"first {wire} error: {error}")
    return "\n".join(lines)


def _title(cfg: dict[str, Any]) -> str:
    size = (
        f"{cfg['num_prompts']} requests"
        if cfg["num_prompts"] is not None
        else f"arrivals for {cfg['time_limit_s']:g} s"
    )
    rate = cfg["request_rate"]
    if math.isinf(rate):
        arrivals = "all at once"
    else:
        kind = "Poisson" if cfg["burstiness"] == 1 else f"gamma, burstiness {cfg['burstiness']:g}"
        arrivals = f"{rate:g} req/s ({kind})"
    cap = cfg["max_concurrency"]
    parts = [
        f"holynb bench · model {cfg['model_id']} · {size} · {arrivals}",
        f"max concurrency {'unlimited' if cap is None else cap}",
        f"max_tokens {cfg['max_tokens']}",
    ]
    if cfg["num_warmups"]:
        parts.append(f"{cfg['num_warmups']} warm-up")
    if not cfg["pooled"]:
        parts.append("unpooled")
    where = "bundled mock at " if cfg["bundled_mock"] else ""
    endpoint = f"endpoint: {where}{cfg['base_url']}"
    apis = cfg.get("apis") or []
    if apis:
        endpoint += f" · {'APIs' if len(apis) > 1 else 'API'} {', '.join(apis)}"
    lines = [" · ".join(parts), endpoint]
    lines += [f"skipped {wire}: {why}" for wire, why in (cfg.get("skipped_wires") or {}).items()]
    controls = []
    if cfg["mock_ttft_ms"] is not None:
        controls.append(f"TTFT {cfg['mock_ttft_ms']:g} ms")
    if cfg["mock_tps"] is not None:
        controls.append(f"{cfg['mock_tps']:g} tok/s")
    if cfg["seed"] is not None:
        controls.append(f"seed {cfg['seed']}")
    if cfg["mock_fault"]:
        controls.append(f"fault {cfg['mock_fault']}")
    if controls:
        lines.append("mock controls: " + ", ".join(controls))
    if cfg["goodput"]:
        slos = ", ".join(f"{k} ≤ {v:g} ms" for k, v in cfg["goodput"].items())
        lines.append(f"goodput SLOs: {slos}")
    return "\n".join(lines) + "\n"


def _write_csv(result: BenchResult, out: TextIO) -> None:
    slos = result.config.get("goodput")
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for record in result.records:
        row = record.to_dict()
        gaps = row.pop("itl_ms")
        row["itl_mean_ms"] = sum(gaps) / len(gaps) if gaps else None
        row["good"] = meets_slos(record, slos) if slos else None
        writer.writerow({k: _csv_value(row[k]) for k in CSV_FIELDS})


def _write(out: str | Path | TextIO, write: Callable[[TextIO], None]) -> None:
    if isinstance(out, str | Path):
        with open(out, "w", encoding="utf-8", newline="") as f:
            write(f)
    else:
        write(out)


def _stat(dist: Distribution | None, stat: str) -> str:
    return "-" if dist is None else f"{getattr(dist, stat):.2f}"


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "" if value is None else value
