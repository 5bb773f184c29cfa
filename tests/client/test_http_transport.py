"""The HTTP/1.1 pool under holynb's httpx client: chunked decoding, keep-alive, bad servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from client_helpers import KEY, PROMPT, collect

from holynb import APIStatusError, AsyncClient, StreamInterrupted
from holynb._transport_http import PooledHTTP11Transport, _ChunkedDecoder

BODY = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in [b"data: a\n\n", b"x" * 300, b"tail"])
CHUNKED = BODY + b"0\r\nX-Trailer: 1\r\n\r\n"


def test_chunked_decoder_any_split():
    expected = b"data: a\n\n" + b"x" * 300 + b"tail"
    for cut in range(len(CHUNKED) + 1):
        decoder = _ChunkedDecoder()
        out = decoder.feed(CHUNKED[:cut]) + decoder.feed(CHUNKED[cut:])
        assert out == expected and decoder.done, cut
    decoder = _ChunkedDecoder()
    assert b"".join(decoder.feed(bytes([b])) for b in CHUNKED) == expected and decoder.done


def test_chunked_decoder_rejects_garbage():
    with pytest.raises(httpx.RemoteProtocolError, match="chunk size"):
        _ChunkedDecoder().feed(b"zz\r\nabc\r\n")
    with pytest.raises(httpx.RemoteProtocolError, match="CRLF"):
        _ChunkedDecoder().feed(b"3\r\nabcXY")


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[..., str]]:
    """``start(handler)``: a raw asyncio server answering with ``handler(reader, writer)``."""
    servers: list[asyncio.Server] = []

    async def start(handler) -> str:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return await reader.readexactly(length)


SSE_REPLY = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\n\r\n%s"
)
EVENTS = (
    b'data: {"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)


async def test_wrong_content_type_says_what_to_fix(raw_server):
    async def html(reader, writer):
        await _read_request(reader)
        page = b"<html>login</html>"
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(page), page))
        await writer.drain()
        writer.close()

    async with AsyncClient(base_url=await raw_server(html), api_key=KEY) as client:
        with pytest.raises(APIStatusError, match="text/event-stream.*'text/html'") as info:
            async with client.stream(PROMPT) as s:
                await collect(s)
    assert "base URL" in str(info.value) and info.value.body == "<html>login</html>"


async def test_stale_keepalive_connection_is_replaced(raw_server):
    connections = 0

    async def once_per_connection(reader, writer):
        # Answers one request, then closes the idle connection without saying so.
        nonlocal connections
        connections += 1
        await _read_request(reader)
        writer.write(SSE_REPLY % (len(EVENTS), EVENTS))
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()

    async with AsyncClient(base_url=await raw_server(once_per_connection), api_key=KEY) as c:
        for _ in range(3):
            async with c.stream(PROMPT) as s:
                assert await collect(s) == ["Hi"]
            await asyncio.sleep(0.1)
    assert connections == 3


async def test_body_cut_mid_chunk_is_interrupted(raw_server):
    async def cut(reader, writer):
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        event = b'data: {"choices":[{"index":0,"delta":{"content":"Hel"}}]}\n\n'
        writer.write(b"%x\r\n%s\r\n" % (len(event), event) + b"40\r\npartial")
        await writer.drain()
        writer.close()

    async with AsyncClient(base_url=await raw_server(cut), api_key=KEY, max_retries=0) as c:
        with pytest.raises(StreamInterrupted) as info:
            async with c.stream(PROMPT) as s:
                await collect(s)
    assert info.value.partial_text == "Hel"


async def test_pool_limits_and_close():
    transport = PooledHTTP11Transport(max_connections=2, max_keepalive=1)
    async with httpx.AsyncClient(transport=transport) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get("http://127.0.0.1:9/")  # discard port: nothing listens
    assert not transport._open
