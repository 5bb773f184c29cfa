"""holynb._bridge: the one loop thread, and running async work from sync code with interrupts."""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import threading
import time

import pytest

from holynb._bridge import Runner, background_loop
from holynb._errors import ConfigError


def test_one_loop_thread_runs_the_work() -> None:
    async def where() -> str:
        return threading.current_thread().name

    assert Runner().run(where()) == "holynb-loop"
    assert Runner().loop is background_loop()


def test_events_reach_the_caller_in_order_and_idle_is_polled() -> None:
    inbox: queue.SimpleQueue[int] = queue.SimpleQueue()
    seen: list[int] = []
    idles: list[float] = []

    async def work() -> str:
        for i in range(3):
            inbox.put(i)
            await asyncio.sleep(0.05)
        return "done"

    def on_idle() -> float:
        idles.append(time.monotonic())
        return 0.01

    assert Runner().run(work(), events=inbox, on_event=seen.append, on_idle=on_idle) == "done"
    assert seen == [0, 1, 2]
    assert len(idles) > 3  # called while nothing arrived, not only after events


def test_the_works_error_is_raised_at_once() -> None:
    async def fail() -> None:
        raise ValueError("boom")

    started = time.monotonic()
    with pytest.raises(ValueError, match="boom"):
        Runner().run(fail())
    assert time.monotonic() - started < 2  # no wait for a close that already happened


def test_interrupt_cancels_the_work_closes_it_and_hands_over_late_items() -> None:
    inbox: queue.SimpleQueue[str] = queue.SimpleQueue()
    seen: list[str] = []
    closed = threading.Event()

    async def work() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            inbox.put("unwinding")  # what the work still reports while it stops

    async def close() -> None:
        closed.set()

    # A real SIGINT, as Ctrl-C and Kernel → Interrupt send: it wakes a blocked queue wait.
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            Runner().run(work(), events=inbox, on_event=seen.append, on_interrupt=close)
    finally:
        timer.cancel()
    assert closed.is_set() and seen == ["unwinding"]


def test_the_loop_thread_cannot_wait_on_itself() -> None:
    async def nested() -> None:
        async def inner() -> None:
            return None

        Runner().run(inner())

    with pytest.raises(ConfigError, match="own loop thread"):
        Runner().run(nested())
