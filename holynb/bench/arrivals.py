"""When requests arrive in an open-loop benchmark: a seeded Poisson or gamma process, or at once.

The schedule is a list of offsets from the start of the run, fixed before the first request is
sent (as vLLM's ``benchmarks/serve.py`` does): a request that is sent late, or that takes long,
never moves the arrivals after it. Gaps are drawn from a gamma distribution with mean
``1 / rate`` and shape ``burstiness`` (scale ``1 / (rate * burstiness)``):

- ``burstiness == 1``: exponential gaps, i.e. a Poisson process (the default);
- ``burstiness < 1``: burstier than Poisson (clusters of arrivals, then lulls);
- ``burstiness > 1``: more regular; ``burstiness == inf``: a fixed gap of exactly ``1 / rate``.

``rate == inf`` means every request arrives at offset 0 (all at once). Unlike vLLM, the gaps are
not rescaled so that N requests span exactly ``N / rate`` seconds: the process stays a true
Poisson/gamma process, which is also what a time-limited run (``duration_s``) needs.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

__all__ = ["arrival_times", "check_burstiness", "check_rate"]


def arrival_times(rate: float, *, burstiness: float = 1.0, seed: int = 0) -> Iterator[float]:
    """Arrival offsets in seconds, non-decreasing (all 0 when ``rate`` is inf), forever.

    The same ``rate``, ``burstiness`` and ``seed`` always give the same offsets.
    """
    check_rate(rate)
    check_burstiness(burstiness)
    if math.isinf(rate):
        while True:
            yield 0.0
    rng = random.Random(seed)
    scale = 1.0 / (rate * burstiness) if math.isfinite(burstiness) else 0.0
    t = 0.0
    while True:
        t += 1.0 / rate if scale == 0.0 else rng.gammavariate(burstiness, scale)
        yield t


def check_rate(rate: float) -> None:
    """Refuse a request rate that is not a positive number (``inf`` is allowed)."""
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
        raise ValueError(
            f"request_rate must be a positive number of requests per second (or inf), got {rate!r}"
        )


def check_burstiness(burstiness: float) -> None:
    """Refuse a burstiness that is not a positive number (``inf`` is allowed)."""
    if (
        isinstance(burstiness, bool)
        or not isinstance(burstiness, int | float)
        or not burstiness > 0
    ):
        raise ValueError(
            "burstiness must be a positive number (1 = Poisson, < 1 burstier, > 1 more regular), "
            f"got {burstiness!r}"
        )
