"""HTTP as other servers speak it, over raw sockets that send exactly the bytes under test.

1xx interim responses, compressed and HTTP/1.0 bodies, error bodies with a 2xx status, 413
before the body is read, redirects, stale keep-alive connections, cut bodies.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import struct
import zlib

import pytest
from client_helpers import KEY, PROMPT, collect
from netservers import read_request

from holynb import APIStatusError, AsyncClient, StreamInterrupted, StreamTimeout
from holynb._retry import RetryEvent

EVENTS = (
    b'data: {"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{"content":" there"},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)
COMPLETION = json.dumps({
    "object": "chat.completion", "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi there"},
                 "finish_reason": "stop"}],
}).encode()


def sse(body: bytes = EVENTS, extra: bytes = b"") -> bytes:
    """A complete SSE response with Content-Length."""
    return (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n%sContent-Length: %d\r\n\r\n%s"
            % (extra, len(body), body))


def json_reply(body: bytes, status: bytes = b"200 OK", extra: bytes = b"") -> bytes:
    return (b"HTTP/1.1 %s\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s"
            % (status, extra, len(body), body))


def answering(*replies: bytes, keep_open: float = 0.0):
    """A handler answering each request on a connection with the next reply, then closing."""
    async def handle(reader, writer):
        try:
            for reply in replies:
                await read_request(reader)
                writer.write(reply)
                await writer.drain()
            await asyncio.sleep(keep_open)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
    return handle


@pytest.mark.parametrize("interim", [
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
])
async def test_interim_responses_in_the_same_write_are_skipped(raw_server, interim):
    url = await raw_server(answering(interim + sse(), keep_open=5))
    async with AsyncClient(base_url=url, api_key=KEY, first_token_timeout=2) as client:
        async with client.stream(PROMPT) as s:
            assert await collect(s) == ["Hi", " there"]
        assert s.done
        # ... and for a JSON request.
    url = await raw_server(answering(interim + json_reply(COMPLETION)))
    async with AsyncClient(base_url=url, api_key=KEY) as client:
        assert (await client.complete(PROMPT)).text == "Hi there"


def _gzip_pieces(data: bytes) -> list[bytes]:
    # Flushed per event, as a compressing proxy does, so each piece decodes on arrival.
    comp = zlib.compressobj(wbits=31)
    parts = [comp.compress(event + b"\n\n") + comp.flush(zlib.Z_SYNC_FLUSH)
             for event in data.split(b"\n\n") if event]
    return [*parts, comp.flush()]


def _encode(encoding: str, data: bytes) -> bytes:
    if encoding == "gzip":
        return gzip.compress(data)
    if encoding == "deflate":
        return zlib.compress(data)
    if encoding == "br":
        import brotli

        return brotli.compress(data)
    from backports import zstd

    return zstd.compress(data)


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd"])
async def test_compressed_sse_and_json_are_decoded(raw_server, encoding):
    body = _encode(encoding, EVENTS)
    header = b"Content-Encoding: %s\r\n" % encoding.encode()
    url = await raw_server(answering(sse(body, header), json_reply(
        _encode(encoding, COMPLETION), extra=header)))
    async with AsyncClient(base_url=url, api_key=KEY, max_retries=0) as client:
        async with client.stream(PROMPT) as s:
            assert await collect(s) == ["Hi", " there"]
        assert (await client.complete(PROMPT)).text == "Hi there"


async def test_gzip_stream_is_decoded_as_it_arrives(raw_server):
    arrived = asyncio.Event()

    async def handle(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Content-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n")
        first, *rest = _gzip_pieces(EVENTS)
        writer.write(b"%x\r\n%s\r\n" % (len(first), first))
        await writer.drain()
        await arrived.wait()  # the first delta must reach the caller before the rest is sent
        for piece in rest:
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        writer.close()

    url = await raw_server(handle)
    async with AsyncClient(base_url=url, api_key=KEY, first_token_timeout=2) as client:
        async with client.stream(PROMPT) as s:
            deltas = []
            async for delta in s:
                deltas.append(delta)
                arrived.set()
    assert deltas == ["Hi", " there"] and s.done


async def test_http10_body_read_to_the_close(raw_server):
    async def handle(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
        for event in EVENTS.split(b"\n\n")[:-1]:
            writer.write(event + b"\n\n")
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.close()

    url = await raw_server(handle)
    async with AsyncClient(base_url=url, api_key=KEY, max_retries=0) as client:
        for _ in range(2):  # the closed connection is not reused
            async with client.stream(PROMPT) as s:
                assert await collect(s) == ["Hi", " there"]
            assert s.done


ERROR_BODY = json.dumps({"error": {"message": "Insufficient quota for this key",
                                   "type": "insufficient_quota", "code": "insufficient_quota"}})


async def test_json_error_with_status_200(raw_server, transport):
    url = await raw_server(answering(json_reply(ERROR_BODY.encode()),
                                     json_reply(ERROR_BODY.encode())))
    async with AsyncClient(base_url=url, api_key=KEY, max_retries=2) as client:
        s = client.stream(PROMPT)
        with pytest.raises(APIStatusError) as info:
            async with s:
                await collect(s)
        with pytest.raises(APIStatusError) as json_info:
            await client.complete(PROMPT)
    for error in (info.value, json_info.value):
        assert "Insufficient quota for this key" in error.message
        assert error.status_code == 200 and error.code == "insufficient_quota"
    assert s.stats.retries == 0


async def test_413_before_the_body_is_read_is_not_retried(raw_server):
    requests = 0

    async def too_large(reader, writer):
        nonlocal requests
        requests += 1
        await reader.readuntil(b"\r\n\r\n")  # the head only: 8 MiB stay unread
        body = b'{"error":{"message":"Request body too large","type":"invalid_request_error"}}'
        writer.write(json_reply(body, b"413 Payload Too Large", b"Connection: close\r\n"))
        await writer.drain()
        writer.close()

    url = await raw_server(too_large)
    events: list[RetryEvent] = []
    big = "x" * (8 * 1024 * 1024)
    async with AsyncClient(base_url=url, api_key=KEY, on_retry=events.append) as client:
        s = client.stream(big)
        with pytest.raises(APIStatusError) as info:
            async with s:
                await collect(s)
    assert info.value.status_code == 413 and "too large" in info.value.message
    assert "Request body too large" in info.value.message
    assert requests == 1 and events == [] and s.stats.retries == 0


def _redirect(status: bytes, location: bytes) -> bytes:
    return (b"HTTP/1.1 %s\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % (status, location))


@pytest.mark.parametrize("status", [b"307 Temporary Redirect", b"308 Permanent Redirect"])
async def test_307_308_are_followed_with_the_same_method_and_body(raw_server, status):
    seen: list[tuple[bytes, bytes]] = []

    async def target(reader, writer):
        head, body = await read_request(reader)
        seen.append((head.split(b"\r\n")[0], body))
        writer.write(sse() if b"chat/completions" in head else json_reply(b'{"data":[]}'))
        await writer.drain()
        writer.close()

    new = await raw_server(target)
    old = await raw_server(answering(
        _redirect(status, new.encode() + b"/chat/completions"),
        _redirect(status, new.encode() + b"/models"),
    ))
    async with AsyncClient(base_url=old, api_key=KEY) as client:
        async with client.stream(PROMPT, max_tokens=5) as s:
            assert await collect(s) == ["Hi", " there"]
        assert await client.models() == []
    (post_line, post_body), (get_line, _) = seen
    assert post_line.startswith(b"POST /v1/chat/completions")
    assert json.loads(post_body)["max_tokens"] == 5 and get_line.startswith(b"GET /v1/models")


@pytest.mark.parametrize("status", [301, 302, 303])
async def test_moved_post_is_an_error_naming_the_new_location(raw_server, status):
    location = b"https://api.new-home.example/v1/chat/completions"
    url = await raw_server(answering(_redirect(b"%d Moved" % status, location)))
    async with AsyncClient(base_url=url, api_key=KEY, max_retries=3) as client:
        s = client.stream(PROMPT)
        with pytest.raises(APIStatusError) as info:
            async with s:
                await collect(s)
    error = info.value
    assert error.status_code == status and error.location == location.decode()
    assert location.decode() in error.message and s.stats.retries == 0
    assert "base_url='https://api.new-home.example/v1'" in error.hint


async def test_authorization_is_not_sent_to_another_origin(raw_server):
    heads: list[bytes] = []

    async def elsewhere(reader, writer):
        head, _ = await read_request(reader)
        heads.append(head)
        writer.write(sse())
        await writer.drain()
        writer.close()

    other = await raw_server(elsewhere)
    other = other.replace("127.0.0.1", "localhost")  # same host, other origin (name and port)
    url = await raw_server(answering(_redirect(b"307 Temporary Redirect",
                                               other.encode() + b"/chat/completions")))
    async with AsyncClient(base_url=url, api_key=KEY) as client:
        async with client.stream(PROMPT) as s:
            await collect(s)
    assert b"authorization" not in heads[0].lower() and KEY.encode() not in heads[0]


async def test_redirect_loop_stops_after_five(raw_server):
    hops = 0

    async def loop(reader, writer):
        nonlocal hops
        try:
            while True:
                head, _ = await read_request(reader)
                hops += 1
                writer.write(_redirect(b"307 Temporary Redirect", b"/v1/chat/completions"))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    url = await raw_server(loop)
    async with AsyncClient(base_url=url, api_key=KEY, max_retries=0) as client:
        with pytest.raises(APIStatusError, match="More than 5 redirects"):
            async with client.stream(PROMPT) as s:
                await collect(s)
    assert hops == 6


async def test_wrong_content_type_says_what_to_fix(raw_server):
    page = b"<html>login</html>"
    url = await raw_server(answering(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n%s"
        % (len(page), page)))
    async with AsyncClient(base_url=url, api_key=KEY) as client:
        with pytest.raises(APIStatusError, match="text/event-stream.*'text/html'") as info:
            async with client.stream(PROMPT) as s:
                await collect(s)
    assert "base URL" in info.value.hint and info.value.body == "<html>login</html>"


class Keepalive:
    """Counts connections and requests of a server answering one request per connection."""

    def __init__(self, how: str) -> None:
        self.how = how
        self.connections = 0
        self.requests = 0
        self.closed = asyncio.Event()  # set each time the server has closed a connection

    async def __call__(self, reader, writer):
        self.connections += 1
        try:
            await read_request(reader)
            self.requests += 1
            writer.write(sse())
            await writer.drain()
            if self.how == "read-then-close":
                # Keeps the connection open, reads the next request, then closes unanswered.
                await read_request(reader)
                self.requests += 1
            else:
                await asyncio.sleep(0.05)
                if self.how == "rst":
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()
        self.closed.set()


@pytest.mark.parametrize("how", ["fin", "rst"])
async def test_stale_pooled_connection_is_replaced_without_a_retry(raw_server, how):
    server = Keepalive(how)
    url = await raw_server(server)
    events: list[RetryEvent] = []
    async with AsyncClient(base_url=url, api_key=KEY, max_retries=0,
                           on_retry=events.append) as client:
        for _ in range(3):
            async with client.stream(PROMPT) as s:
                assert await collect(s) == ["Hi", " there"]
            assert s.stats.retries == 0
            # The server closes the idle connection; only then does the next request go out
            # (waiting on the server, not on a sleep: a loaded machine cannot reorder them).
            await asyncio.wait_for(server.closed.wait(), 10)
            server.closed.clear()
            await asyncio.sleep(0.02)
    assert server.connections == 3 and server.requests == 3 and events == []


async def test_request_read_then_dropped_is_a_counted_retry(raw_server):
    server = Keepalive("read-then-close")
    url = await raw_server(server)
    events: list[RetryEvent] = []
    async with AsyncClient(base_url=url, api_key=KEY, on_retry=events.append) as client:
        async with client.stream(PROMPT) as s:
            await collect(s)
        async with client.stream(PROMPT) as s:
            assert await collect(s) == ["Hi", " there"]
    # The second request reached the server on the reused connection, which dropped it: the
    # re-send is counted and announced.
    assert s.stats.retries == 1 and [e.reason for e in events] == ["connection failed"]
    assert server.requests == 3


async def test_request_read_then_dropped_obeys_max_retries_0(raw_server):
    server = Keepalive("read-then-close")
    url = await raw_server(server)
    async with AsyncClient(base_url=url, api_key=KEY, max_retries=0) as client:
        async with client.stream(PROMPT) as s:
            await collect(s)
        with pytest.raises(StreamInterrupted) as info:
            async with client.stream(PROMPT) as s:
                await collect(s)
        assert "\n" not in str(info.value)
    assert server.requests == 2  # two streams, two requests: nothing re-sent silently


async def test_models_read_then_dropped_is_not_resent_silently(raw_server):
    requests = 0

    async def handle(reader, writer):
        nonlocal requests
        try:
            await read_request(reader)
            requests += 1
            writer.write(json_reply(b'{"data":[{"id":"m"}]}'))
            await writer.drain()
            await read_request(reader)
            requests += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    url = await raw_server(handle)
    async with AsyncClient(base_url=url, api_key=KEY, max_retries=0) as client:
        assert await client.models() == ["m"]
        with pytest.raises(StreamInterrupted):
            await client.models()
    assert requests == 2


async def test_body_cut_mid_chunk_is_interrupted(raw_server):
    async def cut(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        event = b'data: {"choices":[{"index":0,"delta":{"content":"Hel"}}]}\n\n'
        writer.write(b"%x\r\n%s\r\n" % (len(event), event) + b"40\r\npartial")
        await writer.drain()
        writer.close()

    url = await raw_server(cut)
    async with AsyncClient(base_url=url, api_key=KEY, max_retries=0) as c:
        with pytest.raises(StreamInterrupted) as info:
            async with c.stream(PROMPT) as s:
                await collect(s)
    assert info.value.partial_text == "Hel" and "dropped mid-stream" in info.value.message


async def test_body_cut_after_done_still_completes(raw_server):
    async def cut_after_done(reader, writer):
        # [DONE] arrives, then the connection drops without the terminating 0-size chunk.
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        writer.write(b"%x\r\n%s\r\n" % (len(EVENTS), EVENTS))
        await writer.drain()
        writer.close()

    url = await raw_server(cut_after_done)
    async with AsyncClient(base_url=url, api_key=KEY) as c:
        async with c.stream(PROMPT) as s:
            assert await collect(s) == ["Hi", " there"]
    assert s.done and s.finish_reason == "stop"


async def test_busy_pool_times_out_in_the_connect_phase(holy_mock):
    async with AsyncClient(
        base_url=holy_mock.url, api_key=KEY, max_connections=1, connect_timeout=0.1, max_retries=0
    ) as client:
        async with client.stream(PROMPT, max_tokens=50, extra_headers={"X-Mock-TPS": "20"}):
            with pytest.raises(StreamTimeout, match="max_connections") as info:
                async with client.stream(PROMPT) as s:
                    await collect(s)
    assert info.value.phase == "connect"
