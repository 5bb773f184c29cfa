"""Incremental decoder for ``text/event-stream`` bodies (server-sent events).

The one SSE decoder of holynb: the client and the bundled mock server both use it. It follows the
WHATWG rules for interpreting an event stream:
https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation

It is a pure state machine over bytes, with no I/O::

    decoder = SSEDecoder()
    for chunk in network_reads:
        for event in decoder.feed(chunk):
            handle(event.data)
    decoder.close()  # end of stream: a partial event is discarded

Speed matters (the client delivers >100k chunks/s): ``feed`` works on whole buffers with
``rfind``/``split`` and decodes UTF-8 per line, never byte by byte, and it never re-scans bytes
it has already searched, so a huge event arriving in small pieces costs linear time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_MAX_EVENT_SIZE",
    "EventTooLargeError",
    "SSEDecoder",
    "SSEError",
    "ServerSentEvent",
]

DEFAULT_MAX_EVENT_SIZE = 16 * 1024 * 1024

_BOM = b"\xef\xbb\xbf"  # U+FEFF encoded as UTF-8
_LF = 0x0A
_CR = 0x0D
_COLON = 0x3A


class SSEError(ValueError):
    """An event stream could not be decoded."""


class EventTooLargeError(SSEError):
    """One event (or one unterminated line) grew beyond the decoder's ``max_event_size``.

    ``events`` holds the events completed earlier in the same ``feed()`` call, so that no
    already-received text is lost. The decoder is reset: abandon the stream.
    """

    def __init__(self, size: int, limit: int, events: list[ServerSentEvent]) -> None:
        super().__init__(
            f"server-sent event too large: {size:,} bytes buffered without completing it, "
            f"over the {limit:,}-byte limit; raise it with SSEDecoder(max_event_size=...)"
        )
        self.size = size
        self.limit = limit
        self.events = events


@dataclass(slots=True)
class ServerSentEvent:
    """One dispatched event: type, data lines joined by LF, last event id, reconnection time."""

    event: str = "message"
    data: str = ""
    id: str = ""
    retry: int | None = None

    def json(self) -> Any:
        """Parse ``data`` as JSON."""
        return json.loads(self.data)


class SSEDecoder:
    """Turn the bytes of an event stream, fed in arbitrary pieces, into :class:`ServerSentEvent`.

    ``retry`` on an event is the last valid ``retry`` field received since the previous
    dispatched event (None if there was none); ``id`` is the stream's last event id, which
    carries over to later events until an ``id`` field changes it.
    """

    __slots__ = (
        "_max",
        "_pending",
        "_at_start",
        "_skip_lf",
        "_type",
        "_data",
        "_id",
        "_retry",
        "_size",
    )

    def __init__(self, *, max_event_size: int = DEFAULT_MAX_EVENT_SIZE) -> None:
        if not isinstance(max_event_size, int) or max_event_size < 1:
            raise ValueError(
                f"max_event_size must be a positive number of bytes, got {max_event_size!r}"
            )
        self._max = max_event_size
        self._reset()

    def _reset(self) -> None:
        # Bytes of the line in progress. Invariant: never holds a CR or LF, so a new search for
        # line ends can start where the previous one stopped (linear time for huge lines).
        self._pending = bytearray()
        # Still at the very beginning of the stream, where one BOM may appear.
        self._at_start = True
        # The previous chunk ended with CR: an LF at the start of the next chunk belongs to it.
        self._skip_lf = False
        # The spec's event type buffer, data buffer (as a list of lines) and last event ID buffer.
        self._type = ""
        self._data: list[str] = []
        self._id = ""
        self._retry: int | None = None
        # Bytes of the complete lines that belong to the event in progress.
        self._size = 0

    def feed(self, data: bytes) -> list[ServerSentEvent]:
        """Decode the next piece of the stream; return the events it completed (often [])."""
        if type(data) is not bytes:
            data = _as_bytes(data)
        if not data:
            return []
        if self._at_start:
            data = self._strip_bom(data)
            if not data:
                return []
        if self._skip_lf:
            # "CRLF" split across two chunks: the CR already ended the line, so this LF must
            # not count as a second (empty) line, which would dispatch the event early.
            self._skip_lf = False
            if data[0] == _LF:
                data = data[1:]
                if not data:
                    return []

        pending = self._pending
        if (
            data[-2:] == b"\n\n"
            and data[:6] == b"data: "
            and not pending
            and not self._data
            and not self._type
            and data.find(b"\n", 6) == len(data) - 2
            and b"\r" not in data
            and len(data) + self._size <= self._max
        ):
            # Fast path: the chunk is exactly one single-line `data:` event, as a streaming
            # server writes it, and no event is in progress. Same result as the general path.
            event = ServerSentEvent(
                "message", data[6:-2].decode("utf-8", "replace"), self._id, self._retry
            )
            self._retry = None
            self._size = 0
            return [event]
        if pending:
            scan = len(pending)  # everything before this was searched already
            pending += data
            buf: bytes | bytearray = pending
        else:
            scan = 0
            buf = data

        # Lines end with CRLF, LF or CR (spec: "end-of-line"). Find the last line end; only the
        # bytes up to it are processed now, the rest waits in `pending` for more data.
        end = buf.rfind(b"\n", scan)
        cr = buf.rfind(b"\r", end + 1 if end >= 0 else scan)
        if cr > end:
            end = cr
        if end < 0:
            if buf is data:
                pending += data
            self._check_pending_size([])
            return []
        if end == len(buf) - 1 and buf[end] == _CR:
            self._skip_lf = True

        if buf is data:
            if end == len(data) - 1:
                complete = data
            else:
                complete = data[: end + 1]
                pending += data[end + 1 :]
        else:
            complete = bytes(pending[: end + 1])
            del pending[: end + 1]

        if b"\r" in complete:
            # Normalise CRLF and lone CR to LF (a CRLF split across chunks was handled above).
            complete = complete.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        elif (
            complete[-2:] == b"\n\n"
            and not self._size
            and not self._data
            and not self._type
            and self._retry is None
            and len(complete) <= self._max
        ):
            events = self._batch(complete)
            if events is not None:
                if pending:
                    self._check_pending_size(events)
                return events
        lines = complete.split(b"\n")
        lines.pop()  # the empty piece after the final line end
        events = self._process(lines)
        if pending:
            self._check_pending_size(events)
        return events

    def close(self) -> list[ServerSentEvent]:
        """End of stream: discard a partial event, reset the decoder and return []."""
        # Spec: "Once the end of the file is reached, any pending data must be discarded. (If the
        # file ends in the middle of an event, before the final empty line, the incomplete event
        # is not dispatched.)"
        self._reset()
        return []

    def _strip_bom(self, data: bytes) -> bytes:
        # Spec: "One leading U+FEFF BYTE ORDER MARK character must be ignored if any are
        # present." Its three bytes may come in separate chunks, so hold back a prefix of it
        # until the question is decided. Only while at the start does `_pending` hold these bytes.
        head = bytes(self._pending) + data
        if len(head) < len(_BOM) and _BOM.startswith(head):
            self._pending[:] = head
            return b""
        self._pending.clear()
        self._at_start = False
        return head[len(_BOM) :] if head.startswith(_BOM) else head

    def _check_pending_size(self, events: list[ServerSentEvent]) -> None:
        size = self._size + len(self._pending)
        if size > self._max:
            self._reset()
            raise EventTooLargeError(size, self._max, events)

    def _batch(self, complete: bytes) -> list[ServerSentEvent] | None:
        """Fast paths for whole events as streaming servers send them, no event in progress;
        None when ``complete`` is not one of those shapes. Same result as the general path."""
        last_id = self._id
        if complete[:6] == b"data: ":
            # Single-line `data:` events: line ends number exactly two per event.
            pieces = complete[6:-2].split(b"\n\ndata: ")
            if complete.count(b"\n") == 2 * len(pieces):
                return [
                    ServerSentEvent("message", piece.decode("utf-8", "replace"), last_id, None)
                    for piece in pieces
                ]
        elif complete[:7] == b"event: ":
            # Named events (the Responses and Anthropic Messages APIs): "event: TYPE" and one
            # "data: ..." line each, three line ends per event.
            pieces = complete[7:-2].split(b"\n\nevent: ")
            if complete.count(b"\n") == 3 * len(pieces):
                named = [piece.partition(b"\ndata: ") for piece in pieces]
                if all(sep for _, sep, _ in named):
                    return [
                        ServerSentEvent(
                            kind.decode("utf-8", "replace") or "message",
                            payload.decode("utf-8", "replace"),
                            last_id,
                            None,
                        )
                        for kind, _, payload in named
                    ]
        return None

    def _process(self, lines: list[bytes]) -> list[ServerSentEvent]:
        # The hot loop: state lives in locals and is written back once at the end.
        events: list[ServerSentEvent] = []
        data = self._data
        etype = self._type
        last_id = self._id
        retry = self._retry
        size = self._size
        limit = self._max
        for line in lines:
            if not line:
                # Spec: "If the line is empty (a blank line), dispatch the event". An event whose
                # data buffer is empty is not dispatched, but its type is still reset.
                if data:
                    # Spec: the type is "message" unless the event type buffer is non-empty;
                    # the data buffer's lines are joined with LF (no trailing LF).
                    events.append(
                        ServerSentEvent(etype or "message", "\n".join(data), last_id, retry)
                    )
                    data = []
                    retry = None
                etype = ""
                size = 0
                continue
            size += len(line) + 1
            if size > limit:
                self._reset()
                raise EventTooLargeError(size, limit, events)
            if line[:6] == b"data: ":
                # Fast path for the line nearly every chunk is made of. UTF-8 always, with
                # replacement characters for invalid bytes (spec: "UTF-8 decode").
                data.append(line[6:].decode("utf-8", "replace"))
                continue
            if line[0] == _COLON:
                # Spec: a line starting with ":" is a comment (heartbeats); ignore it.
                continue
            # Spec: the field name is everything before the first ":", the value everything
            # after it minus one leading space; a line without ":" is a name with value "".
            colon = line.find(b":")
            if colon < 0:
                name = line
                value = b""
            else:
                name = line[:colon]
                value = line[colon + 1 :]
                if value[:1] == b" ":
                    value = value[1:]
            if name == b"data":
                data.append(value.decode("utf-8", "replace"))
            elif name == b"event":
                etype = value.decode("utf-8", "replace")
            elif name == b"id":
                # Spec: an id containing U+0000 NULL is ignored (the last id stays).
                if b"\0" not in value:
                    last_id = value.decode("utf-8", "replace")
            elif name == b"retry":
                # Spec: only a value made of ASCII digits sets the reconnection time.
                if value and value.isdigit():
                    retry = int(value)
            # Spec: any other field name is ignored.
        self._data = data
        self._type = etype
        self._id = last_id
        self._retry = retry
        self._size = size
        return events


def _as_bytes(data: Any) -> bytes:
    if isinstance(data, str):
        raise TypeError("SSEDecoder.feed() takes bytes, got str; pass text.encode('utf-8')")
    return bytes(data)
