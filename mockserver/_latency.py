"""Per-model latency profiles and seeded frame schedules.

Defaults are the seed-003 figures in ``shared/SEEDS.md`` (time to first token and tokens per
second measured through the HolySheep relay); they are the closest published numbers to what a
client sees on a good connection. Seed 001 quotes wider, slower ranges; pass ``ttft_ms``/``tps``
to model those.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

__all__ = ["JITTERS", "PROFILES", "LatencyProfile", "profile_for", "schedule"]


@dataclass(frozen=True, slots=True)
class LatencyProfile:
    """Time to first token (ms) and steady token rate (tokens/s; 0 = as fast as possible)."""

    ttft_ms: float
    tps: float


PROFILES: dict[str, LatencyProfile] = {
    "gpt-4.1": LatencyProfile(127.0, 42.0),
    "claude-sonnet-4.5": LatencyProfile(156.0, 38.0),
    "gemini-2.5-flash": LatencyProfile(89.0, 67.0),
    "deepseek-v3.2": LatencyProfile(94.0, 71.0),
}
# Models only known from cassettes get a middle-of-the-road profile.
DEFAULT_PROFILE = LatencyProfile(100.0, 50.0)
JITTERS = ("none", "uniform", "normal", "lognormal")


def profile_for(model: str, *, ttft_ms: float | None, tps: float | None) -> LatencyProfile:
    """The model's profile with any explicit override applied."""
    base = PROFILES.get(model, DEFAULT_PROFILE)
    return LatencyProfile(
        base.ttft_ms if ttft_ms is None else ttft_ms, base.tps if tps is None else tps
    )


def _jitter(kind: str, ms: float, rng: random.Random) -> float:
    if kind == "uniform":
        return rng.uniform(-ms, ms)
    if kind == "normal":
        return rng.gauss(0.0, ms)
    if kind == "lognormal":
        # A positive, heavy-tailed extra delay whose median is ``ms`` — the shape of real
        # network and batching hiccups.
        return ms * math.exp(rng.gauss(0.0, 1.0))
    return 0.0


def schedule(
    n: int,
    profile: LatencyProfile,
    *,
    jitter_ms: float = 0.0,
    jitter: str = "none",
    rng: random.Random | None = None,
) -> list[float]:
    """Offsets in seconds of ``n`` frames: the first at TTFT, then one per ``1/tps``.

    Jitter perturbs every gap (and the TTFT) independently; offsets never go backwards. With the
    same ``rng`` seed the schedule is identical.
    """
    if n <= 0:
        return []
    rng = rng or random.Random(0)
    use_jitter = jitter != "none" and jitter_ms > 0
    gap = 1.0 / profile.tps if profile.tps > 0 else 0.0
    if not use_jitter:  # the common case, on every request's path: plain arithmetic
        first = max(0.0, profile.ttft_ms) / 1000.0
        return [first + i * gap for i in range(n)]
    at = profile.ttft_ms
    if use_jitter:
        at += _jitter(jitter, jitter_ms, rng)
    t = max(0.0, at) / 1000.0
    out = [t]
    for _ in range(n - 1):
        step = gap * 1000.0
        if use_jitter:
            step += _jitter(jitter, jitter_ms, rng)
        t += max(0.0, step) / 1000.0
        out.append(t)
    return out
