"""Fixtures for the magic tests: a real InteractiveShell with holynb loaded, display recording."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from IPython.core.interactiveshell import InteractiveShell
from magicutil import Recorder

from holynb import _config
from holynb.notebook.magic import HolyMagics
from mockserver import MOCK_KEY, MockServer


@pytest.fixture
def ip() -> Iterator[InteractiveShell]:
    """The IPython shell with a fresh HolyMagics registered (rich display, no stats delay)."""
    shell = InteractiveShell.instance()
    shell.config.pop("HolyMagics", None)  # %config values of earlier tests
    magics = HolyMagics(shell=shell)
    shell.register_magics(magics)
    magics.display_mode = "rich"
    saved_pub = shell.display_pub
    try:
        yield shell
    finally:
        shell.display_pub = saved_pub
        shell.config.pop("HolyMagics", None)
        magics.close()
        if magics in shell.configurables:
            shell.configurables.remove(magics)
        _config.reset_defaults()


@pytest.fixture
def magics(ip: InteractiveShell) -> HolyMagics:
    """The HolyMagics instance registered on ``ip``."""
    return ip.magics_manager.registry["HolyMagics"]


@pytest.fixture
def recorder(ip: InteractiveShell) -> Recorder:
    """Record every display message the shell publishes."""
    rec = Recorder(shell=ip)
    ip.display_pub = rec
    return rec


@pytest.fixture
def use_mock() -> Iterator[Callable[[MockServer], MockServer]]:
    """Point holynb at a mock server (with the mock key) for the test."""

    def use(mock: MockServer) -> MockServer:
        _config.configure(base_url=mock.url, api_key=MOCK_KEY)
        return mock

    try:
        yield use
    finally:
        _config.reset_defaults()


@pytest.fixture
def mock(holy_mock: MockServer, use_mock: Callable[[MockServer], MockServer]) -> MockServer:
    """A fast mock server that holynb is pointed at."""
    return use_mock(holy_mock)
