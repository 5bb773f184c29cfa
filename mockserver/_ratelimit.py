"""A token-bucket rate limiter per API key."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ._config import parse_rate_limit

__all__ = ["RateLimiter"]


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """``capacity`` requests per ``period`` seconds per key, refilled continuously.

    Buckets are keyed by a one-way digest of the key so the limiter never holds a key.
    """

    def __init__(self, spec: str, *, clock=time.monotonic) -> None:
        self.capacity, self.period = parse_rate_limit(spec)
        self.rate = self.capacity / self.period
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def acquire(self, key_id: str) -> tuple[bool, int, float]:
        """Take one token: ``(allowed, remaining, seconds until one is available)``."""
        now = self._clock()
        bucket = self._buckets.get(key_id)
        if bucket is None:
            bucket = self._buckets[key_id] = _Bucket(float(self.capacity), now)
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.stamp) * self.rate)
        bucket.stamp = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True, int(bucket.tokens), 0.0
        return False, 0, (1.0 - bucket.tokens) / self.rate

    def reset(self) -> None:
        """Forget every bucket."""
        self._buckets.clear()
