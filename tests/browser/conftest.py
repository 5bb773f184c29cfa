"""Fixtures of the browser tests: one Jupyter server for the whole session, a fresh Chromium
(and user-data dir) per test, every test in JupyterLab and in Notebook 7."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from browser_helpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    FRONTENDS,
    JupyterServer,
    NotebookPage,
    jupyter_server,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def jupyter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    """One Jupyter server for every browser test of the session."""
    with jupyter_server(tmp_path_factory.mktemp("jupyter")) as server:
        yield server


@pytest.fixture
def chromium(tmp_path: Any) -> Iterator[Any]:
    """Debian's Chromium via Playwright, with a fresh user-data dir (skipped where absent).

    Per test, not per session: while Playwright's sync API is open, its event loop counts as
    running in this thread, and the async tests that follow could not start their own.
    """
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium (apt install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 1000},
            # "Code → cell" copies to the clipboard where it cannot insert a cell.
            permissions=["clipboard-read", "clipboard-write"],
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture(params=FRONTENDS)
def frontend(request: pytest.FixtureRequest) -> str:
    """``lab`` (JupyterLab) or ``notebook`` (Notebook 7)."""
    return request.param


@pytest.fixture
def nb(
    jupyter: JupyterServer, chromium: Any, frontend: str, request: pytest.FixtureRequest
) -> Iterator[NotebookPage]:
    """A new page in the chosen frontend; a screenshot is saved when the test fails."""
    page = chromium.new_page()
    notebook = NotebookPage(page, jupyter, frontend)
    try:
        yield notebook
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print(f"\nfailure screenshot: {notebook.screenshot(request.node.name + '-failure')}")
        page.close()
        jupyter.shut_down_kernels()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report

