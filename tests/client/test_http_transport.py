"""The HTTP/1.1 pool under holynb's httpx client: chunked decoding, keep-alive, bad servers."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from client_helpers import KEY, PROMPT, collect

from holynb import APIStatusError, AsyncClient, StreamInterrupted, StreamTimeout
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


async def test_body_cut_after_done_still_completes(raw_server):
    async def cut_after_done(reader, writer):
        # [DONE] arrives, then the connection drops without the terminating 0-size chunk.
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        writer.write(b"%x\r\n%s\r\n" % (len(EVENTS), EVENTS))
        await writer.drain()
        writer.close()

    async with AsyncClient(base_url=await raw_server(cut_after_done), api_key=KEY) as c:
        async with c.stream(PROMPT) as s:
            assert await collect(s) == ["Hi"]
    assert s.done and s.finish_reason == "stop"


async def test_pool_limits_and_close():
    transport = PooledHTTP11Transport(max_connections=2, max_keepalive=1)
    async with httpx.AsyncClient(transport=transport) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get("http://127.0.0.1:9/")  # discard port: nothing listens
    assert not transport._open


@pytest.fixture
def self_signed(tmp_path):
    """A certificate for 127.0.0.1/localhost made with the openssl CLI."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return cert, key


async def test_tls_keepalive_and_verification(self_signed):
    cert, key = self_signed
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)

    async def ok(reader, writer):
        try:
            while True:
                await _read_request(reader)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(ok, "127.0.0.1", 0, ssl=server_ctx)
    url = f"https://localhost:{server.sockets[0].getsockname()[1]}/v1/models"
    try:
        trusted = PooledHTTP11Transport(ssl_context=ssl.create_default_context(cafile=cert))
        async with httpx.AsyncClient(transport=trusted) as http:
            for _ in range(3):
                assert (await http.get(url)).text == "ok"
            assert len(trusted._open) == 1
        async with httpx.AsyncClient(transport=PooledHTTP11Transport()) as http:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await http.get(url)
    finally:
        server.close()
        await server.wait_closed()


async def test_busy_pool_times_out_in_the_connect_phase(holy_mock):
    async with AsyncClient(
        base_url=holy_mock.url, api_key=KEY, max_connections=1, connect_timeout=0.1, max_retries=0
    ) as client:
        async with client.stream(PROMPT, max_tokens=50, extra_headers={"X-Mock-TPS": "20"}):
            with pytest.raises(StreamTimeout, match="max_connections") as info:
                async with client.stream(PROMPT) as s:
                    await collect(s)
    assert info.value.phase == "connect"
