"""``--workers 2``: real worker processes behind one loopback port, one truthful control API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from mockutil import AUTH, chat, raw_request, wait_for

from mockserver import MockServer

ROOT = Path(__file__).resolve().parents[2]


def post(url: str, body: dict, **headers: str) -> httpx.Response:
    # A fresh connection per request, so the kernel may pick either worker.
    with httpx.Client(headers={**AUTH, **headers}) as http:
        return http.post(f"{url}/chat/completions", json=body)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_two_workers_serve_one_journal_reset_and_drain_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mockserver", "--port", "0", "--workers", "2", "--no-cassettes",
         "--ttft-ms", "0", "--tps", "0", "--drain-timeout", "10"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        base = url.removesuffix("/v1")

        def both_served() -> set[int]:
            assert post(url, chat("who", max_tokens=2)).status_code == 200
            workers = {r["worker"] for r in httpx.get(f"{base}/_mock/journal").json()}
            return workers if len(workers) == 2 else set()

        workers = wait_for(both_served, timeout=20)
        assert proc.pid not in workers  # the supervisor serves nothing itself
        # Every request to any worker sees every worker's records (each worker flushes its own
        # within ~50 ms), in one id order.
        def same_everywhere() -> list[dict]:
            pages = [httpx.get(f"{base}/_mock/journal").json() for _ in range(6)]
            return pages[0] if all(page == pages[0] for page in pages) else []

        records = wait_for(same_everywhere, timeout=5)
        assert {r["worker"] for r in records} == workers
        ids = [r["id"] for r in records]
        assert ids == sorted(set(ids))
        assert httpx.post(f"{base}/_mock/reset").json() == {"ok": True}
        wait_for(lambda: all(httpx.get(f"{base}/_mock/journal").json() == [] for _ in range(6)),
                 timeout=5)
        time.sleep(0.2)  # a worker's next flush must not bring its old records back
        assert all(httpx.get(f"{base}/_mock/journal").json() == [] for _ in range(6))

        # A stream in flight when SIGTERM arrives still ends with [DONE]; then all exit.
        result: dict = {}
        slow = {"X-Mock-TPS": "20"}
        thread = threading.Thread(target=lambda: result.update(r=raw_request(
            url, "/v1/chat/completions", chat("drain", stream=True, max_tokens=20),
            headers=slow, timeout=15)))
        thread.start()
        wait_for(lambda: any(r["outcome"] == "in_progress" and r["chunks_sent"]
                             for r in httpx.get(f"{base}/_mock/journal").json()), timeout=5)
        proc.send_signal(signal.SIGTERM)
        thread.join(15)
        assert result["r"].complete and result["r"].events()[-1] == "[DONE]"
        assert proc.wait(15) == 0
        assert not [pid for pid in workers if _alive(pid)]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


@pytest.mark.slow
def test_the_rate_limit_is_one_bucket_per_key_across_workers() -> None:
    with MockServer(workers=2, rate_limit="3/min", ttft_ms=0, tps=0) as mock:
        codes = [post(mock.url, chat(str(i), max_tokens=1)).status_code for i in range(5)]
        assert codes == [200, 200, 200, 429, 429]
        records = wait_for(lambda: len(mock.journal()) == 5 and mock.journal(), timeout=5)
        assert [r["status"] for r in records] == codes
        assert post(mock.url, chat("x"), Authorization="Bearer sk-other-key-0001").status_code \
            == 200
        mock.reset()
        assert post(mock.url, chat("again", max_tokens=1)).status_code == 200
        wait_for(lambda: len(mock.journal()) == 1, timeout=5)
        time.sleep(0.2)
        assert len(mock.journal()) == 1


@pytest.mark.slow
def test_seeded_draws_count_repeats_across_workers() -> None:
    with MockServer(workers=2, seed=5, fault="status:code=503,p=0.5", ttft_ms=0, tps=0) as one:
        first = [post(one.url, chat("same", max_tokens=1)).status_code for _ in range(12)]
    with MockServer(seed=5, fault="status:code=503,p=0.5", ttft_ms=0, tps=0) as single:
        again = [post(single.url, chat("same", max_tokens=1)).status_code for _ in range(12)]
    assert first == again  # the n-th repeat draws the same, whichever worker serves it


def test_an_in_progress_record_of_another_worker_shows_its_frames() -> None:
    with MockServer(workers=2, ttft_ms=0, tps=20) as mock:
        thread = threading.Thread(target=raw_request, args=(
            mock.url, "/v1/chat/completions", chat("long", stream=True, max_tokens=30)))
        thread.start()
        try:
            rec = wait_for(lambda: next((r for r in mock.journal()
                                         if r["outcome"] == "in_progress"
                                         and r["chunks_sent"] >= 3), None), timeout=5)
            assert rec["worker"] != os.getpid() and rec["ended"] is None
        finally:
            thread.join(10)
        done = wait_for(lambda: mock.journal()[-1]["ended"] and mock.journal()[-1], timeout=5)
        assert (done["outcome"], done["chunks_sent"]) == ("completed", 31)


def respond(url: str, body: dict, **headers: str) -> httpx.Response:
    with httpx.Client(headers={**AUTH, **headers}) as http:  # a fresh connection: any worker
        return http.post(f"{url}/responses", json={"model": "gpt-4.1", **body})


def parallel(fn, n: int) -> dict[int, object]:
    """``fn(i)`` for i < n, each in its own thread, all started at once."""
    results: dict[int, object] = {}
    threads = [threading.Thread(target=lambda i=i: results.setdefault(i, fn(i)))
               for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


@pytest.mark.slow
def test_a_stored_response_continues_on_either_worker_once_its_first_event_is_out() -> None:
    """The conversation of a Responses reply reaches the shared store before its first event
    (which names it) goes out — written with the other replies of the same pacer turn — so a
    client may continue it on any worker at once: mid-stream, and after many concurrent
    replies."""
    with MockServer(workers=2, ttft_ms=0, tps=0) as mock:

        def first_event_then_continue(round_: int) -> bool:
            slow = raw_request(mock.url, "/v1/responses",
                               {"model": "gpt-4.1", "input": f"first {round_}", "stream": True},
                               headers={"X-Mock-TPS": "2", "X-Mock-Tokens": "40"}, stop_after=1)
            assert slow.body.startswith(b"event: response.created\n")
            data = slow.body.split(b"\ndata: ", 1)[1].split(b"\n", 1)[0]
            first_id = json.loads(data)["response"]["id"]
            codes = parallel(lambda i: raw_request(mock.url, "/v1/responses", {
                "model": "gpt-4.1", "input": f"next {round_}",
                "previous_response_id": first_id}).status, 8)
            assert codes == {i: 200 for i in range(8)}
            records = wait_for(lambda: [r for r in mock.journal() if r["ended"] and str(
                round_) in r["request"]["input"]] if len(mock.journal()) >= 9 * (round_ + 1)
                else None, timeout=5)
            return len({r["worker"] for r in records}) == 2  # one continued on the other

        assert any(first_event_then_continue(round_) for round_ in range(5))

        def turn(i: int) -> tuple[int, int]:
            first = respond(mock.url, {"input": f"hello {i}", "stream": False})
            second = respond(mock.url, {"input": "and?", "previous_response_id":
                                        first.json()["id"]})
            return first.status_code, second.status_code

        assert parallel(turn, 16) == {i: (200, 200) for i in range(16)}
