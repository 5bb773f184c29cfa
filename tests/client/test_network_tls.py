"""TLS against a real HTTPS/WSS upstream with a trustme CA: verify=, SSL_CERT_FILE, failures."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from pathlib import Path

import aiohttp  # noqa: F401  (imported before SSL_CERT_FILE is set, as in a notebook)
import pytest
from client_helpers import KEY, PROMPT, collect, stream_and_json_errors

from holynb import AsyncClient, ConfigError, ConnectError
from holynb._retry import RetryEvent


async def _all_three(client: AsyncClient, transport: str) -> None:
    """A stream on ``transport``, then complete() and models() (JSON)."""
    async with client.stream(PROMPT, transport=transport) as s:
        assert "".join(await collect(s)) == "The answer is 42."
    assert (await client.complete(PROMPT)).text == "The answer is 42."
    assert await client.models() == ["deepseek-v3.2"]


async def test_verify_with_a_ca_bundle_path(upstream, tls, transport):
    server_ctx, bundle = tls
    up = await upstream(ssl_context=server_ctx, host="localhost")
    async with AsyncClient(base_url=up.url, api_key=KEY, verify=bundle) as client:
        await _all_three(client, transport)
    assert {r["path"] for r in up.seen} == {"/v1/chat/completions", "/v1/models"} | (
        {"/v1/ws/chat"} if transport == "ws" else set()
    )


async def test_verify_with_an_ssl_context(upstream, tls, transport):
    server_ctx, bundle = tls
    up = await upstream(ssl_context=server_ctx)  # 127.0.0.1 is in the certificate too
    context = ssl.create_default_context(cafile=bundle)
    async with AsyncClient(base_url=up.url, api_key=KEY, verify=context) as client:
        await _all_three(client, transport)


async def test_ssl_cert_file_set_after_aiohttp_was_imported(upstream, tls, transport, monkeypatch):
    server_ctx, bundle = tls
    up = await upstream(ssl_context=server_ctx)
    monkeypatch.setenv("SSL_CERT_FILE", bundle)
    async with AsyncClient(base_url=up.url, api_key=KEY) as client:
        await _all_three(client, transport)


async def test_ssl_cert_dir(upstream, tls, transport, monkeypatch, tmp_path):
    server_ctx, bundle = tls
    up = await upstream(ssl_context=server_ctx)
    # A hashed CA directory, as c_rehash / openssl rehash lay it out.
    ca = ssl.PEM_cert_to_DER_cert(Path(bundle).read_text())
    name_hash = _subject_hash(bundle)
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / f"{name_hash}.0").write_text(ssl.DER_cert_to_PEM_cert(ca))
    monkeypatch.setenv("SSL_CERT_DIR", str(certs))
    async with AsyncClient(base_url=up.url, api_key=KEY, verify=str(certs)) as client:
        async with client.stream(PROMPT, transport=transport) as s:
            await collect(s)
    assert s.done


def _subject_hash(bundle: str) -> str:
    import subprocess

    return subprocess.run(
        ["openssl", "x509", "-hash", "-noout", "-in", bundle],
        capture_output=True, text=True, check=True,
    ).stdout.strip()


async def test_untrusted_certificate_is_one_line_and_not_retried(upstream, tls, transport):
    server_ctx, _ = tls
    up = await upstream(ssl_context=server_ctx)
    events: list[RetryEvent] = []
    async with AsyncClient(
        base_url=up.url, api_key=KEY, transport=transport, max_retries=3, on_retry=events.append
    ) as client:
        s, error, json_error = await stream_and_json_errors(client, ConnectError)
    assert error.kind == "tls" and error.host.startswith("127.0.0.1:")
    assert "certificate" in error.message and "127.0.0.1" in error.message
    assert "verify=" in error.hint and "SSL_CERT_FILE" in error.hint
    assert "\n" not in str(error) and "verify=" not in error.message
    assert json_error.kind == "tls"
    assert events == [] and s.stats.retries == 0 and up.seen == []


async def test_wrong_host_is_refused(upstream, ca, transport, tmp_path):
    cert = ca.issue_cert("api.example.test")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    up = await upstream(ssl_context=server_ctx)
    async with AsyncClient(
        base_url=up.url, api_key=KEY, transport=transport, verify=str(bundle)
    ) as client:
        s = client.stream(PROMPT)
        with pytest.raises(ConnectError) as info:
            async with s:
                await collect(s)
    assert info.value.kind == "tls" and "127.0.0.1" in info.value.message
    assert "mismatch" in info.value.message.lower() or "not valid" in info.value.message
    assert s.stats.retries == 0


async def test_tls_version_refused(ca, transport):
    # A blocking OpenSSL server (asyncio's resets without sending the alert) that speaks at most
    # TLS 1.2, and a client that requires TLS 1.3.
    cert = ca.issue_cert("127.0.0.1")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    server_ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)

    def serve_one() -> None:
        conn, _ = listener.accept()
        with contextlib.suppress(OSError):
            server_ctx.wrap_socket(conn, server_side=True)
        conn.close()

    thread = threading.Thread(target=serve_one, daemon=True)
    thread.start()
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    client_ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    url = f"https://127.0.0.1:{listener.getsockname()[1]}/v1"
    try:
        async with AsyncClient(
            base_url=url, api_key=KEY, transport=transport, verify=client_ctx
        ) as client:
            s = client.stream(PROMPT)
            with pytest.raises(ConnectError) as info:
                async with s:
                    await collect(s)
    finally:
        thread.join(5)
        listener.close()
    assert info.value.kind == "tls" and "TLS handshake" in info.value.message
    assert "protocol" in info.value.message.lower() and s.stats.retries == 0


async def test_verify_false_skips_checking(upstream, tls, transport):
    server_ctx, _ = tls
    up = await upstream(ssl_context=server_ctx)
    async with AsyncClient(base_url=up.url, api_key=KEY, verify=False) as client:
        await _all_three(client, transport)


def test_bad_verify_values_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        AsyncClient(api_key=KEY, verify=str(tmp_path / "missing.pem"))
    empty = tmp_path / "empty.pem"
    empty.write_text("not a certificate")
    with pytest.raises(ConfigError, match="could not be loaded") as info:
        AsyncClient(api_key=KEY, verify=str(empty))
    assert info.value.__context__ is None
    with pytest.raises(ConfigError, match="verify= must be"):
        AsyncClient(api_key=KEY, verify=42)  # type: ignore[arg-type]


def test_missing_ssl_cert_file_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "nope.pem"))
    with pytest.raises(ConfigError, match="SSL_CERT_FILE"):
        AsyncClient(api_key=KEY)
