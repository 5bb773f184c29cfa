"""Retry policy, all of it: which failures are retried, how long to wait, and the retry itself.

Only failures before the first delta are retried (nothing was delivered, so a new attempt cannot
duplicate text). Every re-send is a counted retry: it fires ``on_retry``, adds to
``stats.retries`` and obeys ``max_retries``. The one exception is below this layer: a pooled
keep-alive connection found closed before any byte of the request was written is replaced by
aiohttp's connector without a retry, since the server never saw the request.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from holynb._errors import APIStatusError, ConnectError, HolyError, StreamInterrupted, StreamTimeout

if TYPE_CHECKING:
    from holynb._config import Options
    from holynb._stats import StreamStats

__all__ = [
    "RETRY_STATUSES",
    "RetryEvent",
    "backoff_delay",
    "plan_retry",
    "retry_after_from_headers",
    "retry_reason",
    "wait_retry",
]

log = logging.getLogger("holynb")

# 408 request timeout, 409 conflict (lock contention), 429 rate limit, 5xx server side.
RETRY_STATUSES = frozenset({408, 409, 429})
BASE_DELAY_S = 0.5
MAX_BACKOFF_S = 8.0
# A server hint longer than this is not honoured as-is: the wait is capped here.
MAX_HINT_S = 60.0


def is_retryable_status(status: int) -> bool:
    """True for 408, 409, 429 and every 5xx."""
    return status in RETRY_STATUSES or status >= 500


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """Announces a retry: passed to ``on_retry`` before holynb sleeps ``delay_s`` seconds."""

    attempt: int
    max_retries: int
    delay_s: float
    reason: str
    error: BaseException | None = None

    def __str__(self) -> str:
        return (
            f"{self.reason} — retrying in {self.delay_s:.1f} s "
            f"({self.attempt}/{self.max_retries})"
        )


def retry_after_from_headers(
    headers: Mapping[str, str], *, now: float | None = None
) -> float | None:
    """Seconds the server asks us to wait: retry-after-ms, Retry-After, X-RateLimit-Reset."""
    now = time.time() if now is None else now
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - now)
            except (TypeError, ValueError, IndexError, OverflowError):
                pass
    value = headers.get("x-ratelimit-reset")
    if value:
        try:
            reset = float(value)
        except ValueError:
            return None
        # An epoch timestamp (seconds); small values are a relative number of seconds.
        return max(0.0, reset - now) if reset > 1e9 else max(0.0, reset)
    return None


def backoff_delay(attempt: int, hint: float | None = None) -> float:
    """Seconds to wait before retry ``attempt`` (1-based): the server hint, else backoff+jitter."""
    if hint is not None:
        return min(hint, MAX_HINT_S)
    delay = min(MAX_BACKOFF_S, BASE_DELAY_S * 2 ** (attempt - 1))
    # Up to 25% jitter so that many clients rate limited together do not retry in lockstep.
    return delay * (1 - 0.25 * random.random())


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
    if isinstance(exc, ConnectError):
        # A certificate the client refuses today is refused again a second later.
        return None if exc.kind == "tls" else "connection failed"
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
