"""The cassette file format: a recorded response, its request key and its timed frames.

A cassette is one UTF-8 JSON file (``*.json``), pretty-printed with one frame per line::

    {
      "version": 1,
      "name": "code-answer",
      "description": "optional free text, ignored by the server",
      "match": {"prompt": "Write a Python function that ..."},
      "api": "chat",
      "transport": "sse",
      "status": 200,
      "headers": {"content-type": "text/event-stream", "cache-control": "no-cache"},
      "fault": null,
      "frames": [
        {"at": 0.0941, "text": "data: {\\"id\\":\\"chatcmpl-...\\", ...}\\n\\n"},
        {"at": 0.1087, "b64": "ZGF0YTogeyJpZCI6..."}
      ]
    }

Fields:

- ``version`` — the format version, ``1``.
- ``name`` — unique among the loaded cassettes; ``X-Mock-Cassette: <name>`` selects it directly.
- ``match`` — the request key, a subset of the *normalised request* (see :func:`normalise_request`):
  ``model``, ``messages`` (the whole conversation, exact), ``prompt`` (the text of the last user
  message only, so any system prompt or history matches), and the parameters ``temperature``,
  ``top_p``, ``max_tokens`` (``max_completion_tokens`` counts as ``max_tokens``), ``stop``,
  ``seed``, ``presence_penalty``, ``frequency_penalty``, ``tools``, ``tool_choice``,
  ``response_format``. A field left out matches anything: without ``model`` a cassette serves every
  model. Request keys outside that list (``stream``, ``stream_options``, ``n``, ``user``,
  ``metadata``, ...) never take part in matching.
- ``api`` — the API it was recorded in: ``chat`` (the default when absent), ``responses``,
  ``anthropic``, ``gemini`` (SSE or one body) or ``gemini-array`` (Gemini's JSON-array stream).
  A request in that API replays the recorded bytes; a request in another API gets the reply the
  recording carries (text, reasoning, tool calls, usage, timing) rendered in its own API.
- ``transport`` — how the response was captured: ``sse`` (a streaming HTTP body), ``ws`` (messages
  of a WebSocket: ``/v1/ws/chat``, or ``/v1/responses`` in WebSocket mode) or ``json`` (a
  non-streaming HTTP body).
- ``status`` and ``headers`` — sent before the body; header names are lower case and come from an
  allowlist when recorded.
- ``fault`` — ``null`` or a fault spec in the ``X-Mock-Fault`` grammar, applied on every replay.
- ``frames`` — the response as the exact sequence of writes (``sse``/``json``: raw bytes of each
  write) or messages (``ws``), each with ``at``, its offset in seconds from the start of the
  response. The payload is ``"text"`` when it is valid UTF-8 (for ``ws``: a text message) and
  ``"b64"`` (standard base64) otherwise (for ``ws``: a binary message).

Matching (:meth:`CassetteStore.match`): every field in a cassette's ``match`` must equal the
request's normalised value; among matching cassettes the most specific (most fields) wins, then one
recorded over the same transport, then load order (files sorted by path, numbers compared
naturally). Several cassettes with the same key and transport form a sequence: successive identical
requests get them in order, then the sequence starts again (it cycles); :meth:`CassetteStore.reset`
rewinds every sequence. In strict mode a request that sets a parameter the cassette does not record
does not match either.

Transports: a ``sse`` cassette is served over WebSocket by decoding its events (each ``data``
becomes one text message, at the offset of the write that completed the event; comments and
heartbeats are dropped), a ``ws`` cassette over SSE by writing each text message as
``data: <message>\\n\\n`` (binary messages are dropped), and either answers a non-streaming request
with one ``chat.completion`` body assembled from its chunks. A ``json`` cassette serves only
non-streaming requests. A cassette with status >= 400 is an error body: sent as recorded over HTTP
and as one error message over WebSocket.

Loading validates everything; a :class:`CassetteError` says in one line which file and what is
wrong. ``save_cassette`` writes the canonical layout, so ``load`` then ``save`` reproduces a
canonical file byte for byte. The full guide, with the shipped cassettes and their prompts, is
``docs/cassettes.md``.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._config import SHIPPED_DIR
from .._faults import FaultError, parse_faults
from .._frames import Frame, join_frames
from .._reply import Reply
from ..formats.registry import APIS, FORMATS
from .convert import convert_frames

__all__ = [
    "FORMAT_VERSION",
    "MATCH_FIELDS",
    "MATCH_PARAMS",
    "SHIPPED_DIR",
    "TRANSPORTS",
    "Cassette",
    "CassetteError",
    "UnknownCassetteError",
    "canonical_values",
    "dump_cassette",
    "load_cassette",
    "parse_cassette",
    "save_cassette",
]

FORMAT_VERSION = 1
TRANSPORTS = ("sse", "ws", "json")
# Request parameters that take part in matching, in the order `explain` reports them.
MATCH_PARAMS = (
    "temperature",
    "top_p",
    "max_tokens",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "tools",
    "tool_choice",
    "response_format",
)
MATCH_FIELDS = ("model", "prompt", "messages", *MATCH_PARAMS)
_TOP_FIELDS = ("version", "name", "description", "match", "api", "transport", "status",
               "headers", "fault", "frames")
_REQUIRED = ("version", "name", "transport", "frames")


class CassetteError(ValueError):
    """A cassette file is invalid or cannot be found; the message names the file and the fix."""


class UnknownCassetteError(CassetteError, LookupError):
    """No loaded cassette has the requested name."""


@dataclass(slots=True)
class Cassette:
    """One recorded response: its request key, status, headers, optional fault and frames."""

    name: str
    match: dict[str, Any]
    transport: str
    frames: list[Frame]
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    fault: str | None = None
    description: str = ""
    path: Path | None = field(default=None, compare=False)
    api: str = "chat"
    # frames_for() results per transport: converting the long cassettes costs milliseconds
    _converted: dict[str, list[Frame]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _reply: Reply | None = field(default=None, init=False, repr=False, compare=False)

    def reply(self) -> Reply:
        """The reply plan the recording carries (read once: a loaded cassette is not changed)."""
        if self._reply is None:
            self._reply = FORMATS[self.api].read_reply(self.frames, self.transport)
        return self._reply

    def frames_for(self, transport: str) -> list[Frame]:
        """The frames to send when this cassette answers a request over ``transport``.

        An error response (status >= 400) is an error body, not a stream: it is sent as recorded
        over HTTP, and as one ``{"error": ...}`` message over WebSocket. Conversions are cached
        (a loaded cassette is not changed afterwards); each call returns a fresh list.
        """
        cached = self._converted.get(transport)
        if cached is None:
            cached = self._converted[transport] = self._convert(transport)
        return list(cached)

    def _convert(self, transport: str) -> list[Frame]:
        if self.status >= 400:
            if transport == "ws":
                at = self.frames[-1].at if self.frames else 0.0
                return [Frame(at, join_frames(self.frames).decode("utf-8", "replace"))]
            return [Frame(f.at, f.data.encode() if isinstance(f.data, str) else f.data)
                    for f in self.frames]
        return convert_frames(self.frames, self.transport, transport, api=self.api)

    def headers_for(self, transport: str) -> dict[str, str]:
        """The headers to send over ``transport`` (content-type adjusted when converting)."""
        if transport == self.transport or self.status >= 400:
            return dict(self.headers)
        headers = {k: v for k, v in self.headers.items() if k != "content-type"}
        if transport == "sse":
            headers["content-type"] = "text/event-stream; charset=utf-8"
        elif transport == "json":
            headers["content-type"] = "application/json"
        return headers


def _fail(where: str, problem: str) -> CassetteError:
    return CassetteError(f"{where}: {problem}")


def parse_cassette(doc: Any, *, where: str = "<cassette>", path: Path | None = None) -> Cassette:
    """Validate a decoded cassette document and build a :class:`Cassette`."""
    if not isinstance(doc, dict):
        raise _fail(where, f"expected a JSON object at the top level, got {type(doc).__name__}")
    unknown = sorted(set(doc) - set(_TOP_FIELDS))
    if unknown:
        raise _fail(where, f"unknown field {unknown[0]!r} (known: {', '.join(_TOP_FIELDS)})")
    for key in _REQUIRED:
        if key not in doc:
            raise _fail(where, f"missing required field {key!r}")
    if doc["version"] != FORMAT_VERSION:
        raise _fail(where, f"unsupported version {doc['version']!r}; this mock reads version "
                           f"{FORMAT_VERSION}")
    name = doc["name"]
    if not isinstance(name, str) or not name.strip():
        raise _fail(where, "'name' must be a non-empty string")
    api = doc.get("api", "chat")
    if api not in APIS:
        raise _fail(where, f"'api' must be one of {', '.join(APIS)}, got {api!r}")
    transport = doc["transport"]
    if transport not in TRANSPORTS:
        raise _fail(where, f"'transport' must be one of {', '.join(TRANSPORTS)}, got "
                           f"{transport!r}")
    status = doc.get("status", 200)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise _fail(where, f"'status' must be an HTTP status code (100-599), got {status!r}")
    headers = doc.get("headers", {})
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise _fail(where, "'headers' must be an object of string names to string values")
    fault = doc.get("fault")
    if fault is not None:
        if not isinstance(fault, str):
            raise _fail(where, f"'fault' must be null or a string, got {fault!r}")
        try:
            parse_faults(fault)
        except FaultError as exc:
            raise _fail(where, f"'fault' is not a valid X-Mock-Fault spec: {exc}") from None
    description = doc.get("description", "")
    if not isinstance(description, str):
        raise _fail(where, "'description' must be a string")
    match = _parse_match(doc.get("match", {}), where)
    frames = _parse_frames(doc["frames"], transport, where)
    return Cassette(
        name=name,
        match=match,
        transport=transport,
        frames=frames,
        status=status,
        headers={k.lower(): v for k, v in headers.items()},
        fault=fault,
        description=description,
        path=path,
        api=api,
    )


def _parse_match(match: Any, where: str) -> dict[str, Any]:
    if not isinstance(match, dict):
        raise _fail(where, "'match' must be an object")
    for key, value in match.items():
        if key not in MATCH_FIELDS:
            raise _fail(where, f"unknown match field {key!r} (known: {', '.join(MATCH_FIELDS)})")
        if key in ("model", "prompt") and not isinstance(value, str):
            raise _fail(where, f"match field {key!r} must be a string")
        if key == "messages" and not (
            isinstance(value, list) and all(isinstance(m, dict) for m in value)
        ):
            raise _fail(where, "match field 'messages' must be a list of message objects")
    return canonical_values(match)


def _parse_frames(frames: Any, transport: str, where: str) -> list[Frame]:
    if not isinstance(frames, list):
        raise _fail(where, "'frames' must be a list")
    out: list[Frame] = []
    last = 0.0
    for i, item in enumerate(frames):
        at_where = f"frames[{i}]"
        if not isinstance(item, dict):
            raise _fail(where, f"{at_where} must be an object with 'at' and 'text' or 'b64'")
        extra = sorted(set(item) - {"at", "text", "b64"})
        if extra:
            raise _fail(where, f"{at_where} has unknown field {extra[0]!r} (known: at, text, b64)")
        at = item.get("at")
        if not isinstance(at, (int, float)) or isinstance(at, bool) or at < 0:
            raise _fail(where, f"{at_where}.at must be a number of seconds >= 0, got {at!r}")
        if at < last:
            raise _fail(where, f"{at_where}.at={at} goes back in time (previous {last})")
        last = float(at)
        if ("text" in item) == ("b64" in item):
            raise _fail(where, f"{at_where} needs exactly one of 'text' or 'b64'")
        data: bytes | str
        if "text" in item:
            if not isinstance(item["text"], str):
                raise _fail(where, f"{at_where}.text must be a string")
            data = item["text"] if transport == "ws" else item["text"].encode("utf-8")
        else:
            if not isinstance(item["b64"], str):
                raise _fail(where, f"{at_where}.b64 must be a string")
            try:
                data = base64.b64decode(item["b64"], validate=True)
            except binascii.Error:
                raise _fail(where, f"{at_where}.b64 is not valid base64") from None
        out.append(Frame(float(at), data))
    return out


def _frame_doc(frame: Frame, transport: str) -> dict[str, Any]:
    data = frame.data
    if isinstance(data, str):
        return {"at": frame.at, "text": data}
    if transport == "ws":  # a binary message stays binary even when it happens to be UTF-8
        return {"at": frame.at, "b64": base64.b64encode(data).decode("ascii")}
    try:
        return {"at": frame.at, "text": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"at": frame.at, "b64": base64.b64encode(data).decode("ascii")}


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def dump_cassette(c: Cassette) -> str:
    """Serialise a cassette to its canonical text (pretty-printed, one frame per line)."""
    if c.transport in ("sse", "json") and any(isinstance(f.data, str) for f in c.frames):
        raise CassetteError(f"cassette {c.name!r}: {c.transport} frames must be bytes, not str")
    top = [
        ("version", FORMAT_VERSION),
        ("name", c.name),
        *([("description", c.description)] if c.description else []),
        ("match", c.match),
        *([("api", c.api)] if c.api != "chat" else []),
        ("transport", c.transport),
        ("status", c.status),
        ("headers", c.headers),
        ("fault", c.fault),
    ]
    lines = ["{"]
    for key, value in top:
        text = json.dumps(value, ensure_ascii=False, indent=2).replace("\n", "\n  ")
        lines.append(f"  {_dumps(key)}: {text},")
    if c.frames:
        lines.append('  "frames": [')
        body = [f"    {_dumps(_frame_doc(f, c.transport))}" for f in c.frames]
        lines.append(",\n".join(body))
        lines.append("  ]")
    else:
        lines.append('  "frames": []')
    lines.append("}")
    return "\n".join(lines) + "\n"


def load_cassette(path: str | Path) -> Cassette:
    """Read and validate one cassette file; errors are :class:`CassetteError` naming the file."""
    path = Path(path)
    where = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise _fail(where, f"cannot read cassette ({exc.strerror or exc})") from None
    try:
        doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise _fail(where, "cassette files must be UTF-8") from None
    except json.JSONDecodeError as exc:
        raise _fail(where, f"invalid JSON at line {exc.lineno} column {exc.colno}: "
                           f"{exc.msg}") from None
    return parse_cassette(doc, where=where, path=path)


def save_cassette(c: Cassette, path: str | Path) -> Path:
    """Write a cassette in the canonical format (UTF-8, LF line ends) and return the path."""
    path = Path(path)
    path.write_bytes(dump_cassette(c).encode("utf-8"))
    return path


def canonical_values(value: Any) -> Any:
    """Integral floats become ints (``1.0 == 1``), ``None`` members of objects are dropped."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: canonical_values(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [canonical_values(v) for v in value]
    return value
