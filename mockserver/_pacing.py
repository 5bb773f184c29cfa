"""The one scheduler that sends every stream's frames at their deadlines.

Every frame is due at ``start + frame.at / speed`` on the loop clock — an absolute deadline, so
a late wake-up never shifts the frames after it. One :class:`Pacer` per event loop keeps one heap
of (deadline, stream) and one loop timer for the earliest deadline; when it fires, the pacer
writes every due frame of every stream straight to its :class:`Sink` (a synchronous transport
write; frames of one stream due together, as when it is behind or at speed 0, go in one write)
and re-arms. A stream therefore costs no task wake-up, future or timer handle per frame:
at a thousand concurrent streams the per-frame work is a heap push and pop, a pre-encoded write
and a counter, which is what keeps the timing right at that scale.

Each stream is still driven by one task — the handler that owns it — which sleeps in
:meth:`Pacer.run` until the stream ends, and wakes only for backpressure (a client that stops
reading: the task awaits the transport's drain, then the stream resumes) or the end.

Wire options of a :class:`~mockserver._faults.Plan` act here: heartbeats (comments or pings
every ``heartbeat_s`` while a stream is quiet, stalls included), byte slices of a frame written
``slice_gap_s`` apart, and WebSocket pause/resume (a pause freezes the schedule: after resuming
the remaining frames keep their spacing).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import math
from collections import deque
from collections.abc import Callable, Iterator
from typing import Protocol

from aiohttp.abc import AbstractStreamWriter

from ._faults import Plan
from ._frames import Frame

__all__ = ["PRECISE_STREAMS", "Pacer", "QueuedSink", "Sink", "Stream"]

# Up to this many concurrent streams, frames are sent precisely: the pacer wakes 1 ms early
# (epoll timeouts are whole milliseconds, rounded up) and yields to the loop until the deadline.
# The busy last millisecond is cheap for a few streams and would starve the loop for many.
PRECISE_STREAMS = 4
_SPIN_S = 0.001
# Frames one stream may write in one turn when it is behind (speed 0, or after a pause in
# reading); then the other streams get their turn.
_BURST = 32
# Longest one turn of the pacer may write before the loop reads sockets again: when it falls
# behind, new requests are still accepted (and their first token kept on time) instead of
# waiting for every late frame of every stream.
_TURN_S = 0.002

RUNNING, PAUSED, BLOCKED, ENDED = range(4)


class Sink(Protocol):
    """Where a stream's frames go: frames (or slices of one) and keep-alives are queued, then
    ``flush`` hands what one turn queued to the transport as one write."""

    def write(self, data: bytes | str) -> None:
        """Queue one frame (or one slice of one)."""

    def heartbeat(self) -> None:
        """Queue a keep-alive (an SSE comment, a WebSocket ping)."""

    def flush(self) -> None:
        """Write what is queued; raise ``ConnectionError`` if the peer left."""

    def blocked(self) -> bool:
        """Whether the transport asked us to stop writing (its buffer is full)."""

    async def drain(self) -> None:
        """Wait until the transport accepts writes again."""


class QueuedSink:
    """What the HTTP and WebSocket sinks share: the queue of one turn, written in one
    ``transport.write``, and the transport's backpressure."""

    __slots__ = ("_out", "_protocol", "_transport", "_writer")

    def __init__(self, writer: AbstractStreamWriter) -> None:
        self._writer = writer
        self._transport = writer.transport  # type: ignore[attr-defined]
        self._protocol = writer.protocol  # type: ignore[attr-defined]
        self._out: list[bytes] = []

    def flush(self) -> None:
        """Write the queued frames in one transport write."""
        out = self._out
        if not out:
            return
        transport = self._transport
        if transport is None or transport.is_closing():
            out.clear()
            raise ConnectionResetError("the client closed the connection")
        transport.write(out[0] if len(out) == 1 else b"".join(out))
        out.clear()

    def blocked(self) -> bool:
        """Whether the transport's buffer is full."""
        return self._protocol.writing_paused

    async def drain(self) -> None:
        """Wait for the transport's buffer to empty."""
        await self._writer.drain()


class Stream:
    """One paced stream: its frames (pulled lazily from a plan), where they go, its state."""

    __slots__ = (
        "_frames", "_gap", "_hb", "_hb_at", "_pieces", "_shift", "_size", "_speed", "_start",
        "_token", "_waiter", "error", "on_frame", "paused_at", "result", "sink", "state",
    )

    def __init__(
        self,
        plan: Plan,
        sink: Sink,
        *,
        start: float,
        speed: float,
        on_frame: Callable[[], None] = lambda: None,
    ) -> None:
        self._frames: Iterator[Frame] = iter(plan.frames)
        self.sink = sink
        self.on_frame = on_frame
        self._start = start
        self._speed = speed
        self._size = plan.slice_size
        self._gap = plan.slice_gap_s
        self._hb = plan.heartbeat_s
        self._hb_at = start + plan.heartbeat_s if plan.heartbeat_s else math.inf
        # (deadline before pauses, data, last slice of its frame) of the frame being sent
        self._pieces: deque[tuple[float, bytes | str, bool]] = deque()
        self._shift = 0.0  # time spent paused
        self._token = 0  # bumped whenever the stream is (re)scheduled: older heap entries lapse
        self._waiter: asyncio.Future[None] | None = None
        self.state = RUNNING
        self.paused_at = 0.0
        self.result: str | None = None  # "eof" | "gone" | "cancelled" | "error"
        self.error: BaseException | None = None

    # -- driven by the pacer -----------------------------------------------------------------

    def _load(self) -> bool:
        """Make the next frame's slices pending; False when the plan is exhausted."""
        frame = next(self._frames, None)
        if frame is None:
            return False
        base = self._start + (frame.at / self._speed if self._speed > 0 else 0.0)
        data = frame.data
        size = self._size
        if size and isinstance(data, bytes) and len(data) > size:
            n = (len(data) + size - 1) // size
            self._pieces.extend(
                (base + i * self._gap, data[i * size:(i + 1) * size], i == n - 1) for i in range(n)
            )
        else:
            self._pieces.append((base, data, True))
        return True

    def next_deadline(self) -> float | None:
        """When this stream next has something to write (None: nothing left)."""
        if not self._pieces and not self._load():
            return None
        return min(self._pieces[0][0], self._hb_at) + self._shift

    def step(self, now: float) -> float | None:
        """Write what is due at ``now`` (at most a burst, in one transport write); return the
        next deadline, or None when the stream is not to be rescheduled (ended, paused or
        blocked)."""
        if self.state != RUNNING:
            return None
        sink = self.sink
        if sink.blocked():
            self.state = BLOCKED
            self._wake()
            return None
        pieces = self._pieces
        due: float | None = None
        try:
            for _ in range(_BURST):
                if not pieces and not self._load():
                    due = None
                    break
                due, data, last = pieces[0]
                if self._hb_at < due:
                    due = self._hb_at + self._shift
                    if due > now:
                        break
                    sink.heartbeat()
                    self._hb_at += self._hb  # type: ignore[operator]
                    continue
                due += self._shift
                if due > now:
                    break
                pieces.popleft()
                sink.write(data)
                if last:
                    self.on_frame()
                else:
                    sink.flush()  # a slice fault's pieces are separate writes on the wire
            else:
                due = self.next_deadline()
            sink.flush()
        except ConnectionError:
            self.end("gone")
            return None
        except Exception as exc:  # a bug must end the stream, not the pacer
            self.error = exc
            self.end("error")
            with contextlib.suppress(ConnectionError):
                sink.flush()  # what was due before the bug still goes out
            return None
        if due is None:
            self.end("eof")
        return due

    # -- controls (from the stream's owner) --------------------------------------------------

    def end(self, result: str) -> None:
        """Stop the stream now; ``result`` says why (the first reason counts)."""
        if self.state == ENDED:
            return
        self.state = ENDED
        self.result = result
        self._wake()

    def pause(self, now: float) -> None:
        """Hold every frame (and heartbeat) until :meth:`resume`."""
        if self.state in (RUNNING, BLOCKED):
            self.state = PAUSED
            self.paused_at = now

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class Pacer:
    """Sends the frames of every running stream at their deadlines (one per event loop)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, int, Stream]] = []
        self._seq = itertools.count()
        self._handle: asyncio.Handle | None = None
        self._armed_at = math.inf
        self.active = 0

    @property
    def precise(self) -> bool:
        """Whether few enough streams run for sub-millisecond sends."""
        return self.active <= PRECISE_STREAMS

    async def run(self, stream: Stream) -> str:
        """Send ``stream`` to its end; return how it ended ("eof", "gone", "cancelled",
        "error"). Cancelling the caller ends the stream."""
        loop = asyncio.get_running_loop()
        self.active += 1
        try:
            self._schedule(stream)
            while stream.state != ENDED:
                if stream.state == BLOCKED:
                    await stream.sink.drain()
                    if stream.state == BLOCKED:  # not paused or ended meanwhile
                        stream.state = RUNNING
                        self._schedule(stream)
                    continue
                stream._waiter = loop.create_future()
                await stream._waiter
            return stream.result or "eof"
        finally:
            stream._waiter = None
            stream.end("gone")  # a no-op unless the caller was cancelled mid-stream
            self.active -= 1

    def resume(self, stream: Stream, now: float) -> None:
        """Continue a paused stream; its remaining frames move by the time it was paused."""
        if stream.state == PAUSED:
            stream._shift += now - stream.paused_at
            stream.state = RUNNING
            self._schedule(stream)

    def _schedule(self, stream: Stream) -> None:
        if stream.state != RUNNING:
            return
        due = stream.next_deadline()
        if due is None:
            stream.end("eof")
            return
        stream._token += 1
        heapq.heappush(self._heap, (due, next(self._seq), stream._token, stream))
        if due < self._armed_at:
            self._arm(due)

    def _arm(self, due: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        loop = asyncio.get_running_loop()
        self._armed_at = due
        wake = due - _SPIN_S if self.precise else due
        if wake <= loop.time():
            self._handle = loop.call_soon(self._run)
        else:
            self._handle = loop.call_at(wake, self._run)

    def _run(self) -> None:
        self._handle = None
        self._armed_at = math.inf
        heap = self._heap
        clock = asyncio.get_running_loop().time
        now = clock()
        stop = now + _TURN_S
        later: list[tuple[float, Stream]] = []
        n = 0
        while heap and heap[0][0] <= now:
            n += 1
            if n > 8 and clock() > stop:
                break  # the rest is late already: after the loop has read its sockets
            _, _, token, stream = heapq.heappop(heap)
            if token != stream._token or stream.state != RUNNING:
                continue  # rescheduled since, or paused, blocked, ended
            due = stream.step(now)
            if due is None:
                continue
            stream._token += 1
            if due <= now:
                later.append((due, stream))  # still behind: after the others had their turn
            else:
                heapq.heappush(heap, (due, next(self._seq), stream._token, stream))
        for due, stream in later:
            heapq.heappush(heap, (due, next(self._seq), stream._token, stream))
        if heap:
            self._arm(heap[0][0])
