"""holynb's private event loop thread, and the one way sync code runs async work on it.

Like IPython's ``%%script``, async work runs on an event loop in a daemon thread, so sync code
can use it even where a loop is already running in the calling thread (a Jupyter kernel). The
sync client (``_sync.py``), the ``%%holy`` magic and the command line all go through
:class:`Runner`: the calling thread waits on a queue, handles items the work puts there
(deltas, retry notices) and, on Ctrl-C / Kernel → Interrupt, cancels the work, lets it close
its connections (bounded in time) and re-raises the interrupt.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import queue
import threading
import time
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from holynb._errors import ConfigError

__all__ = ["CLOSE_WAIT_S", "Runner", "background_loop"]

T = TypeVar("T")

# How long closing may take after an interrupt before the caller gets control back.
CLOSE_WAIT_S = 5.0

_loop: asyncio.AbstractEventLoop | None = None
_loop_thread: threading.Thread | None = None
_loop_lock = threading.Lock()
_FINISHED = object()
# Finalizers of sync clients not closed yet (see Runner.finalizer).
_at_exit: set[weakref.finalize] = set()


def background_loop() -> asyncio.AbstractEventLoop:
    """The process-wide holynb loop (started on first use, on a daemon thread)."""
    global _loop, _loop_thread
    with _loop_lock:
        if _loop is None or _loop.is_closed() or not _loop_thread or not _loop_thread.is_alive():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="holynb-loop", daemon=True)
            thread.start()
            _loop, _loop_thread = loop, thread
        return _loop


class Runner:
    """Runs coroutines on the background loop and waits for them in the calling thread."""

    def __init__(self) -> None:
        self.loop = background_loop()

    def run(
        self,
        coro: Coroutine[Any, Any, T],
        *,
        events: queue.SimpleQueue[Any] | None = None,
        on_event: Callable[[Any], Any] | None = None,
        on_interrupt: Callable[[], Coroutine[Any, Any, Any]] | None = None,
        on_idle: Callable[[], float | None] | None = None,
    ) -> T:
        """Run ``coro`` and return its result (or raise its error).

        Items the work puts on ``events`` are handed to ``on_event`` in this thread. With
        ``on_idle``, it is called first and whenever no item came within the seconds it last
        returned (None: wait for the next item). On an interrupt (or an error in a callback)
        the work is cancelled, ``on_interrupt()`` is awaited, items still queued while the work
        unwinds (bounded by :data:`CLOSE_WAIT_S`) are handed over, and the interrupt re-raised.
        """
        if threading.current_thread() is _loop_thread:
            coro.close()
            raise ConfigError(
                "holynb's sync API was called from holynb's own loop thread (e.g. inside an "
                "async callback): use AsyncClient there."
            )
        inbox: queue.SimpleQueue[Any] = events if events is not None else queue.SimpleQueue()
        started = threading.Event()

        async def tracked() -> T:
            started.set()
            try:
                return await coro
            finally:
                # Put from the coroutine, not a done-callback: a cancelled future is "done" at
                # once, but the work has ended (connections closed) only when this runs.
                inbox.put(_FINISHED)

        def never_started(future: concurrent.futures.Future[T]) -> None:
            if not started.is_set():
                coro.close()
                inbox.put(_FINISHED)  # cancelled before its first step: nothing to wait for

        future = asyncio.run_coroutine_threadsafe(tracked(), self.loop)
        future.add_done_callback(never_started)
        try:
            wait = on_idle() if on_idle is not None else None
            while True:
                try:
                    item = inbox.get(timeout=wait)
                except queue.Empty:
                    wait = on_idle() if on_idle is not None else None
                    continue
                if item is _FINISHED:
                    break
                if on_event is not None:
                    on_event(item)
                if on_idle is not None:
                    wait = on_idle()
        except BaseException:
            # KeyboardInterrupt (or an error in a callback): stop the work on the loop now.
            future.cancel()
            if on_interrupt is not None:
                self.wait(on_interrupt())
            self._drain(inbox, on_event)
            raise
        return future.result()  # the work's own error, if it failed, is raised here

    def _drain(self, inbox: queue.SimpleQueue[Any], on_event: Callable[[Any], Any] | None) -> None:
        """Hand over what the cancelled work still queues until it has ended (bounded)."""
        deadline = time.monotonic() + CLOSE_WAIT_S
        while (left := deadline - time.monotonic()) > 0:
            try:
                item = inbox.get(timeout=left)
            except (queue.Empty, KeyboardInterrupt):
                return  # a second interrupt: stop waiting for the close
            if item is _FINISHED:
                return
            if on_event is not None:
                try:
                    on_event(item)
                except Exception:  # noqa: BLE001 — the interrupt being raised matters more
                    return

    def finalizer(
        self, owner: object, close: Callable[[], Coroutine[Any, Any, Any]]
    ) -> weakref.finalize:
        """Run ``close()`` on the loop when ``owner`` is collected or the interpreter exits,
        unless the returned finalizer is detached (or called) first: a sync client the user
        never closed still closes its connections, without aiohttp's "Unclosed" warnings.

        When ``owner`` is collected, ``close()`` is only scheduled: garbage collection can run
        in any thread at any moment (during a Ctrl-C, say), so it must never wait there. At
        exit, the clients still open are closed and waited for (bounded), in one atexit hook.
        """
        fin = weakref.finalize(owner, _close_soon, self.loop, close)
        fin.atexit = False  # _close_at_exit does it, waiting for each
        with _loop_lock:
            if not _at_exit:
                atexit.register(_close_at_exit)
            _at_exit.difference_update([f for f in _at_exit if not f.alive])
            _at_exit.add(fin)
        return fin

    def wait(self, coro: Coroutine[Any, Any, Any], timeout: float = CLOSE_WAIT_S) -> None:
        """Run ``coro`` to completion, bounded in time (used for cleanup)."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            future.result(timeout=timeout)
        except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
            future.cancel()


def _close_soon(
    loop: asyncio.AbstractEventLoop, close: Callable[[], Coroutine[Any, Any, Any]]
) -> concurrent.futures.Future[Any] | None:
    """Schedule ``close()`` on ``loop`` without waiting (None if the loop is gone)."""
    if loop.is_closed():
        return None
    return asyncio.run_coroutine_threadsafe(close(), loop)


def _close_at_exit() -> None:
    """At interpreter exit: close what is still open and wait for it, bounded in time."""
    deadline = time.monotonic() + CLOSE_WAIT_S
    for fin in list(_at_exit):
        detached = fin.detach()
        if detached is None:
            continue
        _, _, (loop, close), _ = detached
        future = _close_soon(loop, close)
        if future is not None:
            with contextlib.suppress(Exception):  # best effort: nobody is left to tell
                future.result(timeout=max(0.0, deadline - time.monotonic()))
