"""Fixtures of the panel tests: panels against a running mock, closed at teardown."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest


@pytest.fixture
async def make_panel() -> AsyncIterator[Callable[..., Any]]:
    """``make(mock, **options) -> ChatPanel`` against a running mock; closed at teardown."""
    from holynb import ChatPanel
    from mockserver import MOCK_KEY

    panels: list[Any] = []

    def make(mock: Any, **options: Any) -> Any:
        options.setdefault("api_key", MOCK_KEY)
        panel = ChatPanel(base_url=mock.url, **options)
        panels.append(panel)
        return panel

    try:
        yield make
    finally:
        for panel in panels:
            await panel.aclose()
