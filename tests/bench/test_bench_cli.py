"""``python -m holynb bench`` in a subprocess, against the real mock server."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import pytest

from holynb._cli import build_parser
from mockserver import MOCK_KEY


def _bench(*args: str, key: str | None = MOCK_KEY) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOLYSHEEP_", "HOLYNB_"))}
    if key is not None:
        env["HOLYSHEEP_API_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "holynb", "bench", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_json_to_stdout_moves_the_table_to_stderr(holy_mock) -> None:
    proc = _bench(
        "--base-url", holy_mock.url, "--transport", "both", "--requests", "4",
        "--concurrency", "2", "--max-tokens", "3", "--seed", "5", "--json", "-",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["config"]["seed"] == 5 and data["config"]["bundled_mock"] is False
    for transport in ("sse", "ws"):
        summary = data["summary"][transport]
        assert (summary["completed"], summary["failed"]) == (4, 0)
        assert summary["total_output_tokens"] == 12
        assert summary["median_ttft_ms"] > 0 and summary["p99_itl_ms"] > 0
        assert summary["request_throughput"] > 0 and summary["output_throughput"] > 0
    assert len(data["requests"]) == 8
    assert "TTFT p50 (ms)" in proc.stderr
    assert "sse: 4/4 requests done" in proc.stderr  # not a terminal: one line per transport
    assert MOCK_KEY not in proc.stdout + proc.stderr


def test_csv_file_and_table_on_stdout(holy_mock, tmp_path) -> None:
    out = tmp_path / "bench.csv"
    proc = _bench(
        "--base-url", holy_mock.url, "--requests", "3", "--max-tokens", "2",
        "--csv", str(out), "--no-progress",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("holynb bench · model deepseek-v3.2 · 3 requests")
    assert f"wrote {out}" in proc.stdout
    assert proc.stderr == ""
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [(r["transport"], r["index"], r["ok"]) for r in rows] == [
        ("sse", "0", "True"),
        ("sse", "1", "True"),
        ("sse", "2", "True"),
    ]
    assert all(float(r["ttft_ms"]) > 0 and r["tokens"] == "2" for r in rows)


def test_failed_requests_exit_1_with_the_report(holy_mock) -> None:
    proc = _bench(
        "--base-url", holy_mock.url, "--transport", "ws", "--requests", "3",
        "--max-tokens", "2", "--mock-fault", "status:code=503", "--no-progress",
    )  # fmt: skip
    assert proc.returncode == 1
    assert "requests ok / failed" in proc.stdout
    assert "errors: APIStatusError" in proc.stdout


def test_without_base_url_the_bundled_mock_is_used() -> None:
    proc = _bench(
        "--requests", "2", "--max-tokens", "2", "--mock-ttft-ms", "0", "--mock-tps", "0",
        "--no-progress", key=None,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "no --base-url given: benchmarking the bundled mock server" in proc.stdout
    assert "endpoint: bundled mock at http://127.0.0.1:" in proc.stdout
    assert "mock controls: TTFT 0 ms, 0 tok/s" in proc.stdout


def test_bad_input_is_one_clear_line() -> None:
    proc = _bench("--requests", "0")
    assert proc.returncode == 2
    assert "--requests: must be at least 1, got 0" in proc.stderr
    assert "Traceback" not in proc.stderr

    proc = _bench("--base-url", "http://127.0.0.1:9/v1", "--requests", "1", key=None)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("holynb bench: error: No API key")


def test_open_loop_run_with_goodput_and_timeline(holy_mock) -> None:
    proc = _bench(
        "--base-url", holy_mock.url, "--request-rate", "25", "--burstiness", "0.5",
        "--duration", "1", "--max-concurrency", "8", "--warmup", "2", "--max-tokens", "3",
        "--seed", "9", "--goodput", "ttft:10000", "tpot:10000", "e2e:10000",
        "--timeline", "--json", "-", "--no-progress",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    config = data["config"]
    assert config["request_rate"] == 25 and config["burstiness"] == 0.5
    assert config["max_concurrency"] == 8 and config["num_warmups"] == 2
    assert config["time_limit_s"] == 1 and config["num_prompts"] is None
    assert config["goodput"] == {"ttft": 10000, "tpot": 10000, "e2el": 10000}
    summary = data["summary"]["sse"]
    assert summary["completed"] == len(data["requests"]) > 0
    assert summary["request_goodput"] == summary["request_throughput"]
    assert summary["good_requests"] == summary["completed"]
    assert sum(s["started"] for s in summary["timeline"]) == summary["completed"]
    assert len(holy_mock.journal()) == summary["completed"] + 2  # the warm-up went out too
    assert "gamma, burstiness 0.5" in proc.stderr
    assert "requests meeting the SLOs" in proc.stderr
    assert "sse timeline" in proc.stderr and "output tok/s" in proc.stderr


def test_concurrency_is_the_max_concurrency(holy_mock) -> None:
    proc = _bench(
        "--base-url", holy_mock.url, "--requests", "4", "--concurrency", "2",
        "--max-tokens", "2", "--json", "-", "--no-progress",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["config"]["max_concurrency"] == 2
    assert data["summary"]["sse"]["max_concurrent_requests"] <= 2


def test_bad_load_options_are_one_clear_line() -> None:
    cases = [
        (("--requests", "3", "--duration", "2"), "not allowed with argument --requests"),
        (("--request-rate", "0"), "--request-rate: must be a number greater than 0, got 0"),
        (("--duration", "inf"), "--duration: must be a number greater than 0, got inf"),
        (("--goodput", "ttft"), "--goodput: goodput SLO 'ttft' must look like KEY:MS"),
        (("--goodput", "itl:3"), "goodput metric must be one of ttft, tpot, e2el"),
        (("--duration", "2"), "--duration at --request-rate inf needs --max-concurrency N"),
        (
            ("--api", "chat,gemini"),
            "argument --api: invalid choice: 'gemini' (choose from chat, responses, messages, "
            "a comma list of them, or all)",
        ),
        (
            ("--api", "messages", "--transport", "ws"),
            "holynb bench: error: The Anthropic Messages API has no WebSocket mode — use "
            "--transport sse",
        ),
    ]
    for args, message in cases:
        proc = _bench(*args, "--no-progress")
        assert proc.returncode == 2, args
        assert message in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_every_api_side_by_side(holy_mock) -> None:
    proc = _bench(
        "--base-url", holy_mock.url, "--api", "all", "--transport", "both", "--requests", "2",
        "--max-tokens", "16", "--json", "-",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    wires = ["chat/sse", "chat/ws", "responses/sse", "responses/ws", "messages/sse"]
    data = json.loads(proc.stdout)
    assert list(data["summary"]) == wires
    assert all(data["summary"][w]["completed"] == 2 for w in wires)
    assert data["config"]["apis"] == ["chat", "responses", "messages"]
    assert list(data["config"]["skipped_wires"]) == ["messages/ws"]
    assert {r["api"] for r in data["requests"]} == {"chat", "responses", "messages"}
    lines = proc.stderr.splitlines()
    assert lines[0] == (
        "holynb bench: note: skipping messages/ws: The Anthropic Messages API has no WebSocket mode"
    )
    for wire in wires:  # not a terminal: one progress line per wire
        assert any(line.startswith(f"{wire}: 2/2 requests done") for line in lines), wire
    assert {r["path"] for r in holy_mock.journal()} == {
        "/v1/chat/completions", "/v1/ws/chat", "/v1/responses", "/v1/messages"
    }  # fmt: skip


def test_a_comma_list_of_apis_to_csv(holy_mock) -> None:
    proc = _bench(
        "--base-url", holy_mock.url, "--api", "chat,responses", "--requests", "2",
        "--max-tokens", "16", "--csv", "-", "--no-progress",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert [(r["api"], r["transport"], r["ok"]) for r in rows] == (
        [("chat", "sse", "True")] * 2 + [("responses", "sse", "True")] * 2
    )
    assert "chat/sse" in proc.stderr and "responses/sse" in proc.stderr  # the table's columns


def test_api_lists_are_for_bench_only(capsys) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["chat", "hi", "--api", "chat,responses"])
    assert "argument --api: invalid choice: 'chat,responses'" in capsys.readouterr().err
    args = build_parser().parse_args(["models", "--api", "messages"])
    assert args.api == "messages"
