"""Retry policy: which failures are retried and how long to wait (before the first delta only)."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

__all__ = ["RETRY_STATUSES", "RetryEvent", "backoff_delay", "retry_after_from_headers"]

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
