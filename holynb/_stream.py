"""One streamed reply: attempts, retries, timeouts, cancellation, deltas, events and results.

:class:`AsyncStream` is given an *opener* (a callable that starts one request attempt on some
transport) and an API's stream parser; it knows nothing about clients, URLs or sockets. The
retry policy it applies lives in :mod:`holynb._retry`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from holynb._apis.base import StreamParser, assistant_message
from holynb._config import Options
from holynb._errors import ConfigError, HolyError, StreamInterrupted, StreamTimeout
from holynb._events import StreamEvent
from holynb._retry import plan_retry, wait_retry
from holynb._stats import StreamStats

__all__ = ["AsyncStream", "Attempt", "Opener"]

# After [DONE], how long to wait for the end of the body before dropping the connection.
_DRAIN_S = 2.0
# After the finish reason, how long to wait for [DONE] / usage before calling the reply complete.
_FINISH_GRACE_S = 0.5


class Attempt(Protocol):
    """What a transport returns for one request attempt."""

    kind: str  # "sse" (read() gives SSE events) or "ws" (read() gives text frames)

    async def read(self) -> list[Any] | None: ...

    async def finish(self) -> None: ...

    async def abort(self) -> None: ...


Opener = Callable[[StreamStats], Awaitable[Attempt]]


class AsyncStream:
    """A streamed reply: ``async with`` it, then ``async for delta in stream`` (answer text) or
    ``async for event in stream.events()`` (typed events) — the same whatever the API.

    ``.text``, ``.reasoning``, ``.finish_reason``, ``.usage``, ``.tool_calls``, ``.model`` and
    ``.stats`` are live while it runs and final once it ends; ``.message`` is the reply as an
    assistant message for the next turn. Leaving the ``async with`` early (or ``aclose()``)
    closes the upstream connection at once.
    """

    def __init__(
        self,
        opener: Opener,
        parser: Callable[..., StreamParser],
        options: Options,
        *,
        model: str,
        secrets: tuple[str | None, ...],
        label: str = "",
    ) -> None:
        self._opener = opener
        self._opts = options
        self.stats = StreamStats()
        self.requested_model = model
        self._label = label
        self._parser = parser(
            self.stats, t0=0.0, skip_malformed=options.skip_malformed, secrets=secrets
        )
        self._feed: Callable[[list[Any], float], list[str]] = self._parser.feed_sse
        self._mode: str | None = None
        self._attempt: Attempt | None = None
        self._pending_error: HolyError | None = None
        self._failure: HolyError | None = None
        self._opened = False
        self._finished = False
        self._closed = False
        self._retries = 0
        self._total_deadline: float | None = None
        self._attempt_start = 0.0
        self._idle_since = 0.0
        self._had_data = False
        self._iterator: AsyncIterator[Any] | None = None
        # The read watchdog (see _arm): its timer, when it fires, the task blocked in a read,
        # and the (phase, limit) of a deadline that expired.
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._reader: asyncio.Task[Any] | None = None
        self._expired: tuple[str, float | None] | None = None

    # -- results -------------------------------------------------------------------------------

    @property
    def text(self) -> str:
        """All text received so far."""
        return "".join(self._parser.parts)

    @property
    def reasoning(self) -> str:
        """All thinking text received so far ('' if the model sent none)."""
        return "".join(self._parser.reasoning_parts)

    @property
    def finish_reason(self) -> str | None:
        """``stop``, ``length``, ``tool_calls``, ``content_filter``... once the server sent it
        (normalised to the chat-completions values whatever the API)."""
        return self._parser.finish_reason

    @property
    def raw_finish_reason(self) -> str | None:
        """The API's own finish value (``end_turn``, ``max_output_tokens``, ``completed``...)."""
        parser = self._parser
        return parser.raw_finish_reason if parser.raw_finish_reason else parser.finish_reason

    @property
    def usage(self) -> dict[str, Any] | None:
        """Token usage in chat-completions form (``prompt_tokens``, ``completion_tokens``,
        ``total_tokens``, ``completion_tokens_details.reasoning_tokens`` when reported), if sent."""
        return self._parser.usage

    @property
    def raw_usage(self) -> dict[str, Any] | None:
        """The usage object as the API sent it."""
        parser = self._parser
        return parser.raw_usage if parser.raw_usage is not None else parser.usage

    @property
    def message(self) -> dict[str, Any]:
        """The reply as an assistant message to append to the conversation (chat form; the
        API's reasoning blocks, e.g. Anthropic thinking signatures, under "thinking_blocks")."""
        parser = self._parser
        return assistant_message(self.text, parser.tools.result(), parser.blocks)

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        """Tool calls accumulated from the deltas, in OpenAI format."""
        return self._parser.tools.result()

    @property
    def model(self) -> str:
        """The model that answered (as the server names it), else the one requested."""
        return self._parser.model or self.requested_model

    @property
    def transport(self) -> str:
        """``"sse"`` or ``"ws"``."""
        return self._opts.transport

    @property
    def api(self) -> str:
        """``"chat"``, ``"responses"`` or ``"messages"``."""
        return self._opts.api

    @property
    def done(self) -> bool:
        """True once the stream ended normally."""
        return self._finished and self._failure is None and self._pending_error is None

    def __repr__(self) -> str:
        state = "done" if self._finished else "closed" if self._closed else "open"
        label = f" {self._label}" if self._label else ""
        return (
            f"<AsyncStream model={self.model!r} api={self.api!r} transport={self.transport!r} "
            f"{state} "
            f"chars={sum(map(len, self._parser.parts))}{label}>"
        )

    # -- context management --------------------------------------------------------------------

    async def __aenter__(self) -> AsyncStream:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncIterator[str]:
        """Iterate the answer text, delta by delta (thinking and tool calls are not included)."""
        self._use("text")
        if self._iterator is None:
            self._iterator = self._iterate(self._next)
        return self._iterator

    def events(self) -> AsyncIterator[StreamEvent]:
        """Iterate typed events (content, reasoning, tool-call deltas) in wire order."""
        self._use("events")
        if self._iterator is None:
            self._iterator = self._iterate(self.next_events)
        return self._iterator

    def _use(self, mode: str) -> None:
        if self._mode is None:
            self._mode = mode
            if mode == "events":
                self._parser.want_events()
        elif self._mode != mode:
            other = "plain iteration" if self._mode == "text" else "events()"
            raise ConfigError(
                f"This stream is already being read with {other}; read a stream one way only."
            )

    async def _iterate(self, next_batch: Callable[[], Awaitable[list[Any]]]) -> AsyncIterator[Any]:
        # Used without ``async with``: the iteration owns the stream and closes it at the end.
        owned = not self._opened
        try:
            if owned:
                await self.start()
            while True:
                batch = await next_batch()
                if not batch:
                    return
                for item in batch:
                    yield item
        finally:
            if owned:
                await self.aclose()

    async def start(self) -> None:
        """Send the request (retrying per policy) and wait for the response to begin."""
        if self._opened:
            return
        self._opened = True
        loop = asyncio.get_running_loop()
        self._parser.t0 = time.perf_counter()
        total = self._opts.total_timeout
        self._total_deadline = None if total is None else loop.time() + total
        try:
            await self._open()
        except BaseException:
            await self._abort_attempt()
            self._closed = True
            if self.stats.total_s is None:  # not already set by _fail_now
                self.stats.finish(time.perf_counter() - self._parser.t0)
            raise

    async def aclose(self) -> None:
        """Stop the stream; if it is still running, the upstream connection is closed now."""
        if self._closed:
            return
        self._closed = True
        iterator = self._iterator
        try:
            await self._abort_attempt()
        finally:
            if not self._finished and self.stats.total_s is None and self._opened:
                self.stats.finish(time.perf_counter() - self._parser.t0)
            if iterator is not None and not getattr(iterator, "ag_running", False):
                await iterator.aclose()  # type: ignore[attr-defined]

    async def _abort_attempt(self) -> None:
        self._disarm()
        attempt, self._attempt = self._attempt, None
        if attempt is not None:
            await attempt.abort()

    # -- the read loop -------------------------------------------------------------------------

    async def next_deltas(self) -> list[str]:
        """Wait for the next batch of text deltas; [] once the stream has ended."""
        self._use("text")
        return await self._next()

    async def next_events(self) -> list[StreamEvent]:
        """Wait for the next batch of typed events (all received so far); [] at the end."""
        self._use("events")
        events = self._parser.events
        assert events is not None
        while not events:
            if not await self._next() and not events:
                return []
        batch = events[:]
        events.clear()
        return batch

    async def _next(self) -> list[str]:
        """Read until content deltas arrive (returned) or, in events mode, any event does."""
        if self._pending_error is not None:
            await self._abort_attempt()
            raise self._fail_now(self._pending_error)
        if not self._opened:
            await self.start()
        parser = self._parser
        loop = asyncio.get_running_loop()
        while not self._finished:
            attempt = self._attempt
            if self._closed or attempt is None:
                return []
            if self._had_data:
                # The idle clock restarts once the caller has consumed the previous batch.
                self._idle_since = loop.time()
                self._had_data = False
            task = self._arm(loop)
            try:
                try:
                    batch = await attempt.read()
                finally:
                    self._reader = None
            except asyncio.CancelledError:
                expired, self._expired = self._expired, None
                if expired is None or task.uncancel() > 0:
                    raise
                phase, limit = expired
                if phase == "idle" and parser.finish_reason is not None:
                    # Finished but the end marker never came: the reply is complete; the
                    # connection's state is unknown, so it is dropped rather than reused.
                    await self._abort_attempt()
                    await self._complete(drain=False)
                    return []
                await self._handle(self._timeout_error(phase, limit))
                continue
            except HolyError as exc:
                if self._closed:
                    return []
                await self._handle(exc)
                continue
            if self._closed:
                return []
            if batch is None:
                if parser.done or parser.finish_reason is not None:
                    await self._complete(drain=False)
                    return []
                await self._handle(
                    StreamInterrupted(
                        f"The server closed the stream early ({self.stats.chunks} chunks, "
                        f"{parser.END})",
                        hint="retry the request",
                    )
                )
                continue
            if not batch:
                continue
            deltas = self._feed(batch, time.perf_counter())
            self._had_data = True
            if parser.error is not None:
                error, parser.error = parser.error, None
                if deltas or parser.events:
                    # Deliver the text that came before the error, raise on the next call.
                    self._pending_error = error
                    return deltas
                await self._handle(error)
                continue
            if parser.done:
                await self._complete(drain=True)
                return deltas
            if deltas or parser.events:
                return deltas
        return []

    def _arm(self, loop: asyncio.AbstractEventLoop) -> asyncio.Task[Any]:
        """Mark this task as waiting on the network and make sure the watchdog covers it.

        One timer per stream instead of a timeout scope per network read: the timer is armed
        at the current deadline and re-armed when it fires early (the deadline moved on as data
        arrived), so a read costs no timer work. It fires at most once per timeout period.
        """
        task = asyncio.current_task()
        assert task is not None
        self._reader = task
        deadline = self._deadline()[0]
        if deadline is not None and (self._timer is None or self._timer_at > deadline):
            if self._timer is not None:
                self._timer.cancel()
            self._timer = loop.call_at(deadline, self._on_deadline)
            self._timer_at = deadline
        return task

    def _on_deadline(self) -> None:
        """The watchdog fired: cancel the read if its deadline passed, else re-arm."""
        self._timer = None
        reader = self._reader
        if reader is None or self._expired is not None:
            return  # not waiting on the network now: the next read arms it again
        deadline, phase, limit = self._deadline()
        if deadline is None:
            return
        loop = asyncio.get_running_loop()
        if loop.time() < deadline:
            self._timer = loop.call_at(deadline, self._on_deadline)
            self._timer_at = deadline
            return
        self._expired = (phase, limit)
        reader.cancel()

    def _disarm(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def _deadline(self) -> tuple[float | None, str, float | None]:
        """The next deadline (loop time), its phase and the configured limit."""
        opts = self._opts
        if self._parser.finish_reason is not None:
            # Finished: only [DONE], the usage chunk or the end of the body are still due, and
            # some servers (WebSocket ones especially) send none of them.
            limit, phase = opts.idle_timeout, "idle"
            grace = _FINISH_GRACE_S if limit is None else min(limit, _FINISH_GRACE_S)
            phase_deadline = self._idle_since + grace
        elif self._parser.started:
            limit, phase = opts.idle_timeout, "idle"
            phase_deadline = None if limit is None else self._idle_since + limit
        else:
            limit, phase = opts.first_token_timeout, "first_token"
            phase_deadline = None if limit is None else self._attempt_start + limit
        total = self._total_deadline
        if total is not None and (phase_deadline is None or total <= phase_deadline):
            return total, "total", opts.total_timeout
        return phase_deadline, phase, limit

    def _timeout_error(self, phase: str, limit: float | None) -> StreamTimeout:
        chunks = self.stats.chunks
        if phase == "first_token":
            what = f"No first token within {limit} s"
            fix = "the server may be overloaded; retry or raise first_token_timeout=..."
        elif phase == "idle":
            what = f"No data for {limit} s after {chunks} chunks"
            fix = "the stream stalled; retry or raise idle_timeout=..."
        else:
            what = f"The stream took longer than {limit} s"
            fix = "raise total_timeout=... for long replies"
        if self._parser.parts:
            fix += "; .partial_text holds the text received so far"
        return StreamTimeout(what, hint=fix, phase=phase, timeout=limit or 0.0)

    async def _complete(self, *, drain: bool) -> None:
        self._finished = True
        self._disarm()
        attempt, self._attempt = self._attempt, None
        self.stats.finish(time.perf_counter() - self._parser.t0)
        if attempt is None:
            return
        if drain:
            try:
                async with asyncio.timeout(_DRAIN_S):
                    await attempt.finish()
            except (TimeoutError, HolyError, OSError):
                await attempt.abort()
        else:
            await attempt.finish()

    def _fail_now(self, exc: HolyError) -> HolyError:
        """Record ``exc`` as the end of the stream and return it (with partial text)."""
        self._finished = True
        self._disarm()
        self._pending_error = None
        self._failure = exc
        if not exc.partial_text:
            exc.partial_text = self.text
        if self.stats.total_s is None:
            self.stats.finish(time.perf_counter() - self._parser.t0)
        return exc

    async def _handle(self, exc: HolyError) -> None:
        """Retry ``exc`` if nothing was delivered and the policy allows it, else raise it."""
        await self._abort_attempt()
        if self._parser.started:
            raise self._fail_now(exc) from None
        await self._retry_or_raise(exc)
        self._parser.reset()
        self._reset_attempt_stats()
        await self._open()

    def _reset_attempt_stats(self) -> None:
        stats = self.stats
        stats.itl_s.clear()
        stats.chunks = 0
        stats.tokens = 0
        stats.ttft_s = stats.ttfr_s = stats.reasoning_s = None
        stats.reasoning_tokens = 0
        stats.prompt_tokens = stats.completion_tokens = None

    async def _retry_or_raise(self, exc: HolyError) -> None:
        event = plan_retry(exc, self._retries, self._opts, self._total_deadline)
        if event is None:
            raise self._fail_now(exc) from None
        self._retries = event.attempt
        await wait_retry(event, self._opts, self.stats)

    async def _open(self) -> None:
        """Open an attempt, retrying failures that happen before any response data."""
        loop = asyncio.get_running_loop()
        while True:
            self._attempt_start = loop.time()
            self._idle_since = self._attempt_start
            self._had_data = False
            deadline, phase, limit = self._deadline()
            try:
                async with asyncio.timeout_at(deadline) as scope:
                    attempt = self._attempt = await self._opener(self.stats)
                self._feed = self._parser.feed_ws if attempt.kind == "ws" else self._parser.feed_sse
                return
            except TimeoutError:
                if not scope.expired():
                    raise
                exc: HolyError = self._timeout_error(phase, limit)
            except HolyError as error:
                exc = error
            await self._retry_or_raise(exc)
