"""``python -m mockserver`` / ``holynb-mock``: prints its URL, drains on SIGTERM, exits 0."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from mockutil import AUTH, chat, raw_request


def start(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mockserver", "--port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    return proc, url


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_prints_url_serves_and_drains_on_signal(sig: signal.Signals) -> None:
    proc, url = start("--ttft-ms", "0", "--tps", "40", "--seed", "1")
    try:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        assert httpx.get(f"{url}/models", headers=AUTH).status_code == 200
        result = {}

        def stream() -> None:
            result["r"] = raw_request(url, "/v1/chat/completions",
                                      chat(stream=True, max_tokens=12))

        t = threading.Thread(target=stream)
        t.start()
        # Wait until the stream is running, then ask the server to stop.
        for _ in range(200):
            if httpx.get(url.removesuffix("/v1") + "/_mock/journal").json():
                break
        proc.send_signal(sig)
        t.join(10)
        assert proc.wait(10) == 0
        r = result["r"]
        assert r.complete and r.events()[-1] == "[DONE]" and len(r.events()) == 13
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()


def test_bad_flags_exit_2_with_one_line_error() -> None:
    proc = subprocess.run([sys.executable, "-m", "mockserver", "--port", "0", "--fault", "zap"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "unknown fault 'zap'" in proc.stderr


def test_console_script_is_installed() -> None:
    exe = shutil.which("holynb-mock", path=str(Path(sys.executable).parent))
    assert exe is not None
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    for flag in ("--host", "--port", "--cassettes", "--ttft-ms", "--tps", "--jitter-ms",
                 "--jitter", "--seed", "--speed", "--fault", "--keys", "--idle-timeout",
                 "--strict", "--record-upstream", "--record-dir", "--rate-limit"):
        assert flag in out.stdout
