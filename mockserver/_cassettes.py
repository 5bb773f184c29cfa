"""Cassettes: recorded chat-completion responses, replayed byte for byte with their timing.

A cassette is one UTF-8 JSON file (``*.json``), pretty-printed with one frame per line::

    {
      "version": 1,
      "name": "code-answer",
      "description": "optional free text, ignored by the server",
      "match": {"prompt": "Write a Python function that ..."},
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
- ``transport`` — how the response was captured: ``sse`` (a streaming HTTP body), ``ws`` (messages
  of ``/v1/ws/chat``) or ``json`` (a non-streaming HTTP body).
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
import difflib
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mockserver._faults import FaultError, parse_faults
from mockserver._frames import Frame, join_frames

__all__ = [
    "FORMAT_VERSION",
    "MATCH_PARAMS",
    "SHIPPED_DIR",
    "TRANSPORTS",
    "Cassette",
    "CassetteError",
    "CassetteStore",
    "UnknownCassetteError",
    "completion_from_messages",
    "content_deltas",
    "convert_frames",
    "dump_cassette",
    "load_cassette",
    "normalise_request",
    "parse_cassette",
    "request_digest",
    "save_cassette",
    "sse_to_ws",
    "ws_to_sse",
]

FORMAT_VERSION = 1
SHIPPED_DIR = Path(__file__).parent / "cassettes"
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
_MATCH_FIELDS = ("model", "prompt", "messages", *MATCH_PARAMS)
_TOP_FIELDS = ("version", "name", "description", "match", "transport", "status", "headers",
               "fault", "frames")
_REQUIRED = ("version", "name", "transport", "frames")
# Which cassette transports can answer a request made over each transport.
_SERVABLE = {"sse": ("sse", "ws"), "ws": ("ws", "sse"), "json": ("json", "sse", "ws")}


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
    # frames_for() results per transport: converting the long cassettes costs milliseconds
    _converted: dict[str, list[Frame]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

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
        return convert_frames(self.frames, self.transport, transport)

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


# ---------------------------------------------------------------------------------------------
# File format


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
    )


def _parse_match(match: Any, where: str) -> dict[str, Any]:
    if not isinstance(match, dict):
        raise _fail(where, "'match' must be an object")
    for key, value in match.items():
        if key not in _MATCH_FIELDS:
            raise _fail(where, f"unknown match field {key!r} (known: {', '.join(_MATCH_FIELDS)})")
        if key in ("model", "prompt") and not isinstance(value, str):
            raise _fail(where, f"match field {key!r} must be a string")
        if key == "messages" and not (
            isinstance(value, list) and all(isinstance(m, dict) for m in value)
        ):
            raise _fail(where, "match field 'messages' must be a list of message objects")
    return _canonical_values(match)


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


# ---------------------------------------------------------------------------------------------
# Request normalisation and matching


def _canonical_values(value: Any) -> Any:
    """Integral floats become ints (``1.0 == 1``), ``None`` members of objects are dropped."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _canonical_values(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_canonical_values(v) for v in value]
    return value


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "") for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def normalise_request(request: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a chat request that matching looks at (see the module docstring)."""
    out: dict[str, Any] = {}
    model = request.get("model")
    if isinstance(model, str):
        out["model"] = model
    messages = request.get("messages")
    if isinstance(messages, list):
        out["messages"] = _canonical_values(messages)
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        if users:
            out["prompt"] = _text_of(users[-1].get("content"))
    params = dict(request)
    if params.get("max_tokens") is None and params.get("max_completion_tokens") is not None:
        params["max_tokens"] = params["max_completion_tokens"]
    if isinstance(params.get("stop"), str):
        params["stop"] = [params["stop"]]
    for key in MATCH_PARAMS:
        if params.get(key) is not None:
            out[key] = _canonical_values(params[key])
    return out


def _key_id(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _differences(c: Cassette, norm: dict[str, Any], strict: bool) -> list[str]:
    """Fields on which ``norm`` fails ``c.match``, in report order."""
    diffs = [k for k in _MATCH_FIELDS if k in c.match and norm.get(k) != c.match[k]]
    if strict:
        implied = {"model", "prompt", "messages"}
        diffs += [k for k in MATCH_PARAMS if k in norm and k not in c.match and k not in implied]
    return diffs


def _natural_key(path: Path) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", str(path))]


def _cassette_files(paths: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            files.extend(sorted(p.rglob("*.json"), key=_natural_key))
        elif p.is_file():
            files.append(p)
        else:
            raise CassetteError(f"{p}: no such cassette file or folder")
    return files


class CassetteStore:
    """All cassettes loaded from some files and folders, with matching and repeat counting."""

    def __init__(
        self, paths: str | Path | Iterable[str | Path] = (), *, strict: bool = False
    ) -> None:
        if isinstance(paths, (str, Path)):
            paths = [paths]
        self.strict = strict
        self.cassettes: list[Cassette] = []
        self._by_name: dict[str, Cassette] = {}
        self._counters: dict[tuple[str, str, str], int] = {}
        for path in _cassette_files(paths):
            self.add(load_cassette(path))

    def __len__(self) -> int:
        return len(self.cassettes)

    def __repr__(self) -> str:
        return f"CassetteStore({len(self.cassettes)} cassettes, strict={self.strict})"

    def add(self, cassette: Cassette) -> None:
        """Add one cassette after those already loaded; names must be unique."""
        other = self._by_name.get(cassette.name)
        if other is not None:
            raise CassetteError(
                f"{cassette.path or cassette.name}: duplicate cassette name {cassette.name!r} "
                f"(also in {other.path or 'another cassette'}); rename one of them"
            )
        self._by_name[cassette.name] = cassette
        self.cassettes.append(cassette)

    def get(self, name: str) -> Cassette:
        """The cassette called ``name`` (for ``X-Mock-Cassette``)."""
        try:
            return self._by_name[name]
        except KeyError:
            known = ", ".join(sorted(self._by_name)) or "none loaded"
            raise UnknownCassetteError(f"no cassette named {name!r} (known: {known})") from None

    def models(self) -> list[str]:
        """Models named in cassette match keys, sorted."""
        return sorted({c.match["model"] for c in self.cassettes if "model" in c.match})

    def reset(self) -> None:
        """Rewind every repeat counter, so sequences start again from their first cassette."""
        self._counters.clear()

    def match(self, request_json: Mapping[str, Any], transport: str) -> Cassette | None:
        """The cassette answering this request over ``transport`` ("sse", "ws" or "json")."""
        servable = _servable(transport)
        norm = normalise_request(request_json)
        candidates = [
            (i, c) for i, c in enumerate(self.cassettes)
            if c.transport in servable and not _differences(c, norm, self.strict)
        ]
        if not candidates:
            return None
        _, best = min(
            candidates,
            key=lambda ic: (-len(ic[1].match), ic[1].transport != transport, ic[0]),
        )
        best_key = _key_id(best.match)
        group = [
            c for _, c in candidates
            if c.transport == best.transport and _key_id(c.match) == best_key
        ]
        counter = (best_key, best.transport, _key_id(norm))
        n = self._counters.get(counter, 0)
        self._counters[counter] = n + 1
        return group[n % len(group)]

    def explain(self, request_json: Mapping[str, Any], transport: str) -> str:
        """One line saying why no cassette matches (or which one does)."""
        servable = _servable(transport)
        if not self.cassettes:
            return "no cassettes are loaded"
        pool = [c for c in self.cassettes if c.transport in servable]
        if not pool:
            kinds = ", ".join(sorted({c.transport for c in self.cassettes}))
            return (f"no cassette can answer a {transport} request: the loaded cassettes are "
                    f"{kinds} (json cassettes answer only non-streaming requests)")
        norm = normalise_request(request_json)
        scored = []
        for i, c in enumerate(pool):
            diffs = _differences(c, norm, self.strict)
            scored.append((len(diffs), -_likeness(diffs[0], norm, c.match) if diffs else 0, i, c))
        n_diffs, _, _, closest = min(scored, key=lambda t: t[:3])
        label = f"{closest.name!r}" + (f" ({closest.path.name})" if closest.path else "")
        if n_diffs == 0:
            return f"cassette {label} matches this {transport} request"
        field_name = _differences(closest, norm, self.strict)[0]
        return (f"no cassette matches this {transport} request; closest is {label}: "
                f"{_describe(field_name, norm, closest.match, self.strict)}")


def _likeness(name: str, norm: dict[str, Any], match: dict[str, Any]) -> float:
    """How alike the request's and the cassette's values of one field are (0..1)."""
    if name not in norm or name not in match:
        return 0.0
    got, want = (v if isinstance(v, str) else _key_id(v) for v in (norm[name], match[name]))
    return difflib.SequenceMatcher(None, got[:2000], want[:2000], autojunk=False).ratio()


def _servable(transport: str) -> tuple[str, ...]:
    try:
        return _SERVABLE[transport]
    except KeyError:
        raise ValueError(
            f"transport must be one of {', '.join(TRANSPORTS)}, got {transport!r}"
        ) from None


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else _key_id(value)
    text = text.replace("\n", "\\n")
    return json.dumps(text[:limit] + ("…" if len(text) > limit else ""), ensure_ascii=False)


def _describe_str(label: str, got: str, want: str) -> str:
    pairs = enumerate(zip(got, want, strict=False))
    pos = next((i for i, (a, b) in pairs if a != b), min(len(got), len(want)))
    start = max(0, pos - 20)
    return (f"{label} differs at character {pos}: request {_short(got[start:start + 60])} vs "
            f"cassette {_short(want[start:start + 60])}")


def _describe(name: str, norm: dict[str, Any], match: dict[str, Any], strict: bool) -> str:
    if name not in match:
        return (f"the request sets {name}={_short(norm[name])}, which the cassette does not "
                f"record (strict mode)")
    want = match[name]
    if name not in norm:
        return f"the request has no {name}; the cassette wants {name}={_short(want)}"
    got = norm[name]
    if isinstance(got, str) and isinstance(want, str):
        return _describe_str(name, got, want)
    if name == "messages":
        if len(got) != len(want):
            return f"messages count differs: request has {len(got)}, cassette has {len(want)}"
        for i, (a, b) in enumerate(zip(got, want, strict=True)):
            if a == b:
                continue
            if not (isinstance(a, dict) and isinstance(b, dict)):
                return f"messages[{i}] differs: request {_short(a)} vs cassette {_short(b)}"
            for key in sorted(set(a) | set(b)):
                if a.get(key) != b.get(key):
                    label = f"messages[{i}].{key}"
                    if isinstance(a.get(key), str) and isinstance(b.get(key), str):
                        return _describe_str(label, a[key], b[key])
                    return (f"{label} differs: request {_short(a.get(key))} vs cassette "
                            f"{_short(b.get(key))}")
    return f"{name} differs: request {_short(got)} vs cassette {_short(want)}"


# ---------------------------------------------------------------------------------------------
# Transport conversion


def sse_to_ws(frames: list[Frame]) -> list[Frame]:
    """SSE writes → WebSocket text messages: one per event ``data``, at the completing write."""
    from holynb.sse import SSEDecoder  # the project's one SSE decoder (allowed in mockserver)

    decoder = SSEDecoder()
    out: list[Frame] = []
    for frame in frames:
        data = frame.data.encode("utf-8") if isinstance(frame.data, str) else frame.data
        out.extend(Frame(frame.at, event.data) for event in decoder.feed(data))
    decoder.close()  # an event cut off at the end is discarded, as an SSE client would
    return out


def ws_to_sse(frames: list[Frame]) -> list[Frame]:
    """WebSocket text messages → SSE writes ``data: <message>\\n\\n`` (binary dropped)."""
    out: list[Frame] = []
    for frame in frames:
        if isinstance(frame.data, str):
            lines = frame.data.splitlines() or [""]
            out.append(Frame(frame.at, "".join(f"data: {ln}\n" for ln in lines).encode() + b"\n"))
    return out


def _message_texts(frames: list[Frame], transport: str) -> list[str]:
    messages = sse_to_ws(frames) if transport == "sse" else frames
    return [m.data for m in messages if isinstance(m.data, str)]


def content_deltas(cassette: Cassette) -> list[tuple[float, str]]:
    """The reply text of a streamed cassette as ``(offset s, delta)``, one per content chunk."""
    out: list[tuple[float, str]] = []
    messages = sse_to_ws(cassette.frames) if cassette.transport == "sse" else cassette.frames
    for message in messages:
        if not isinstance(message.data, str) or message.data == "[DONE]":
            continue
        try:
            chunk = json.loads(message.data)
        except json.JSONDecodeError:
            continue  # a recorded malformed chunk carries no text
        for choice in chunk.get("choices") or [] if isinstance(chunk, dict) else []:
            content = (choice.get("delta") or {}).get("content")
            if isinstance(content, str) and content:
                out.append((message.at, content))
    return out


def completion_from_messages(messages: Iterable[str]) -> dict[str, Any]:
    """Assemble a non-streaming ``chat.completion`` body from streamed chunk JSON texts."""
    head: dict[str, Any] = {}
    content: list[str] = []
    tool_calls: dict[int, dict[str, Any]] = {}
    finish: str | None = None
    usage: Any = None
    role = "assistant"
    for text in messages:
        if text == "[DONE]":
            break
        try:
            chunk = json.loads(text)
        except json.JSONDecodeError:
            continue
        if not isinstance(chunk, dict) or "error" in chunk:
            continue
        for key in ("id", "created", "model", "system_fingerprint"):
            if key in chunk and key not in head:
                head[key] = chunk[key]
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            role = delta.get("role") or role
            if isinstance(delta.get("content"), str):
                content.append(delta["content"])
            for call in delta.get("tool_calls") or []:
                slot = tool_calls.setdefault(
                    call.get("index", 0),
                    {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
                )
                slot["id"] = call.get("id") or slot["id"]
                fn = call.get("function") or {}
                slot["function"]["name"] += fn.get("name") or ""
                slot["function"]["arguments"] += fn.get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    message: dict[str, Any] = {"role": role, "content": "".join(content) if content else None}
    if tool_calls:
        message["tool_calls"] = [tool_calls[i] for i in sorted(tool_calls)]
    body: dict[str, Any] = {
        "id": head.get("id", "chatcmpl-cassette"),
        "object": "chat.completion",
        "created": head.get("created", 0),
        "model": head.get("model", ""),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    }
    if "system_fingerprint" in head:
        body["system_fingerprint"] = head["system_fingerprint"]
    if usage is not None:
        body["usage"] = usage
    return body


def convert_frames(frames: list[Frame], source: str, target: str) -> list[Frame]:
    """Frames recorded over ``source`` rewritten for ``target`` (same list when they agree)."""
    if source == target:
        return list(frames)
    if target not in _SERVABLE or source not in _SERVABLE[target]:
        raise ValueError(f"a {source} cassette cannot answer a {target} request")
    if target == "ws":
        return sse_to_ws(frames)
    if target == "sse":
        return ws_to_sse(frames)
    body = json.dumps(completion_from_messages(_message_texts(frames, source))).encode()
    return [Frame(frames[-1].at if frames else 0.0, body)]


def request_digest(match: Mapping[str, Any]) -> str:
    """A short stable hash of a match key (used in recorded file names)."""
    return hashlib.sha256(_key_id(match).encode("utf-8")).hexdigest()[:8]
