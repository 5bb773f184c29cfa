"""Where the mock keeps what must stay true across requests — and across worker processes.

Three things: the journal's records, repeat counters (seeded draws and cassette sequences count
how often a request was seen) and the rate limiter's token buckets. :class:`MemoryStore` keeps
them in the process (one server). :class:`SharedStore` keeps them in one SQLite file in WAL mode
that every worker opens, so a request to any worker sees the records of all of them, a reset
resets all, and a key's bucket is one bucket whatever worker its requests reach.

A record in progress lives in its worker's memory; the shared store gets it when it begins and
when it ends, and while it streams a few at a time: every :data:`SYNC_S` seconds a worker writes
the :data:`SYNC_BATCH` records whose frame count it wrote longest ago (the whole record the first
time, then only the count). Another worker so sees an in-progress record's fields and
``chunks_sent`` about a second late at a thousand streams a worker (sooner with fewer); the
serving worker sees it exactly. Small batches keep each write to a millisecond or two, so the
frames of the worker's streams are not held up.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ._journal import Record

__all__ = ["JOURNAL_SIZE", "SYNC_BATCH", "SYNC_S", "MemoryStore", "SharedStore", "Store"]

JOURNAL_SIZE = 10_000  # records kept (oldest dropped first)
SYNC_S = 0.1  # how often a worker writes in-progress records to the shared store
SYNC_BATCH = 128  # and how many at most each time
DEFAULT_PAGE = 1000  # records per journal page when no limit is given over HTTP


class Store(Protocol):
    """What the journal, the repeat counters and the rate limiter need."""

    def journal_add(self, record: Record) -> int: ...
    def journal_save(self, record: Record) -> None: ...
    def journal_page(self, after: int, limit: int | None) -> list[dict[str, Any]]: ...
    def count(self, key: str) -> int: ...
    def take(self, key: str, capacity: int, rate: float, now: float) -> tuple[bool, int, float]: ...
    def reset(self) -> None: ...
    def close(self) -> None: ...


def _refill(
    tokens: float, stamp: float, capacity: int, rate: float, now: float
) -> tuple[bool, float, float]:
    """One token-bucket draw: (allowed, tokens left, seconds until one is available)."""
    tokens = min(float(capacity), tokens + max(0.0, now - stamp) * rate)
    if tokens >= 1.0:
        return True, tokens - 1.0, 0.0
    return False, tokens, (1.0 - tokens) / rate


class MemoryStore:
    """Everything in this process."""

    def __init__(self) -> None:
        self._records: deque[Record] = deque(maxlen=JOURNAL_SIZE)
        self._next_id = 1
        self._counts: dict[str, int] = {}
        self._buckets: dict[str, tuple[float, float]] = {}

    def journal_add(self, record: Record) -> int:
        """Keep a new record; return its id."""
        record_id, self._next_id = self._next_id, self._next_id + 1
        self._records.append(record)
        return record_id

    def journal_save(self, record: Record) -> None:
        """Nothing to do: the journal holds the record itself."""

    def journal_page(self, after: int, limit: int | None) -> list[dict[str, Any]]:
        """Records with an id above ``after``, oldest first (ids only grow)."""
        out = []
        for record in list(self._records):
            if record.id > after:
                out.append(record.public())
                if limit is not None and len(out) >= limit:
                    break
        return out

    def count(self, key: str) -> int:
        """How often ``key`` was counted before; counts it once more."""
        n = self._counts.get(key, 0)
        self._counts[key] = n + 1
        return n

    def take(self, key: str, capacity: int, rate: float, now: float) -> tuple[bool, int, float]:
        """Take a token from ``key``'s bucket: (allowed, tokens remaining, wait seconds)."""
        tokens, stamp = self._buckets.get(key, (float(capacity), now))
        ok, tokens, wait = _refill(tokens, stamp, capacity, rate, now)
        self._buckets[key] = (tokens, now)
        return ok, int(tokens), wait

    def reset(self) -> None:
        """Forget records, counters and buckets (record ids keep counting, so stay unique)."""
        self._records.clear()
        self._counts.clear()
        self._buckets.clear()

    def close(self) -> None:
        """Nothing to release."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (id INTEGER PRIMARY KEY AUTOINCREMENT, doc TEXT NOT NULL,
                                    chunks INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS buckets (key TEXT PRIMARY KEY, tokens REAL NOT NULL,
                                    stamp REAL NOT NULL);
"""


class SharedStore:
    """Everything in one SQLite file (WAL mode) shared by the worker processes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # Autocommit (isolation_level None): each statement is its own short transaction;
        # the bucket draw takes an explicit IMMEDIATE one. Losing the file to a power cut is
        # fine (it is a test server's scratch state), so the disk is never waited for.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   timeout=10.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.executescript(_SCHEMA)
        self._live: dict[int, Record] = {}
        self._synced: dict[int, tuple[int, float]] = {}  # id -> (chunks written, when)
        self._clock = time.monotonic
        self._adds = 0

    def journal_add(self, record: Record) -> int:
        """Insert a new record; return its id (unique across workers)."""
        (record_id,) = self._db.execute(
            "INSERT INTO journal (doc) VALUES (?) RETURNING id", (self._doc(record),)
        ).fetchone()
        self._live[record_id] = record
        self._adds += 1
        if self._adds % 256 == 0:
            self._db.execute("DELETE FROM journal WHERE id <= ?", (record_id - JOURNAL_SIZE,))
        return record_id

    def journal_save(self, record: Record) -> None:
        """Write a record's current state (it is no longer live once it has ended)."""
        self._db.execute("UPDATE journal SET doc = ?, chunks = ? WHERE id = ?",
                         (self._doc(record), record.chunks_sent, record.id))
        if record.finished:
            self._live.pop(record.id, None)
            self._synced.pop(record.id, None)

    def sync(self, batch: int = SYNC_BATCH) -> None:
        """Write up to ``batch`` of this worker's records in progress whose frame count changed,
        those written longest ago first: a record's first write is whole, later ones the count."""
        synced = self._synced
        dirty = [r for r in self._live.values()
                 if synced.get(r.id, (-1, 0.0))[0] != r.chunks_sent]
        if not dirty:
            return
        dirty.sort(key=lambda r: synced.get(r.id, (-1, 0.0))[1])
        now = self._clock()
        self._db.execute("BEGIN")
        try:
            for record in dirty[:batch]:
                if record.id in synced:
                    self._db.execute("UPDATE journal SET chunks = ? WHERE id = ?",
                                     (record.chunks_sent, record.id))
                else:
                    self._db.execute("UPDATE journal SET doc = ?, chunks = ? WHERE id = ?",
                                     (self._doc(record), record.chunks_sent, record.id))
                synced[record.id] = (record.chunks_sent, now)
        finally:
            self._db.execute("COMMIT")

    def journal_page(self, after: int, limit: int | None) -> list[dict[str, Any]]:
        """Records with an id above ``after``, oldest first; this worker's live ones exact."""
        rows = self._db.execute(
            "SELECT id, doc, chunks FROM journal WHERE id > ? ORDER BY id LIMIT ?",
            (after, -1 if limit is None else limit),
        ).fetchall()
        out = []
        for record_id, doc, chunks in rows:
            live = self._live.get(record_id)
            if live is not None:
                out.append(live.public())
            else:
                out.append({"id": record_id, **json.loads(doc)})
                out[-1]["chunks_sent"] = chunks
        return out

    def count(self, key: str) -> int:
        """How often ``key`` was counted before (by any worker); counts it once more."""
        (n,) = self._db.execute(
            "INSERT INTO counters (key, n) VALUES (?, 1) "
            "ON CONFLICT (key) DO UPDATE SET n = n + 1 RETURNING n", (key,)
        ).fetchone()
        return n - 1

    def take(self, key: str, capacity: int, rate: float, now: float) -> tuple[bool, int, float]:
        """Take a token from ``key``'s bucket, shared by every worker."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            row = self._db.execute("SELECT tokens, stamp FROM buckets WHERE key = ?",
                                   (key,)).fetchone()
            tokens, stamp = row if row else (float(capacity), now)
            ok, tokens, wait = _refill(tokens, stamp, capacity, rate, now)
            self._db.execute(
                "INSERT INTO buckets (key, tokens, stamp) VALUES (?, ?, ?) ON CONFLICT (key) "
                "DO UPDATE SET tokens = excluded.tokens, stamp = excluded.stamp",
                (key, tokens, now),
            )
        finally:
            self._db.execute("COMMIT")
        return ok, int(tokens), wait

    def reset(self) -> None:
        """Forget every worker's records, counters and buckets."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for table in ("journal", "counters", "buckets"):
                self._db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
        finally:
            self._db.execute("COMMIT")
        self._live.clear()
        self._synced.clear()

    def close(self) -> None:
        """Write what is still live and close the file."""
        for record in list(self._live.values()):
            self.journal_save(record)
        self._db.close()

    @staticmethod
    def _doc(record: Record) -> str:
        doc = record.public()
        del doc["id"]
        return json.dumps(doc, ensure_ascii=False)
