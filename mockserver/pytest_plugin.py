"""pytest plugin (auto-registered): the ``holy_mock`` and ``holy_mock_factory`` fixtures.

``holy_mock`` is a fresh running :class:`~mockserver.MockServer` per test with FAST defaults —
``ttft_ms=0``, ``tps=0`` (as fast as possible), ``seed=0`` — so tests don't wait on simulated
latency. Override per test with ``@pytest.mark.parametrize`` or by using the factory::

    def test_slow(holy_mock_factory):
        mock = holy_mock_factory(ttft_ms=120, tps=50, fault="disconnect:after=3")
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mockserver._server import MockServer

FAST_DEFAULTS: dict[str, Any] = {"ttft_ms": 0, "tps": 0, "seed": 0, "drain_timeout_s": 2.0}


@pytest.fixture
def holy_mock_factory() -> Iterator[Callable[..., MockServer]]:
    """``make(**kwargs) -> MockServer``: started servers (fast defaults), stopped at teardown."""
    servers: list[MockServer] = []

    def make(**kwargs: Any) -> MockServer:
        server = MockServer(**{**FAST_DEFAULTS, **kwargs})
        server.start()
        servers.append(server)
        return server

    try:
        yield make
    finally:
        for server in reversed(servers):
            server.stop()


@pytest.fixture
def holy_mock(holy_mock_factory: Callable[..., MockServer]) -> MockServer:
    """A running mock server with fast defaults; ``.url`` is the ``/v1`` base URL."""
    return holy_mock_factory()
