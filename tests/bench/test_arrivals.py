"""Arrival schedules: seeded Poisson and gamma processes, evenly spaced, all at once (no server)."""

from __future__ import annotations

import itertools
import math
import statistics

import pytest

from holynb.bench import arrival_times

N = 20_000


def _gaps(rate: float, burstiness: float = 1.0, seed: int = 0, n: int = N) -> list[float]:
    times = list(itertools.islice(arrival_times(rate, burstiness=burstiness, seed=seed), n))
    return [b - a for a, b in zip([0.0, *times[:-1]], times, strict=True)]


def test_same_seed_same_schedule_other_seed_other_schedule() -> None:
    first = list(itertools.islice(arrival_times(10, seed=7), 50))
    again = list(itertools.islice(arrival_times(10, seed=7), 50))
    other = list(itertools.islice(arrival_times(10, seed=8), 50))
    assert first == again
    assert first != other
    assert first == sorted(first) and first[0] > 0


def test_poisson_gaps_are_exponential_with_mean_one_over_rate() -> None:
    gaps = _gaps(50.0, seed=1)
    mean = statistics.fmean(gaps)
    assert mean == pytest.approx(1 / 50, rel=0.02)
    # Exponential: standard deviation equals the mean (coefficient of variation 1) ...
    assert statistics.pstdev(gaps) / mean == pytest.approx(1.0, rel=0.03)
    # ... half of the gaps are shorter than mean·ln 2, and e⁻¹ of them longer than the mean.
    assert sum(g < mean * math.log(2) for g in gaps) / N == pytest.approx(0.5, abs=0.01)
    assert sum(g > mean for g in gaps) / N == pytest.approx(math.exp(-1), abs=0.01)


def test_poisson_counts_per_window_have_variance_equal_to_mean() -> None:
    rate = 40.0
    times = list(itertools.islice(arrival_times(rate, seed=2), N))
    windows = [0] * int(times[-1])  # arrivals in each whole second
    for t in times:
        if int(t) < len(windows):
            windows[int(t)] += 1
    assert statistics.fmean(windows) == pytest.approx(rate, rel=0.03)
    # Index of dispersion of a Poisson process is 1.
    assert statistics.pvariance(windows) / statistics.fmean(windows) == pytest.approx(1.0, abs=0.15)


@pytest.mark.parametrize("burstiness", [0.25, 0.5, 2.0, 4.0])
def test_gamma_gaps_keep_the_rate_and_scale_the_variation(burstiness: float) -> None:
    gaps = _gaps(20.0, burstiness=burstiness, seed=3)
    mean = statistics.fmean(gaps)
    assert mean == pytest.approx(1 / 20, rel=0.03)
    # Gamma with shape k: coefficient of variation 1/√k (burstier below 1, smoother above).
    cv = statistics.pstdev(gaps) / mean
    assert cv == pytest.approx(1 / math.sqrt(burstiness), rel=0.05)


def test_infinite_burstiness_spaces_arrivals_evenly() -> None:
    times = list(itertools.islice(arrival_times(4.0, burstiness=math.inf), 5))
    assert times == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.25])


def test_infinite_rate_means_all_at_once() -> None:
    assert list(itertools.islice(arrival_times(math.inf, seed=1), 4)) == [0.0] * 4


@pytest.mark.parametrize("rate", [0, -1, math.nan, "10", True])
def test_bad_rate_says_what_to_fix(rate) -> None:
    with pytest.raises(ValueError, match="request_rate must be a positive number"):
        next(arrival_times(rate))


@pytest.mark.parametrize("burstiness", [0, -0.5, math.nan])
def test_bad_burstiness_says_what_to_fix(burstiness) -> None:
    with pytest.raises(ValueError, match="burstiness must be a positive number"):
        next(arrival_times(1.0, burstiness=burstiness))
