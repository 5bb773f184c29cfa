"""Every fault over SSE (and the non-streaming JSON reply), checked on the raw wire."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from mockutil import AUTH, chat, raw_request

from mockserver import MockServer

STREAM = chat("fault test", stream=True, max_tokens=8)


def sse(mock: MockServer, fault: str | None = None, body=STREAM, **kw):
    headers = {"X-Mock-Fault": fault} if fault else {}
    return raw_request(mock.url, "/v1/chat/completions", body, headers=headers, **kw)


def last_record(mock: MockServer) -> dict:
    return mock.journal()[-1]


@pytest.mark.parametrize(
    ("code", "type_", "err_code"),
    [
        (400, "invalid_request_error", "context_length_exceeded"),
        (401, "invalid_request_error", "invalid_api_key"),
        (404, "invalid_request_error", "model_not_found"),
        (500, "server_error", "internal_error"),
        (502, "server_error", "bad_gateway"),
        (503, "server_error", "server_busy"),
        (418, "invalid_request_error", None),
    ],
)
def test_status_fault_answers_with_openai_error(holy_mock, code, type_, err_code) -> None:
    r = sse(holy_mock, f"status:code={code}")
    assert r.status == code
    err = r.json()["error"]
    assert (err["type"], err["code"]) == (type_, err_code)
    assert set(err) == {"message", "type", "param", "code"}
    assert last_record(holy_mock)["outcome"] == "fault:status"


def test_status_429_carries_rate_limit_headers(holy_mock) -> None:
    r = sse(holy_mock, "status:code=429,retry_after=2.5")
    assert r.status == 429
    assert r.headers["retry-after"] == "3"
    assert r.headers["retry-after-ms"] == "2500"
    assert r.headers["x-ratelimit-remaining"] == "0"
    assert "x-ratelimit-limit" in r.headers and "x-ratelimit-reset" in r.headers
    assert r.json()["error"]["code"] == "rate_limit_exceeded"


def test_disconnect_closes_cleanly_after_n_chunks(holy_mock) -> None:
    r = sse(holy_mock, "disconnect:after=3")
    assert r.error is None  # a FIN, not a reset
    assert not r.complete  # the chunked body never finished
    assert len(r.chunks) == 3 and "[DONE]" not in r.events()
    rec = last_record(holy_mock)
    assert (rec["outcome"], rec["chunks_sent"]) == ("fault:disconnect", 3)


def test_reset_sends_a_tcp_rst(holy_mock) -> None:
    r = sse(holy_mock, "reset:after=2")
    assert isinstance(r.error, ConnectionResetError)
    assert not r.complete
    assert last_record(holy_mock)["outcome"] == "fault:reset"


def test_malformed_inserts_a_broken_chunk_at_n(holy_mock) -> None:
    events = sse(holy_mock, "malformed:at=2").events()
    assert events[-1] == "[DONE]"
    with pytest.raises(json.JSONDecodeError):
        json.loads(events[1])
    good = [json.loads(e) for i, e in enumerate(events[:-1]) if i != 1]
    assert len(good) == 8  # nothing was lost: the broken chunk is extra


def test_error_event_ends_the_stream_with_an_error(holy_mock) -> None:
    r = sse(holy_mock, "error-event:at=3,code=503")
    assert r.complete and r.status == 200
    text = r.body.decode()
    assert "event: error\ndata: " in text and "[DONE]" not in text
    blocks = [b for b in text.split("\n\n") if b]
    assert len(blocks) == 3 and blocks[-1].startswith("event: error\n")
    err = json.loads(blocks[-1].split("data: ", 1)[1])["error"]
    assert err["status"] == 503 and err["type"] == "server_error"


def test_stall_pauses_then_resumes(holy_mock) -> None:
    sent = time.perf_counter()
    r = sse(holy_mock, "stall:after=2,ms=300")
    assert r.complete and r.events()[-1] == "[DONE]"
    # Nothing can leave before its deadline, so the end comes at least the stall after the
    # request (a lower bound, which never flakes, rather than a timing assertion).
    assert r.recv_times[-1] - sent >= 0.3
    assert last_record(holy_mock)["outcome"] == "fault:stall"


def test_heartbeat_comments_fill_a_stall(holy_mock) -> None:
    r = sse(holy_mock, "stall:after=1,ms=250;heartbeat:ms=50")
    text = r.body.decode()
    assert text.count(": heartbeat\n\n") >= 3
    assert r.events()[-1] == "[DONE]"
    # Comments sit between events, never inside one.
    assert all(b.startswith(("data: ", ": heartbeat")) for b in text.split("\n\n") if b)


def test_slice_splits_writes_lines_and_utf8_but_bytes_are_identical(holy_mock) -> None:
    body = chat("slice", stream=True, max_tokens=64)
    whole = sse(holy_mock, body=body)
    holy_mock.reset()  # same seed, same repeat count: same bytes
    sliced = sse(holy_mock, "slice:size=3", body=body)
    assert sliced.body == whole.body
    assert len(sliced.chunks) > 3 * len(whole.chunks)
    assert all(len(c) <= 3 for c in sliced.chunks)
    assert any(not c.endswith(b"\n") for c in sliced.chunks)  # lines are split
    assert whole.body.decode() != whole.body.decode("ascii", "ignore")  # has multi-byte chars
    broken_utf8 = 0
    for c in sliced.chunks:
        try:
            c.decode()
        except UnicodeDecodeError:
            broken_utf8 += 1
    assert broken_utf8 > 0


def test_fragment_on_sse_acts_like_slice(holy_mock) -> None:
    r = sse(holy_mock, "fragment:size=5")
    assert all(len(c) <= 5 for c in r.chunks) and r.events()[-1] == "[DONE]"


def test_crlf_framing(holy_mock) -> None:
    r = sse(holy_mock, "crlf")
    assert b"\r\n\r\n" in r.body
    assert r.body.count(b"\n") == r.body.count(b"\r\n")
    assert r.events()[-1] == "[DONE]" and len(r.events()) == 9


def test_no_done(holy_mock) -> None:
    r = sse(holy_mock, "no-done")
    assert r.complete
    assert "[DONE]" not in r.events() and len(r.events()) == 8


def test_a_ws_only_fault_on_sse_is_refused_saying_why(holy_mock) -> None:
    r = sse(holy_mock, "ws-close:code=1011,after=2")
    assert r.status == 400
    err = r.json()["error"]
    assert err["code"] == "invalid_mock_control"
    assert "ws-close sends a WebSocket close frame; this is an SSE stream" in err["message"]


def test_several_faults_combine(holy_mock) -> None:
    r = sse(holy_mock, "crlf;no-done;disconnect:after=4")
    assert not r.complete and len(r.chunks) == 4 and b"\r\n" in r.body


def test_server_wide_fault_and_request_override(holy_mock_factory) -> None:
    mock = holy_mock_factory(fault="status:code=503")
    assert sse(mock).status == 503
    assert sse(mock, "status:code=429").status == 429  # same name: the request's wins
    assert sse(mock, "status:code=503,p=0").status == 200


def test_probability_is_seeded(holy_mock_factory) -> None:
    def outcomes(seed: int) -> list[int]:
        mock = holy_mock_factory(seed=seed, fault="status:code=503,p=0.5")
        return [sse(mock, body=chat(str(i), stream=True, max_tokens=2)).status
                for i in range(16)]

    first = outcomes(3)
    assert first == outcomes(3)
    assert set(first) == {200, 503}
    assert first != outcomes(4)


def test_retry_of_the_same_request_draws_again(holy_mock_factory) -> None:
    mock = holy_mock_factory(seed=1, fault="status:code=503,p=0.5")
    statuses = {sse(mock, body=chat("same", stream=True, max_tokens=2)).status for _ in range(12)}
    assert statuses == {200, 503}


@pytest.mark.parametrize("fault", ["disconnect", "reset"])
def test_non_streaming_connection_faults(holy_mock, fault) -> None:
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        httpx.post(f"{holy_mock.url}/chat/completions", json=chat(), headers={
            **AUTH, "X-Mock-Fault": fault})
    assert last_record(holy_mock)["outcome"] == f"fault:{fault}"


def test_non_streaming_malformed_and_stall(holy_mock) -> None:
    r = httpx.post(f"{holy_mock.url}/chat/completions", json=chat(),
                   headers={**AUTH, "X-Mock-Fault": "malformed"})
    assert r.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        r.json()
    r = httpx.post(f"{holy_mock.url}/chat/completions", json=chat(),
                   headers={**AUTH, "X-Mock-Fault": "stall:ms=50"})
    assert r.json()["object"] == "chat.completion"
    assert last_record(holy_mock)["outcome"] == "fault:stall"
