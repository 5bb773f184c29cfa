"""Proxies over a real forwarding/CONNECT proxy: environment variables, NO_PROXY, proxy=, dead."""

from __future__ import annotations

import socket

import pytest
from client_helpers import KEY, PROMPT, collect, stream_and_json_errors

from holynb import AsyncClient, ConnectError


async def _stream_and_json(client: AsyncClient, transport: str) -> None:
    async with client.stream(PROMPT, transport=transport) as s:
        assert "".join(await collect(s)) == "The answer is 42."
    assert await client.models() == ["deepseek-v3.2"]
    assert (await client.complete(PROMPT)).text == "The answer is 42."


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
async def test_http_proxy_from_the_environment(upstream, proxy, transport, monkeypatch, variable):
    up = await upstream()
    monkeypatch.setenv(variable, proxy.url)
    async with AsyncClient(base_url=up.url, api_key=KEY) as client:
        await _stream_and_json(client, transport)
    stream = ("GET", f"ws://{up.url[7:]}/ws/chat") if transport == "ws" else (
        "POST", f"{up.url}/chat/completions")
    assert sorted(proxy.requests) == sorted(
        [stream, ("GET", f"{up.url}/models"), ("POST", f"{up.url}/chat/completions")]
    )
    # The proxy forwarded every request: the upstream saw each one.
    assert len(up.seen) == len(proxy.requests)


async def test_https_proxy_tunnels_with_connect(upstream, proxy, tls, transport, monkeypatch):
    server_ctx, bundle = tls
    up = await upstream(ssl_context=server_ctx)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # not used for https
    async with AsyncClient(base_url=up.url, api_key=KEY, verify=bundle) as client:
        await _stream_and_json(client, transport)
    host = up.url.split("//")[1].split("/")[0]
    assert proxy.requests and {r for r in proxy.requests} == {("CONNECT", host)}
    # The tunnel hid the requests from the proxy but not from the upstream; the Authorization
    # header went through the tunnel only.
    assert all(r["headers"]["Authorization"] == f"Bearer {KEY}" for r in up.seen)


async def test_no_proxy_bypasses(upstream, proxy, transport, monkeypatch):
    up = await upstream()
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "example.org,127.0.0.1")
    async with AsyncClient(base_url=up.url, api_key=KEY) as client:
        await _stream_and_json(client, transport)
    assert proxy.requests == [] and up.seen


async def test_explicit_proxy_wins_over_the_environment(upstream, proxy, transport, monkeypatch):
    up = await upstream()
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    async with AsyncClient(base_url=up.url, api_key=KEY, proxy=proxy.url) as client:
        await _stream_and_json(client, transport)
    assert len(proxy.requests) >= 3


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_dead_proxy_is_named(upstream, transport, monkeypatch):
    up = await upstream()
    dead = f"http://user:proxy-secret@127.0.0.1:{_dead_port()}"
    monkeypatch.setenv("HTTP_PROXY", dead)
    async with AsyncClient(base_url=up.url, api_key=KEY, transport=transport,
                           max_retries=1) as client:
        s, stream_error, json_error = await stream_and_json_errors(client, ConnectError)
    for error in (stream_error, json_error):
        assert error.kind == "proxy" and "proxy" in error.message
        assert f"127.0.0.1:{dead.rsplit(':', 1)[1]}" in error.message
        assert up.url not in error.message and "proxy-secret" not in str(error)
        assert "HTTPS_PROXY" in error.hint
    assert s.stats.retries == 1 and up.seen == []


def test_bad_proxy_value_is_a_config_error():
    from holynb import ConfigError

    with pytest.raises(ConfigError, match="proxy="):
        AsyncClient(api_key=KEY, proxy="socks5://127.0.0.1:1080")


async def test_proxy_refusing_the_tunnel_is_named(raw_server, tls, upstream, monkeypatch):
    async def refuse(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    proxy_url = (await raw_server(refuse)).removesuffix("/v1")
    server_ctx, bundle = tls
    up = await upstream(ssl_context=server_ctx)
    monkeypatch.setenv("HTTPS_PROXY", proxy_url)
    async with AsyncClient(base_url=up.url, api_key=KEY, verify=bundle, max_retries=0) as client:
        with pytest.raises(ConnectError) as info:
            await client.models()
    assert info.value.kind == "proxy" and "407" in info.value.message
    assert proxy_url.split("//")[1] in info.value.message and up.seen == []
