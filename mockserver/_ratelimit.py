"""A token-bucket rate limiter per API key (buckets kept in a store, shared by workers)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from ._config import parse_rate_limit
from ._store import MemoryStore, Store

__all__ = ["RateLimiter"]


class RateLimiter:
    """``capacity`` requests per ``period`` seconds per key, refilled continuously.

    Buckets are keyed by a one-way digest of the key so the limiter never holds a key.
    """

    def __init__(
        self,
        spec: str,
        *,
        store: Store | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity, self.period = parse_rate_limit(spec)
        self.rate = self.capacity / self.period
        self._store = store or MemoryStore()
        self._clock = clock

    def acquire(self, key: str | None) -> tuple[bool, int, float]:
        """Take one token: ``(allowed, remaining, seconds until one is available)``."""
        key_id = "rate:" + hashlib.sha256((key or "").encode()).hexdigest()
        return self._store.take(key_id, self.capacity, self.rate, self._clock())
