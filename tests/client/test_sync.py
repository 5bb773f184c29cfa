"""The sync Client: same results on a private loop thread, usable inside a running loop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from client_helpers import KEY, PROMPT, stream_records

from holynb import Client, StreamInterrupted
from holynb._retry import RetryEvent


def test_sync_stream_complete_models(holy_mock, transport):
    with Client(base_url=holy_mock.url, api_key=KEY, transport=transport) as client:
        assert KEY not in repr(client) and repr(client).startswith("Client(")
        with client.stream(PROMPT, max_tokens=12) as s:
            deltas = list(s)
        assert len(deltas) == 12 and "".join(deltas) == s.text and s.done
        assert s.usage["completion_tokens"] == 12 and s.stats.tokens == 12
        assert s.finish_reason == "length" and s.model == "deepseek-v3.2" and s.tool_calls == []
        assert KEY not in repr(s)
        # iterating without ``with`` works too and closes at the end
        assert len(list(client.stream(PROMPT, max_tokens=3))) == 3
        assert client.complete(PROMPT, max_tokens=4).usage["completion_tokens"] == 4
        assert "gpt-4.1" in client.models()


async def test_sync_client_inside_a_running_loop(holy_mock):
    # As in Jupyter: this thread's loop is running, the sync client still works.
    with Client(base_url=holy_mock.url, api_key=KEY) as client:
        with client.stream(PROMPT, max_tokens=5) as s:
            assert len(list(s)) == 5


def test_on_retry_runs_in_the_calling_thread(holy_mock_factory):
    mock = holy_mock_factory(rate_limit="2/s")
    threads: list[int] = []
    events: list[RetryEvent] = []

    def on_retry(event: RetryEvent) -> None:
        threads.append(threading.get_ident())
        events.append(event)

    with Client(base_url=mock.url, api_key=KEY, on_retry=on_retry) as client:
        for _ in range(3):
            with client.stream(PROMPT, max_tokens=2) as s:
                list(s)
    assert len(events) == 1 and events[0].reason == "rate limited"
    assert threads == [threading.get_ident()]


def test_errors_carry_partial_text(holy_mock, transport):
    with Client(base_url=holy_mock.url, api_key=KEY, transport=transport) as client:
        got: list[str] = []
        with pytest.raises(StreamInterrupted) as info:
            with client.stream(
                PROMPT, max_tokens=10, extra_headers={"X-Mock-Fault": "disconnect:after=4"}
            ) as s:
                for delta in s:
                    got.append(delta)
        assert len(got) == 4 and info.value.partial_text == "".join(got)


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                    reason="signals are delivered to the main thread")
def test_keyboard_interrupt_closes_upstream(holy_mock, transport):
    # Ctrl-C as in a terminal or a kernel: a shell that starts pytest in the background leaves
    # SIGINT ignored, and Python then never installs its KeyboardInterrupt handler.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _interrupt_then_reuse(holy_mock, transport)
    finally:
        signal.signal(signal.SIGINT, previous)


def _interrupt_then_reuse(holy_mock, transport) -> None:
    expected = "client_disconnected" if transport == "sse" else "cancelled"
    with Client(base_url=holy_mock.url, api_key=KEY, transport=transport) as client:
        with pytest.raises(KeyboardInterrupt):
            with client.stream(
                PROMPT, max_tokens=10, extra_headers={"X-Mock-Fault": "stall:after=2,ms=3000"}
            ) as s:
                # Ctrl-C while the client waits for the stalled stream.
                threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
                for _ in s:
                    pass
        interrupted = time.time()
        deadline = time.monotonic() + 2
        while stream_records(holy_mock)[-1]["ended"] is None and time.monotonic() < deadline:
            time.sleep(0.005)
        record = stream_records(holy_mock)[-1]
        assert record["outcome"] == expected and record["ended"] - interrupted < 0.1
        assert s.text and not s.done
        # The client remains usable afterwards.
        with client.stream(PROMPT, max_tokens=2) as s2:
            assert len(list(s2)) == 2


def test_a_client_never_closed_closes_at_exit_without_warnings(holy_mock, transport):
    # A script that makes a Client and never closes it: the pooled connection is closed when
    # the interpreter exits, with none of aiohttp's "Unclosed client session" noise.
    script = (
        "import holynb\n"
        f"client = holynb.Client(base_url={holy_mock.url!r}, api_key={KEY!r},"
        f" transport={transport!r})\n"
        "print(client.complete('hi', max_tokens=3).text)\n"
    )
    done = subprocess.run([sys.executable, "-W", "error::ResourceWarning", "-c", script],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() and done.stderr == ""
    (record,) = stream_records(holy_mock)
    assert record["outcome"] == "completed"
