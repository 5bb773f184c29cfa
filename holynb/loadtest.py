"""Distributed load with Locust: :class:`HolyUser`, a Locust ``User`` that streams with holynb.

Install with ``pip install "holynb[load]"``; see ``docs/load.md`` and ``examples/locustfile.py``::

    from holynb.loadtest import HolyUser

    class Chat(HolyUser):
        prompt = "Summarise the plot of Hamlet in three sentences."
        max_tokens = 64
        transport = "sse"  # or "ws"

    # locust -f locustfile.py --headless -u 100 -r 20 -t 1m --host http://127.0.0.1:8765/v1

Each stream is reported to Locust as request events with ``request_type`` ``"SSE"`` or ``"WS"``:

- ``ttft``: time to the first content token (ms), when one arrived;
- ``itl``: one event per gap between consecutive content chunks of a completed stream (ms);
  its count is the tokens after the first, its rate the output token rate (``itl_events =
  False`` skips them: each event costs a worker about 8 µs);
- ``tpot``: ``(e2e − ttft) / (tokens − 1)`` of a completed stream of two tokens or more (ms);
- ``e2e``: request sent → end of stream (ms), with the stream's output tokens as its size; a
  failed stream fails ``e2e`` with the holynb error (time to the failure), so Locust's failure
  table says what went wrong.

The figures are measured exactly as ``holynb bench`` measures them (one shared
:func:`holynb.bench.measure_stream`), and Locust's master aggregates them across workers.

How gevent and asyncio share a worker: Locust runs users as greenlets in a process that gevent
has monkey-patched; the holynb client is asyncio (aiohttp, httpx). Each worker process runs one
asyncio event loop on a native OS thread (started with the thread primitive gevent saved before
patching) over an unpatched epoll selector, with its own native threads for blocking calls such
as DNS lookups (gevent's patched threads there would be greenlets of a hub that never runs). A
user's greenlet hands its stream to that loop and waits on a gevent ``AsyncResult``, which is
settled on the hub when the loop thread wakes it through a libev async watcher (the thread-safe
way in) — so a waiting user never blocks the gevent hub, and the loop never waits on gevent.
All streams of a process share one client (one connection pool) per configuration. Timing
happens on the loop thread, next to the sockets.
"""

from __future__ import annotations

# isort: off
import locust  # first: importing Locust monkey-patches the process (gevent) before the rest loads

# isort: on
import argparse
import asyncio
import collections
import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, ClassVar, TypeVar

import gevent
from gevent import monkey
from gevent.event import AsyncResult
from locust import User
from locust.exception import StopUser
from locust.runners import WorkerRunner

from holynb.bench.locust_stats import LoadReport
from holynb.bench.metrics import RequestRecord
from holynb.bench.run import DEFAULT_PROMPT, measure_stream

__all__ = ["HolyUser", "main"]

log = logging.getLogger("holynb.loadtest")

T = TypeVar("T")

TRANSPORTS = ("sse", "ws")
_BLOCKING_THREADS = 2  # native threads for the loop's blocking calls (DNS); rarely busy
_CLOSE_TIMEOUT_S = 5.0


class HolyUser(User):
    """A Locust user that streams chat completions with the holynb client, one at a time.

    ``--host`` (or ``host``) is the API base URL, e.g. ``http://127.0.0.1:8765/v1``. A subclass
    that declares no task streams :attr:`prompt` over and over (:meth:`chat`); one that declares
    its own ``@task`` methods runs those instead, streaming with :meth:`stream`.
    """

    abstract = True

    prompt: str = DEFAULT_PROMPT
    model: str | None = None  # None: HOLYNB_MODEL or the client's default
    max_tokens: int = 32
    transport: str = "sse"  # "sse" or "ws"
    api: str = "chat"  # "chat" | "responses" | "messages" (AsyncClient's api=)
    api_key: str | None = None  # None: HOLYSHEEP_API_KEY
    headers: ClassVar[dict[str, str]] = {}  # extra request headers, e.g. X-Mock-* controls
    params: ClassVar[dict[str, Any]] = {}  # extra request body fields, e.g. temperature
    client_options: ClassVar[dict[str, Any]] = {}  # AsyncClient keywords (timeouts, verify, ...)
    itl_events: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Not a @task on HolyUser: Locust adds a base class's tasks to a subclass's own.
        if not cls.tasks:
            cls.tasks = [HolyUser.chat]

    def on_start(self) -> None:
        """Check the settings and get this process's shared client for them.

        A bad setting (no host, no key, an unknown transport) is logged once per process, which
        then quits with exit code 2; the user stops at its first task.
        """
        from holynb._errors import ConfigError

        self._kind = self.transport.upper()
        self._client: Any = None
        try:
            self._engine = _Engine.get(self.environment)
            self._client = self._engine.client(self._client_kwargs())
        except ConfigError as exc:
            _give_up(self.environment, str(exc))

    def chat(self) -> None:
        """The default task: stream :attr:`prompt`."""
        self.stream()

    def stream(self, prompt: str | None = None, **params: Any) -> RequestRecord:
        """Stream one reply (``prompt`` or the class's) and report it to Locust; return its record.

        ``params`` are request body fields for this call (on top of ``max_tokens`` and
        :attr:`params`).
        """
        if self._client is None or self._engine.closed:
            raise StopUser()  # on_start said why, or Locust is quitting
        record = RequestRecord(transport=self.transport, index=0, ok=False, start_s=0.0)
        origin = time.perf_counter()
        failure = self._engine.call(
            lambda: measure_stream(
                self._client,
                record,
                prompt=prompt or self.prompt,
                params={"max_tokens": self.max_tokens, **self.params, **params},
                headers=self.headers,
                run_start=origin,
            )
        )
        self._report(record, failure, started_at=time.time() - (time.perf_counter() - origin))
        return record

    def _report(
        self, record: RequestRecord, failure: BaseException | None, *, started_at: float
    ) -> None:
        fire = self.environment.events.request.fire
        start_time = started_at + record.start_s

        def event(
            name: str, seconds: float, size: int = 0, exc: BaseException | None = None
        ) -> None:
            fire(
                request_type=self._kind,
                name=name,
                response_time=seconds * 1000.0,
                response_length=size,
                exception=exc,
                context={},
                start_time=start_time,
            )

        if record.ttft_s is not None:
            event("ttft", record.ttft_s)
        if failure is not None:
            assert record.end_s is not None
            event("e2e", record.end_s - record.start_s, record.tokens, failure)
            return
        if self.itl_events:
            for gap in record.itl_s:
                event("itl", gap)
        if record.tpot_s is not None:
            event("tpot", record.tpot_s)
        assert record.e2e_s is not None
        event("e2e", record.e2e_s, record.tokens)

    def _client_kwargs(self) -> dict[str, Any]:
        from holynb._errors import ConfigError

        if not self.host:
            raise ConfigError(
                "no host: pass the API base URL with --host, e.g. --host http://127.0.0.1:8765/v1"
            )
        if self.transport not in TRANSPORTS:
            raise ConfigError(f"transport must be 'sse' or 'ws', got {self.transport!r}")
        return {
            "max_retries": 0,  # every failure is seen, as in holynb bench
            **self.client_options,
            "base_url": self.host,
            "api_key": self.api_key,
            "model": self.model,
            "transport": self.transport,
            "api": self.api,
        }


class _Engine:
    """One asyncio loop per process on a native thread; greenlets submit coroutines to it."""

    _current: ClassVar[_Engine | None] = None

    @classmethod
    def get(cls, environment: Any) -> _Engine:
        """This process's engine (a new one after a fork: threads do not survive it)."""
        engine = cls._current
        if engine is None or engine.pid != os.getpid():
            engine = cls._current = cls()
            environment.events.quitting.add_listener(lambda **_: engine.close())
        return engine

    def __init__(self) -> None:
        self.pid = os.getpid()
        _native_logging_locks()
        self.loop = _NativeLoop()
        self.clients: dict[tuple[tuple[str, Any], ...], AsyncResult] = {}
        self.tasks: set[asyncio.Task[Any]] = set()  # running on the loop (touched there only)
        self.closed = False
        # Finished tasks queue here; the loop thread wakes the gevent hub with a libev async
        # watcher (its send() is the one thread-safe way in). It keeps the hub alive only
        # while a greenlet is waiting.
        self._finished: collections.deque[tuple[AsyncResult, asyncio.Task[Any]]] = (
            collections.deque()
        )
        self._waiting = 0
        self._wakeup = gevent.get_hub().loop.async_()
        self._wakeup.start(self._deliver)
        self._wakeup.ref = False
        _start_native_thread(self._run, ())

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    def _deliver(self) -> None:
        """On the gevent hub: hand each finished task's outcome to the greenlet waiting for it."""
        while self._finished:
            result, task = self._finished.popleft()
            if task.cancelled():
                result.set_exception(asyncio.CancelledError())
            elif (exc := task.exception()) is not None:
                result.set_exception(exc)
            else:
                result.set(task.result())

    def call(self, make: Callable[[], Coroutine[Any, Any, T]], timeout: float | None = None) -> T:
        """Run ``make()`` on the loop; block this greenlet (only) until it is done.

        If the greenlet is killed meanwhile (Locust stopping a user), the coroutine is cancelled.
        """
        result: AsyncResult = AsyncResult()
        started: list[asyncio.Task[T]] = []

        def finished(task: asyncio.Task[T]) -> None:  # on the loop thread
            self._finished.append((result, task))
            self._wakeup.send()

        def start() -> None:  # on the loop thread
            task = self.loop.create_task(make())
            started.append(task)
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            task.add_done_callback(finished)

        self.loop.call_soon_threadsafe(start)
        self._waiting += 1
        self._wakeup.ref = True
        try:
            return result.get(timeout=timeout)
        except BaseException:
            # GreenletExit or a timeout: stop the work too (call_soon keeps order: start first).
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(lambda: [t.cancel() for t in started])
            raise
        finally:
            self._waiting -= 1
            self._wakeup.ref = self._waiting > 0

    def client(self, kwargs: dict[str, Any]) -> Any:
        """The shared client for these settings (created on the loop, once, on first use)."""
        key = tuple(sorted((k, repr(v)) for k, v in kwargs.items()))
        entry = self.clients.get(key)
        if entry is None:
            # Other users starting meanwhile wait on this entry instead of making their own.
            entry = self.clients[key] = AsyncResult()

            async def make() -> Any:
                from holynb._client import AsyncClient

                return AsyncClient(**kwargs)

            try:
                entry.set(self.call(make))
            except BaseException as exc:
                del self.clients[key]
                entry.set_exception(exc)
                raise
        return entry.get()

    def close(self) -> None:
        """Close every client and stop the loop (at Locust's ``quitting``)."""
        if self.closed:
            return
        self.closed = True
        clients = [entry.value for entry in self.clients.values() if entry.successful()]
        self.clients.clear()

        async def close_all() -> None:
            # Streams of users killed at the end are still unwinding: let them finish first,
            # so that none runs on (or reopens) a client after it is closed.
            others = [t for t in self.tasks if t is not asyncio.current_task()]
            for other in others:
                other.cancel()
            await asyncio.gather(*others, return_exceptions=True)
            await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)

        with contextlib.suppress(Exception, gevent.Timeout):
            self.call(close_all, timeout=_CLOSE_TIMEOUT_S)
        self.loop.call_soon_threadsafe(self.loop.stop)


def _give_up(environment: Any, message: str) -> None:
    """Log a setting that fails every stream (once per process) and quit with exit code 2."""
    if environment.process_exit_code == 2:
        return
    log.error("holynb: %s", message)
    environment.process_exit_code = 2
    # Not from this user's greenlet: quitting kills every user, this one included.
    gevent.spawn(environment.runner.quit)


def _native_logging_locks() -> None:
    """Give the logging module and its handlers native locks, now and for handlers made later.

    The loop thread logs too (httpx logs every request at INFO). With gevent's patched locks, a
    greenlet that waits for a lock a native thread holds may never be woken when it is released
    (gevent issue #2013): Locust's own "--run-time limit reached" log line then blocks the run
    forever. Native locks serialise the two threads correctly; greenlets never hold them across
    a switch (a handler writes and returns).
    """
    native_rlock = _original("_thread", "RLock")
    logging._lock = native_rlock()  # type: ignore[attr-defined]
    for ref in list(logging._handlerList):  # type: ignore[attr-defined]
        handler = ref()
        if handler is not None:
            handler.lock = native_rlock()

    def create_lock(handler: logging.Handler) -> None:
        handler.lock = native_rlock()
        logging._register_at_fork_reinit_lock(handler)  # type: ignore[attr-defined]

    logging.Handler.createLock = create_lock  # type: ignore[method-assign]


def _original(module: str, name: str) -> Any:
    """The object gevent's monkey-patching replaced (or the current one if it did not)."""
    return monkey.get_original(module, name)


_start_native_thread: Callable[..., int] = _original("_thread", "start_new_thread")
_native_getaddrinfo: Callable[..., Any] = _original("socket", "getaddrinfo")
_native_getnameinfo: Callable[..., Any] = _original("socket", "getnameinfo")


class _NativeLoop(asyncio.SelectorEventLoop):
    """An asyncio loop that runs on a native thread of a gevent-patched process.

    Its selector is the unpatched epoll one (gevent's would wait on a gevent hub), and its
    default executor is a couple of native threads fed by an unpatched queue, so that DNS
    lookups use the real ``getaddrinfo`` instead of hanging on patched threads.
    """

    def __init__(self) -> None:
        super().__init__(selector=_original("selectors", "DefaultSelector")())
        self._jobs = _original("queue", "SimpleQueue")()
        self._workers = 0

    def run_in_executor(self, executor: Any, func: Callable[..., T], *args: Any) -> Any:
        if executor is not None:
            return super().run_in_executor(executor, func, *args)
        self._check_closed()
        future = self.create_future()
        if not self._workers:
            for _ in range(_BLOCKING_THREADS):
                _start_native_thread(self._work, ())
            self._workers = _BLOCKING_THREADS
        self._jobs.put((future, func, args))
        return future

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            future, func, args = job
            try:
                outcome = (func(*args), None)
            except BaseException as exc:  # noqa: BLE001 — handed to the awaiting coroutine
                outcome = (None, exc)
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self.call_soon_threadsafe(_resolve, future, *outcome)

    async def getaddrinfo(
        self, host: Any, port: Any, *, family: int = 0, type: int = 0, proto: int = 0,
        flags: int = 0,
    ) -> Any:  # fmt: skip
        return await self.run_in_executor(
            None, _native_getaddrinfo, host, port, family, type, proto, flags
        )

    async def getnameinfo(self, sockaddr: Any, flags: int = 0) -> Any:
        return await self.run_in_executor(None, _native_getnameinfo, sockaddr, flags)

    def close(self) -> None:
        for _ in range(self._workers):
            self._jobs.put(None)
        self._workers = 0
        super().close()


def _resolve(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.cancelled():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


@locust.events.init.add_listener
def _print_report_at_the_end(environment: Any, runner: Any = None, **_: Any) -> None:
    """On the master (or a single process), print holynb's report after Locust's own tables."""
    if isinstance(runner, WorkerRunner) or not any(
        issubclass(cls, HolyUser) for cls in environment.user_classes
    ):
        return

    def report(**_: Any) -> None:
        json_on_stdout = getattr(environment.parsed_options, "json", False)
        out = sys.stderr if json_on_stdout else sys.stdout
        print("\n" + LoadReport.from_stats(environment.stats).table(), file=out, flush=True)

    environment.events.quit.add_listener(report)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m holynb.loadtest report PREFIX_stats.csv``: holynb's report of a Locust run."""
    parser = argparse.ArgumentParser(
        prog="python -m holynb.loadtest",
        description="holynb's report (streams, throughput, TTFT / ITL / TPOT / E2E percentiles) "
        "of a Locust run of HolyUser, from the CSV Locust writes with --csv PREFIX.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    report = sub.add_parser("report", help="print holynb's report of a Locust CSV")
    report.add_argument("csv", metavar="PREFIX_stats.csv", help="Locust's stats CSV (or PREFIX)")
    report.add_argument("--json", metavar="PATH|-", help="also write the report as JSON")
    args = parser.parse_args(argv)
    try:
        result = LoadReport.from_csv(args.csv)
    except (OSError, ValueError, KeyError) as exc:
        print(f"holynb.loadtest: error: {exc}", file=sys.stderr)
        return 2
    human = sys.stderr if args.json == "-" else sys.stdout
    print(result.table(), file=human)
    if args.json == "-":
        result.write_json(sys.stdout)
    elif args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            result.write_json(f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
