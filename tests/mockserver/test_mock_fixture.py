"""The pytest plugin: fixtures are registered by entry point and give running servers."""

from __future__ import annotations

import httpx
from mockutil import AUTH, chat

from mockserver import MockServer


def test_holy_mock_is_running_with_fast_defaults(holy_mock: MockServer) -> None:
    assert holy_mock.url.endswith("/v1")
    r = httpx.post(f"{holy_mock.url}/chat/completions", headers=AUTH, json=chat(max_tokens=4))
    assert r.status_code == 200
    assert r.json()["usage"]["completion_tokens"] == 4
    config = httpx.get(f"{holy_mock.base_url}/_mock/config").json()
    assert (config["ttft_ms"], config["tps"], config["seed"]) == (0, 0, 0)


def test_factory_overrides_and_stops_every_server(holy_mock_factory) -> None:
    a = holy_mock_factory(fault="status:code=503")
    b = holy_mock_factory(tps=500)
    assert a.url != b.url
    assert httpx.post(f"{a.url}/chat/completions", headers=AUTH, json=chat()).status_code == 503
    assert httpx.post(f"{b.url}/chat/completions", headers=AUTH, json=chat()).status_code == 200


async def test_async_context_manager_and_explicit_start_stop() -> None:
    import aiohttp

    async with MockServer(fault="no-done") as mock, aiohttp.ClientSession(headers=AUTH) as s:
        async with s.post(f"{mock.url}/chat/completions",
                          json=chat(stream=True, max_tokens=2)) as r:
            assert b"[DONE]" not in await r.read()
    assert repr(mock) == "MockServer(stopped)"
    other = MockServer()
    await other.astart()
    try:
        assert other.journal() == []
    finally:
        await other.astop()


def test_start_errors_surface_in_the_caller() -> None:
    import socket

    import pytest

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError):
            MockServer(port=taken.getsockname()[1]).start()
    with pytest.raises(ValueError, match="cassette"):
        MockServer(cassettes="/nonexistent/cassettes").start()
