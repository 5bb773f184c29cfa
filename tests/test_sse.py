"""The SSE decoder against the WHATWG event-stream rules, on plain bytes (no I/O)."""

from __future__ import annotations

import json
import random
import re
import time

import pytest

from holynb.sse import (
    DEFAULT_MAX_EVENT_SIZE,
    EventTooLargeError,
    ServerSentEvent,
    SSEDecoder,
    SSEError,
)

BOM = b"\xef\xbb\xbf"
E = ServerSentEvent


def decode(*chunks: bytes, **kwargs: int) -> list[ServerSentEvent]:
    """Feed the chunks to a fresh decoder, then close it; return every event."""
    decoder = SSEDecoder(**kwargs)
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    events += decoder.close()
    return events


# A stream that exercises every rule at once: BOM, CRLF / CR / LF line ends, comments, multi-line
# data, the one-space rule, ids (one with NUL), retry (valid and not), unknown fields, a line with
# no colon, an event with no data, Thai and emoji (multi-byte UTF-8, split by the tests below),
# and a partial event at the end.
MIXED = (
    BOM
    + b": heartbeat comment\r\n"
    + b"event: greeting\r\n"
    + b"id: 1\r\n"
    + b"data: hello\r\n"
    + b"data:  two spaces\r\n"
    + b"\r\n"
    + b"data: second\r"
    + b"retry: 1500\r"
    + b"\r"
    + "data: สวัสดีครับ 👋🏽\n".encode()
    + b"id: ab\x00c\n"
    + b"unknown: field\n"
    + b"data\n"
    + b"\n"
    + b"event: never-dispatched\n"
    + b"retry: 12a\n"
    + b"\n"
    + b'data: {"x": 1}\r\n\r\n'
    + b"data: partial, never dispatched"
)
MIXED_EVENTS = [
    E("greeting", "hello\n two spaces", "1", None),
    E("message", "second", "1", 1500),
    E("message", "สวัสดีครับ 👋🏽\n", "1", None),
    E("message", '{"x": 1}', "1", None),
]


def test_mixed_stream_in_one_piece() -> None:
    assert decode(MIXED) == MIXED_EVENTS


def test_mixed_stream_every_split_position() -> None:
    for i in range(len(MIXED) + 1):
        assert decode(MIXED[:i], MIXED[i:]) == MIXED_EVENTS, f"split at {i}"


def test_mixed_stream_every_pair_of_split_positions() -> None:
    n = len(MIXED)
    for i in range(n + 1):
        for j in range(i, n + 1):
            assert decode(MIXED[:i], MIXED[i:j], MIXED[j:]) == MIXED_EVENTS, f"split at {i},{j}"


def test_mixed_stream_byte_at_a_time() -> None:
    assert decode(*(MIXED[i : i + 1] for i in range(len(MIXED)))) == MIXED_EVENTS


def test_random_chunkings_of_a_chat_stream() -> None:
    texts = ["สวัสดี", " 👋", "\n```py\n", "print('hi')", "\n```", " — ok", ""]
    body = (
        b"".join(
            b"data: "
            + json.dumps({"choices": [{"delta": {"content": t}}]}, ensure_ascii=False).encode()
            + b"\n\n"
            for t in texts
        )
        + b"data: [DONE]\n\n"
    )
    expected = decode(body)
    assert [e.json()["choices"][0]["delta"]["content"] for e in expected[:-1]] == texts
    assert expected[-1].data == "[DONE]"
    rng = random.Random(7)
    for _ in range(300):
        cuts = sorted(rng.sample(range(1, len(body)), rng.randint(1, 12)))
        pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
        assert decode(*pieces) == expected


def test_one_event_per_chunk_in_every_decoder_state() -> None:
    # Chunks that are exactly one `data:` event take a fast path; it must agree with the general
    # path whatever state the previous chunks left behind.
    pieces = [
        b"data: first\n\n",
        b"id: 9\n",
        b"data: carries id\n\n",
        b"retry: 300\n",
        b"data: carries retry\n\n",
        b"data: retry reset\n\n",
        b"event: typed\n",
        b"data: typed event\n\n",
        b"data: part one\n",
        b"data: part two\n\n",
        b"data: cr\r",
        b"\n\r\n",
        b"data: \n\n",
        b"data: x\r\n\n",
        b"data: ok\n\n",
        b"data: tail",
        b" joined\n\n",
        b"data: \xff\n\n",
    ]
    expected = [
        E(data="first"),
        E(data="carries id", id="9"),
        E(data="carries retry", id="9", retry=300),
        E(data="retry reset", id="9"),
        E("typed", "typed event", "9"),
        E(data="part one\npart two", id="9"),
        E(data="cr", id="9"),
        E(data="", id="9"),
        E(data="x", id="9"),
        E(data="ok", id="9"),
        E(data="tail joined", id="9"),
        E(data="\ufffd", id="9"),
    ]
    assert decode(*pieces) == expected
    assert decode(b"".join(pieces)) == expected
    assert decode(b"data: exactly-at-limit\n\n", max_event_size=23) == [E(data="exactly-at-limit")]


def reference_decode(stream: bytes) -> list[ServerSentEvent]:
    """The spec's algorithm written as plainly as possible, to check the fast decoder against."""
    text = stream.decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = re.split("\r\n|\r|\n", text)[:-1]  # the last piece has no line end: discarded
    events, data, etype, last_id, retry = [], [], "", "", None
    for line in lines:
        if line == "":
            if data:
                events.append(E(etype or "message", "\n".join(data), last_id, retry))
                retry = None
            data, etype = [], ""
            continue
        if line.startswith(":"):
            continue
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            etype = value
        elif name == "id" and "\0" not in value:
            last_id = value
        elif name == "retry" and value and all(c in "0123456789" for c in value):
            retry = int(value)
    return events


def test_random_streams_match_the_reference_algorithm() -> None:
    rng = random.Random(2024)
    fragments = [
        b"data: ",
        b"data:",
        b"data",
        b"event: ",
        b"event:",
        b"id: ",
        b"id:",
        b"retry: ",
        b"retry:",
        b":",
        b": ping",
        b"x",
        b"12",
        b" ",
        b"\x00",
        "ไทย".encode(),
        "🎉".encode(),
        b"\xff",
        b"\xe0\xb8",
        b"\r",
        b"\n",
        b"\r\n",
        b"\n\n",
        b"\r\n\r\n",
        b"\xef\xbb\xbf",
        b'{"a": 1}',
        b"unknown: v",
    ]
    for _ in range(400):
        stream = b"".join(rng.choice(fragments) for _ in range(rng.randint(0, 40)))
        if rng.random() < 0.3:
            stream = BOM + stream
        expected = reference_decode(stream)
        assert decode(stream) == expected, stream
        cuts = sorted(rng.sample(range(len(stream) + 1), min(len(stream) + 1, 5)))
        pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
        assert decode(*pieces) == expected, (stream, cuts)


def test_batches_of_named_events_match_the_reference_algorithm() -> None:
    # Batches of "event: T" + one "data:" line take a fast path (Responses, Anthropic streams).
    rng = random.Random(13)
    pieces = [b"event: a\ndata: 1\n\n", b"event: \ndata: 2\n\n", b"event: b\ndata:\n\n",
              b"event: c\ndata: x\ndata: y\n\n", b"event: d\nid: 7\n\n", b"event: e\n\n",
              "event: ไทย\ndata: 🎉\n\n".encode(), b"data: plain\n\n", b"event: f\ndata: 3\n\n"]
    for _ in range(300):
        stream = b"".join(rng.choice(pieces) for _ in range(rng.randint(1, 8)))
        assert decode(stream) == reference_decode(stream), stream


# --- line ends -------------------------------------------------------------------------------


@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n"])
def test_each_line_end(eol: bytes) -> None:
    body = b"data: a" + eol + b"data: b" + eol + eol + b"data: c" + eol + eol
    assert decode(body) == [E(data="a\nb"), E(data="c")]


def test_cr_at_end_of_chunk_and_lf_at_start_of_next_is_one_line_end() -> None:
    # If the LF counted as a second line end it would be a blank line and dispatch "a" early.
    assert decode(b"data: a\r", b"\ndata: b\r\n\r\n") == [E(data="a\nb")]


def test_cr_at_end_of_chunk_then_empty_chunk_then_lf() -> None:
    assert decode(b"data: a\r", b"", b"\ndata: b\r\n", b"\r", b"\n") == [E(data="a\nb")]


def test_lone_cr_at_end_of_chunk_followed_by_other_text() -> None:
    assert decode(b"data: a\r", b"data: b\r", b"\r") == [E(data="a\nb")]


def test_cr_cr_is_a_blank_line_even_across_chunks() -> None:
    assert decode(b"data: a\r", b"\r", b"data: b\r\r") == [E(data="a"), E(data="b")]


# --- BOM and UTF-8 ---------------------------------------------------------------------------


def test_leading_bom_is_stripped() -> None:
    assert decode(BOM + b"data: x\n\n") == [E(data="x")]


def test_bom_split_across_chunks() -> None:
    assert decode(b"\xef", b"\xbb", b"\xbfdata: x\n\n") == [E(data="x")]
    assert decode(b"\xef\xbb", b"\xbf", b"data: x\n\n") == [E(data="x")]


def test_only_one_bom_is_stripped() -> None:
    # The second BOM becomes part of the field name "\ufeffdata", an unknown field.
    assert decode(BOM + BOM + b"data: x\n\ndata: y\n\n") == [E(data="y")]


def test_bom_later_in_the_stream_is_data() -> None:
    assert decode(b"data: " + BOM + b"x\n\n") == [E(data="\ufeffx")]


def test_bom_prefix_that_is_not_a_bom_is_kept() -> None:
    assert decode(b"\xef\xbb", b"data: x\n\n") == []  # field name "\ufffd...data" is unknown
    assert decode(b"\xef", b"\n", b"data: x\n\n") == [E(data="x")]


def test_invalid_utf8_becomes_replacement_characters() -> None:
    assert decode(b"data: \xff ok \xe0\xb8\n\n") == [E(data="\ufffd ok \ufffd")]


def test_multibyte_characters_split_across_chunks() -> None:
    body = "data: ไทย 🎉\n\n".encode()
    for i in range(len(body) + 1):
        assert decode(body[:i], body[i:]) == [E(data="ไทย 🎉")]


def test_always_utf8_whatever_the_bytes_look_like() -> None:
    assert decode("data: café\n\n".encode("latin-1")) == [E(data="caf\ufffd")]


# --- fields ----------------------------------------------------------------------------------


def test_comments_are_ignored() -> None:
    assert decode(b": ping\n:\n:data: no\ndata: yes\n: mid-event\n\n") == [E(data="yes")]


def test_comment_only_blocks_dispatch_nothing() -> None:
    assert decode(b": heartbeat\n\n: heartbeat\n\n") == []


def test_one_leading_space_removed_only() -> None:
    assert decode(b"data:x\n\ndata: x\n\ndata:  x\n\ndata:\tx\n\n") == [
        E(data="x"),
        E(data="x"),
        E(data=" x"),
        E(data="\tx"),
    ]


def test_value_keeps_later_colons() -> None:
    assert decode(b"data: a: b:c\n\n") == [E(data="a: b:c")]


def test_line_without_colon_is_field_with_empty_value() -> None:
    assert decode(b"data\ndata\n\n") == [E(data="\n")]
    assert decode(b"data\n\n") == [E(data="")]


def test_empty_data_line_dispatches_an_event_with_empty_data() -> None:
    assert decode(b"data:\n\n") == [E(data="")]


def test_events_without_data_are_not_dispatched() -> None:
    assert decode(b"event: x\nid: 5\nretry: 10\n\n\n\n") == []


def test_multi_line_data_joined_with_lf() -> None:
    assert decode(b"data: one\ndata: two\ndata: three\n\n") == [E(data="one\ntwo\nthree")]


def test_event_type_and_reset_after_dispatch() -> None:
    assert decode(b"event: delta\ndata: a\n\ndata: b\n\n") == [
        E("delta", "a"),
        E("message", "b"),
    ]


def test_event_type_resets_even_when_nothing_is_dispatched() -> None:
    assert decode(b"event: x\n\ndata: y\n\n") == [E("message", "y")]


def test_empty_event_type_means_message() -> None:
    assert decode(b"event:\ndata: y\n\n") == [E("message", "y")]


def test_last_event_id_carries_over_and_can_be_cleared() -> None:
    body = b"id: 7\ndata: a\n\ndata: b\n\nid\ndata: c\n\nid: 8\n\ndata: d\n\n"
    assert decode(body) == [
        E(data="a", id="7"),
        E(data="b", id="7"),
        E(data="c"),
        E(data="d", id="8"),
    ]


def test_id_with_nul_is_ignored() -> None:
    assert decode(b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n") == [
        E(data="a", id="1"),
        E(data="b", id="1"),
    ]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"retry: 1500", 1500),
        (b"retry:0", 0),
        (b"retry: 007", 7),
        (b"retry: 12a", None),
        (b"retry: -1", None),
        (b"retry: 1.5", None),
        (b"retry: ", None),
        (b"retry", None),
        (b"retry:  15", None),
        ("retry: ١٢".encode(), None),  # Arabic-Indic digits are digits, but not ASCII ones
    ],
)
def test_retry_only_when_all_ascii_digits(line: bytes, expected: int | None) -> None:
    assert decode(line + b"\ndata: x\n\n") == [E(data="x", retry=expected)]


def test_retry_applies_to_next_dispatched_event_only() -> None:
    assert decode(b"retry: 10\n\ndata: a\n\ndata: b\n\n") == [
        E(data="a", retry=10),
        E(data="b"),
    ]


def test_unknown_and_case_mismatched_fields_are_ignored() -> None:
    assert decode(b"foo: bar\nData: no\ndata : no\nDATA: no\ndata: yes\n\n") == [E(data="yes")]


def test_partial_event_at_end_of_stream_is_discarded() -> None:
    assert decode(b"data: a\n\ndata: b\n") == [E(data="a")]
    assert decode(b"data: a\n\ndata: b") == [E(data="a")]


def test_close_returns_nothing_and_resets() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"id: 3\ndata: partial\n") == []
    assert decoder.close() == []
    # A fresh start: no leftover data or id, and a BOM is stripped again.
    assert decoder.feed(BOM + b"data: new\n\n") == [E(data="new")]


def test_feed_accepts_bytearray_and_memoryview_but_not_str() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(bytearray(b"data: a\n\n")) == [E(data="a")]
    assert decoder.feed(memoryview(b"data: b\n\n")) == [E(data="b")]
    with pytest.raises(TypeError, match="takes bytes"):
        decoder.feed("data: c\n\n")  # type: ignore[arg-type]


def test_event_object() -> None:
    event = ServerSentEvent(data='{"a": [1, 2]}')
    assert (event.event, event.id, event.retry) == ("message", "", None)
    assert event.json() == {"a": [1, 2]}
    assert not hasattr(event, "__dict__")  # slots: small and fast to build


# --- size limit and linear time --------------------------------------------------------------


def test_default_limit_is_16_mib() -> None:
    assert DEFAULT_MAX_EVENT_SIZE == 16 * 1024 * 1024


def test_event_at_the_limit_is_fine() -> None:
    line = b"data: " + b"x" * 93  # 99 bytes plus its line end = 100
    assert decode(line + b"\n\n", max_event_size=100) == [E(data="x" * 93)]


def test_event_over_the_limit_raises_a_clear_error() -> None:
    decoder = SSEDecoder(max_event_size=100)
    with pytest.raises(EventTooLargeError) as info:
        decoder.feed(b"data: ok\n\ndata: " + b"x" * 94 + b"\n\n")
    err = info.value
    assert isinstance(err, SSEError) and isinstance(err, ValueError)
    message = str(err)
    assert "\n" not in message
    assert "101 bytes" in message and "100-byte limit" in message
    assert "SSEDecoder(max_event_size=" in message
    assert err.events == [E(data="ok")]  # what arrived before the big event is not lost
    # The decoder was reset.
    assert decoder.feed(b"data: again\n\n") == [E(data="again")]


def test_multi_line_event_over_the_limit_raises() -> None:
    decoder = SSEDecoder(max_event_size=50)
    with pytest.raises(EventTooLargeError):
        for _ in range(10):
            decoder.feed(b"data: 0123456789\n")


def test_unterminated_line_over_the_limit_raises_while_buffering() -> None:
    decoder = SSEDecoder(max_event_size=1000)
    assert decoder.feed(b"data: " + b"y" * 94) == []
    for _ in range(9):
        assert decoder.feed(b"y" * 100) == []  # exactly 1,000 bytes: still fine
    with pytest.raises(EventTooLargeError, match="1,100 bytes"):
        decoder.feed(b"y" * 100)


def test_limit_counts_lines_already_complete_plus_the_pending_line() -> None:
    decoder = SSEDecoder(max_event_size=100)
    assert decoder.feed(b"data: " + b"a" * 53 + b"\n") == []  # 60 bytes complete
    with pytest.raises(EventTooLargeError):
        decoder.feed(b"data: " + b"b" * 40)  # 46 pending: 106 in total


def test_limit_counts_field_lines_before_a_one_chunk_event() -> None:
    decoder = SSEDecoder(max_event_size=30)
    assert decoder.feed(b"id: 123456789\n") == []  # 14 bytes of this event so far
    with pytest.raises(EventTooLargeError):
        decoder.feed(b"data: 0123456789\n\n")  # 17 more: 31
    decoder = SSEDecoder(max_event_size=31)
    assert decoder.feed(b"id: 123456789\n") == []
    assert decoder.feed(b"data: 0123456789\n\n") == [E(data="0123456789", id="123456789")]
    # The count starts again for the next event.
    assert decoder.feed(b"data: " + b"9" * 24 + b"\n\n") == [E(data="9" * 24, id="123456789")]


def test_limit_is_per_event() -> None:
    body = b"".join(b"data: " + b"z" * 80 + b"\n\n" for _ in range(100))
    assert len(decode(body, max_event_size=100)) == 100


@pytest.mark.parametrize("bad", [0, -1, 1.5, None])
def test_bad_limit_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="max_event_size must be a positive number of bytes"):
        SSEDecoder(max_event_size=bad)  # type: ignore[arg-type]


def test_one_mib_event_in_one_kib_chunks() -> None:
    payload = ("0123456789abcdef" * 65536).encode()  # 1 MiB on one data line
    body = b"id: big\r\ndata: " + payload + b"\r\n\r\n"
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    start = time.perf_counter()
    for i in range(0, len(body), 1024):
        events += decoder.feed(body[i : i + 1024])
    elapsed = time.perf_counter() - start
    print(f"1 MiB event in 1 KiB chunks: {elapsed * 1000:.1f} ms")
    assert events == [E(data=payload.decode(), id="big")]


def test_one_mib_of_short_lines_in_one_kib_chunks() -> None:
    body = b"".join(b"data: " + str(i).encode() * 10 + b"\n" for i in range(20000)) + b"\n"
    expected = "\n".join(str(i) * 10 for i in range(20000))
    events = decode(*(body[i : i + 1024] for i in range(0, len(body), 1024)))
    assert events == [E(data=expected)]
