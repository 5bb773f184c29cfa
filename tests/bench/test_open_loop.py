"""Open-loop arrivals, the concurrency cap, time limits, warm-up and goodput, on the real mock."""

from __future__ import annotations

import itertools
import math
import time

import pytest

from holynb import bench
from mockserver import MOCK_KEY


def _journal_peak(journal: list[dict]) -> int:
    """Most requests the mock was serving at once, from its journal's start and end times."""
    events = sorted([(r["started"], 1) for r in journal] + [(r["ended"], -1) for r in journal])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


async def test_arrivals_follow_the_seeded_schedule_not_the_replies(holy_mock_factory) -> None:
    # Each reply takes over 300 ms while requests arrive every ~50 ms: a closed loop would send
    # one at a time; the open loop sends on schedule, so replies overlap.
    mock = holy_mock_factory(ttft_ms=300, tps=0)
    result = await bench.run_bench(
        mock.url, api_key=MOCK_KEY, requests=8, request_rate=20, seed=4, max_tokens=3
    )
    records = result.records
    expected = list(itertools.islice(bench.arrival_times(20, seed=4), 8))
    assert [r.scheduled_s for r in records] == expected
    assert all(r.ok and r.start_s >= r.scheduled_s for r in records)
    assert all(later.start_s < earlier.end_s for earlier, later in itertools.pairwise(records))
    assert result.summaries["sse"].max_concurrent_requests > 1
    assert _journal_peak(mock.journal()) > 1
    assert result.config["request_rate"] == 20 and result.config["seed"] == 4


async def test_a_late_request_does_not_shift_later_arrivals(holy_mock) -> None:
    # The progress callback runs on the benchmark's event loop; blocking it makes the requests
    # due meanwhile late. The schedule after them stays where it was.
    blocked = []

    def progress(transport: str, done: int, total: int | None) -> None:
        if done == 1 and not blocked:
            blocked.append(True)
            time.sleep(0.3)

    result = await bench.run_bench(
        holy_mock.url,
        api_key=MOCK_KEY,
        requests=12,
        request_rate=20,
        burstiness=math.inf,  # exactly every 50 ms
        max_tokens=2,
        progress=progress,
    )
    records = result.records
    assert [r.scheduled_s for r in records] == pytest.approx([0.05 * (i + 1) for i in range(12)])
    late = [r for r in records if r.wait_s > 0.1]
    assert late, "the blocked loop should have made some requests late"
    assert all(r.ok for r in records)


async def test_max_concurrency_caps_requests_in_flight(holy_mock_factory) -> None:
    mock = holy_mock_factory(ttft_ms=60, tps=0)
    result = await bench.run_bench(
        mock.url, api_key=MOCK_KEY, requests=8, max_concurrency=2, max_tokens=2
    )
    summary = result.summaries["sse"]
    assert summary.completed == 8
    assert summary.max_concurrent_requests == 2
    assert _journal_peak(mock.journal()) == 2
    # Everything arrived at 0 (rate inf) and queued: later requests waited for a slot.
    assert all(r.scheduled_s == 0.0 for r in result.records)
    assert sorted(r.wait_s for r in result.records)[-1] >= 0.06 * 3
    assert result.config["max_concurrency"] == 2


async def test_max_concurrency_with_a_rate_queues_arrivals(holy_mock_factory) -> None:
    mock = holy_mock_factory(ttft_ms=80, tps=0)
    result = await bench.run_bench(
        mock.url,
        api_key=MOCK_KEY,
        requests=6,
        request_rate=100,
        max_concurrency=1,
        max_tokens=2,
        transport="ws",
    )
    assert result.summaries["ws"].completed == 6
    assert result.summaries["ws"].max_concurrent_requests == 1
    assert _journal_peak(mock.journal()) == 1
    # The TTFT clock starts when a request is sent, after its wait for the slot.
    assert all(r.ttft_s >= 0.079 for r in result.records)
    assert all(
        later.start_s >= earlier.end_s
        for earlier, later in itertools.pairwise(sorted(result.records, key=lambda r: r.start_s))
    )


async def test_duration_mode_takes_every_arrival_inside_the_window(holy_mock) -> None:
    result = await bench.run_bench(
        holy_mock.url,
        api_key=MOCK_KEY,
        duration_s=1.0,
        request_rate=15,
        seed=5,
        max_tokens=2,
        transport="both",
    )
    due = [t for t in itertools.islice(bench.arrival_times(15, seed=5), 100) if t < 1.0]
    for transport in ("sse", "ws"):
        rows = [r for r in result.records if r.transport == transport]
        assert [r.scheduled_s for r in rows] == due
        assert result.summaries[transport].requests == len(due)
    assert len(holy_mock.journal()) == 2 * len(due)
    assert result.config["num_prompts"] is None and result.config["time_limit_s"] == 1.0
    assert "arrivals for 1 s · 15 req/s (Poisson)" in result.table()


async def test_duration_mode_at_rate_inf_is_a_closed_loop(holy_mock_factory) -> None:
    mock = holy_mock_factory(ttft_ms=40, tps=0)
    result = await bench.run_bench(
        mock.url, api_key=MOCK_KEY, duration_s=0.5, max_concurrency=3, max_tokens=2
    )
    records = result.records
    summary = result.summaries["sse"]
    assert summary.completed == len(records) >= 3
    assert summary.max_concurrent_requests == 3
    # Nothing is admitted after the window closes (the send itself may come a moment later).
    assert all(r.scheduled_s < 0.5 for r in records)
    assert all(r.scheduled_s <= r.start_s for r in records)  # arrived when a slot freed
    assert len(mock.journal()) == len(records)


async def test_warmup_requests_are_sent_but_not_counted(holy_mock) -> None:
    result = await bench.run_bench(
        holy_mock.url, api_key=MOCK_KEY, requests=4, warmup=3, max_concurrency=2, max_tokens=2
    )
    assert result.summaries["sse"].requests == 4
    assert [r.index for r in result.records] == [0, 1, 2, 3]
    journal = holy_mock.journal()
    assert len(journal) == 7 and all(r["outcome"] == "completed" for r in journal)
    assert result.config["num_warmups"] == 3


async def test_goodput_against_the_mock(holy_mock_factory) -> None:
    # The mock never sends a first token before its TTFT: 30 ms can never meet a 5 ms SLO.
    mock = holy_mock_factory(ttft_ms=30, tps=0)
    options = {"api_key": MOCK_KEY, "requests": 6, "max_tokens": 3}
    loose = await bench.run_bench(mock.url, goodput=["ttft:10000", "e2el:10000"], **options)
    tight = await bench.run_bench(mock.url, goodput={"ttft": 5}, **options)
    assert loose.summaries["sse"].good_requests == 6
    assert loose.summaries["sse"].request_goodput == pytest.approx(
        loose.summaries["sse"].request_throughput
    )
    assert tight.summaries["sse"].good_requests == 0
    assert tight.summaries["sse"].request_goodput == 0.0
    assert tight.config["goodput"] == {"ttft": 5.0}


async def test_timeline_adds_up(holy_mock_factory) -> None:
    mock = holy_mock_factory(ttft_ms=20, tps=200)
    result = await bench.run_bench(
        mock.url, api_key=MOCK_KEY, duration_s=1.5, request_rate=20, max_tokens=10, seed=1
    )
    summary = result.summaries["sse"]
    seconds = summary.timeline
    assert [s.second for s in seconds] == list(range(len(seconds)))
    assert len(seconds) == math.ceil(summary.duration)
    assert sum(s.started for s in seconds) == summary.requests
    assert sum(s.completed for s in seconds) == summary.completed
    assert sum(s.output_tokens for s in seconds) == summary.total_output_tokens
    assert "output tok/s" in result.timeline()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"requests": 3, "duration_s": 1.0}, "either requests or duration_s"),
        ({"duration_s": 0}, "duration_s must be a positive number"),
        ({"duration_s": 1.0}, "needs max_concurrency"),
        ({"request_rate": 0}, "request_rate must be a positive number"),
        ({"burstiness": -1}, "burstiness must be a positive number"),
        ({"warmup": -2}, "warmup must be a positive integer"),
        ({"goodput": ["itl:5"]}, "goodput metric must be one of ttft, tpot, e2el"),
    ],
)
async def test_bad_load_options_say_what_to_fix(holy_mock, options, message) -> None:
    with pytest.raises(ValueError, match=message):
        await bench.run_bench(holy_mock.url, api_key=MOCK_KEY, **options)
    assert holy_mock.journal() == []
