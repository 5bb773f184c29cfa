"""Every fault over every path — SSE, WebSocket, JSON — from one table: the wire it produces, or
the 400 ``invalid_mock_control`` that says why it cannot apply there.

Each row runs against a real mock over loopback: SSE and JSON through a raw-socket HTTP client
(write boundaries, FIN and RST stay visible), WebSocket through aiohttp's client with pings
surfaced. Applied faults must show in the journal record; refused ones must not.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
import httpx
import pytest
from mockutil import AUTH, RawResponse, chat, raw_request

from mockserver import MockServer


@dataclass
class WSResult:
    """What a WebSocket client saw for one request."""

    messages: list[str] = field(default_factory=list)
    pings: int = 0
    close_code: int | None = None  # a close frame's code
    dropped: bool = False  # the connection ended without a close frame
    quiet: bool = False  # nothing more came for a while (no [DONE])
    elapsed: float = 0.0  # from sending the request to the last message

    def chunks(self) -> list[dict[str, Any]]:
        return [json.loads(m) for m in self.messages if m != "[DONE]"]


@dataclass
class Refused:
    """The request was answered 400 invalid_mock_control with this message."""

    message: str


def observe_http(mock: MockServer, fault: str, *, stream: bool) -> RawResponse | Refused:
    body = chat("table", stream=stream, max_tokens=8)
    sent = time.perf_counter()
    r = raw_request(mock.url, "/v1/chat/completions", body, headers={"X-Mock-Fault": fault},
                    timeout=5)
    r.sent = sent  # type: ignore[attr-defined]
    if r.status == 400:
        err = r.json()["error"]
        assert err["code"] == "invalid_mock_control", err
        return Refused(err["message"])
    return r


async def observe_ws(mock: MockServer, fault: str) -> WSResult | Refused:
    query = "?X-Mock-Fault=" + quote(fault)
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession(headers=AUTH) as session:
        try:
            ws = await session.ws_connect(mock.ws_url + query, autoping=False)
        except aiohttp.WSServerHandshakeError as exc:
            assert exc.status == 400
            async with session.get(mock.ws_url.replace("ws://", "http://") + query) as resp:
                err = (await resp.json())["error"]
            assert err["code"] == "invalid_mock_control", err
            return Refused(err["message"])
        out = WSResult()
        await ws.send_str(json.dumps(chat("table", max_tokens=8)))
        sent = loop.time()
        while True:
            try:
                msg = await ws.receive(timeout=0.4)
            except TimeoutError:
                out.quiet = True
                break
            if msg.type == aiohttp.WSMsgType.PING:
                out.pings += 1
                await ws.pong(msg.data)
                continue
            if msg.type == aiohttp.WSMsgType.TEXT:
                out.elapsed = loop.time() - sent
                out.messages.append(msg.data)
                if msg.data == "[DONE]":
                    break
                continue
            if msg.type == aiohttp.WSMsgType.CLOSE:
                out.close_code = msg.data
            else:
                out.dropped = True
            break
        await ws.close()
        return out


def _not_json(text: str | bytes) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return True
    return False


def refused(fragment: str) -> Callable[[Any], bool]:
    return lambda got: isinstance(got, Refused) and fragment in got.message


# (fault, path, what the client sees): one row per fault and path.
TABLE: list[tuple[str, str, Callable[[Any], bool]]] = [
    ("status:code=503", "sse", lambda r: r.status == 503
     and r.json()["error"]["code"] == "server_busy"),
    ("status:code=503", "json", lambda r: r.status == 503
     and r.json()["error"]["type"] == "server_error"),
    ("status:code=503", "ws", lambda w: json.loads(w.messages[0])["error"]["status"] == 503
     and w.close_code == 1013),
    ("disconnect:after=3", "sse", lambda r: len(r.chunks) == 3 and not r.complete
     and r.error is None),
    ("disconnect:after=3", "ws", lambda w: len(w.messages) == 3 and w.dropped),
    ("disconnect:after=3", "json", refused("counts stream frames")),
    ("disconnect", "json", lambda r: r.status == 0 and r.error is None),
    ("reset:after=2", "sse", lambda r: isinstance(r.error, ConnectionResetError)
     and not r.complete),
    ("reset:after=2", "ws", lambda w: len(w.messages) == 2 and w.dropped),
    ("reset:after=2", "json", refused("use after=0")),
    ("reset", "json", lambda r: isinstance(r.error, ConnectionResetError) and r.status == 0),
    ("malformed:at=2", "sse", lambda r: _not_json(r.events()[1]) and r.events()[-1] == "[DONE]"
     and len(r.events()) == 10),
    ("malformed:at=2", "ws", lambda w: _not_json(w.messages[1]) and len(w.messages) == 10),
    ("malformed:at=2", "json", refused("use at=1")),
    ("malformed", "json", lambda r: r.status == 200 and r.complete and _not_json(r.body)),
    ("error-event:at=3,code=503", "sse", lambda r: r.complete and "[DONE]" not in r.events()
     and r.body.decode().split("\n\n")[2].startswith("event: error\ndata: ")),
    ("error-event:at=3,code=503", "ws", lambda w: len(w.messages) == 3 and w.quiet
     and json.loads(w.messages[2])["error"]["status"] == 503),
    ("error-event:at=3", "json", refused("use status:code=N")),
    # A stall is a lower bound on the time to the end (which never flakes, unlike a gap).
    ("stall:after=2,ms=300", "sse", lambda r: r.complete and r.recv_times[-1] - r.sent >= 0.3),
    ("stall:after=2,ms=300", "ws", lambda w: w.messages[-1] == "[DONE]" and w.elapsed >= 0.3),
    ("stall:after=2,ms=300", "json", refused("use after=0")),
    ("stall:ms=300", "json", lambda r: r.status == 200
     and r.json()["object"] == "chat.completion"),
    ("slice:size=3", "sse", lambda r: r.complete and all(len(c) <= 3 for c in r.chunks)
     and r.events()[-1] == "[DONE]"),
    ("slice:size=3", "ws", lambda w: w.messages[-1] == "[DONE]" and len(w.messages) == 9),
    ("slice:size=3,ms=5", "ws", refused("sent as fragments all at once")),
    ("slice:size=40,ms=5", "json", lambda r: r.complete and r.json()["object"] == "chat.completion"
     and len(r.recv_times) > 1),
    ("fragment:size=5", "sse", lambda r: all(len(c) <= 5 for c in r.chunks)
     and r.events()[-1] == "[DONE]"),
    ("fragment:size=5", "ws", lambda w: w.messages[-1] == "[DONE]" and len(w.messages) == 9),
    ("fragment:size=40", "json", lambda r: r.complete and r.json()["object"] == "chat.completion"),
    ("crlf", "sse", lambda r: r.body.count(b"\n") == r.body.count(b"\r\n")
     and r.events()[-1] == "[DONE]"),
    ("crlf", "ws", refused("WebSocket messages have none")),
    ("crlf", "json", refused("crlf changes SSE line ends")),
    ("no-done", "sse", lambda r: r.complete and "[DONE]" not in r.events()
     and len(r.events()) == 8),
    ("no-done", "ws", lambda w: w.quiet and len(w.messages) == 8),
    ("no-done", "json", refused("no-done drops the stream's end marker")),
    ("stall:after=1,ms=300;heartbeat:ms=50", "sse", lambda r: r.body.count(b": heartbeat\n\n")
     >= 3 and r.events()[-1] == "[DONE]"),
    ("stall:after=1,ms=300;heartbeat:ms=50", "ws", lambda w: w.pings >= 3
     and w.messages[-1] == "[DONE]"),
    ("heartbeat:ms=50", "json", refused("heartbeat keeps a quiet stream alive")),
    ("ws-close:code=4001,after=2", "ws", lambda w: len(w.messages) == 2 and w.close_code == 4001),
    ("ws-close:code=4001,after=2", "sse", refused("this is an SSE stream")),
    ("ws-close", "json", refused("this is a JSON response")),
]


def test_the_table_covers_every_fault_on_every_path() -> None:
    from mockserver._faults import FAULTS, PATHS

    covered = {(fault.split(";")[-1].split(":")[0], path) for fault, path, _ in TABLE}
    assert covered == {(name, path) for name in FAULTS for path in PATHS}


@pytest.mark.parametrize(("fault", "path", "expect"), TABLE,
                         ids=[f"{f}-{p}" for f, p, _ in TABLE])
async def test_fault_on_path(holy_mock_factory, fault: str, path: str, expect) -> None:
    mock = holy_mock_factory(tps=200)
    if path == "ws":
        got = await observe_ws(mock, fault)
    else:
        got = await asyncio.to_thread(observe_http, mock, fault, stream=path == "sse")
    assert expect(got), (fault, path, got)
    record = await asyncio.to_thread(lambda: mock.journal()[-1])
    if isinstance(got, Refused):
        assert (record["outcome"], record["status"], record["faults"]) == ("error", 400, [])
    else:
        assert record["transport"] == path
        assert record["faults"] == [str(s) for s in __import__("mockserver").parse_faults(fault)]
        assert record["outcome"].startswith("fault:"), record


def test_server_wide_faults_apply_where_they_can(holy_mock_factory) -> None:
    """A --fault that cannot apply to a path is left out there, and not journaled as fired."""
    mock = holy_mock_factory(fault="crlf;ws-close:code=4001")
    r = httpx.post(f"{mock.url}/chat/completions", json=chat(max_tokens=3), headers=AUTH)
    assert r.status_code == 200 and r.json()["object"] == "chat.completion"
    record = mock.journal()[-1]
    assert (record["faults"], record["outcome"]) == ([], "completed")
    s = raw_request(mock.url, "/v1/chat/completions", chat(stream=True, max_tokens=3))
    assert b"\r\n\r\n" in s.body and mock.journal()[-1]["faults"] == ["crlf"]
