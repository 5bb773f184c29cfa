"""What every handler of one app shares: config, store, journal, cassettes, limiter, pacer."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ._cassettes import CassetteStore
from ._config import MockConfig
from ._journal import Journal
from ._latency import PROFILES
from ._pacing import Pacer
from ._ratelimit import RateLimiter
from ._record import Recorder
from ._store import MemoryStore, SharedStore, Store

__all__ = ["MockState"]


class MockState:
    """The app's shared state. ``shared`` names the SQLite file of a multi-worker server and
    ``slot`` this worker's number among them."""

    def __init__(
        self, config: MockConfig, *, shared: str | Path | None = None, slot: int = 0
    ) -> None:
        self.config = config
        self.store: Store = SharedStore(shared, slot=slot) if shared else MemoryStore()
        self.journal = Journal(self.store)
        self.cassettes = CassetteStore(config.cassette_paths, strict=config.strict,
                                       counter=self._cassette_count)
        self.limiter = (RateLimiter(config.rate_limit, store=self.store)
                        if config.rate_limit else None)
        self.pacer = Pacer()
        self.recorder: Recorder | None = None  # record mode: set for the app's life
        self.websockets: set[Any] = set()
        self.active = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.draining = False
        self.models = frozenset(PROFILES) | frozenset(self.cassettes.models())

    def _cassette_count(self, key: str) -> int:
        return self.store.count("cassette:" + key)

    def stream_started(self) -> None:
        """Count an answer in progress (drain waits for these)."""
        self.active += 1
        self.idle.clear()

    def stream_ended(self) -> None:
        """Uncount an answer in progress."""
        self.active -= 1
        if self.active <= 0:
            self.active = 0
            self.idle.set()

    def reset(self) -> None:
        """Clear the journal, cassette sequences, rate-limit buckets and repeat counters (of
        every worker, when they share a store)."""
        self.store.reset()
        self.cassettes.reset()
