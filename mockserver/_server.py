"""``MockServer``: run the mock in-process (a background thread or the caller's loop), or as
``workers`` processes behind one port."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from aiohttp import web

from ._app import STATE, create_app
from ._config import MockConfig, make_config
from ._store import SharedStore
from ._workers import Supervisor

__all__ = ["MOCK_KEY", "MockServer"]

MOCK_KEY = "sk-holynb-mock"


class MockServer:
    """The mock upstream on ``host:port`` (port 0 picks a free one); ``.url`` ends with ``/v1``.

    Use ``with MockServer() as m:`` (a daemon thread runs its own event loop) or
    ``async with MockServer() as m:`` (runs on the current loop). With ``workers=N`` (N > 1) the
    server is N processes sharing the port; ``journal()`` and ``reset()`` act on all of them.
    """

    def __init__(self, config: MockConfig | None = None, **options: Any) -> None:
        """``options`` are :class:`~mockserver.MockConfig` fields (``host``, ``port``,
        ``ttft_ms``, ``tps``, ``fault``, ``cassettes``, ``keys``, ``workers``, ...)."""
        if config is None:
            config = make_config(**options)
        elif options:
            raise TypeError("pass either a MockConfig or keyword options, not both")
        self.config: MockConfig = config
        self.host = config.host
        self.port = config.port
        self.app: web.Application | None = None
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._workers: Supervisor | None = None
        self._shared: SharedStore | None = None

    def __repr__(self) -> str:
        where = self.url if self.running else "stopped"
        return f"MockServer({where})"

    @property
    def running(self) -> bool:
        """Whether the server is serving."""
        return self._runner is not None or self._workers is not None

    @property
    def base_url(self) -> str:
        """``http://host:port`` (no path)."""
        if not self.running:
            raise RuntimeError("the mock server is not running; use it as a context manager")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """The OpenAI-style base URL, ``http://host:port/v1``."""
        return self.base_url + "/v1"

    @property
    def ws_url(self) -> str:
        """The WebSocket chat endpoint, ``ws://host:port/v1/ws/chat``."""
        return self.base_url.replace("http://", "ws://", 1) + "/v1/ws/chat"

    # -- workers ---------------------------------------------------------------------------

    def _start_workers(self) -> None:
        supervisor = Supervisor(self.config)
        supervisor.start()
        assert supervisor.store_path is not None
        self._shared = SharedStore(supervisor.store_path)
        self.port, self._workers = supervisor.port, supervisor

    def _stop_workers(self) -> None:
        supervisor, self._workers = self._workers, None
        if self._shared is not None:
            self._shared.close()
            self._shared = None
        if supervisor is not None:
            supervisor.stop()

    # -- async -----------------------------------------------------------------------------

    async def astart(self) -> MockServer:
        """Start serving on the running loop (or start the worker processes)."""
        if self.running:
            raise RuntimeError("the mock server is already running")
        if self.config.workers > 1:
            await asyncio.to_thread(self._start_workers)
            return self
        self.app = create_app(self.config)
        # handler_cancellation: a client hang-up cancels its handler at once, so the journal
        # shows client_disconnected promptly even while the stream is waiting for a deadline.
        runner = web.AppRunner(
            self.app, handler_cancellation=True, access_log=None,
            shutdown_timeout=self.config.drain_timeout_s,
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self.port = runner.addresses[0][1]
        self._runner = runner
        return self

    async def astop(self) -> None:
        """Stop: drain open streams (bounded by ``drain_timeout_s``), close sockets."""
        if self._workers is not None:
            await asyncio.to_thread(self._stop_workers)
        runner, self._runner = self._runner, None
        if runner is None:
            return
        server = runner.server
        await runner.cleanup()
        if server is None:
            return
        # A connection whose accept was already queued when the listener closed is made after
        # the runner's drain and joins none: abort it, or its socket outlives the loop. Two
        # loop turns: one creates the transport, the next registers its handler.
        for _ in range(2):
            await asyncio.sleep(0)
        for handler in server.connections:
            if handler.transport is not None:
                handler.transport.abort()
        await asyncio.sleep(0)  # runs the aborts' connection_lost: the sockets close here

    async def __aenter__(self) -> MockServer:
        return await self.astart()

    async def __aexit__(self, *exc: object) -> None:
        await self.astop()

    # -- sync (background thread) ----------------------------------------------------------

    def start(self) -> MockServer:
        """Start serving on a daemon thread with its own event loop (or start the workers)."""
        if self.running or self._thread is not None:
            raise RuntimeError("the mock server is already running")
        if self.config.workers > 1:
            self._start_workers()
            return self
        loop = asyncio.new_event_loop()
        started = threading.Event()
        error: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.astart())
            except BaseException as exc:  # surfaced to the caller below
                error.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            try:
                loop.run_forever()
                _finish(loop)
            finally:
                loop.close()

        thread = threading.Thread(target=run, name="holynb-mock", daemon=True)
        thread.start()
        started.wait()
        if error:
            thread.join()
            raise error[0]
        self._loop, self._thread = loop, thread
        return self

    def stop(self) -> None:
        """Stop the background server (or the workers) and wait until it is down."""
        if self._workers is not None:
            self._stop_workers()
            return
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self.astop(), loop).result()
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            self._loop = self._thread = None

    def __enter__(self) -> MockServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- inspection ------------------------------------------------------------------------

    def journal(self, *, after: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """Request records (oldest first) with an id above ``after``, at most ``limit``; see
        ``docs/mockserver.md``. With workers: every worker's records."""
        if self._shared is not None:
            return self._shared.journal_page(after, limit)
        if self.app is None:
            return []
        state = self.app[STATE]
        return self._call(lambda: state.journal.page(after=after, limit=limit))

    def reset(self) -> None:
        """Clear the journal, cassette sequences, rate-limit buckets and repeat counters (of
        every worker)."""
        if self._shared is not None:
            self._shared.reset()
        elif self.app is not None:
            state = self.app[STATE]
            self._call(state.reset)

    def _call(self, fn: Any) -> Any:
        """Run ``fn`` on the server's loop when it has its own thread (state is loop-owned)."""
        loop = self._loop
        if loop is None or threading.current_thread() is self._thread:
            return fn()

        async def call() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), loop).result()


def _finish(loop: asyncio.AbstractEventLoop) -> None:
    """End a stopped background loop the way ``asyncio.run`` ends its own: cancel what is left
    (a handler still waiting when the thread stops), let it unwind, close async generators."""
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.run_until_complete(loop.shutdown_default_executor())
