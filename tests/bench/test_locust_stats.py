"""Locust CSV to holynb report (no Locust in this process: importing it monkey-patches)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from holynb.bench.locust_stats import LoadReport

HEADER = (
    '"Type","Name","Request Count","Failure Count","Median Response Time",'
    '"Average Response Time","Min Response Time","Max Response Time","Average Content Size",'
    '"Requests/s","Failures/s","50%","66%","75%","80%","90%","95%","98%","99%","99.9%",'
    '"99.99%","100%"'
)
ROWS = [
    '"SSE","e2e","12","2","700","712.5","650","900","61.5","2.0","0.333",'
    '"700","710","720","730","800","850","900","900","900","900","900"',
    '"SSE","ttft","10","0","52","53.25","50","70","0.0","1.67","0.0",'
    '"52","53","53","54","60","65","70","70","70","70","70"',
    '"SSE","itl","630","0","10","10.02","0","25","0.0","105.0","0.0",'
    '"10","10","11","11","12","13","15","18","25","25","25"',
    '"SSE","tpot","10","0","10","10.01","10","11","0.0","1.67","0.0",'
    '"10","10","10","10","10","11","11","11","11","11","11"',
    '"WS","ttft","0","0","0","0","0","0","0","0.0","0.0",'
    '"N/A","N/A","N/A","N/A","N/A","N/A","N/A","N/A","N/A","N/A","N/A"',
    '"GET","/health","5","0","3","3.1","2","5","2","0.8","0.0",'
    '"3","3","3","3","4","5","5","5","5","5","5"',
    '"","Aggregated","667","2","10","22.9","0","900","1.2","110","0.33",'
    '"10","10","11","11","12","13","52","700","900","900","900"',
]
FAILURES = (
    '"Method","Name","Error","Occurrences","First Seen","Last Seen"\n'
    '"SSE","e2e","APIStatusError(\'The server answered 500\')","2","",""\n'
    '"GET","/health","ConnectionRefused","1","",""\n'
)


@pytest.fixture
def prefix(tmp_path):
    (tmp_path / "run_stats.csv").write_text("\n".join([HEADER, *ROWS]) + "\n")
    (tmp_path / "run_failures.csv").write_text(FAILURES)
    return tmp_path / "run"


def test_reads_holyuser_entries_only(prefix) -> None:
    report = LoadReport.from_csv(f"{prefix}_stats.csv")
    assert list(report.metrics) == ["SSE", "WS"]
    assert list(report.metrics["SSE"]) == ["ttft", "itl", "tpot", "e2e"]  # metric order
    e2e = report.metrics["SSE"]["e2e"]
    assert (e2e.count, e2e.failures, e2e.avg_size) == (12, 2, 61.5)
    assert (e2e.mean, e2e.p50, e2e.p90, e2e.p95, e2e.p99, e2e.max) == (
        712.5, 700, 800, 850, 900, 900,
    )  # fmt: skip
    assert report.streams("SSE") == (10, 2)
    assert report.streams("WS") == (0, 0)
    empty = report.metrics["WS"]["ttft"]
    assert empty.count == 0 and empty.p50 is None and empty.mean == 0.0
    assert report.errors == [
        {
            "request_type": "SSE",
            "name": "e2e",
            "error": "APIStatusError('The server answered 500')",
            "count": 2,
        }
    ]
    assert LoadReport.from_csv(prefix).to_dict() == report.to_dict()  # the --csv prefix works


def test_table_has_a_column_per_transport(prefix) -> None:
    table = LoadReport.from_csv(prefix).table()
    lines = table.splitlines()
    assert lines[0].startswith("holynb report of a Locust run")
    header = next(line for line in lines if line.strip().startswith("SSE"))
    assert header.split() == ["SSE", "WS"]

    def row(label: str) -> list[str]:
        line = next(line for line in lines if line.startswith(label))
        return line[len(label) :].split()

    assert row("streams ok / failed") == ["10", "/", "2", "0", "/", "0"]
    assert row("output throughput (tok/s)") == ["123.0", "-"]  # 61.5 tokens × 2.0 streams/s
    assert row("TTFT p50 (ms)") == ["52.00", "-"]
    assert row("ITL p99 (ms)") == ["18.00", "-"]
    assert row("E2E mean (ms)") == ["712.50", "-"]
    assert lines[-1] == "2 × SSE e2e: APIStatusError('The server answered 500')"


def test_report_command_prints_the_table_and_json(prefix) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "holynb.loadtest", "report", f"{prefix}_stats.csv", "--json", "-"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["metrics"]["SSE"]["e2e"]["failures"] == 2
    assert "TTFT p50 (ms)" in proc.stderr


def test_a_file_that_is_not_locust_stats_is_one_line(tmp_path) -> None:
    bad = tmp_path / "bench_stats.csv"
    bad.write_text("transport,index,ok\nsse,0,True\n")
    for path, message in (
        (bad, "is not a Locust stats CSV (written by --csv PREFIX)"),
        (tmp_path / "missing", "No such file or directory"),
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "holynb.loadtest", "report", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2
        assert proc.stderr.startswith("holynb.loadtest: error: ") and message in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
