"""Helpers for the mock server tests: request bodies and a raw-socket HTTP client.

The raw client shows what the wire carries: each HTTP chunk of the body is one write of the
server, the terminating chunk tells a finished body from a dropped connection, and a TCP reset
surfaces as ``ConnectionResetError``.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from mockserver import MOCK_KEY

AUTH = {"Authorization": f"Bearer {MOCK_KEY}"}


def chat(content: str = "hi", *, model: str = "gpt-4.1", **params: Any) -> dict[str, Any]:
    """A chat-completions request body."""
    return {"model": model, "messages": [{"role": "user", "content": content}], **params}


@dataclass
class RawResponse:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] = field(default_factory=list)  # one per server write (chunked body)
    complete: bool = False  # terminating zero-length chunk received
    error: BaseException | None = None  # e.g. ConnectionResetError on a TCP RST
    recv_times: list[float] = field(default_factory=list)

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    def events(self) -> list[str]:
        """``data:`` payloads of the body (LF framing)."""
        text = self.body.decode().replace("\r\n", "\n")
        return [
            line[len("data: "):]
            for block in text.split("\n\n")
            for line in block.split("\n")
            if line.startswith("data: ")
        ]

    def json(self) -> Any:
        return json.loads(self.body)


def raw_request(
    url: str,
    path: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    method: str = "POST",
    raw_body: bytes | None = None,
    timeout: float = 10.0,
    stop_after: int | None = None,
) -> RawResponse:
    """Send one HTTP/1.1 request over a plain socket and parse the response by hand.

    ``stop_after`` closes the socket once that many body chunks arrived (a client hang-up).
    """
    parts = urlsplit(url)
    payload = raw_body if raw_body is not None else (
        json.dumps(body).encode() if body is not None else b""
    )
    head = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
    all_headers = {**AUTH, "Content-Type": "application/json", **(headers or {})}
    head += [f"{k}: {v}" for k, v in all_headers.items()]
    head.append(f"Content-Length: {len(payload)}")
    out = RawResponse()
    sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    try:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        buf = b""
        while True:
            try:
                data = sock.recv(65536)
            except (ConnectionResetError, TimeoutError) as exc:
                out.error = exc
                break
            if not data:
                break
            out.recv_times.append(time.perf_counter())
            buf += data
            _parse(buf, out)
            if stop_after is not None and len(out.chunks) >= stop_after:
                break
        _parse(buf, out)
    finally:
        sock.close()
    return out


def _parse(buf: bytes, out: RawResponse) -> None:
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return
    lines = buf[:end].decode("latin-1").split("\r\n")
    out.status = int(lines[0].split()[1])
    out.headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    rest = buf[end + 4:]
    if out.headers.get("transfer-encoding") != "chunked":
        out.chunks = [rest] if rest else []
        length = out.headers.get("content-length")
        out.complete = length is not None and len(rest) >= int(length)
        return
    chunks: list[bytes] = []
    pos = 0
    complete = False
    while True:
        eol = rest.find(b"\r\n", pos)
        if eol < 0:
            break
        size = int(rest[pos:eol].split(b";")[0], 16)
        if size == 0:
            complete = True
            break
        if len(rest) < eol + 2 + size + 2:
            break
        chunks.append(rest[eol + 2: eol + 2 + size])
        pos = eol + 2 + size + 2
    out.chunks, out.complete = chunks, complete


def wait_for(predicate: Any, timeout: float = 5.0) -> Any:
    """Poll ``predicate()`` until truthy (returned) or fail after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


def assert_paced_like(planned: list[float], recorded: list[float]) -> None:
    """``recorded`` offsets (s) follow ``planned``: none early, none more than 250 ms late — on
    top of the first one's delay: a busy machine may start a stream late (its accept waits for
    the server's loop), which can push every offset by as much."""
    assert len(recorded) == len(planned)
    late = max(0.0, recorded[0] - planned[0])
    for want, got in zip(planned, recorded, strict=True):
        assert want - 0.003 <= got <= want + late + 0.25, (want, got, late)


def raw_ws_frames(
    url: str, message: str, *, query: str = "", timeout: float = 5.0
) -> list[tuple[bool, int, bytes]]:
    """Open ``/v1/ws/chat`` over a plain socket, send one text message, and return every frame
    (fin, opcode, payload) until ``[DONE]``, an error frame, or the server closes:
    fragmentation stays visible.
    """
    import base64
    import os
    import struct

    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    frames: list[tuple[bool, int, bytes]] = []
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                f"GET /v1/ws/chat{query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                f"Authorization: {AUTH['Authorization']}\r\n\r\n"
            ).encode()
        )
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += sock.recv(4096)
        head, buf = buf.split(b"\r\n\r\n", 1)
        assert b" 101 " in head.split(b"\r\n")[0], head
        payload = message.encode()
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        length = len(payload)
        header = struct.pack("!BB", 0x81, 0x80 | length) if length < 126 else struct.pack(
            "!BBH", 0x81, 0x80 | 126, length)
        sock.sendall(header + mask + masked)
        message_parts: list[bytes] = []

        def need(n: int) -> bytes:
            nonlocal buf
            while len(buf) < n:
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("closed")
                buf += data
            out, buf = buf[:n], buf[n:]
            return out

        while True:
            try:
                b0, b1 = need(2)
            except ConnectionError:  # the server dropped the socket: return what came
                break
            size = b1 & 0x7F
            if size == 126:
                size = struct.unpack("!H", need(2))[0]
            elif size == 127:
                size = struct.unpack("!Q", need(8))[0]
            data = need(size)
            fin, opcode = bool(b0 & 0x80), b0 & 0x0F
            frames.append((fin, opcode, data))
            if opcode == 0x8:
                break
            if opcode in (0x0, 0x1):
                message_parts.append(data)
                if fin:
                    whole = b"".join(message_parts)
                    if whole == b"[DONE]" or whole.startswith(b'{"error"'):
                        break
                    message_parts = []
    finally:
        sock.close()
    return frames
