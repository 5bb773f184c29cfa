"""Drive the notebook faces as a user sees them: one Jupyter server (JupyterLab and Notebook 7
from the same process), Debian's Chromium through Playwright, real kernels."""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

CHROMIUM = Path("/usr/bin/chromium")
# Launch flags: headless, no sandbox (root in CI), and nothing that reaches the network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "browser"
FRONTENDS = ("lab", "notebook")


@dataclass
class JupyterServer:
    """A running Jupyter server: JupyterLab at /lab, Notebook 7 at /notebooks."""

    url: str
    token: str
    root: Path

    def notebook_url(self, frontend: str, name: str) -> str:
        """The notebook's page; JupyterLab starts from an empty workspace (``reset``), so
        tabs of earlier tests are not reopened."""
        if frontend == "lab":
            return f"{self.url}/lab/tree/{name}?reset&token={self.token}"
        return f"{self.url}/notebooks/{name}?token={self.token}"

    def shut_down_kernels(self) -> None:
        """End every kernel (the tests' kernels must not pile up on a 2-core machine)."""
        headers = {"Authorization": f"token {self.token}"}
        request = urllib.request.Request(f"{self.url}/api/kernels", headers=headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            kernels = json.load(response)
        for kernel in kernels:
            url = f"{self.url}/api/kernels/{kernel['id']}"
            request = urllib.request.Request(url, method="DELETE", headers=headers)
            urllib.request.urlopen(request, timeout=30).close()

    def write_notebook(self, name: str, cells: list[str]) -> str:
        """Write a notebook of code cells (``%%md`` first line: a Markdown cell)."""
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3",
            "language": "python",
        }
        nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
        nbformat.write(nb, self.root / name)
        return name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def jupyter_server(base: Path) -> Iterator[JupyterServer]:
    """JupyterLab (and Notebook 7, as a server extension of the same process) on 127.0.0.1,
    with a random token, a temp root and home, and no update or news lookups."""
    root, settings, home = base / "root", base / "settings", base / "home"
    for d in (root, settings, home):
        d.mkdir()
    # No news and update toasts: they make network requests and cover the notebook.
    notify = settings / "@jupyterlab" / "apputils-extension"
    notify.mkdir(parents=True)
    (notify / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    token = secrets.token_hex(16)
    port = _free_port()
    env = {
        **os.environ,
        "HOME": str(home),
        "JUPYTER_CONFIG_DIR": str(home / ".jupyter"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "IPYTHONDIR": str(home / ".ipython"),
        "JUPYTER_PLATFORM_DIRS": "1",
    }
    env.pop("HOLYSHEEP_API_KEY", None)
    log = base / "jupyter.log"
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        f"--LabServerApp.user_settings_dir={settings}",
        f"--LabServerApp.workspaces_dir={base / 'workspaces'}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
        "--ServerApp.terminals_enabled=False",
        "--ServerApp.allow_root=True",
        # The tests run cells through window.jupyterapp's commands (users press Shift+Enter);
        # nothing of holynb's relies on it.
        "--LabApp.expose_app_in_browser=True",
        "--JupyterNotebookApp.expose_app_in_browser=True",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, token, proc, log)
        yield JupyterServer(url=url, token=token, root=root)
    finally:
        try:
            request = urllib.request.Request(
                f"{url}/api/shutdown", method="POST", headers={"Authorization": f"token {token}"}
            )
            urllib.request.urlopen(request, timeout=5).close()
        except (urllib.error.URLError, OSError):
            pass
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _wait_ready(url: str, token: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Jupyter exited early:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise RuntimeError(f"Jupyter did not start within 60 s:\n{log.read_text()[-3000:]}")


# JavaScript run in the page (JupyterLab and Notebook 7 share the notebook widget and commands).
_NOTEBOOK = "window.jupyterapp.shell.currentWidget"
# Both start the execution and return at once (the command's promise ends with the run).
RUN_ALL_JS = f"""async () => {{
  const panel = {_NOTEBOOK};
  await panel.sessionContext.ready;
  void window.jupyterapp.commands.execute('notebook:run-all-cells');
}}"""
RUN_CELL_JS = f"""async (index) => {{
  const panel = {_NOTEBOOK};
  await panel.sessionContext.ready;
  panel.content.activeCellIndex = index;
  void window.jupyterapp.commands.execute('notebook:run-cell');
}}"""
RUN_FROM_JS = f"""async (index) => {{
  const panel = {_NOTEBOOK};
  await panel.sessionContext.ready;
  panel.content.activeCellIndex = index;
  void window.jupyterapp.commands.execute('notebook:run-all-below');
}}"""
CELL_SOURCES_JS = f"""() => {_NOTEBOOK}.content.widgets
  .map(cell => cell.model.sharedModel.getSource())"""
EXECUTED_JS = f"""(index) => {{
  const cell = {_NOTEBOOK}.content.widgets[index];
  return cell.model.executionCount !== null && !cell.node.querySelector('.jp-mod-pending')
    && {_NOTEBOOK}.sessionContext.session?.kernel?.status === 'idle';
}}"""


class NotebookPage:
    """A notebook open in one frontend of the server, in a Chromium page."""

    def __init__(self, page: Any, server: JupyterServer, frontend: str) -> None:
        self.page = page
        self.server = server
        self.frontend = frontend

    def open(self, name: str, cells: list[str]) -> NotebookPage:
        """Write the notebook, open it and wait until its kernel is ready."""
        self.server.write_notebook(name, cells)
        self.page.goto(self.server.notebook_url(self.frontend, name))
        self.page.wait_for_function(
            f"() => window.jupyterapp && {_NOTEBOOK} && {_NOTEBOOK}.sessionContext"
            f" && {_NOTEBOOK}.content.widgets.length === {len(cells)}",
            timeout=60_000,
        )
        self.page.wait_for_function(
            f"() => {_NOTEBOOK}.sessionContext.session?.kernel?.connectionStatus === 'connected'",
            timeout=60_000,
        )
        return self

    def run_all(self) -> None:
        """Run All, as from the Run menu."""
        self.page.evaluate(RUN_ALL_JS)

    def run_all_from(self, index: int) -> None:
        """Run cell ``index`` and every cell below it."""
        self.page.evaluate(RUN_FROM_JS, index)

    def run_cell(self, index: int) -> None:
        """Run one cell, as Shift+Enter on it does."""
        self.page.evaluate(RUN_CELL_JS, index)

    def wait_executed(self, index: int, timeout: float = 60) -> None:
        """Wait until cell ``index`` has run and the kernel is idle."""
        self.page.wait_for_function(EXECUTED_JS, arg=index, timeout=timeout * 1000)

    def cell(self, index: int) -> Any:
        """The Playwright locator of cell ``index`` (of the notebook on screen)."""
        return self.page.locator(".jp-NotebookPanel:visible .jp-Notebook .jp-Cell").nth(index)

    def output_text(self, index: int) -> str:
        """The visible text of a cell's outputs."""
        return self.cell(index).locator(".jp-Cell-outputArea").inner_text()

    def sources(self) -> list[str]:
        """The source of every cell."""
        return self.page.evaluate(CELL_SOURCES_JS)

    def screenshot(self, name: str, locator: Any = None) -> Path:
        """Save a screenshot under test-artifacts/browser/ (the whole page by default)."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.frontend}-{re.sub(r'[^a-z0-9-]+', '-', name.lower())}.png"
        (locator or self.page).screenshot(path=str(path))
        return path


# The tool-calls cassette's prompt: the mock answers it with two get_weather calls.
WEATHER = "What is the weather in Bangkok and Chiang Mai right now?"

# The tool-call blocks under ``selector``: their text and their (pretty-printed) arguments.
TOOL_BLOCKS_JS = """(selector) => [...document.querySelectorAll(selector)]
  .filter(node => node.innerText.includes('Tool call'))
  .map(node => ({text: node.innerText, code: node.querySelector('pre')?.innerText || ''}))"""

# Python names a notebook user must never be told about in an error line.
PYTHON_NAMES = re.compile(
    r"\.partial_text|\b(?!mock=True)[a-z_]+=\S|\w\(\)|client\.|skip_malformed|idle_timeout"
    r"|first_token_timeout"
)


def fault_cell(header: str, value: str, flags: str = "") -> str:
    """A ``%holy`` cell whose request carries a mock control header (a fault, a delay)."""
    return (
        f"%config HolyMagics.extra_headers = {{{header!r}: {value!r}}}\n"
        f"%holy --max-tokens 30 {flags} Tell me about streaming."
    )


# For each error line: its text, and how many lines it takes when its box is 100 columns wide.
ERROR_LINES_JS = """() => {
  const notebook = window.jupyterapp.shell.currentWidget.content;
  return notebook.widgets.map(cell => {
    const outputs = [...cell.node.querySelectorAll('.jp-OutputArea-output pre')];
    const pre = outputs.find(p => p.innerText.startsWith('⚠'));
    if (!pre) { return null; }
    pre.style.width = '100ch';
    pre.style.whiteSpace = 'pre-wrap';
    const range = document.createRange();
    range.selectNodeContents(pre);
    const tops = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
    const answer = cell.node.querySelector('.jp-RenderedMarkdown');
    return {line: pre.innerText.trim(), rows: tops.size,
            partial: answer ? answer.innerText.trim().length : 0};
  });
}"""
