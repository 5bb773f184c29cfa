"""The fault grammar, where each fault applies, and what it does to a reply's frames.

Grammar (``X-Mock-Fault`` header, ``?X-Mock-Fault=`` on the WebSocket URL, ``--fault``)::

    faults := fault (";" fault)*
    fault  := name [":" param ("," param)*]
    param  := key "=" value          # every fault also takes p=<0..1>, a seeded probability

A reply reaches a writer as a list of :class:`~mockserver._frames.Frame` over one of three
paths — ``sse`` (a streamed HTTP body), ``ws`` (WebSocket messages) or ``json`` (one
non-streaming body). :data:`APPLIES` says, for every fault and path, whether the fault applies
there and, if not, why: a request asking for a fault that cannot apply is answered 400
``invalid_mock_control`` with that reason; a server-wide or cassette fault that cannot apply to
a path is left out for that request (and not journaled as fired).

:func:`plan_reply` turns frames and the faults that fired into a :class:`Plan`. It knows no API:
what an end marker, an error frame or a broken frame looks like comes from the reply's format
(:class:`FrameKit`). Counts are in frames: ``after=N`` acts once N frames were sent; ``at=N``
makes the N-th frame sent (1-based) the fault.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ._frames import Frame

__all__ = [
    "APPLIES",
    "FAULTS",
    "PATHS",
    "FaultError",
    "FaultSpec",
    "FrameKit",
    "Plan",
    "applicable",
    "fired",
    "merge_faults",
    "not_applicable",
    "parse_faults",
    "plan_reply",
]

PATHS = ("sse", "ws", "json")


class FaultError(ValueError):
    """A fault specification does not follow the grammar (or cannot apply to a request)."""


def _int(lo: int, hi: int | None = None):
    def conv(text: str) -> int:
        value = int(text)
        if value < lo or (hi is not None and value > hi):
            bound = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
            raise ValueError(f"must be {bound}")
        return value

    conv.kind = "an integer"  # type: ignore[attr-defined]
    return conv


def _float(lo: float, hi: float | None = None):
    def conv(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        if not value >= lo or (hi is not None and value > hi):
            bound = f"between {lo:g} and {hi:g}" if hi is not None else f">= {lo:g}"
            raise ValueError(f"must be {bound}")
        return value

    conv.kind = "a number"  # type: ignore[attr-defined]
    return conv


# name -> {param: (converter, default)}; a default of None means the parameter is required.
FAULTS: dict[str, dict[str, tuple[Any, Any]]] = {
    # Only error statuses: 1xx/204/304 replies cannot carry the error body, 2xx/3xx aren't errors.
    # retry_after is bounded so that the Retry-After headers stay integers.
    "status": {"code": (_int(400, 599), None), "retry_after": (_float(0, 1e6), None)},
    "disconnect": {"after": (_int(0), 0)},
    "reset": {"after": (_int(0), 0)},
    "malformed": {"at": (_int(1), 1)},
    "error-event": {"at": (_int(1), 1), "code": (_int(400, 599), 500)},
    "stall": {"after": (_int(0), 0), "ms": (_float(0), 1000.0)},
    "slice": {"size": (_int(1), 1), "ms": (_float(0), 0.0)},
    "fragment": {"size": (_int(1), 1)},
    "crlf": {},
    "no-done": {},
    "heartbeat": {"ms": (_float(1), 1000.0)},
    "ws-close": {"code": (_int(1000, 4999), 1011), "after": (_int(0), 0)},
}
_OPTIONAL = {"status": {"retry_after"}}

_NO_STREAM = "a non-streaming reply is one JSON body, not a stream"
# fault -> path -> None (applies) or why it cannot; a callable decides from the parameters.
APPLIES: dict[str, dict[str, Any]] = {
    "status": {"sse": None, "ws": None, "json": None},
    "disconnect": {"sse": None, "ws": None, "json": lambda p: p["after"] and (
        f"disconnect:after={p['after']} counts stream frames and {_NO_STREAM}; use after=0")},
    "reset": {"sse": None, "ws": None, "json": lambda p: p["after"] and (
        f"reset:after={p['after']} counts stream frames and {_NO_STREAM}; use after=0")},
    "malformed": {"sse": None, "ws": None, "json": lambda p: p["at"] > 1 and (
        f"malformed:at={p['at']} counts stream frames and {_NO_STREAM}; use at=1")},
    "error-event": {"sse": None, "ws": None, "json": (
        f"error-event is an error in the middle of a stream and {_NO_STREAM}; use "
        "status:code=N for an error response")},
    "stall": {"sse": None, "ws": None, "json": lambda p: p["after"] and (
        f"stall:after={p['after']} counts stream frames and {_NO_STREAM}; use after=0")},
    "slice": {"sse": None, "json": None, "ws": lambda p: p["ms"] and (
        "slice:ms spaces the pieces of an SSE or JSON body; a WebSocket message is sent as "
        "fragments all at once: use slice:size=N without ms")},
    "fragment": {"sse": None, "ws": None, "json": None},
    "crlf": {"sse": None, "ws": "crlf changes SSE line ends and WebSocket messages have none",
             "json": f"crlf changes SSE line ends and {_NO_STREAM}"},
    "no-done": {"sse": None, "ws": None, "json": f"no-done drops the stream's end marker and "
                                                 f"{_NO_STREAM}"},
    "heartbeat": {"sse": None, "ws": None, "json": f"heartbeat keeps a quiet stream alive and "
                                                   f"{_NO_STREAM}"},
    "ws-close": {"sse": "ws-close sends a WebSocket close frame; this is an SSE stream",
                 "json": "ws-close sends a WebSocket close frame; this is a JSON response",
                 "ws": None},
}


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """One parsed fault: its name, its parameters and its probability."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    p: float = 1.0

    def __str__(self) -> str:
        parts = [
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.params.items()
        ]
        if self.p != 1.0:
            parts.append(f"p={self.p:g}")
        return self.name + (":" + ",".join(parts) if parts else "")


def parse_faults(text: str | None) -> list[FaultSpec]:
    """Parse a fault list; raise :class:`FaultError` naming the bad part."""
    specs: list[FaultSpec] = []
    if not text or not text.strip():
        return specs
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        name, _, rest = part.partition(":")
        name = name.strip()
        if name not in FAULTS:
            known = ", ".join(FAULTS)
            raise FaultError(f"unknown fault {name!r} in {part!r}; known faults: {known}")
        schema = FAULTS[name]
        params: dict[str, Any] = {}
        p = 1.0
        for item in filter(None, (s.strip() for s in rest.split(","))):
            key, eq, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if not eq or not value:
                raise FaultError(f"fault {name!r}: expected key=value, got {item!r}")
            if key == "p":
                p = _convert(name, key, value, _float(0, 1))
            elif key in schema:
                params[key] = _convert(name, key, value, schema[key][0])
            else:
                allowed = ", ".join([*schema, "p"])
                raise FaultError(
                    f"fault {name!r} has no parameter {key!r} (in {part!r}); allowed: {allowed}"
                )
        for key, (_conv, default) in schema.items():
            if key in params:
                continue
            if default is None and key not in _OPTIONAL.get(name, ()):
                raise FaultError(f"fault {name!r} needs {key}=..., e.g. {name}:{key}=429")
            if default is not None:
                params[key] = default
        specs.append(FaultSpec(name, params, p))
    return specs


def _convert(name: str, key: str, value: str, conv: Any) -> Any:
    try:
        return conv(value)
    except ValueError as exc:
        detail = str(exc) if str(exc).startswith("must") else f"must be {conv.kind}"
        raise FaultError(f"fault {name!r}: {key}={value!r} {detail}") from None


def not_applicable(
    spec: FaultSpec, path: str, unsupported: Mapping[str, str] | None = None
) -> str | None:
    """Why ``spec`` cannot apply to a reply over ``path`` (None when it can); ``unsupported``
    adds what one API's wire cannot carry (a format's :attr:`FrameKit.unsupported`)."""
    if unsupported and spec.name in unsupported:
        return unsupported[spec.name]
    rule = APPLIES[spec.name][path]
    if callable(rule):
        rule = rule(spec.params)
    return rule or None


def applicable(
    specs: Iterable[FaultSpec], path: str, *, strict: bool,
    unsupported: Mapping[str, str] | None = None,
) -> list[FaultSpec]:
    """The faults that apply over ``path`` (and the API's wire: ``unsupported``); with
    ``strict`` one that cannot raises :class:`FaultError` saying why (for faults a request asked
    for by name)."""
    out = []
    for spec in specs:
        why = not_applicable(spec, path, unsupported)
        if why is None:
            out.append(spec)
        elif strict:
            raise FaultError(f"fault {str(spec)!r} cannot apply here: {why}")
    return out


def merge_faults(*groups: Iterable[FaultSpec]) -> list[FaultSpec]:
    """Combine fault lists (server, cassette, request); a later fault of the same name wins."""
    merged: dict[str, FaultSpec] = {}
    for group in groups:
        for spec in group:
            merged.pop(spec.name, None)
            merged[spec.name] = spec
    return list(merged.values())


def fired(specs: Iterable[FaultSpec], rng: random.Random) -> dict[str, FaultSpec]:
    """Draw each fault's probability once (seeded) and keep those that fire."""
    out: dict[str, FaultSpec] = {}
    for spec in specs:
        if spec.p >= 1.0 or rng.random() < spec.p:
            out[spec.name] = spec
    return out


@dataclass(frozen=True, slots=True)
class FrameKit:
    """What a format's frames look like, for the faults that add, cut or change frames.

    ``strip_done(data)`` returns the frame without the stream's end marker (empty if it was only
    that); ``error_frames(code, index)`` is an in-stream error standing in for the frame at
    ``index`` (0-based; some APIs number their events), as one or more frames; ``malformed`` a
    frame a client cannot parse; ``heartbeat`` the keep-alive written while a stream is quiet;
    ``break_body(body)`` a non-streaming body made unparseable. ``unsupported`` names the faults
    this API's wire cannot carry over the path, with the reason (beyond :data:`APPLIES`).
    """

    strip_done: Callable[[bytes | str], bytes | str] | None = None
    error_frames: Callable[[int, int], Sequence[bytes | str]] | None = None
    malformed: bytes | str | None = None
    heartbeat: bytes | None = None
    break_body: Callable[[bytes], bytes] = lambda body: body[: len(body) // 2]
    unsupported: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Plan:
    """What a writer sends: frames at offsets, how the stream ends, and wire-level options.

    ``frames`` is lazy: it is produced while the writer sends, so a burst of new requests does
    not stall the event loop building every chunk up front. ``end`` is ``"done"`` (finish
    normally), ``"close"`` (clean close, no more data), ``"reset"`` (TCP RST) or ``"ws-close"``
    (WebSocket close with ``close_code``).
    """

    frames: Iterable[Frame]
    end: str = "done"
    close_code: int | None = None
    slice_size: int | None = None
    slice_gap_s: float = 0.0
    fragment_size: int | None = None
    heartbeat_s: float | None = None
    heartbeat: bytes | None = None
    outcome: str = "completed"


def _strip_done(frames: Iterable[Frame], strip: Callable[[Any], Any]) -> Iterator[Frame]:
    for f in frames:
        data = strip(f.data)
        if data:
            yield f if data is f.data else replace(f, data=data)


def _stall(frames: Iterable[Frame], after: int, extra_s: float) -> Iterator[Frame]:
    for i, f in enumerate(frames):
        yield replace(f, at=f.at + extra_s) if i >= after else f


def _put_at(
    frames: Iterable[Frame], at: int, data: Callable[[int], Sequence[bytes | str]], *, stop: bool
) -> Iterator[Frame]:
    """Make ``data(i)`` the ``at``-th frame (1-based; after the last if the reply is shorter;
    ``i`` is its 0-based position); with ``stop`` nothing follows it, otherwise the original
    frames continue."""
    i = -1
    last = 0.0
    for i, f in enumerate(frames):
        if i == at - 1:
            yield from (Frame(f.at, d) for d in data(i))
            if stop:
                return
        yield f
        last = f.at
    if i < at - 1:
        yield from (Frame(last, d) for d in data(i + 1))


def _cut(frames: Iterable[Frame], n: int) -> Iterator[Frame]:
    for i, f in enumerate(frames):
        if i == n:
            return
        yield f


def _crlf(frames: Iterable[Frame]) -> Iterator[Frame]:
    for f in frames:
        if isinstance(f.data, bytes):
            f = replace(f, data=f.data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
        yield f


def _break_body(frames: Iterable[Frame], kit: FrameKit) -> Iterator[Frame]:
    for f in frames:
        yield replace(f, data=kit.break_body(f.data))  # type: ignore[arg-type]


def plan_reply(
    frames: Iterable[Frame], faults: dict[str, FaultSpec], *, path: str, kit: FrameKit
) -> Plan:
    """Apply fired faults (already filtered by :func:`applicable`) to a reply's frames, lazily.

    Stages run in a fixed order: no-done, stall, malformed, error-event,
    disconnect/reset/ws-close, crlf, then the wire options (slice, fragment, heartbeat).
    """
    plan = Plan(frames)
    outcome: str | None = None
    stream: Iterable[Frame] = frames
    if "no-done" in faults:
        assert kit.strip_done is not None
        stream = _strip_done(stream, kit.strip_done)
        outcome = "fault:no-done"
    if "stall" in faults:
        spec = faults["stall"]
        stream = _stall(stream, spec.params["after"], spec.params["ms"] / 1000)
        outcome = "fault:stall"
    if "malformed" in faults:
        if path == "json":
            stream = _break_body(stream, kit)
        else:
            broken = kit.malformed
            assert broken is not None
            stream = _put_at(stream, faults["malformed"].params["at"], lambda _i: (broken,),
                             stop=False)
        outcome = "fault:malformed"
    if "error-event" in faults:
        spec = faults["error-event"]
        make, code = kit.error_frames, spec.params["code"]
        assert make is not None
        stream = _put_at(stream, spec.params["at"], lambda i: make(code, i), stop=True)
        outcome = "fault:error-event"
    for name in ("crlf", "slice", "fragment", "heartbeat"):
        if name in faults:
            outcome = outcome or f"fault:{name}"
    plan.outcome = outcome or "completed"
    for name in ("disconnect", "reset", "ws-close"):
        if name in faults:
            # After ``after`` frames — or all of them, if the reply is shorter — the stream
            # ends this way instead of finishing.
            plan.end = "close" if name == "disconnect" else name
            plan.outcome = f"fault:{name}"
            if name == "ws-close":
                plan.close_code = faults[name].params["code"]
            stream = _cut(stream, faults[name].params["after"])
            break
    if "crlf" in faults:
        stream = _crlf(stream)
    for name in ("slice", "fragment"):
        if name in faults:
            size = faults[name].params["size"]
            if path == "ws":
                plan.fragment_size = size
            else:
                plan.slice_size = size
                plan.slice_gap_s = faults[name].params.get("ms", 0.0) / 1000
    if "heartbeat" in faults:
        plan.heartbeat_s = faults["heartbeat"].params["ms"] / 1000
        plan.heartbeat = kit.heartbeat
    plan.frames = stream
    return plan
