"""The request journal: one record per request, readable while streams are running."""

from __future__ import annotations

import itertools
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Journal", "Record"]


@dataclass(slots=True)
class Record:
    """What happened to one request. Holds no API key (only its masked form)."""

    id: int
    method: str
    path: str
    transport: str  # "sse" | "ws" | "json"
    started: float
    model: str | None = None
    stream: bool = False
    status: int | None = None
    outcome: str = "in_progress"  # completed | client_disconnected | fault:<name> | error
    ended: float | None = None
    chunks_sent: int = 0
    faults: list[str] = field(default_factory=list)
    cassette: str | None = None
    controls: dict[str, Any] = field(default_factory=dict)
    key: str | None = None
    error: str | None = None
    request: Any = None
    latency: dict[str, Any] | None = None  # effective ttft_ms/tps/jitter of a generated reply
    schedule: list[float] | None = None  # frame offsets (s) before speed scaling, first 1000

    def finish(self, outcome: str, *, status: int | None = None, error: str | None = None) -> None:
        """Close the record (only the first call counts)."""
        if self.ended is not None:
            return
        self.outcome = outcome
        if status is not None:
            self.status = status
        if error is not None:
            self.error = error
        self.ended = time.time()

    def tick(self) -> None:
        """Count one frame sent."""
        self.chunks_sent += 1


class Journal:
    """A bounded list of :class:`Record` (oldest dropped first)."""

    def __init__(self, maxlen: int = 10_000) -> None:
        self._records: deque[Record] = deque(maxlen=maxlen)
        self._ids = itertools.count(1)

    def begin(self, method: str, path: str, transport: str) -> Record:
        """Start a record for a new request."""
        record = Record(next(self._ids), method, path, transport, time.time())
        self._records.append(record)
        return record

    def snapshot(self) -> list[dict[str, Any]]:
        """All records as plain dicts (oldest first)."""
        return [asdict(r) for r in list(self._records)]

    def clear(self) -> None:
        """Drop every record (ids keep counting so they stay unique)."""
        self._records.clear()
