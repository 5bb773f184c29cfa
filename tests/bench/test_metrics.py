"""Pure tests of the benchmark statistics and report formats (no server)."""

from __future__ import annotations

import csv
import io
import json
import random

import numpy as np
import pytest

from holynb._bench_metrics import summarise
from holynb.bench import BenchResult, Distribution, ProgressBar, RequestRecord, percentile


def test_percentile_known_values() -> None:
    values = [10.0, 20.0, 30.0, 40.0]
    assert percentile(values, 0) == 10.0
    assert percentile(values, 100) == 40.0
    assert percentile(values, 50) == 25.0
    assert percentile(values, 90) == pytest.approx(37.0)
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0  # unsorted input
    assert percentile([7.5], 99) == 7.5
    assert percentile([], 50) is None


def test_percentile_matches_numpy_linear() -> None:
    rng = random.Random(7)
    for n in (1, 2, 5, 17, 100):
        values = [rng.lognormvariate(0, 1) for _ in range(n)]
        for p in (0, 1, 25, 50, 90, 95, 99, 100):
            assert percentile(values, p) == pytest.approx(float(np.percentile(values, p)))


def test_percentile_rejects_out_of_range() -> None:
    with pytest.raises(ValueError, match="between 0 and 100"):
        percentile([1.0], 101)


def test_distribution_reports_milliseconds() -> None:
    dist = Distribution.of_seconds([0.010, 0.020, 0.030])
    assert dist is not None
    assert dist.count == 3
    assert dist.mean == pytest.approx(20.0)
    assert dist.p50 == pytest.approx(20.0)
    assert dist.p99 == pytest.approx(29.8)
    assert Distribution.of_seconds([]) is None


def _record(index: int, *, ok: bool = True, transport: str = "sse") -> RequestRecord:
    if not ok:
        return RequestRecord(
            transport, index, ok=False, start_s=0.0, tokens=2, error="RateLimitError: slow down"
        )
    # 4 tokens: first after 100 ms, then 20 ms apart → e2e 160 ms, TPOT (160-100)/3 = 20 ms.
    return RequestRecord(
        transport,
        index,
        ok=True,
        start_s=index * 0.01,
        ttft_s=0.100,
        itl_s=[0.020, 0.020, 0.020],
        e2e_s=0.160,
        tokens=4,
    )


def test_tpot_definition() -> None:
    assert _record(0).tpot_s == pytest.approx(0.020)
    single = RequestRecord("sse", 0, ok=True, start_s=0, ttft_s=0.1, e2e_s=0.1, tokens=1)
    assert single.tpot_s is None
    assert _record(1, ok=False).tpot_s is None


def test_summarise_counts_failures_but_excludes_them_from_latency() -> None:
    records = [_record(0), _record(1), _record(2, ok=False), _record(3, transport="ws")]
    summary = summarise("sse", records, duration_s=2.0)
    assert (summary.requests, summary.completed, summary.failed) == (3, 2, 1)
    assert summary.errors == {"RateLimitError": 1}
    assert summary.total_output_tokens == 8  # failed request's partial tokens are not counted
    assert summary.request_throughput == pytest.approx(1.0)
    assert summary.output_token_throughput == pytest.approx(4.0)
    assert summary.ttft_ms is not None and summary.ttft_ms.p50 == pytest.approx(100.0)
    assert summary.itl_ms is not None and summary.itl_ms.count == 6  # gaps pooled over requests
    assert summary.tpot_ms is not None and summary.tpot_ms.mean == pytest.approx(20.0)
    assert summary.e2e_ms is not None and summary.e2e_ms.p99 == pytest.approx(160.0)
    flat = summary.flat()
    assert flat["ttft_p50_ms"] == pytest.approx(100.0)
    assert flat["failed"] == 1


def test_summarise_all_failed_has_no_latency() -> None:
    summary = summarise("ws", [_record(0, ok=False, transport="ws")], duration_s=1.0)
    assert summary.completed == 0 and summary.failed == 1
    assert summary.ttft_ms is None and summary.itl_ms is None
    assert summary.request_throughput == 0.0


def _result() -> BenchResult:
    records = [_record(0), _record(1, ok=False), _record(0, transport="ws")]
    return BenchResult(
        config={
            "base_url": "http://127.0.0.1:1/v1",
            "bundled_mock": True,
            "model": "deepseek-v3.2",
            "requests": 2,
            "concurrency": 1,
            "max_tokens": 4,
            "transports": ["sse", "ws"],
            "pooled": True,
            "max_retries": 0,
            "seed": 3,
            "mock_ttft_ms": 100.0,
            "mock_tps": 50.0,
            "mock_fault": None,
            "prompt": "hi",
        },
        summaries={
            "sse": summarise("sse", records, 1.0),
            "ws": summarise("ws", records, 1.0),
        },
        records=records,
    )


def test_table_has_one_column_per_transport() -> None:
    text = _result().table()
    assert "bundled mock at http://127.0.0.1:1/v1" in text
    assert "mock controls: TTFT 100 ms, 50 tok/s, seed 3" in text
    header = next(line for line in text.splitlines() if line.strip().startswith("sse"))
    assert header.split() == ["sse", "ws"]
    row = next(line for line in text.splitlines() if line.startswith("TTFT p50 (ms)"))
    assert row.split()[-2:] == ["100.00", "100.00"]
    errors = next(line for line in text.splitlines() if line.startswith("errors: RateLimitError"))
    assert errors.split()[-2:] == ["1", "0"]
    assert text.splitlines()[-1] == "first sse error: RateLimitError: slow down"
    assert str(_result()) == text


def test_json_round_trip(tmp_path) -> None:
    path = tmp_path / "out.json"
    _result().write_json(path)
    data = json.loads(path.read_text())
    assert set(data) == {"config", "summary", "requests"}
    assert data["summary"]["sse"]["ttft_ms"]["p50"] == pytest.approx(100.0)
    assert data["summary"]["sse"]["failed"] == 1
    assert data["requests"][0]["itl_ms"] == pytest.approx([20.0, 20.0, 20.0])
    assert data["requests"][0]["tpot_ms"] == pytest.approx(20.0)
    assert data["requests"][1]["error"] == "RateLimitError: slow down"


def test_csv_one_row_per_request() -> None:
    buf = io.StringIO()
    _result().write_csv(buf)
    assert buf.getvalue() == _result().csv()
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert len(rows) == 3
    assert rows[0]["transport"] == "sse" and rows[0]["ok"] == "True"
    assert float(rows[0]["ttft_ms"]) == pytest.approx(100.0)
    assert float(rows[0]["itl_mean_ms"]) == pytest.approx(20.0)
    assert rows[1]["ttft_ms"] == "" and rows[1]["error"] == "RateLimitError: slow down"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_redraws_one_line() -> None:
    out = _Terminal()
    bar = ProgressBar(out, width=4, min_interval_s=0.0)
    for done in range(3):
        bar("ws", done, 2)
    bar.close()
    assert out.getvalue() == "\r ws [....] 0/2\r ws [##..] 1/2\r ws [####] 2/2\n"


def test_progress_bar_closes_an_unfinished_line() -> None:
    out = _Terminal()
    bar = ProgressBar(out, width=2, min_interval_s=0.0)
    bar("sse", 1, 4)
    bar.close()
    assert out.getvalue().endswith("1/4\n")


def test_progress_without_a_terminal_prints_one_line_per_transport() -> None:
    out = io.StringIO()
    bar = ProgressBar(out)
    for done in range(4):
        bar("sse", done, 3)
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sse: 3/3 requests done in ")
