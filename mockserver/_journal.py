"""The request journal: one record per request, readable while streams are running.

A :class:`Record` lives in the process that serves its request and is written to the
:class:`~mockserver._store.Store` when it begins and when it finishes (with several workers the
store is shared, so any worker reads every worker's records). Request bodies are kept only up to
:data:`BODY_CAP` bytes, with their full length and SHA-256, so a journal of large requests stays
small.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from array import array
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._config import mask_key

if TYPE_CHECKING:
    from ._store import Store

__all__ = ["BODY_CAP", "SCHEDULE_CAP", "Journal", "Record"]

BODY_CAP = 64 * 1024  # request body bytes kept per record
SCHEDULE_CAP = 256  # frame offsets kept per record


@dataclass(slots=True, eq=False)
class Record:
    """What happened to one request. Holds no API key (only its masked form)."""

    id: int
    method: str
    path: str
    transport: str  # "sse" | "ws" | "json"
    started: float
    worker: int = 0  # pid of the process that served it
    api: str | None = None  # "chat", "responses", "anthropic", "gemini" (None: not an API call)
    model: str | None = None
    stream: bool = False
    status: int | None = None
    outcome: str = "in_progress"  # completed, client_disconnected, cancelled, fault:<name>, error
    ended: float | None = None
    chunks_sent: int = 0
    faults: list[str] = field(default_factory=list)
    cassette: str | None = None
    controls: dict[str, Any] = field(default_factory=dict)
    key: str | None = None
    error: str | None = None
    request_text: str | None = None  # the body (key masked), at most BODY_CAP bytes of it
    request_bytes: int | None = None
    request_sha256: str | None = None
    latency: dict[str, Any] | None = None  # effective ttft_ms/tps/jitter of a generated reply
    schedule: array | None = None  # frame offsets (s) before speed scaling, first SCHEDULE_CAP
    journal: Journal | None = field(default=None, repr=False)

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
        if self.journal is not None:
            self.journal.store.journal_save(self)

    @property
    def finished(self) -> bool:
        """Whether :meth:`finish` was called."""
        return self.ended is not None

    def tick(self) -> None:
        """Count one frame sent."""
        self.chunks_sent += 1

    def set_request(self, body: bytes, key: str | None) -> None:
        """Keep the request body (up to :data:`BODY_CAP` bytes, any key masked), its size and
        its SHA-256."""
        self.request_bytes = len(body)
        self.request_sha256 = hashlib.sha256(body).hexdigest()
        text = body[:BODY_CAP].decode("utf-8", "replace")
        if key and key in text:
            text = text.replace(key, mask_key(key))
        self.request_text = text

    def public(self) -> dict[str, Any]:
        """The record as JSON (``request`` decoded when the whole body was kept and is JSON)."""
        request: Any = self.request_text
        truncated = self.request_bytes is not None and self.request_bytes > BODY_CAP
        if request is not None and not truncated:
            try:
                request = json.loads(request)
            except ValueError:
                pass
        return {
            "id": self.id,
            "method": self.method,
            "path": self.path,
            "transport": self.transport,
            "started": self.started,
            "worker": self.worker,
            "api": self.api,
            "model": self.model,
            "stream": self.stream,
            "status": self.status,
            "outcome": self.outcome,
            "ended": self.ended,
            "chunks_sent": self.chunks_sent,
            "faults": list(self.faults),
            "cassette": self.cassette,
            "controls": dict(self.controls),
            "key": self.key,
            "error": self.error,
            "request": request,
            "request_bytes": self.request_bytes,
            "request_sha256": self.request_sha256,
            "request_truncated": truncated,
            "latency": self.latency,
            "schedule": self.schedule.tolist() if self.schedule is not None else None,
        }


class Journal:
    """Starts records and pages through them; where they are kept is the store's business."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.worker = os.getpid()

    def begin(self, method: str, path: str, transport: str) -> Record:
        """Start a record for a new request."""
        record = Record(0, method, path, transport, time.time(), self.worker, journal=self)
        record.id = self.store.journal_add(record)
        return record

    def page(self, *, after: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """Records with an id above ``after``, oldest first, at most ``limit`` of them."""
        return self.store.journal_page(after, limit)
