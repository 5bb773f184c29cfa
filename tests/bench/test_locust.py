"""HolyUser under real Locust: a headless master and two worker processes against the mock.

Locust monkey-patches the process that imports it, so it only ever runs in subprocesses here:
the mock (``python -m mockserver``), the master and the workers (``python -m locust``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from holynb.bench.locust_stats import LoadReport
from mockserver import MOCK_KEY

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TTFT_MS = 50
STREAMS_PER_USER = 5

# Each user streams a fixed number of times, then idles: the run ends with nothing in flight, so
# every stream the mock completed has been reported to the master. (A user that stopped instead
# would be started again: a worker tops its users up at every spawn message from the master.)
# The run time leaves a wide margin: on a busy machine Locust's run-time timer can fire a second
# or two early (gevent's clock is stale after a slow start-up), and the users must be done by then.
LOCUSTFILE = textwrap.dedent(
    f"""
    import gevent
    from locust import constant, task

    from holynb.loadtest import HolyUser


    class Bounded(HolyUser):
        abstract = True
        fixed_count = 2
        wait_time = constant(0)
        max_tokens = 8

        def on_start(self):
            super().on_start()
            self.left = {STREAMS_PER_USER}

        @task
        def chat(self):
            if self.left:
                self.left -= 1
                self.stream()
            else:
                gevent.sleep(0.2)


    class SSEUser(Bounded):
        transport = "sse"


    class WSUser(Bounded):
        transport = "ws"
    """
)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOLYSHEEP_", "HOLYNB_"))}
    env["HOLYSHEEP_API_KEY"] = MOCK_KEY
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_mock(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mockserver", "--port", "0", "--ttft-ms", str(TTFT_MS),
         "--tps", "200", "--seed", "1", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=_env(),
    )  # fmt: skip
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    assert proc.stdout is not None
    proc.stdout.close()


@pytest.fixture
def mock() -> Iterator[str]:
    proc, url = _start_mock()
    try:
        yield url
    finally:
        _stop(proc)


@pytest.fixture
def faulty_mock() -> Iterator[str]:
    proc, url = _start_mock("--fault", "status:code=500,p=0.4")
    try:
        yield url
    finally:
        _stop(proc)


def _journal(base_url: str) -> list[dict]:
    root = base_url.removesuffix("/v1")
    return httpx.get(f"{root}/_mock/journal", timeout=10).json()


def _run_distributed(
    tmp_path: Path, host: str, *, workers: int = 2
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """A headless master (--expect-workers) and worker processes; bounded at 30 s each."""
    locustfile = tmp_path / "locustfile.py"
    locustfile.write_text(LOCUSTFILE)
    port = _free_port()
    prefix = tmp_path / "run"
    base = [sys.executable, "-m", "locust", "-f", str(locustfile)]
    master = subprocess.Popen(
        [*base, "--master", "--headless", "--expect-workers", str(workers),
         "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
         "-u", "4", "-r", "100", "--run-time", "10s", "--host", host, "--csv", str(prefix)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=_env(),
    )  # fmt: skip
    worker_procs = [
        subprocess.Popen(
            [*base, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            env=_env(),
        )
        for _ in range(workers)
    ]
    try:
        out, err = master.communicate(timeout=30)
        for worker in worker_procs:
            _, worker_err = worker.communicate(timeout=15)
            assert "Traceback" not in worker_err, worker_err
    finally:
        for proc in (master, *worker_procs):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return subprocess.CompletedProcess(master.args, master.returncode, out, err), prefix


def _run_one_process(
    tmp_path: Path, locustfile: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """Locust headless in a single process (bounded at 30 s)."""
    return subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(),
        timeout=30,
    )


def test_master_and_two_workers_count_every_stream_the_mock_completed(mock, tmp_path) -> None:
    result, prefix = _run_distributed(tmp_path, mock)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 workers connected" in result.stderr or "All users spawned" in result.stderr
    report = LoadReport.from_csv(f"{prefix}_stats.csv")
    journal = _journal(mock)
    completed = Counter(r["transport"] for r in journal if r["outcome"] == "completed")
    assert completed == {"sse": 2 * STREAMS_PER_USER, "ws": 2 * STREAMS_PER_USER}
    assert len(journal) == sum(completed.values())  # nothing failed or was cut off
    for kind, transport in (("SSE", "sse"), ("WS", "ws")):
        assert report.streams(kind) == (completed[transport], 0)
        metrics = report.metrics[kind]
        assert metrics["ttft"].count == completed[transport]
        assert abs(metrics["ttft"].p50 - TTFT_MS) <= 30
        assert metrics["tpot"].count == completed[transport]
        assert metrics["itl"].count == 7 * completed[transport]  # 8 tokens: 7 gaps per stream
        assert metrics["e2e"].avg_size == 8  # output tokens per stream
    assert report.errors == []
    # The master printed holynb's report (from its live stats) after Locust's own tables.
    assert "holynb report of a Locust run" in result.stdout
    assert "streams ok / failed" in result.stdout
    # ... and the same report comes back from the CSV on the command line, also as JSON.
    cli = subprocess.run(
        [sys.executable, "-m", "holynb.loadtest", "report", str(prefix), "--json", "-"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout) == report.to_dict()
    assert "TTFT p50 (ms)" in cli.stderr


def test_failed_streams_are_counted_as_e2e_failures(faulty_mock, tmp_path) -> None:
    # localhost, not 127.0.0.1: the workers resolve the name on the loop's native threads.
    host = faulty_mock.replace("127.0.0.1", "localhost")
    result, prefix = _run_distributed(tmp_path, host)
    assert result.returncode == 1  # Locust's exit code when requests failed
    report = LoadReport.from_csv(f"{prefix}_stats.csv")
    journal = _journal(faulty_mock)
    outcomes = Counter((r["transport"], r["outcome"]) for r in journal)
    assert {outcome for _, outcome in outcomes} == {"completed", "fault:status"}
    for kind, transport in (("SSE", "sse"), ("WS", "ws")):
        assert report.streams(kind) == (
            outcomes[(transport, "completed")],
            outcomes[(transport, "fault:status")],
        )
        # A stream refused before its first token has no TTFT.
        assert report.metrics[kind]["ttft"].count == outcomes[(transport, "completed")]
    assert (
        sum(e["count"] for e in report.errors)
        == outcomes[("sse", "fault:status")] + outcomes[("ws", "fault:status")]
    )
    assert all(e["name"] == "e2e" and "500" in e["error"] for e in report.errors)
    assert "APIStatusError" in result.stdout  # in holynb's report, under the table


def test_the_example_locustfile_runs_in_one_process(mock, tmp_path) -> None:
    prefix = tmp_path / "example"
    result = _run_one_process(
        tmp_path, ROOT / "examples" / "locustfile.py", "-u", "4", "-r", "4", "--run-time", "8s",
        "--host", mock, "--csv", str(prefix), "--stop-timeout", "2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = LoadReport.from_csv(prefix)
    assert set(report.metrics) == {"SSE", "WS"}
    for kind in ("SSE", "WS"):
        ok, failed = report.streams(kind)
        assert ok > 0 and failed == 0
        assert set(report.metrics[kind]) == {"ttft", "itl", "tpot", "e2e"}
    assert "Unclosed" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("settings", "host", "message"),
    [
        ("", None, "holynb: no host: pass the API base URL with --host"),
        ('transport = "grpc"', "http://127.0.0.1:9/v1", "transport must be 'sse' or 'ws'"),
        # api passes straight through to the client, which names the APIs it speaks.
        ('api = "gemini"', "http://127.0.0.1:9/v1", "Unknown API 'gemini'"),
    ],
)
def test_a_bad_setting_is_one_line_and_exit_code_2(tmp_path, settings, host, message) -> None:
    locustfile = tmp_path / "locustfile.py"
    header = "from holynb.loadtest import HolyUser\n\nclass Chat(HolyUser):\n"
    locustfile.write_text(f"{header}    {settings or 'pass'}\n")
    result = _run_one_process(
        tmp_path, locustfile, "-u", "3", "-r", "3", "--run-time", "5s",
        *(["--host", host] if host else []),
    )  # fmt: skip
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.stderr
