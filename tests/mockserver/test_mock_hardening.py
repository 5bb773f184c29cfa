"""Abuse the mock the way a broken or hostile client would: bodies that never arrive, huge
bodies, cancels at every moment, hang-ups — and check it answers, journals and logs sanely."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import random
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import httpx
import pytest
from mockutil import AUTH, chat, raw_request, wait_for

from mockserver import MOCK_KEY, MockServer

ROOT = Path(__file__).resolve().parents[2]


def _connect(mock: MockServer) -> socket.socket:
    parts = urlsplit(mock.url)
    return socket.create_connection((parts.hostname, parts.port), timeout=5)


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


# -- request bodies ----------------------------------------------------------------------------


def test_a_body_that_never_arrives_gets_408_and_a_finished_record(holy_mock_factory) -> None:
    mock = holy_mock_factory(body_timeout_s=0.3)
    with _connect(mock) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                     + MOCK_KEY.encode() + b"\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"model\":")
        answer = _read_all(sock)  # the server answers, then closes the connection
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    err = json.loads(body)["error"]
    assert err["code"] == "request_timeout" and "0.3 s" in err["message"]
    record = mock.journal()[-1]
    assert (record["outcome"], record["status"]) == ("error", 408) and record["ended"]


def test_a_declared_length_over_the_limit_is_413_at_once(holy_mock: MockServer) -> None:
    with _connect(holy_mock) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                     + MOCK_KEY.encode() + b"\r\nContent-Length: 1000000000\r\n\r\n{")
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}}"):
            answer += sock.recv(65536)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ") and b"Connection: close" in head
    assert json.loads(body)["error"]["code"] == "request_too_large"
    assert holy_mock.journal()[-1]["status"] == 413


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.slow
def test_journal_keeps_bodies_capped_and_pages_with_flat_memory() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mockserver", "--port", "0", "--no-cassettes", "--ttft-ms", "0",
         "--tps", "0"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        base = url.removesuffix("/v1")
        big = "x" * (2 * 1024 * 1024)
        body = json.dumps(chat(big, max_tokens=1)).encode()
        with httpx.Client(headers={**AUTH, "Content-Type": "application/json"}) as http:
            def send(n: int) -> None:
                for _ in range(n):
                    assert http.post(f"{url}/chat/completions", content=body).status_code == 200

            send(20)
            before = _rss_kib(proc.pid)
            send(200)
            grown_mib = (_rss_kib(proc.pid) - before) / 1024
            # Whole bodies would keep 400 MiB; the cap keeps 64 KiB of each.
            assert grown_mib < 40, f"RSS grew {grown_mib:.0f} MiB over 200 requests of 2 MiB"
            records, after, pages = [], 0, 0
            while True:
                r = http.get(f"{base}/_mock/journal", params={"after": after, "limit": 50})
                assert len(r.content) < 50 * 80 * 1024  # capped bodies: small pages
                page = r.json()
                records += page
                pages += 1
                if "next" not in r.links:
                    break
                after = page[-1]["id"]
                assert r.links["next"]["url"].endswith(f"after={after}&limit=50")
            assert pages == 5 and len(records) == 220
            assert [x["id"] for x in records] == sorted({x["id"] for x in records})
            rec = records[-1]
            assert rec["request_bytes"] == len(body) and rec["request_truncated"] is True
            assert rec["request_sha256"] == hashlib.sha256(body).hexdigest()
            assert isinstance(rec["request"], str) and len(rec["request"].encode()) <= 64 * 1024
            bad = http.get(f"{base}/_mock/journal", params={"limit": "lots"})
            assert bad.status_code == 400 and bad.json()["error"]["param"] == "limit"
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout:
            proc.stdout.close()


def test_small_bodies_are_journaled_whole(holy_mock: MockServer) -> None:
    body = chat("keep me", max_tokens=2)
    raw = json.dumps(body).encode()
    httpx.post(f"{holy_mock.url}/chat/completions", content=raw, headers=AUTH)
    rec = holy_mock.journal()[-1]
    assert rec["request"] == body and rec["request_truncated"] is False
    assert rec["request_bytes"] == len(raw)


# -- WebSocket cancel --------------------------------------------------------------------------


def _ws_open(mock: MockServer) -> socket.socket:
    sock = _connect(mock)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /v1/ws/chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {MOCK_KEY}\r\n\r\n"
                  ).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert b" 101 " in head
    return sock


def _client_frame(text: str) -> bytes:
    payload = text.encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    n = len(payload)
    head = struct.pack("!BB", 0x81, 0x80 | n) if n < 126 else struct.pack("!BBH", 0x81, 0xFE, n)
    return head + mask + masked


def _ws_texts_until_done(sock: socket.socket) -> list[str]:
    buf, texts = b"", []
    while True:
        while len(buf) < 2 or len(buf) < 2 + (buf[1] & 0x7F if buf[1] & 0x7F < 126 else 2):
            buf += sock.recv(65536)
        size, at = buf[1] & 0x7F, 2
        if size == 126:
            size, at = struct.unpack("!H", buf[2:4])[0], 4
        while len(buf) < at + size:
            buf += sock.recv(65536)
        opcode, data, buf = buf[0] & 0x0F, buf[at:at + size], buf[at + size:]
        if opcode == 0x1:
            texts.append(data.decode())
            if texts[-1] == "[DONE]":
                return texts


@pytest.mark.parametrize("delay_ms", [0, 50])
def test_a_cancel_in_the_same_write_as_its_request_ends_the_stream(
    holy_mock_factory, delay_ms: int
) -> None:
    mock = holy_mock_factory(ttft_ms=delay_ms, tps=20)
    for i in range(20):
        with _ws_open(mock) as sock:
            request = json.dumps(chat(f"cancel {i}", max_tokens=50))
            sock.sendall(_client_frame(request) + _client_frame('{"type":"cancel"}'))
            texts = _ws_texts_until_done(sock)
            assert texts[-1] == "[DONE]" and len(texts) <= 2, texts
    records = mock.journal()
    assert [r["outcome"] for r in records] == ["cancelled"] * 20
    assert all(r["ended"] for r in records)


@pytest.mark.slow
async def test_two_thousand_random_cancels_leave_nothing_in_progress(holy_mock_factory) -> None:
    mock = holy_mock_factory(ttft_ms=5, tps=400)
    rng = random.Random(2000)
    gate = asyncio.Semaphore(64)

    async def one(http: aiohttp.ClientSession, i: int) -> None:
        kind = rng.choice(["ws-cancel", "ws-drop", "sse-drop", "sse-drop-early"])
        wait = rng.random()
        async with gate:
            if kind.startswith("ws"):
                ws = await http.ws_connect(mock.ws_url)
                await ws.send_str(json.dumps(chat(str(i), max_tokens=30)))
                if wait >= 0.3:  # else cancel (or drop) before the first frame can be due
                    await asyncio.sleep(wait * 0.06)
                if kind == "ws-cancel":
                    await ws.send_str('{"type":"cancel"}')
                    async for msg in ws:
                        if msg.data == "[DONE]":
                            break
                await ws.close()
            else:
                resp = await http.post(f"{mock.url}/chat/completions",
                                       json=chat(str(i), stream=True, max_tokens=30))
                if kind == "sse-drop":
                    await asyncio.sleep(wait * 0.06)
                resp.close()  # hang up mid-stream

    async with aiohttp.ClientSession(headers=AUTH) as http:
        await asyncio.wait_for(asyncio.gather(*(one(http, i) for i in range(2000))), 240)

    def settled() -> list[dict]:
        records = mock.journal()
        return records if not [r for r in records if r["outcome"] == "in_progress"] else []

    records = await asyncio.to_thread(wait_for, settled, 10)
    assert len(records) == 2000
    outcomes = {r["outcome"] for r in records}
    assert outcomes <= {"cancelled", "client_disconnected", "completed"}, outcomes
    assert "cancelled" in outcomes and "client_disconnected" in outcomes


# -- hang-ups in the log -----------------------------------------------------------------------


def test_a_client_hang_up_is_one_info_line(holy_mock_factory, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    mock = holy_mock_factory(ttft_ms=0, tps=50)
    r = raw_request(mock.url, "/v1/chat/completions", chat(stream=True, max_tokens=40),
                    stop_after=2)
    assert not r.complete
    wait_for(lambda: mock.journal()[-1]["ended"])
    time.sleep(0.1)
    lines = [rec for rec in caplog.records if rec.name.startswith(("mockserver", "aiohttp"))
             and rec.levelno >= logging.INFO]
    assert [(rec.levelname, rec.getMessage().split(":")[0]) for rec in lines] == [
        ("INFO", "client hung up")]
    assert not any(rec.exc_info for rec in caplog.records)
