"""Server configuration and per-request overrides."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._cassettes import SHIPPED_DIR
from ._faults import FaultError, FaultSpec, parse_faults
from ._latency import JITTERS

__all__ = [
    "CONTROL_NAMES",
    "ControlError",
    "MockConfig",
    "RequestControls",
    "make_config",
    "mask_key",
    "parse_controls",
    "parse_rate_limit",
]

PLACEHOLDER_KEYS = frozenset({"", "YOUR_HOLYSHEEP_API_KEY", "YOUR_API_KEY", "sk-xxx"})
MAX_CONTROL_VALUE = 1e7  # largest X-Mock-TTFT-Ms / -TPS / -Jitter-Ms accepted
# Per-request control headers (same names as query parameters on the WebSocket URL).
CONTROL_NAMES = (
    "X-Mock-Fault",
    "X-Mock-TTFT-Ms",
    "X-Mock-TPS",
    "X-Mock-Jitter-Ms",
    "X-Mock-Seed",
    "X-Mock-Cassette",
)


def mask_key(key: str | None) -> str:
    """A key shown as ``sk-…abcd``; never the whole key."""
    if not key:
        return "<none>"
    prefix = key[:3] if key.startswith("sk-") else ""
    return f"{prefix}…{key[-4:]}" if len(key) >= 12 else f"{prefix}…"


def parse_rate_limit(text: str) -> tuple[int, float]:
    """``"10/s"``, ``"600/min"``, ``"5"`` (per second) → (capacity, period seconds)."""
    count, _, unit = text.strip().partition("/")
    periods = {"": 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
    try:
        capacity = int(count)
    except ValueError:
        capacity = 0
    if capacity < 1 or unit.strip() not in periods:
        raise ValueError(
            f"rate limit {text!r} is not COUNT[/s|/min|/h] with COUNT >= 1, e.g. '10/s'"
        )
    return capacity, periods[unit.strip()]


@dataclass(frozen=True, kw_only=True)
class MockConfig:
    """Everything that shapes the mock's behaviour; immutable once the server starts.

    ``ttft_ms``/``tps`` of None use the model's profile; 0 means as fast as possible.
    ``jitter`` of None means ``"uniform"`` when ``jitter_ms`` is set, else ``"none"``.
    ``cassettes`` of None uses the shipped folder; an empty tuple disables cassettes.
    ``seed`` of None draws ids, jitter and fault probabilities from OS entropy; any integer
    makes them reproducible. Generated text depends only on the request.
    """

    ttft_ms: float | None = None
    tps: float | None = None
    jitter_ms: float | None = None
    jitter: str | None = None
    seed: int | None = None
    speed: float = 1.0
    fault: str | None = None
    keys: frozenset[str] | None = field(default=None, repr=False)
    idle_timeout_s: float = 120.0
    strict: bool = False
    cassettes: tuple[Path, ...] | None = None
    record_upstream: str | None = None
    record_dir: Path | None = None
    rate_limit: str | None = None
    max_body_bytes: int = 4 * 1024 * 1024
    drain_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        for name in ("ttft_ms", "tps", "jitter_ms"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        if self.jitter is not None and self.jitter not in JITTERS:
            raise ValueError(f"jitter must be one of {', '.join(JITTERS)}, got {self.jitter!r}")
        if not self.speed >= 0:
            raise ValueError(f"speed must be >= 0 (0 = as fast as possible), got {self.speed!r}")
        if not self.idle_timeout_s > 0:
            raise ValueError(f"idle_timeout_s must be > 0, got {self.idle_timeout_s!r}")
        if self.max_body_bytes < 1024:
            raise ValueError(f"max_body_bytes must be >= 1024, got {self.max_body_bytes!r}")
        if self.fault:
            try:
                parse_faults(self.fault)
            except FaultError as exc:
                raise ValueError(f"fault: {exc}") from None
        if self.rate_limit:
            parse_rate_limit(self.rate_limit)
        if self.keys is not None:
            bad = [k for k in self.keys if not isinstance(k, str) or k in PLACEHOLDER_KEYS]
            if bad or not self.keys:
                raise ValueError("keys must be a non-empty set of real key strings")
        if self.record_upstream and not self.record_upstream.startswith(("http://", "https://")):
            raise ValueError(
                f"record_upstream must be an http(s) base URL, got {self.record_upstream!r}"
            )

    @property
    def jitter_kind(self) -> str:
        """The effective jitter distribution."""
        if self.jitter is not None:
            return self.jitter
        return "uniform" if self.jitter_ms else "none"

    @property
    def cassette_paths(self) -> tuple[Path, ...]:
        """Folders/files to load cassettes from."""
        return (SHIPPED_DIR,) if self.cassettes is None else self.cassettes

    def faults(self) -> list[FaultSpec]:
        """The server-wide faults."""
        return parse_faults(self.fault)

    def accepts(self, key: str | None) -> bool:
        """Whether a request with this key is authorised."""
        if key is None or key.strip() in PLACEHOLDER_KEYS:
            return False
        return self.keys is None or key in self.keys

    def public(self) -> dict[str, Any]:
        """The configuration as JSON for ``GET /_mock/config`` (keys reduced to a count)."""
        return {
            "ttft_ms": self.ttft_ms,
            "tps": self.tps,
            "jitter_ms": self.jitter_ms,
            "jitter": self.jitter_kind,
            "seed": self.seed,
            "speed": self.speed,
            "fault": self.fault,
            "keys": "any non-placeholder key" if self.keys is None else f"{len(self.keys)} keys",
            "idle_timeout_s": self.idle_timeout_s,
            "strict": self.strict,
            "cassettes": [str(p) for p in self.cassette_paths],
            "record_upstream": self.record_upstream,
            "record_dir": str(self.record_dir) if self.record_dir else None,
            "rate_limit": self.rate_limit,
            "max_body_bytes": self.max_body_bytes,
        }


def make_config(
    *,
    cassettes: str | Path | Iterable[str | Path] | None = None,
    keys: Iterable[str] | str | None = None,
    record_dir: str | Path | None = None,
    **kwargs: Any,
) -> MockConfig:
    """Build a :class:`MockConfig` from friendly argument types (paths, key lists)."""
    if cassettes is not None:
        if isinstance(cassettes, (str, Path)):
            cassettes = (Path(cassettes),)
        else:
            cassettes = tuple(Path(p) for p in cassettes)
    if isinstance(keys, str):
        keys = [k for k in keys.split(",") if k.strip()]
    return MockConfig(
        cassettes=cassettes,
        keys=frozenset(keys) if keys is not None else None,
        record_dir=Path(record_dir) if record_dir is not None else None,
        **kwargs,
    )


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

    def public(self) -> dict[str, Any]:
        """The overrides that were set, for the journal."""
        out: dict[str, Any] = {}
        if self.faults:
            out["fault"] = ";".join(str(f) for f in self.faults)
        for name in ("ttft_ms", "tps", "jitter_ms", "seed", "cassette"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out


def parse_controls(source: Mapping[str, str]) -> RequestControls:
    """Read ``X-Mock-*`` values (case-insensitive names); raise :class:`ControlError`."""
    values = {k.lower(): v for k, v in source.items() if k.lower().startswith("x-mock-")}
    known = {n.lower() for n in CONTROL_NAMES}
    for name in values:
        if name not in known:
            raise ControlError(
                f"unknown control {name!r}; known: {', '.join(CONTROL_NAMES)}"
            )

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
    seed_raw = values.get("x-mock-seed")
    seed = None
    if seed_raw is not None:
        try:
            seed = int(seed_raw)
        except ValueError:
            raise ControlError(f"X-Mock-Seed must be an integer, got {seed_raw!r}") from None
    cassette = values.get("x-mock-cassette")
    return RequestControls(
        faults=faults,
        ttft_ms=number("X-Mock-TTFT-Ms"),
        tps=number("X-Mock-TPS"),
        jitter_ms=number("X-Mock-Jitter-Ms"),
        seed=seed,
        cassette=cassette.strip() if cassette else None,
    )
