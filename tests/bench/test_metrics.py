"""Pure tests of the benchmark statistics and report formats (no server)."""

from __future__ import annotations

import csv
import io
import json
import math
import random

import numpy as np
import pytest

from holynb.bench import (
    BenchResult,
    Distribution,
    RequestRecord,
    parse_goodput,
    percentile,
    summarise,
)
from holynb.bench.cli import ProgressBar
from holynb.bench.metrics import meets_slos, timeline


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
    assert dist.median == dist.p50
    assert dist.std == pytest.approx(float(np.std([10.0, 20.0, 30.0])))
    assert Distribution.of_seconds([]) is None


def _record(index: int, *, ok: bool = True, transport: str = "sse") -> RequestRecord:
    if not ok:
        return RequestRecord(
            transport,
            index,
            ok=False,
            start_s=0.0,
            end_s=0.05,
            tokens=2,
            error="RateLimitError: slow down",
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
        end_s=index * 0.01 + 0.160,
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
    assert summary.error_types == {"RateLimitError": 1}
    assert summary.total_output_tokens == 8  # failed request's partial tokens are not counted
    assert summary.request_throughput == pytest.approx(1.0)
    assert summary.output_throughput == pytest.approx(4.0)
    assert summary.ttft_ms is not None and summary.ttft_ms.p50 == pytest.approx(100.0)
    assert summary.itl_ms is not None and summary.itl_ms.count == 6  # gaps pooled over requests
    assert summary.tpot_ms is not None and summary.tpot_ms.mean == pytest.approx(20.0)
    assert summary.e2e_ms is not None and summary.e2e_ms.p99 == pytest.approx(160.0)
    assert summary.good_requests is None and summary.request_goodput is None
    data = summary.to_dict()  # flat, with vLLM's field names
    assert data["median_ttft_ms"] == pytest.approx(100.0)
    assert data["p99_e2el_ms"] == pytest.approx(160.0)
    assert data["mean_tpot_ms"] == pytest.approx(20.0)
    assert data["count_itl"] == 6 and data["std_itl_ms"] == pytest.approx(0.0)
    assert data["failed"] == 1 and data["error_types"] == {"RateLimitError": 1}
    assert data["request_goodput"] is None


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
            "model_id": "deepseek-v3.2",
            "num_prompts": 2,
            "time_limit_s": None,
            "request_rate": math.inf,
            "burstiness": 1.0,
            "max_concurrency": 1,
            "num_warmups": 0,
            "goodput": {"ttft": 150.0},
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
            "sse": summarise("sse", records, 1.0, goodput={"ttft": 150.0}),
            "ws": summarise("ws", records, 1.0, goodput={"ttft": 150.0}),
        },
        records=records,
    )


def test_table_has_one_column_per_transport() -> None:
    text = _result().table()
    assert "bundled mock at http://127.0.0.1:1/v1" in text
    assert "mock controls: TTFT 100 ms, 50 tok/s, seed 3" in text
    assert "all at once · max concurrency 1" in text
    assert "goodput SLOs: ttft ≤ 150 ms" in text
    assert "requests meeting the SLOs" in text
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
    assert data["summary"]["sse"]["median_ttft_ms"] == pytest.approx(100.0)
    assert data["summary"]["sse"]["request_goodput"] == pytest.approx(1.0)
    assert data["summary"]["sse"]["timeline"][0]["completed"] == 1
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
    assert rows[0]["good"] == "True" and rows[1]["good"] == "False"
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


def test_progress_in_a_time_limited_run_counts_and_reports_at_close() -> None:
    out = _Terminal()
    bar = ProgressBar(out, min_interval_s=0.0)
    bar("sse", 0, None)
    bar("sse", 5, None)
    bar("ws", 0, None)  # the next transport ends the first one's line
    bar.close()
    lines = out.getvalue().split("\n")
    assert lines[0].endswith("sse 5 done · 0.0 s") and lines[1].startswith("\r ws 0 done")
    plain = io.StringIO()
    bar = ProgressBar(plain)
    bar("sse", 0, None)
    bar("sse", 7, None)
    bar.close()
    assert plain.getvalue().startswith("sse: 7 requests done in ")


def _timed(start: float, ttft: float, gaps: list[float], *, ok: bool = True) -> RequestRecord:
    e2e = ttft + sum(gaps)
    return RequestRecord(
        "sse",
        0,
        ok=ok,
        start_s=start,
        ttft_s=ttft,
        itl_s=gaps,
        e2e_s=e2e if ok else None,
        end_s=start + e2e,
        tokens=len(gaps) + 1,
        error=None if ok else "StreamInterrupted: gone",
    )


def test_goodput_counts_requests_meeting_every_slo() -> None:
    fast = _timed(0.0, 0.100, [0.020] * 3)  # TTFT 100, TPOT 20, E2E 160
    slow_start = _timed(0.0, 0.300, [0.020] * 3)  # TTFT 300, TPOT 20, E2E 360
    slow_tokens = _timed(0.0, 0.100, [0.080] * 3)  # TTFT 100, TPOT 80, E2E 340
    one_token = _timed(0.0, 0.100, [])  # no TPOT: counts as 0, like vLLM
    failed = _timed(0.0, 0.050, [0.010], ok=False)
    records = [fast, slow_start, slow_tokens, one_token, failed]
    assert [meets_slos(r, {"ttft": 200}) for r in records] == [True, False, True, True, False]
    assert [meets_slos(r, {"tpot": 50}) for r in records] == [True, True, False, True, False]
    assert [meets_slos(r, {"e2el": 200}) for r in records] == [True, False, False, True, False]
    both = {"ttft": 200, "tpot": 50}
    assert [meets_slos(r, both) for r in records] == [True, False, False, True, False]
    assert meets_slos(fast, {"ttft": 100}) is True  # the SLO is inclusive
    summary = summarise("sse", records, duration_s=2.0, goodput=both)
    assert summary.good_requests == 2
    assert summary.request_goodput == pytest.approx(1.0)
    assert summary.request_throughput == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("given", "parsed"),
    [
        (["ttft:500", "tpot:50"], {"ttft": 500.0, "tpot": 50.0}),
        (["e2e:3000"], {"e2el": 3000.0}),
        (["E2EL:2.5"], {"e2el": 2.5}),
        ({"ttft": 100}, {"ttft": 100.0}),
        ("tpot:0", {"tpot": 0.0}),
        (None, {}),
    ],
)
def test_parse_goodput(given, parsed) -> None:
    assert parse_goodput(given) == parsed


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (["ttft"], "must look like KEY:MS"),
        (["itl:20"], "goodput metric must be one of ttft, tpot, e2el"),
        (["ttft:fast"], "goodput ttft must be a number of milliseconds"),
        (["ttft:-1"], "must be a finite number of ms >= 0"),
        (["ttft:inf"], "must be a finite number of ms >= 0"),
    ],
)
def test_parse_goodput_says_what_to_fix(given, message) -> None:
    with pytest.raises(ValueError, match=message):
        parse_goodput(given)


def test_timeline_buckets_by_second() -> None:
    records = [
        _timed(0.2, 0.1, [0.2, 0.2]),  # 0.2 → 0.7; chunks at 0.3, 0.5, 0.7
        _timed(0.5, 0.6, [0.3, 0.3]),  # 0.5 → 1.7; chunks at 1.1, 1.4, 1.7
        _timed(1.2, 0.1, [0.1], ok=False),  # 1.2 → 1.4, failed
        _timed(1.9, 0.3, [0.1]),  # 1.9 → 2.3; chunks at 2.2, 2.3
    ]
    seconds = timeline(records)
    assert [s.second for s in seconds] == [0, 1, 2]
    assert [s.started for s in seconds] == [2, 2, 0]
    assert [s.completed for s in seconds] == [1, 1, 1]
    assert [s.errors for s in seconds] == [0, 1, 0]
    assert [s.output_tokens for s in seconds] == [3.0, 3.0, 2.0]  # failed request's chunk: none
    assert [s.peak_in_flight for s in seconds] == [2, 2, 1]
    # Second 0: 0.5 s + 0.5 s in flight; second 1: 0.7 + 0.2 + 0.1; second 2 (0.3 s long): 0.3.
    assert [s.in_flight for s in seconds] == pytest.approx([1.0, 1.0, 1.0])
    summary = summarise("sse", records, duration_s=2.3)
    assert summary.max_output_tokens_per_s == 3.0
    assert summary.max_concurrent_requests == 2
    assert sum(s.output_tokens for s in summary.timeline) == summary.total_output_tokens


def test_timeline_spreads_reported_tokens_over_chunks() -> None:
    record = _timed(0.0, 0.5, [0.8])  # two chunks: at 0.5 and 1.3
    record.tokens = 10  # the server's usage says 10 tokens came in those two chunks
    assert [s.output_tokens for s in timeline([record])] == [5.0, 5.0]
    assert timeline([]) == []


def test_a_request_ending_as_another_starts_is_not_counted_twice() -> None:
    first = _timed(0.0, 0.25, [0.25])  # 0.0 → 0.5
    second = _timed(0.5, 0.25, [0.25])  # 0.5 → 1.0
    assert [s.peak_in_flight for s in timeline([first, second])] == [1]
