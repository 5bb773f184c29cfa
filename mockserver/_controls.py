"""Per-request controls: ``X-Mock-*`` headers (or the same names as WebSocket query parameters)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._config import MAX_REASONING_TOKENS
from ._faults import FaultError, FaultSpec, parse_faults
from .formats.chat import MAX_TOKENS_LIMIT

__all__ = ["CONTROL_NAMES", "ControlError", "RequestControls", "bounded", "parse_controls"]

MAX_CONTROL_VALUE = 1e7  # largest X-Mock-TTFT-Ms / -TPS / -Jitter-Ms accepted
CONTROL_NAMES = (
    "X-Mock-Fault",
    "X-Mock-TTFT-Ms",
    "X-Mock-TPS",
    "X-Mock-Jitter-Ms",
    "X-Mock-Seed",
    "X-Mock-Cassette",
    "X-Mock-Reasoning",
    "X-Mock-Tokens",
)
_KNOWN = {n.lower() for n in CONTROL_NAMES}


class ControlError(ValueError):
    """A per-request control header or query parameter is invalid."""


@dataclass(frozen=True, slots=True)
class RequestControls:
    """Overrides one request carries in ``X-Mock-*`` headers (or WebSocket query params)."""

    faults: list[FaultSpec] = field(default_factory=list)
    ttft_ms: float | None = None
    tps: float | None = None
    jitter_ms: float | None = None
    seed: int | None = None
    cassette: str | None = None
    reasoning: int | None = None
    tokens: int | None = None

    def public(self) -> dict[str, Any]:
        """The overrides that were set, for the journal."""
        out: dict[str, Any] = {}
        if self.faults:
            out["fault"] = ";".join(str(f) for f in self.faults)
        for name in ("ttft_ms", "tps", "jitter_ms", "seed", "cassette", "reasoning", "tokens"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out


NO_CONTROLS = RequestControls()


def bounded(raw: str, name: str, lo: float, hi: float, *, kind: type = float) -> Any:
    """``raw`` as a ``kind`` (int or float) from ``lo`` to ``hi``; else :class:`ControlError`
    naming ``name`` and the bounds."""
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or not lo <= value <= hi:
        what, lo_s, hi_s = ("an integer", str(lo), str(hi)) if kind is int else (
            "a number", f"{lo:g}", f"{hi:g}")
        raise ControlError(f"{name} must be {what} from {lo_s} to {hi_s}, got {raw!r}")
    return value


def parse_controls(source: Mapping[str, str]) -> RequestControls:
    """Read ``X-Mock-*`` values (case-insensitive names); raise :class:`ControlError`."""
    values = {k.lower(): v for k, v in source.items() if k.lower().startswith("x-mock-")}
    if not values:
        return NO_CONTROLS
    for name in values:
        if name not in _KNOWN:
            raise ControlError(f"unknown control {name!r}; known: {', '.join(CONTROL_NAMES)}")

    def number(name: str, lo: float = 0, hi: float = MAX_CONTROL_VALUE, kind: type = float) -> Any:
        # Bounded: a huge delay or rate would park the stream forever instead of answering.
        raw = values.get(name.lower())
        return None if raw is None else bounded(raw, name, lo, hi, kind=kind)

    try:
        faults = parse_faults(values.get("x-mock-fault"))
    except FaultError as exc:
        raise ControlError(f"X-Mock-Fault: {exc}") from None
    cassette = values.get("x-mock-cassette")
    return RequestControls(
        faults=faults,
        ttft_ms=number("X-Mock-TTFT-Ms"),
        tps=number("X-Mock-TPS"),
        jitter_ms=number("X-Mock-Jitter-Ms"),
        seed=number("X-Mock-Seed", -(2**63), 2**63 - 1, int),
        cassette=cassette.strip() if cassette else None,
        reasoning=number("X-Mock-Reasoning", 0, MAX_REASONING_TOKENS, int),
        tokens=number("X-Mock-Tokens", 1, MAX_TOKENS_LIMIT, int),
    )
