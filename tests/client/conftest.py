"""Fixtures for the client tests: a recognisable key, both transports, journal helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from client_helpers import KEY

from holynb import AsyncClient
from holynb._config import reset_defaults


@pytest.fixture(autouse=True)
def _clean_config(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HOLYSHEEP_API_KEY", "HOLYSHEEP_BASE_URL", "HOLYNB_MODEL", "HOLYNB_TRANSPORT"):
        monkeypatch.delenv(name, raising=False)
    reset_defaults()


@pytest.fixture(params=["sse", "ws"])
def transport(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once per transport."""
    return request.param


@pytest.fixture
async def make_client() -> AsyncIterator[Callable[..., AsyncClient]]:
    """``make(mock, **kwargs)``: an AsyncClient on the mock (closed at teardown)."""
    clients: list[AsyncClient] = []

    def make(mock: Any, **kwargs: Any) -> AsyncClient:
        client = AsyncClient(base_url=mock.url, api_key=KEY, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()
