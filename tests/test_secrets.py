"""The API key never appears anywhere: reprs, errors, tracebacks, logs, journals, recordings,
the magic's outputs, the panel's widget state and export, the CLI, committed files.

``tests/client/test_masking.py`` covers AsyncClient errors against an open mock; this file walks
the other surfaces end to end with a mock that accepts only the secret key.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import ipywidgets as w
import pytest
from IPython.core.displaypub import DisplayPublisher
from IPython.core.interactiveshell import InteractiveShell

from holynb import AsyncClient, ChatPanel, Client, HolyError, _config
from holynb.notebook.magic import HolyMagics
from mockserver import MOCK_KEY

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-holynb-SECRET-4f2b9c71e0"
OTHER_KEY = "sk-holynb-the-other-key-0000"
# The whole key, the part after ``sk-``, and every 8-character window of it: the masked form
# (``sk-…71e0``) shows four characters, so no longer piece may show up anywhere.
NEEDLES = sorted({KEY, KEY[3:]} | {KEY[i : i + 8] for i in range(3, len(KEY) - 7)})
LOGGERS = ("", "holynb", "mockserver", "httpx", "httpcore", "aiohttp", "asyncio")
FAULTS = [
    "status:code=429,retry_after=0.01",
    "status:code=500",
    "status:code=503",
    "disconnect:after=2",
    "reset:after=2",
    "malformed:at=2",
    "error-event:at=2",
    "stall:after=2,ms=2000",
    "stall:after=0,ms=2000",
    "ws-close:code=1011,after=2",  # WebSocket only: last
]


def assert_clean(text: Any, where: str) -> None:
    """Fail when any long piece of the key occurs in ``text`` (any value, via str/repr)."""
    if not isinstance(text, str):
        text = repr(text)
    for needle in NEEDLES:
        assert needle not in text, f"{needle!r} leaked in {where}: {text[:2000]}"


def error_texts(exc: BaseException) -> list[str]:
    """Everything an error shows: str, repr, attributes and the whole formatted chain."""
    texts = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    for attr in ("body", "raw", "partial_text", "message", "args"):
        texts.append(repr(getattr(exc, attr, None)))
    return texts


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Capture DEBUG from every logger involved; checked clean at teardown."""
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name or None)
    yield caplog
    assert_clean(caplog.text, "log output")
    for record in caplog.records:
        assert_clean(record.getMessage(), f"log record of {record.name}")
        assert_clean(vars(record), f"log record fields of {record.name}")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("HOLYSHEEP_API_KEY", "HOLYSHEEP_BASE_URL", "HOLYNB_MODEL", "HOLYNB_TRANSPORT"):
        monkeypatch.delenv(name, raising=False)
    _config.reset_defaults()
    yield
    _config.reset_defaults()


def assert_mock_clean(mock: Any) -> None:
    """The journal (in process and over HTTP) and the public config never hold the key."""
    assert_clean(json.dumps(mock.journal()), f"journal of {mock!r}")
    base = mock.url.removesuffix("/v1")
    for path in ("/_mock/journal", "/_mock/config"):
        resp = httpx.get(base + path, timeout=5)
        assert resp.status_code == 200
        assert_clean(resp.text, f"GET {path}")
    assert_clean(repr(mock), "repr(MockServer)")


# -- client: sync Client, its streams and every error -----------------------------------------


@pytest.mark.parametrize("transport", ["sse", "ws"])
def test_client_reprs_errors_and_logs(holy_mock_factory, logs, transport: str) -> None:
    mock = holy_mock_factory(keys=[KEY])
    seen: list[str] = []
    errors: list[BaseException] = []
    with Client(base_url=mock.url, api_key=KEY, transport=transport, max_retries=1,
                on_retry=lambda ev: seen.append(f"{ev} {ev!r}")) as client:
        seen += [repr(client), str(client)]
        with client.stream("hello", max_tokens=8) as s:
            text = "".join(s)
        assert text and s.finish_reason
        seen += [repr(s), str(s), repr(s.stats), repr(s.usage)]
        result = client.complete("hello", max_tokens=4)
        seen.append(repr(result))
        assert "gpt-4.1" in client.models()
        for fault in FAULTS if transport == "ws" else FAULTS[:-1]:
            s = client.stream("hello", max_tokens=8, idle_timeout=0.2, first_token_timeout=0.3,
                              extra_headers={"X-Mock-Fault": fault})
            with pytest.raises(HolyError) as info:
                with s:
                    for _ in s:
                        pass
            errors.append(info.value)
            seen += [repr(s), repr(s.stats)]
        with pytest.raises(HolyError) as info:
            client.complete("hello", extra_headers={"X-Mock-Fault": "status:code=500"})
        errors.append(info.value)
    # A wrong key against this mock, and this key against a mock that wants another one.
    for url, key in ((mock.url, OTHER_KEY), (holy_mock_factory(keys=[OTHER_KEY]).url, KEY)):
        with Client(base_url=url, api_key=key, transport=transport, max_retries=0) as client:
            with pytest.raises(HolyError) as info:
                with client.stream("hello") as s:
                    list(s)
            errors.append(info.value)
            with pytest.raises(HolyError) as info:
                client.models()
            errors.append(info.value)
    kinds = {type(e).__name__ for e in errors}
    assert kinds >= {"RateLimitError", "APIStatusError", "StreamInterrupted", "StreamTimeout",
                     "MalformedChunkError", "AuthenticationError"}, kinds
    for error in errors:
        for text in error_texts(error):
            assert_clean(text, type(error).__name__)
    for text in seen:
        assert_clean(text, "repr/str")
    assert_mock_clean(mock)


async def test_async_client_repr_and_ws_close_reason(holy_mock_factory, logs) -> None:
    mock = holy_mock_factory(keys=[KEY])
    async with AsyncClient(base_url=mock.url, api_key=KEY, transport="ws") as client:
        assert_clean(repr(client), "repr(AsyncClient)")
        assert_clean(str(client), "str(AsyncClient)")
        # 401/403 status faults close the socket with 1008 and the error text as reason.
        for fault in ("status:code=401", "status:code=403", "ws-close:code=1008,after=1"):
            s = client.stream("hi", max_retries=0, extra_headers={"X-Mock-Fault": fault})
            with pytest.raises(HolyError) as info:
                async with s:
                    async for _ in s:
                        pass
            for text in error_texts(info.value):
                assert_clean(text, fault)
            assert_clean(repr(s), "repr(AsyncStream)")
    assert_mock_clean(mock)


# -- record mode: cassettes and both journals --------------------------------------------------


def _cassette_texts(folder: Path) -> list[tuple[str, str]]:
    """Every file's text, plus the decoded bytes of each base64 frame."""
    out = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        out.append((path.name, text))
        for frame in json.loads(text).get("frames", []):
            if "b64" in frame:
                raw = base64.b64decode(frame["b64"]).decode("utf-8", "replace")
                out.append((f"{path.name} b64 frame", raw))
    return out


async def _ws_exchange(url: str, frames: list[str]) -> list[str]:
    """Send each frame on one WebSocket and read until [DONE] or an error frame after each."""
    got: list[str] = []
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        for frame in frames:
            await ws.send_str(frame)
            while True:
                msg = await asyncio.wait_for(ws.receive(), 5)
                if msg.type != aiohttp.WSMsgType.TEXT:
                    got.append(f"<{msg.type.name} {msg.data!r} {msg.extra!r}>")
                    return got
                got.append(msg.data)
                if msg.data in ("[DONE]", '{"type":"pong"}') or msg.data.startswith('{"error"'):
                    break
    return got


async def test_record_mode_never_writes_the_key(holy_mock_factory, logs, tmp_path) -> None:
    upstream = holy_mock_factory(keys=[KEY])
    recorder = holy_mock_factory(record_upstream=upstream.url, record_dir=tmp_path / "rec")
    texts: list[str] = []
    for transport in ("sse", "ws"):
        async with AsyncClient(base_url=recorder.url, api_key=KEY, transport=transport,
                               max_retries=0) as client:
            async with client.stream(f"record me over {transport}", max_tokens=6) as s:
                texts.append("".join([d async for d in s]))
            texts.append(repr(s))
            if transport == "sse":
                texts.append(repr(await client.complete("record non-streaming", max_tokens=3)))
            for fault in ("status:code=500", "disconnect:after=2"):
                with pytest.raises(HolyError) as info:
                    async with client.stream(f"record {fault} {transport}", max_tokens=6,
                                             extra_headers={"X-Mock-Fault": fault}) as s:
                        async for _ in s:
                            pass
                texts += error_texts(info.value)
    # The key as ?key= on the WebSocket URL (no Authorization header), requests carrying it too.
    ws_url = recorder.ws_url + f"?key={KEY}&X-Mock-Seed=3"
    chat = {"model": "gpt-4.1", "max_tokens": 5, "stream": True,
            "messages": [{"role": "user", "content": "record the query key"}]}
    replies = await _ws_exchange(ws_url, [json.dumps(chat), '{"type":"ping"}',
                                          json.dumps({**chat, "model": "no-such-model"})])
    assert replies[-1].startswith('{"error"') and "[DONE]" in replies
    # A key the upstream refuses: the handshake and the HTTP reply.
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(recorder.ws_url + f"?key={OTHER_KEY}")
        assert refused.value.status == 401
        resp = await http.post(recorder.url + "/chat/completions", json=chat,
                               headers={"Authorization": f"Bearer {OTHER_KEY}"})
        texts.append(await resp.text())
        assert resp.status == 401
    for text in texts + replies:
        assert_clean(text, "record-mode client output")
    saved = _cassette_texts(tmp_path / "rec")
    names = [name for name, _ in saved]
    assert any("-sse-" in n for n in names) and any("-ws-" in n for n in names), names
    assert any("record-the-query-key" in n for n in names), names
    for name, text in saved:
        assert_clean(text, f"cassette {name}")
    assert_mock_clean(recorder)
    assert_mock_clean(upstream)


# -- the magic in a real InteractiveShell -------------------------------------------------------


class _Publisher(DisplayPublisher):
    """Keeps every display message the shell publishes."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.messages: list[Any] = []

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False):  # type: ignore[override]
        self.messages.append((data, metadata, transient, update))

    def clear_output(self, wait: bool = False) -> None:
        self.messages.append(("clear", wait))


@pytest.fixture
def shell() -> Iterator[tuple[InteractiveShell, HolyMagics, _Publisher]]:
    ip = InteractiveShell.instance()
    ip.config.pop("HolyMagics", None)
    magics = HolyMagics(shell=ip)
    ip.register_magics(magics)
    magics.display_mode = "rich"
    saved = ip.display_pub
    pub = _Publisher(shell=ip)
    ip.display_pub = pub
    try:
        yield ip, magics, pub
    finally:
        ip.display_pub = saved
        magics.close()
        if magics in ip.configurables:
            ip.configurables.remove(magics)


def test_magic_outputs_config_and_error(holy_mock_factory, logs, shell, capsys) -> None:
    ip, magics, pub = shell
    mock = holy_mock_factory(keys=[KEY])
    _config.configure(base_url=mock.url, api_key=KEY)
    ip.run_cell_magic("holy", "--max-tokens 6", "hello")
    ip.run_cell_magic("holy", "--max-tokens 6 --transport ws -o reply", "hello")
    for fault in ("status:code=500", "disconnect:after=2", "malformed:at=2",
                  "stall:after=2,ms=2000", "status:code=429,retry_after=0.01"):
        magics.extra_headers = {"X-Mock-Fault": fault}
        ip.run_cell_magic("holy", "--max-tokens 6 --idle-timeout 0.2 --retries 1", "q")
        assert magics.last_error is not None
        ip.run_line_magic("holy", "error")
        for text in error_texts(magics.last_error):
            assert_clean(text, f"magics.last_error ({fault})")
    magics.extra_headers = {}
    for line in ("config", "models", "history", "stats", "mock status"):
        ip.run_line_magic("holy", line)
    # The wrong key: the error line and %holy error.
    _config.configure(base_url=holy_mock_factory(keys=[OTHER_KEY]).url, api_key=KEY)
    ip.run_cell_magic("holy", "", "q")
    ip.run_line_magic("holy", "error")
    ip.run_line_magic("holy", "config")
    out = capsys.readouterr()
    assert "sk-…71e0" in out.out  # %holy config shows the masked key
    assert_clean(out.out, "magic stdout")
    assert_clean(out.err, "magic stderr")
    assert_clean(pub.messages, "magic display messages")
    assert_clean(repr(magics.turns) + repr(magics.chats), "magic history")
    assert_clean(repr(ip.user_ns.get("reply")), "magic -o variable")
    assert_mock_clean(mock)


# -- ChatPanel widget state and export ----------------------------------------------------------


def _all_states(widget: w.Widget, seen: set[str] | None = None) -> list[dict[str, Any]]:
    """get_state() of ``widget`` and every widget it refers to (children, layout, style…)."""
    seen = set() if seen is None else seen
    if widget.model_id in seen:
        return []
    seen.add(widget.model_id)
    states = [widget.get_state()]
    for name in widget.keys:
        value = getattr(widget, name, None)
        items = value if isinstance(value, (list, tuple)) else [value]
        for item in items:
            if isinstance(item, w.Widget):
                states += _all_states(item, seen)
    return states


async def test_panel_state_and_export(holy_mock_factory, logs, tmp_path) -> None:
    mock = holy_mock_factory(keys=[KEY])
    broken = holy_mock_factory(keys=[KEY], fault="disconnect:after=2")
    refusing = holy_mock_factory(keys=[OTHER_KEY])
    panels = []
    try:
        panel = ChatPanel(base_url=mock.url, api_key=KEY, max_tokens=6)
        panels.append(panel)
        assert await panel.send("hello")
        panel.transport = "ws"
        assert await panel.send("again")
        for url in (broken.url, refusing.url):
            other = ChatPanel(base_url=url, api_key=KEY, max_tokens=6,
                              client_options={"max_retries": 0})
            panels.append(other)
            await other.send("hello")  # a failure shows in the banner, the partial text stays
            assert other.banner
        exports = [panel.export("markdown"), panel.export("json"),
                   panel.export("markdown", path=tmp_path / "chat.md")]
        assert_clean(exports, "ChatPanel.export")
        assert_clean((tmp_path / "chat.md").read_text(encoding="utf-8"), "exported file")
        for p in panels:
            assert_clean(_all_states(p), "ChatPanel widget state")
            assert_clean(repr(p) + p.banner + p.status + repr(p.messages), "ChatPanel traits")
    finally:
        for p in panels:
            await p.aclose()
    assert_mock_clean(mock)


# -- CLI ---------------------------------------------------------------------------------------


def test_cli_output_with_faults(holy_mock_factory) -> None:
    good = holy_mock_factory(keys=[KEY])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOLYSHEEP_", "HOLYNB_"))}
    env |= {"HOLYSHEEP_API_KEY": KEY, "PYTHONIOENCODING": "utf-8"}
    runs = [
        ["chat", "--base-url", good.url, "--max-tokens", "5", "hello"],
        ["chat", "--base-url", good.url, "--transport", "ws", "hello"],
        ["chat", "--base-url", holy_mock_factory(keys=[KEY], fault="status:code=500").url, "q"],
        ["chat", "--base-url", holy_mock_factory(keys=[KEY], fault="disconnect:after=2").url,
         "--transport", "ws", "q"],
        ["chat", "--base-url", holy_mock_factory(keys=[KEY], fault="malformed:at=2").url, "q"],
        ["chat", "--base-url", holy_mock_factory(keys=[OTHER_KEY]).url, "q"],
        ["models", "--base-url", holy_mock_factory(keys=[OTHER_KEY]).url],
    ]
    procs = [
        subprocess.Popen([sys.executable, "-m", "holynb", *args], env=env, cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for args in runs
    ]
    codes = []
    for args, proc in zip(runs, procs, strict=True):
        out, err = proc.communicate(timeout=60)
        codes.append(proc.returncode)
        assert_clean(out, f"stdout of holynb {args}")
        assert_clean(err, f"stderr of holynb {args}")
        if proc.returncode:
            assert "holynb: error:" in err, err
    assert codes[:2] == [0, 0] and all(codes[2:]), codes
    assert_mock_clean(good)


@pytest.mark.slow
def test_locust_run_output_and_csv(holy_mock_factory, tmp_path) -> None:
    # HolyUser in a real Locust process: refused streams (another key) and server errors land in
    # Locust's failure table, its log, its CSV files and holynb's report — never the key.
    locustfile = tmp_path / "locustfile.py"
    locustfile.write_text(
        "from holynb.loadtest import HolyUser\n\n"
        "class SSE(HolyUser):\n    max_tokens = 4\n\n"
        "class WS(HolyUser):\n    max_tokens = 4\n    transport = 'ws'\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOLYSHEEP_", "HOLYNB_"))}
    env["HOLYSHEEP_API_KEY"] = KEY
    refusing = holy_mock_factory(keys=[OTHER_KEY])
    failing = holy_mock_factory(keys=[KEY], fault="status:code=500")
    for mock in (refusing, failing):
        prefix = tmp_path / f"run{mock.port}"
        proc = subprocess.run(
            [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "-u", "2",
             "-r", "2", "--run-time", "5s", "--host", mock.url, "--csv", str(prefix)],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 1, proc.stderr[-2000:]  # streams failed
        assert "holynb report of a Locust run" in proc.stdout
        assert_clean(proc.stdout, "Locust's stdout")
        assert_clean(proc.stderr, "Locust's log")
        for path in tmp_path.glob(f"{prefix.name}_*.csv"):
            assert_clean(path.read_text(), path.name)
        failures = (tmp_path / f"{prefix.name}_failures.csv").read_text()
        assert "e2e" in failures and ("401" in failures or "500" in failures), failures
        assert_mock_clean(mock)


# -- committed files ---------------------------------------------------------------------------

_KEYLIKE = re.compile(r"sk-[A-Za-z0-9_-]{10,}")
# The mock's public key, and the obviously fake one notebook 03 uses to show a refused key.
PUBLIC_FAKE_KEYS = {MOCK_KEY, "sk-not-the-right-key-0000"}


@pytest.mark.parametrize(
    "path",
    sorted((ROOT / "notebooks").glob("*.ipynb"))
    + sorted((ROOT / "mockserver" / "cassettes").glob("*.json")),
    ids=lambda p: p.name,
)
def test_committed_files_hold_no_key(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    found = [m for m in _KEYLIKE.findall(text) if m not in PUBLIC_FAKE_KEYS]
    assert not found, f"key-like strings in {path.name}: {found}"
    assert not re.search(r"Bearer\s+(?!\{)[A-Za-z0-9._-]{8,}", text.replace(MOCK_KEY, "")), path
