"""Render a benchmark result as a text table, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING, Any, TextIO

from holynb._bench_metrics import METRICS, STATS

if TYPE_CHECKING:
    from holynb._bench_metrics import Distribution
    from holynb.bench import BenchResult


CSV_FIELDS = (
    "transport",
    "index",
    "ok",
    "start_ms",
    "ttft_ms",
    "tpot_ms",
    "e2e_ms",
    "itl_mean_ms",
    "tokens",
    "error",
)


def table(result: BenchResult) -> str:
    """A fixed-width table: one row per figure, one column per transport."""
    summaries = list(result.summaries.values())
    rows: list[tuple[str, list[str]]] = [
        ("requests ok / failed", [f"{s.completed} / {s.failed}" for s in summaries]),
        ("duration (s)", [f"{s.duration_s:.2f}" for s in summaries]),
        ("request throughput (req/s)", [f"{s.request_throughput:.2f}" for s in summaries]),
        ("output tokens", [str(s.total_output_tokens) for s in summaries]),
        ("output throughput (tok/s)", [f"{s.output_token_throughput:.1f}" for s in summaries]),
    ]
    for metric in METRICS:
        for stat in STATS:
            values = [_stat(getattr(s, f"{metric}_ms"), stat) for s in summaries]
            rows.append((f"{metric.upper()} {stat} (ms)", values))
    errors = sorted({name for s in summaries for name in s.errors})
    for name in errors:
        rows.append((f"errors: {name}", [str(s.errors.get(name, 0)) for s in summaries]))

    label_w = max(len(label) for label, _ in rows)
    col_w = max(10, *(len(v) for _, values in rows for v in values))
    header = " " * label_w + "".join(f"  {s.transport:>{col_w}}" for s in summaries)
    lines = [_title(result), header, "-" * len(header)]
    lines += [
        f"{label:<{label_w}}" + "".join(f"  {v:>{col_w}}" for v in vals) for label, vals in rows
    ]
    # The first failure of each transport says why, in the client's own words.
    for transport in result.summaries:
        error = next(
            (r.error for r in result.records if r.transport == transport and r.error), None
        )
        if error:
            lines.append(f"first {transport} error: {error}")
    return "\n".join(lines)


def to_dict(result: BenchResult) -> dict[str, Any]:
    """The result as JSON-ready data: config, summary per transport, one row per request."""
    return {
        "config": dict(result.config),
        "summary": {t: s.to_dict() for t, s in result.summaries.items()},
        "requests": [r.to_dict() for r in result.records],
    }


def write_json(result: BenchResult, out: TextIO) -> None:
    """Write :func:`to_dict` as indented JSON to ``out``."""
    json.dump(to_dict(result), out, indent=2)
    out.write("\n")


def write_csv(result: BenchResult, out: TextIO) -> None:
    """Write one CSV row per request (times in ms; ``itl_mean_ms`` averages that request's gaps)."""
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for record in result.records:
        row = record.to_dict()
        gaps = row.pop("itl_ms")
        row["itl_mean_ms"] = sum(gaps) / len(gaps) if gaps else None
        writer.writerow({k: _csv_value(row[k]) for k in CSV_FIELDS})


def csv_text(result: BenchResult) -> str:
    """The CSV of :func:`write_csv` as a string."""
    buf = io.StringIO()
    write_csv(result, buf)
    return buf.getvalue()


def _title(result: BenchResult) -> str:
    cfg = result.config
    title = (
        f"holynb bench · model {cfg['model']} · {cfg['requests']} requests · "
        f"concurrency {cfg['concurrency']} · max_tokens {cfg['max_tokens']}"
        f"{'' if cfg['pooled'] else ' · unpooled'}"
    )
    where = "bundled mock at " if cfg["bundled_mock"] else ""
    lines = [title, f"endpoint: {where}{cfg['base_url']}"]
    controls = [
        f"{label} {cfg[key]:g}{unit}"
        for key, label, unit in (
            ("mock_ttft_ms", "TTFT", " ms"),
            ("mock_tps", "", " tok/s"),
        )
        if cfg[key] is not None
    ]
    if cfg["seed"] is not None:
        controls.append(f"seed {cfg['seed']}")
    if cfg["mock_fault"]:
        controls.append(f"fault {cfg['mock_fault']}")
    if controls:
        lines.append("mock controls: " + ", ".join(c.strip() for c in controls))
    return "\n".join(lines) + "\n"


def _stat(dist: Distribution | None, stat: str) -> str:
    return "-" if dist is None else f"{getattr(dist, stat):.2f}"


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "" if value is None else value
