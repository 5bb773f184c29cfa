"""The API key never appears in errors, reprs or logs — only its masked form."""

from __future__ import annotations

import logging
import socket

import pytest
from client_helpers import KEY, PROMPT, collect

from holynb import AsyncClient, ConfigError, HolyError
from holynb._config import mask_key


def test_mask_key_shapes():
    assert mask_key(KEY) == "sk-…7b2d"
    assert mask_key("abcdefghijklmnop") == "…mnop"
    assert mask_key("sk-short") == "sk-…" and mask_key("") == "<no key>"
    assert KEY not in mask_key(KEY)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _errors_from(client: AsyncClient, transport: str) -> list[HolyError]:
    faults = [
        "status:code=429,retry_after=0.01",
        "status:code=500",
        "disconnect:after=2",
        "stall:after=2,ms=1000",
        "malformed:at=2",
        "error-event:at=2",
        "status:code=400",
    ]
    errors: list[HolyError] = []
    for fault in faults:
        s = client.stream(
            PROMPT,
            transport=transport,
            max_retries=1,
            idle_timeout=0.1,
            extra_headers={"X-Mock-Fault": fault},
        )
        with pytest.raises(HolyError) as info:
            async with s:
                await collect(s)
        errors.append(info.value)
        assert KEY not in repr(s) and KEY not in str(s.stats)
    return errors


async def test_key_absent_from_errors_reprs_and_logs(holy_mock_factory, transport, caplog):
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    events = []
    strict = holy_mock_factory(keys=["sk-another-valid-key-0000"])
    open_mock = holy_mock_factory()
    async with AsyncClient(base_url=open_mock.url, api_key=KEY, on_retry=events.append) as c:
        assert KEY not in repr(c) and mask_key(KEY) in repr(c)
        errors += await _errors_from(c, transport)
    async with AsyncClient(base_url=strict.url, api_key=KEY, transport=transport) as c:
        s = c.stream(PROMPT)
        with pytest.raises(HolyError) as info:
            async with s:
                await collect(s)
        errors.append(info.value)
        assert info.value.status_code == 401 and KEY not in repr(s)
    dead = f"http://127.0.0.1:{_free_port()}/v1"
    async with AsyncClient(base_url=dead, api_key=KEY, transport=transport, max_retries=0) as c:
        with pytest.raises(HolyError) as info:
            async with c.stream(PROMPT) as s:
                await collect(s)
        errors.append(info.value)
    with pytest.raises(ConfigError) as info:
        AsyncClient(base_url=open_mock.url, api_key=KEY + " extra")
    errors.append(info.value)

    kinds = {type(e).__name__ for e in errors}
    assert kinds >= {
        "RateLimitError", "APIStatusError", "StreamInterrupted", "StreamTimeout",
        "MalformedChunkError", "AuthenticationError", "ConfigError",
    }
    for error in errors:
        for text in (str(error), repr(error), repr(getattr(error, "body", None)),
                     repr(getattr(error, "raw", None)), error.partial_text):
            assert KEY not in text, (type(error).__name__, text)
    assert events and all(KEY not in str(e) and KEY not in repr(e) for e in events)
    assert caplog.records, "expected retry log lines"
    assert KEY not in caplog.text
    assert all(KEY not in r.getMessage() for r in caplog.records)


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _assert_clean(error: BaseException, *secrets: str) -> None:
    for link in _chain(error):
        text = f"{link!s} {link!r} {vars(link)!r}"
        for secret in (*secrets, "Bearer", "Authorization"):
            assert secret not in text, (type(link).__name__, text[:300])
        assert not type(link).__module__.startswith("aiohttp"), type(link)


async def test_no_header_value_in_errors_or_their_chains(holy_mock_factory, transport, tls,
                                                          upstream):
    strict = holy_mock_factory(keys=["sk-another-valid-key-0000"])
    errors: list[BaseException] = []
    async with AsyncClient(base_url=strict.url, api_key=KEY, transport=transport,
                           max_retries=0) as client:
        with pytest.raises(HolyError) as info:
            async with client.stream(PROMPT) as s:
                await collect(s)
        errors.append(info.value)
        with pytest.raises(HolyError) as info:
            await client.models()
        errors.append(info.value)
    server_ctx, _ = tls
    up = await upstream(ssl_context=server_ctx)  # a certificate this client does not trust
    dead = f"http://127.0.0.1:{_free_port()}"
    for base, extra in ((up.url, {}), (f"http://127.0.0.1:{_free_port()}/v1", {}),
                        ("http://127.0.0.1:1/v1", {"proxy": dead})):
        async with AsyncClient(base_url=base, api_key=KEY, transport=transport, max_retries=0,
                               **extra) as client:
            with pytest.raises(HolyError) as info:
                async with client.stream(PROMPT) as s:
                    await collect(s)
            errors.append(info.value)
    assert {type(e).__name__ for e in errors} >= {"AuthenticationError", "ConnectError"}
    for error in errors:
        _assert_clean(error, KEY)


async def test_password_in_the_base_url_is_masked_everywhere(upstream, transport, caplog):
    caplog.set_level(logging.DEBUG)
    up = await upstream()
    secret = "pw-SECRET-91"
    base = up.url.replace("http://", f"http://alice:{secret}@")
    async with AsyncClient(base_url=base, api_key=KEY, transport=transport,
                           max_retries=0) as client:
        assert secret not in repr(client) and secret not in client.base_url
        assert client.base_url.startswith("http://***@127.0.0.1:")
        async with client.stream(PROMPT) as s:
            assert await collect(s)
        assert secret not in repr(s)
    # The credentials were sent as HTTP Basic auth (as httpx and the openai SDK do).
    import base64

    sent = up.seen[-1]["headers"]["Authorization"]
    assert sent == "Basic " + base64.b64encode(f"alice:{secret}".encode()).decode()
    dead = f"http://alice:{secret}@127.0.0.1:{_free_port()}/v1"
    async with AsyncClient(base_url=dead, api_key=KEY, transport=transport,
                           max_retries=1) as client:
        with pytest.raises(HolyError) as info:
            async with client.stream(PROMPT) as s:
                await collect(s)
    _assert_clean(info.value, KEY, secret)
    assert "***@" in info.value.message or "127.0.0.1" in info.value.message
    with pytest.raises(ConfigError) as config:
        AsyncClient(base_url=f"ftp://alice:{secret}@host/v1", api_key=KEY)
    assert secret not in str(config.value)
    assert secret not in caplog.text


async def test_non_ascii_header_value_is_a_config_error(upstream):
    up = await upstream()
    async with AsyncClient(base_url=up.url, api_key=KEY) as client:
        with pytest.raises(ConfigError) as info:
            client.stream(PROMPT, extra_headers={"X-User": "Nguyễn"})
        assert "'X-User'" in str(info.value) and "Nguyễn" not in str(info.value)
        with pytest.raises(ConfigError, match="line break"):
            client.stream(PROMPT, extra_headers={"X-Evil": "a\r\nInjected: 1"})
    with pytest.raises(ConfigError, match="non-ASCII") as info:
        AsyncClient(base_url=up.url, api_key="sk-clé-secrète-0000")
    assert "clé" not in str(info.value)
