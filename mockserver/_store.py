"""Where the mock keeps what must stay true across requests — and across worker processes.

Four things: the journal's records, repeat counters (seeded draws and cassette sequences count
how often a request was seen), the rate limiter's token buckets and the conversations of stored
Responses replies (what ``previous_response_id`` continues). :class:`MemoryStore` keeps
them in the process (one server). :class:`SharedStore` keeps them in one SQLite file in WAL mode
that every worker opens, so a request to any worker sees the records of all of them, a reset
resets all, and a key's bucket is one bucket whatever worker its requests reach.

No request waits for the file to write its journal record. A worker keeps its own records in
memory (exact for requests to it) and flushes every :data:`SYNC_S` seconds in one transaction:
records begun or ended since the last flush, whole, and the frame counts of the
:data:`SYNC_BATCH` records in progress it wrote longest ago. The flush never waits for the lock
(a busy file is tried again next time), so another process can never hold up a worker's event
loop. Another worker's records are therefore visible from ~50 ms after they begin or end; at a
thousand streams a worker an in-progress record's ``chunks_sent`` lags by about a second. The
repeat counters and rate-limit buckets are read and written in place (a request waits for them),
only when seeds, cassette sequences or ``--rate-limit`` are in use.

A stored Responses conversation is queued by :meth:`SharedStore.remember` and written by
:meth:`SharedStore.publish`, which the pipeline calls before the first event naming the response
goes out (and the flush, for a reply that never got that far): every request answered since the
last write goes in one transaction — one commit a turn of the pacer instead of one a request —
and another worker sees the conversation before the client can know its id.
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

__all__ = ["JOURNAL_SIZE", "MEMORY_SIZE", "SYNC_BATCH", "SYNC_S", "MemoryStore", "SharedStore",
           "Store"]

JOURNAL_SIZE = 10_000  # records kept (oldest dropped first)
MEMORY_SIZE = 1_000  # stored Responses conversations kept (oldest dropped first)
SYNC_S = 0.05  # how often a worker flushes its journal to the shared store
SYNC_BATCH = 128  # in-progress frame counts written per flush, at most
_EPOCH_MS = 1_735_689_600_000  # 2025-01-01: record ids count milliseconds from here
DEFAULT_PAGE = 1000  # records per journal page when no limit is given over HTTP


class Store(Protocol):
    """What the journal, the repeat counters and the rate limiter need."""

    def journal_add(self, record: Record) -> int: ...
    def journal_save(self, record: Record) -> None: ...
    def journal_page(self, after: int, limit: int | None) -> list[dict[str, Any]]: ...
    def count(self, key: str) -> int: ...
    def take(self, key: str, capacity: int, rate: float, now: float) -> tuple[bool, int, float]: ...
    def remember(self, key: str, doc: str) -> None: ...
    def publish(self) -> None: ...
    def recall(self, key: str) -> str | None: ...
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
        self._memory: dict[str, str] = {}

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

    def remember(self, key: str, doc: str) -> None:
        """Keep ``doc`` under ``key`` (the oldest of :data:`MEMORY_SIZE` is dropped)."""
        self._memory.pop(key, None)
        self._memory[key] = doc
        if len(self._memory) > MEMORY_SIZE:
            del self._memory[next(iter(self._memory))]

    def publish(self) -> None:
        """Nothing to do: what is remembered is seen at once."""

    def recall(self, key: str) -> str | None:
        """What was kept under ``key``."""
        return self._memory.get(key)

    def reset(self) -> None:
        """Forget records, counters, buckets and conversations (record ids keep counting, so
        stay unique)."""
        self._records.clear()
        self._counts.clear()
        self._buckets.clear()
        self._memory.clear()

    def close(self) -> None:
        """Nothing to release."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (id INTEGER PRIMARY KEY, doc TEXT NOT NULL,
                                    chunks INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS meta (gen INTEGER NOT NULL, reset_at REAL NOT NULL);
INSERT INTO meta (gen, reset_at) SELECT 0, 0 WHERE NOT EXISTS (SELECT 1 FROM meta);
CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS buckets (key TEXT PRIMARY KEY, tokens REAL NOT NULL,
                                    stamp REAL NOT NULL);
CREATE TABLE IF NOT EXISTS memory (n INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT UNIQUE NOT NULL,
                                   doc TEXT NOT NULL);
"""


class SharedStore:
    """Everything in one SQLite file (WAL mode) shared by the worker processes.

    ``slot`` (0-63) is this worker's number: record ids are made here, without touching the
    file — 41 bits of milliseconds since 2025, 6 of slot, 6 of sequence — so they are unique
    across workers, grow with time, and stay below 2**53 (exact in any JSON reader).
    """

    def __init__(self, path: str | Path, *, slot: int = 0) -> None:
        self.path = Path(path)
        self.slot = slot
        # Autocommit (isolation_level None): each statement is its own short transaction;
        # counters, buckets and resets take explicit IMMEDIATE ones. Losing the file to a power
        # cut is fine (it is a test server's scratch state), so the disk is never waited for.
        self._db = self._connect(timeout=10.0)
        self._db.executescript(_SCHEMA)
        # The journal's writes never wait for the other workers' lock: a busy file is retried
        # at the next flush, so the event loop is never held by another process.
        self._flush_db = self._connect(timeout=0.0)
        self._records: deque[Record] = deque(maxlen=JOURNAL_SIZE)  # this worker's, exact
        self._live: dict[int, Record] = {}
        self._pending: dict[int, Record] = {}  # to write whole at the next flush
        self._synced: dict[int, tuple[int, float]] = {}  # id -> (chunks written, when)
        self._remembered: dict[str, str] = {}  # conversations to write at the next publish
        self._gen = self._generation(self._db)[0]
        self._tick = self._seq = 0  # the last id's millisecond and sequence
        self._flushes = 0

    def _connect(self, *, timeout: float) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                             timeout=timeout)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=OFF")
        return db

    @staticmethod
    def _generation(db: sqlite3.Connection) -> tuple[int, float]:
        return db.execute("SELECT gen, reset_at FROM meta").fetchone()

    def _catch_up(self, generation: tuple[int, float]) -> None:
        """Another process reset the store: forget this worker's records begun before it (not
        those begun since, before this worker noticed)."""
        gen, reset_at = generation
        if gen == self._gen:
            return
        self._gen = gen
        kept = [r for r in self._records if r.started >= reset_at]
        self._records.clear()
        self._records.extend(kept)
        ids = {r.id for r in kept}
        for table in (self._live, self._pending, self._synced):
            for record_id in [i for i in table if i not in ids]:
                del table[record_id]

    def journal_add(self, record: Record) -> int:
        """Keep a new record (it reaches the file at the next flush); return its id."""
        tick = int(time.time() * 1000) - _EPOCH_MS
        if tick > self._tick:
            self._tick, self._seq = tick, 0
        else:  # the same millisecond (or the clock stepped back): next in sequence
            self._seq += 1
            if self._seq > 63:
                self._tick, self._seq = self._tick + 1, 0
        record_id = self._tick << 12 | self.slot << 6 | self._seq
        self._records.append(record)
        self._live[record_id] = record
        self._pending[record_id] = record
        return record_id

    def journal_save(self, record: Record) -> None:
        """A record ended: write it whole at the next flush."""
        if record.finished and self._live.pop(record.id, None) is not None:
            self._synced.pop(record.id, None)
            self._pending[record.id] = record

    def sync(self, batch: int = SYNC_BATCH) -> None:
        """Flush: new and ended records whole, and the frame counts of up to ``batch`` records
        in progress (written longest ago first). A busy file is left for the next flush."""
        synced = self._synced
        dirty = [r for r in self._live.values() if r.id not in self._pending
                 and synced.get(r.id, (-1, 0.0))[0] != r.chunks_sent]
        dirty.sort(key=lambda r: synced.get(r.id, (-1, 0.0))[1])
        dirty = dirty[:batch]
        if not self._pending and not dirty and not self._remembered:
            return
        db = self._flush_db
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            return  # another worker is writing: next time
        try:
            self._catch_up(self._generation(db))
            whole = list(self._pending.values())
            db.executemany("INSERT OR REPLACE INTO journal (id, doc, chunks) VALUES (?, ?, ?)",
                           [(r.id, self._doc(r), r.chunks_sent) for r in whole])
            db.executemany("UPDATE journal SET chunks = ? WHERE id = ?",
                           [(r.chunks_sent, r.id) for r in dirty if r.id in self._live])
            remembered = self._write_memory(db)
            self._flushes += 1
            if self._flushes % 64 == 0:  # keep the newest JOURNAL_SIZE records
                db.execute("DELETE FROM journal WHERE id < (SELECT id FROM journal ORDER BY id "
                           "DESC LIMIT 1 OFFSET ?)", (JOURNAL_SIZE - 1,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        now = time.monotonic()
        for record in whole:
            if not record.finished:
                synced[record.id] = (record.chunks_sent, now)
        for record in dirty:
            synced[record.id] = (record.chunks_sent, now)
        self._pending.clear()
        self._forget_written(remembered)

    def journal_page(self, after: int, limit: int | None) -> list[dict[str, Any]]:
        """Records with an id above ``after``, oldest first: this worker's exactly, the other
        workers' as of their last flush."""
        self._catch_up(self._generation(self._db))
        rows = self._db.execute(
            "SELECT id, doc, chunks FROM journal WHERE id > ? ORDER BY id LIMIT ?",
            (after, -1 if limit is None else limit),
        ).fetchall()
        found: dict[int, dict[str, Any]] = {}
        for record_id, doc, chunks in rows:
            found[record_id] = {"id": record_id, **json.loads(doc)}
            found[record_id]["chunks_sent"] = chunks
        for record in list(self._records):  # this worker's own: as they are now
            if record.id > after:
                found[record.id] = record.public()
        ordered = [found[i] for i in sorted(found)]
        return ordered if limit is None else ordered[:limit]

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

    def remember(self, key: str, doc: str) -> None:
        """Keep ``doc`` under ``key`` for every worker, from the next :meth:`publish` (this
        worker sees it at once)."""
        self._remembered.pop(key, None)
        self._remembered[key] = doc

    def publish(self) -> None:
        """Write the conversations remembered since the last write, in one transaction (waiting
        for the lock, as a request's write always did); the oldest of :data:`MEMORY_SIZE` are
        dropped."""
        if not self._remembered:
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            written = self._write_memory(self._db)
        finally:
            self._db.execute("COMMIT")
        self._forget_written(written)

    def _write_memory(self, db: sqlite3.Connection) -> list[tuple[str, str]]:
        """Write the remembered conversations (in the caller's transaction); return them."""
        items = list(self._remembered.items())
        if items:
            db.executemany("INSERT OR REPLACE INTO memory (key, doc) VALUES (?, ?)", items)
            db.execute("DELETE FROM memory WHERE n <= (SELECT MAX(n) FROM memory) - ?",
                       (MEMORY_SIZE,))
        return items

    def _forget_written(self, items: list[tuple[str, str]]) -> None:
        """Drop what was written from the queue (unless remembered anew meanwhile)."""
        remembered = self._remembered
        for key, doc in items:
            if remembered.get(key) is doc:
                del remembered[key]

    def recall(self, key: str) -> str | None:
        """What any worker kept under ``key`` (this worker's, written or not)."""
        doc = self._remembered.get(key)
        if doc is not None:
            return doc
        row = self._db.execute("SELECT doc FROM memory WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def reset(self) -> None:
        """Forget every worker's records, counters, buckets and conversations (the others see
        the new generation at their next flush or read, and drop their older records)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for table in ("journal", "counters", "buckets", "memory"):
                self._db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
            self._db.execute("UPDATE meta SET gen = gen + 1, reset_at = ?", (time.time(),))
            gen = self._generation(self._db)
        finally:
            self._db.execute("COMMIT")
        self._remembered.clear()
        self._catch_up(gen)

    def close(self) -> None:
        """Flush what this worker still holds and close the file."""
        self._pending.update(self._live)
        self._flush_db.close()
        self._flush_db = self._db  # the last flush may wait for the lock
        self.sync()
        self._db.close()

    @staticmethod
    def _doc(record: Record) -> str:
        doc = record.public()
        del doc["id"]
        return json.dumps(doc, ensure_ascii=False)
