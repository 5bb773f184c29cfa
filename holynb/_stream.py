"""One streamed chat completion: attempts, retries, timeouts, cancellation and its results."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Protocol

from holynb._chunks import ChunkParser
from holynb._errors import APIStatusError, HolyError, StreamInterrupted, StreamTimeout
from holynb._retry import RetryEvent, backoff_delay, is_retryable_status
from holynb._stats import StreamStats

if TYPE_CHECKING:
    from holynb._client import AsyncClient

__all__ = ["AsyncStream", "Attempt", "Options", "plan_retry", "retry_reason", "wait_retry"]

log = logging.getLogger("holynb")

# After [DONE], how long to wait for the end of the body before dropping the connection.
_DRAIN_S = 2.0
# After the finish reason, how long to wait for [DONE] / usage before calling the reply complete.
_FINISH_GRACE_S = 0.5


class Attempt(Protocol):
    """What a transport returns for one request attempt."""

    async def read(self) -> list[str] | None: ...

    async def finish(self) -> None: ...

    async def abort(self) -> None: ...


class Options:
    """Per-stream settings after merging call arguments over client defaults."""

    __slots__ = (
        "transport",
        "max_retries",
        "connect_timeout",
        "first_token_timeout",
        "idle_timeout",
        "total_timeout",
        "skip_malformed",
        "on_retry",
        "extra_headers",
    )

    def __init__(self, **values: Any) -> None:
        for name in self.__slots__:
            setattr(self, name, values[name])


def retry_reason(exc: HolyError) -> str | None:
    """Short reason text if ``exc`` may be retried (before the first delta), else None."""
    if isinstance(exc, APIStatusError):
        status = exc.status_code
        if not is_retryable_status(status):
            return None
        if status == 429:
            return "rate limited"
        if status >= 500:
            return f"server error {status}"
        return f"HTTP {status}"
    if isinstance(exc, StreamTimeout):
        return "connect timeout" if exc.phase == "connect" else None
    if isinstance(exc, StreamInterrupted):
        return "connection failed"
    return None


def plan_retry(
    exc: HolyError, retries: int, options: Options, deadline: float | None
) -> RetryEvent | None:
    """The retry to make after ``exc`` (``retries`` done so far), or None to give up."""
    reason = retry_reason(exc)
    if reason is None or retries >= options.max_retries:
        return None
    hint = exc.retry_after if isinstance(exc, APIStatusError) else None
    delay = backoff_delay(retries + 1, hint)
    if deadline is not None and asyncio.get_running_loop().time() + delay >= deadline:
        return None
    return RetryEvent(
        attempt=retries + 1,
        max_retries=options.max_retries,
        delay_s=delay,
        reason=reason,
        error=exc,
    )


async def wait_retry(event: RetryEvent, options: Options, stats: StreamStats) -> None:
    """Announce ``event`` (log, ``on_retry``), count it in ``stats`` and sleep its delay."""
    stats.retries = event.attempt
    log.info("%s", event)
    callback: Callable[[RetryEvent], Any] | None = options.on_retry
    if callback is not None:
        result = callback(event)
        if asyncio.iscoroutine(result):
            await result
    await asyncio.sleep(event.delay_s)


class AsyncStream:
    """A streamed chat completion: ``async with`` it, then ``async for delta in stream``.

    ``.text``, ``.finish_reason``, ``.usage``, ``.tool_calls``, ``.model`` and ``.stats`` are
    live while it runs and final once it ends. Leaving the ``async with`` early (or ``aclose()``)
    closes the upstream connection at once.
    """

    def __init__(
        self,
        client: AsyncClient,
        body: dict[str, Any],
        options: Options,
    ) -> None:
        self._client = client
        self._body = body
        self._opts = options
        self.stats = StreamStats()
        self.requested_model: str = body["model"]
        self._parser = ChunkParser(
            self.stats, t0=0.0, skip_malformed=options.skip_malformed, key=client._key
        )
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
        self._iterator: AsyncIterator[str] | None = None

    # -- results -------------------------------------------------------------------------------

    @property
    def text(self) -> str:
        """All text received so far."""
        return "".join(self._parser.parts)

    @property
    def finish_reason(self) -> str | None:
        """``stop``, ``length``, ``tool_calls``... once the server sent it."""
        return self._parser.finish_reason

    @property
    def usage(self) -> dict[str, Any] | None:
        """The usage chunk (``prompt_tokens``, ``completion_tokens``, ``total_tokens``) if sent."""
        return self._parser.usage

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
    def done(self) -> bool:
        """True once the stream ended normally."""
        return self._finished and self._failure is None and self._pending_error is None

    def __repr__(self) -> str:
        state = "done" if self._finished else "closed" if self._closed else "open"
        return (
            f"<AsyncStream model={self.model!r} transport={self.transport!r} {state} "
            f"chars={sum(map(len, self._parser.parts))} key={self._client.masked_key}>"
        )

    # -- context management --------------------------------------------------------------------

    async def __aenter__(self) -> AsyncStream:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncIterator[str]:
        if self._iterator is None:
            self._iterator = self._iterate()
        return self._iterator

    async def _iterate(self) -> AsyncIterator[str]:
        # Used without ``async with``: the iteration owns the stream and closes it at the end.
        owned = not self._opened
        try:
            if owned:
                await self.start()
            while True:
                deltas = await self.next_deltas()
                if not deltas:
                    return
                for delta in deltas:
                    yield delta
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
        attempt, self._attempt = self._attempt, None
        if attempt is not None:
            await attempt.abort()

    # -- the read loop -------------------------------------------------------------------------

    async def next_deltas(self) -> list[str]:
        """Wait for the next batch of text deltas; [] once the stream has ended."""
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
            deadline, phase, limit = self._deadline()
            try:
                async with asyncio.timeout_at(deadline) as scope:
                    batch = await attempt.read()
            except TimeoutError:
                if not scope.expired():
                    raise
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
                        f"The server closed the stream early ({self.stats.chunks} chunks, no "
                        "finish_reason, no [DONE]) — retry; the text received so far is in "
                        ".partial_text."
                    )
                )
                continue
            if not batch:
                continue
            deltas = parser.feed(batch, time.perf_counter())
            self._had_data = True
            if parser.error is not None:
                error, parser.error = parser.error, None
                if deltas:
                    # Deliver the text that came before the error, raise on the next call.
                    self._pending_error = error
                    return deltas
                await self._handle(error)
                continue
            if parser.done:
                await self._complete(drain=True)
                return deltas
            if deltas:
                return deltas
        return []

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
            what = f"No first token within {limit} s (first_token_timeout)"
            fix = "the server may be overloaded; retry or raise first_token_timeout=..."
        elif phase == "idle":
            what = f"No data for {limit} s after {chunks} chunks (idle_timeout)"
            fix = "the stream stalled; retry or raise idle_timeout=..."
        else:
            what = f"The stream took longer than {limit} s (total_timeout)"
            fix = "raise total_timeout=... for long replies"
        kept = "; the text received so far is in .partial_text" if self._parser.parts else ""
        return StreamTimeout(f"{what} — {fix}{kept}.", phase=phase, timeout=limit or 0.0)

    async def _complete(self, *, drain: bool) -> None:
        self._finished = True
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
        stats.ttft_s = None
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
                    self._attempt = await self._client._open_attempt(
                        self._body, self._opts, self.stats
                    )
                return
            except TimeoutError:
                if not scope.expired():
                    raise
                exc: HolyError = self._timeout_error(phase, limit)
            except HolyError as error:
                exc = error
            await self._retry_or_raise(exc)
