"""The ``holynb`` command line, run as a real process against the real mock server."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

SECRET = "sk-test-0123456789SECRET-abcdef"
# The one stats line of every face (holynb._stats.stats_line).
STATS = (
    r"TTFT \d+ ms · \d+ tokens(?: \(\+\d+ prompt\))? · [\d.]+ tok/s · total [\d.]+ s · \$\d+\.\d{6}"
)
MODELS = ["gpt-4.1", "claude-sonnet-4.5", "gemini-2.5-flash", "deepseek-v3.2"]


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment without any holynb settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOLYSHEEP_", "HOLYNB_"))}
    env["PYTHONIOENCODING"] = "utf-8"
    env.update(extra)
    return env


def holynb(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m holynb ARGS`` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "holynb", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=clean_env() if env is None else env,
        input=stdin,
        timeout=timeout,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit 1, one ``holynb: error:`` line on stderr, no traceback, no key anywhere."""
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("holynb: error: ")
    for needle in needles:
        assert needle in lines[0]
    assert SECRET not in result.stdout + result.stderr
    return lines[0]


def mock_env(**extra: str) -> dict[str, str]:
    return clean_env(HOLYSHEEP_API_KEY="sk-holynb-mock", **extra)


# --- demo ------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["sse", "ws"])
def test_demo_streams_a_reply_and_a_stats_line(transport: str) -> None:
    result = holynb("demo", "--transport", transport, timeout=90)
    assert result.returncode == 0, result.stderr
    # The default prompt replays the bundled long Markdown cassette (a generated reply would be
    # a few hundred characters).
    assert len(result.stdout) > 2000
    assert "Traceback" not in result.stderr
    stats = result.stderr.strip().splitlines()[-1]
    assert stats.startswith("deepseek-v3.2 · " + transport.upper() + " · ")
    assert re.search(STATS, stats), stats


def test_demo_with_own_prompt_and_model() -> None:
    result = holynb("demo", "-m", "gemini-2.5-flash", "Say hello", timeout=90)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert result.stderr.strip().splitlines()[-1].startswith("gemini-2.5-flash · SSE · ")


# --- chat ------------------------------------------------------------------------------------


def test_chat_streams_from_the_given_base_url(holy_mock: Any) -> None:
    result = holynb(
        "chat",
        "--base-url",
        holy_mock.url,
        "-m",
        "gpt-4.1",
        "--max-tokens",
        "7",
        "-s",
        "Be brief.",
        "-t",
        "0.2",
        "Hello there",
        env=mock_env(),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert result.stdout.endswith("\n")
    stats = result.stderr.strip()
    assert re.fullmatch("gpt-4.1 · SSE · " + STATS, stats), stats
    assert " 7 tokens " in stats
    (record,) = [r for r in holy_mock.journal() if r["path"].endswith("/chat/completions")]
    assert record["model"] == "gpt-4.1"
    assert record["outcome"] == "completed"


def test_chat_over_websocket_gives_the_same_text(holy_mock: Any) -> None:
    args = ("chat", "--base-url", holy_mock.url, "--max-tokens", "12", "--no-stats", "Same?")
    over_sse = holynb(*args, "--transport", "sse", env=mock_env())
    over_ws = holynb(*args, "--transport", "ws", env=mock_env())
    assert over_sse.returncode == over_ws.returncode == 0, over_sse.stderr + over_ws.stderr
    assert over_sse.stdout == over_ws.stdout
    assert over_sse.stderr == over_ws.stderr == ""


def test_chat_reads_the_prompt_from_stdin(holy_mock: Any) -> None:
    result = holynb(
        "chat", "--base-url", holy_mock.url, "--no-stats", "-", env=mock_env(), stdin="Piped in"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert result.stderr == ""


def test_chat_with_the_bundled_mock_needs_no_key() -> None:
    result = holynb("chat", "--mock", "--max-tokens", "5", "Hi", timeout=90)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert " 5 tokens " in result.stderr


def spawn_chat(base_url: str, max_tokens: str, prompt: str) -> subprocess.Popen[bytes]:
    """Start ``holynb chat`` against ``base_url`` with piped output, to watch it while it runs."""
    return subprocess.Popen(
        [sys.executable, "-m", "holynb", "chat", "--base-url", base_url, "--max-tokens", max_tokens,
         prompt],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=mock_env(),
    )


def test_chat_output_is_live(holy_mock_factory: Any) -> None:
    # At 20 tokens/s a 60-token reply takes 3 s: its first text must arrive long before the end.
    mock = holy_mock_factory(ttft_ms=0, tps=20)
    proc = spawn_chat(mock.url, "60", "Go slowly")
    try:
        assert proc.stdout is not None
        first = os.read(proc.stdout.fileno(), 65536)
        assert first
        assert proc.poll() is None  # still streaming
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err
    assert len(first) < len(first + out)


def test_ctrl_c_keeps_partial_text_and_exits_130(holy_mock_factory: Any) -> None:
    mock = holy_mock_factory(ttft_ms=0, tps=20)
    proc = spawn_chat(mock.url, "400", "Talk for a while")
    try:
        assert proc.stdout is not None
        first = os.read(proc.stdout.fileno(), 65536)
        assert first
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, err
    assert (first + out).strip()
    assert b"Traceback" not in err
    assert err.decode().strip().splitlines()[-1] == "holynb: interrupted"
    # The upstream stream was closed, not left running.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        outcomes = [r["outcome"] for r in mock.journal() if r["path"].endswith("/completions")]
        if outcomes and outcomes[-1] not in ("completed", "in_progress"):
            break
        time.sleep(0.05)
    assert outcomes == ["client_disconnected"]


# --- errors ----------------------------------------------------------------------------------


def test_missing_key_is_one_clear_line() -> None:
    result = holynb("chat", "--base-url", "http://127.0.0.1:9/v1", "Hi")
    assert_one_line_error(result, "HOLYSHEEP_API_KEY")


def test_placeholder_key_is_refused() -> None:
    result = holynb("chat", "Hi", env=clean_env(HOLYSHEEP_API_KEY="YOUR_HOLYSHEEP_API_KEY"))
    assert_one_line_error(result, "placeholder", "HOLYSHEEP_API_KEY")


def test_refused_key_is_a_clean_error_and_never_printed(holy_mock_factory: Any) -> None:
    mock = holy_mock_factory(fault="status:code=401")
    result = holynb("chat", "--base-url", mock.url, "Hi", env=clean_env(HOLYSHEEP_API_KEY=SECRET))
    line = assert_one_line_error(result)
    assert "401" in line or "key" in line.lower()
    assert SECRET[-8:] not in result.stderr


def test_unknown_model_is_a_clean_error(holy_mock: Any) -> None:
    result = holynb(
        "chat",
        "--base-url",
        holy_mock.url,
        "-m",
        "no-such-model",
        "Hi",
        env=clean_env(HOLYSHEEP_API_KEY=SECRET),
    )
    assert_one_line_error(result, "no-such-model")


def test_failure_mid_stream_keeps_the_partial_text(holy_mock_factory: Any) -> None:
    mock = holy_mock_factory(fault="disconnect:after=5")
    result = holynb(
        "chat",
        "--base-url",
        mock.url,
        "--max-tokens",
        "40",
        "Hi",
        env=clean_env(HOLYSHEEP_API_KEY=SECRET),
    )
    assert_one_line_error(result)
    assert result.stdout.strip()  # the five chunks that arrived are still there
    assert result.stdout.endswith("\n")


def test_unreachable_server_is_a_clean_error() -> None:
    result = holynb(
        "models",
        "--base-url",
        "http://127.0.0.1:9/v1",
        env=clean_env(HOLYSHEEP_API_KEY=SECRET),
        timeout=90,
    )
    assert_one_line_error(result)


def test_empty_prompt_is_refused() -> None:
    result = holynb("chat", "--mock", "-", stdin="  \n")
    assert_one_line_error(result, "prompt is empty")


def test_bad_option_value_is_a_usage_error() -> None:
    result = holynb("chat", "--max-tokens", "0", "Hi")
    assert result.returncode == 2
    assert "--max-tokens: must be at least 1" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_command_prints_help() -> None:
    result = holynb()
    assert result.returncode == 2
    assert "usage: holynb" in result.stderr
    for command in ("demo", "chat", "models", "bench"):
        assert command in result.stderr


# --- models and bench ------------------------------------------------------------------------


def test_models_lists_the_four_models(holy_mock: Any) -> None:
    result = holynb("models", "--base-url", holy_mock.url, env=mock_env())
    assert result.returncode == 0, result.stderr
    assert set(MODELS) <= set(result.stdout.split())
    assert all(line.strip() == line and line for line in result.stdout.splitlines())


def test_models_from_the_bundled_mock() -> None:
    result = holynb("models", "--mock")
    assert result.returncode == 0, result.stderr
    assert set(MODELS) <= set(result.stdout.split())


def test_bench_is_delegated(holy_mock: Any) -> None:
    result = holynb(
        "bench",
        "--base-url",
        holy_mock.url,
        "--requests",
        "2",
        "--concurrency",
        "1",
        "--max-tokens",
        "4",
        "--no-progress",
        "--json",
        "-",
        env=mock_env(),
        timeout=90,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert json.loads(result.stdout)


def test_bench_help_comes_from_the_bench_module() -> None:
    result = holynb("bench", "--help")
    assert result.returncode == 0
    assert "usage: holynb bench" in result.stdout
    assert "--concurrency" in result.stdout


def test_cli_module_is_import_light() -> None:
    code = (
        "import sys, holynb._cli; "
        "heavy = {'httpx', 'aiohttp', 'IPython', 'mockserver'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
