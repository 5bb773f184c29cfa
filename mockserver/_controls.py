"""Per-request controls: ``X-Mock-*`` headers (or the same names as WebSocket query parameters)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._config import MAX_REASONING_TOKENS
from ._faults import FaultError, FaultSpec, parse_faults

__all__ = ["CONTROL_NAMES", "ControlError", "RequestControls", "parse_controls"]

MAX_CONTROL_VALUE = 1e7  # largest X-Mock-TTFT-Ms / -TPS / -Jitter-Ms accepted
CONTROL_NAMES = (
    "X-Mock-Fault",
    "X-Mock-TTFT-Ms",
    "X-Mock-TPS",
    "X-Mock-Jitter-Ms",
    "X-Mock-Seed",
    "X-Mock-Cassette",
    "X-Mock-Reasoning",
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

    def public(self) -> dict[str, Any]:
        """The overrides that were set, for the journal."""
        out: dict[str, Any] = {}
        if self.faults:
            out["fault"] = ";".join(str(f) for f in self.faults)
        for name in ("ttft_ms", "tps", "jitter_ms", "seed", "cassette", "reasoning"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out


NO_CONTROLS = RequestControls()


def _integer(values: dict[str, str], name: str, lo: int, hi: int | None) -> int | None:
    raw = values.get(name.lower())
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < lo or (hi is not None and value > hi):
        bound = f"an integer from {lo} to {hi}" if hi is not None else "an integer"
        raise ControlError(f"{name} must be {bound}, got {raw!r}")
    return value


def parse_controls(source: Mapping[str, str]) -> RequestControls:
    """Read ``X-Mock-*`` values (case-insensitive names); raise :class:`ControlError`."""
    values = {k.lower(): v for k, v in source.items() if k.lower().startswith("x-mock-")}
    if not values:
        return NO_CONTROLS
    for name in values:
        if name not in _KNOWN:
            raise ControlError(f"unknown control {name!r}; known: {', '.join(CONTROL_NAMES)}")

    def number(name: str) -> float | None:
        raw = values.get(name.lower())
        if raw is None:
            return None
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        # Bounded: a huge delay or rate would park the stream forever instead of answering.
        if not 0 <= value <= MAX_CONTROL_VALUE:
            raise ControlError(
                f"{name} must be a number from 0 to {MAX_CONTROL_VALUE:g}, got {raw!r}"
            )
        return value

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
        seed=_integer(values, "X-Mock-Seed", -(2**63), 2**63 - 1),
        cassette=cassette.strip() if cassette else None,
        reasoning=_integer(values, "X-Mock-Reasoning", 0, MAX_REASONING_TOKENS),
    )
