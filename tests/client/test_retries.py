"""Retry policy: Retry-After honoured, on_retry events, nothing retried after the first delta."""

from __future__ import annotations

import re
import time
from email.utils import formatdate

import pytest
from client_helpers import PROMPT, collect, stream_records

from holynb import RateLimitError, StreamInterrupted
from holynb._retry import RetryEvent, backoff_delay, retry_after_from_headers


async def test_rate_limited_request_waits_retry_after_then_succeeds(
    holy_mock_factory, make_client, transport
):
    mock = holy_mock_factory(rate_limit="3/s")
    events: list[RetryEvent] = []
    client = make_client(mock, transport=transport, on_retry=events.append)
    for _ in range(3):
        async with client.stream(PROMPT, max_tokens=2) as s:
            await collect(s)
    started = time.perf_counter()
    async with client.stream(PROMPT, max_tokens=2) as s:
        assert len(await collect(s)) == 2
    waited = time.perf_counter() - started
    assert s.stats.retries == 1 and len(events) == 1
    event = events[0]
    assert event.reason == "rate limited" and event.attempt == 1 and event.max_retries == 3
    # The wait is the server's hint (about 1/3 s), not the backoff schedule.
    assert 0 < event.delay_s <= 0.34 and waited >= event.delay_s
    assert re.fullmatch(r"rate limited — retrying in \d+\.\d s \(1/3\)", str(event))
    assert [r["status"] for r in stream_records(mock)][-2:] == [429, 200]


async def test_async_on_retry_callback_is_awaited(holy_mock, make_client, transport):
    seen: list[str] = []

    async def on_retry(event: RetryEvent) -> None:
        seen.append(event.reason)

    client = make_client(holy_mock, transport=transport, max_retries=1)
    s = client.stream(
        PROMPT, on_retry=on_retry, extra_headers={"X-Mock-Fault": "disconnect:after=0"}
    )
    with pytest.raises(StreamInterrupted):
        async with s:
            await collect(s)
    assert seen == ["connection failed"] and s.stats.retries == 1
    assert len(stream_records(holy_mock)) == 2


async def test_no_retry_after_first_delta(holy_mock, make_client, transport):
    client = make_client(holy_mock, transport=transport, max_retries=3)
    with pytest.raises(StreamInterrupted) as info:
        async with client.stream(
            PROMPT, max_tokens=10, extra_headers={"X-Mock-Fault": "disconnect:after=3"}
        ) as s:
            await collect(s)
    assert info.value.partial_text and s.stats.retries == 0
    assert len(stream_records(holy_mock)) == 1


async def test_retry_not_attempted_past_total_timeout(holy_mock, make_client, transport):
    client = make_client(holy_mock, transport=transport, total_timeout=0.3)
    started = time.perf_counter()
    s = client.stream(PROMPT, extra_headers={"X-Mock-Fault": "status:code=429,retry_after=5"})
    with pytest.raises(RateLimitError) as info:
        async with s:
            await collect(s)
    assert info.value.status_code == 429 and info.value.retry_after == pytest.approx(5, abs=0.5)
    assert time.perf_counter() - started < 2 and s.stats.retries == 0


def test_retry_after_headers():
    now = 1_700_000_000.0
    assert retry_after_from_headers({"retry-after-ms": "250"}, now=now) == 0.25
    assert retry_after_from_headers({"retry-after": "2"}, now=now) == 2.0
    date = formatdate(now + 3, usegmt=True)
    assert retry_after_from_headers({"retry-after": date}, now=now) == pytest.approx(3)
    assert retry_after_from_headers({"x-ratelimit-reset": str(now + 4)}, now=now) == 4.0
    assert retry_after_from_headers({"x-ratelimit-reset": "1.5"}, now=now) == 1.5
    # retry-after-ms wins over the coarser headers
    both = {"retry-after-ms": "100", "retry-after": "1"}
    assert retry_after_from_headers(both, now=now) == 0.1
    assert retry_after_from_headers({"retry-after": "soon"}, now=now) is None
    assert retry_after_from_headers({}, now=now) is None


def test_backoff_is_exponential_jittered_and_capped():
    for attempt, base in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0)]:
        delays = [backoff_delay(attempt) for _ in range(50)]
        assert all(0.75 * base <= d <= base for d in delays) and len(set(delays)) > 1
    assert backoff_delay(20) <= 8.0
    assert backoff_delay(1, hint=2.5) == 2.5
    assert backoff_delay(1, hint=3600) == 60.0


async def test_probabilistic_faults_retry_until_success(holy_mock_factory, make_client, transport):
    mock = holy_mock_factory(seed=7, fault="status:code=429,retry_after=0.01,p=0.5")
    client = make_client(mock, transport=transport, max_retries=10)
    retries = 0
    for i in range(6):
        async with client.stream(f"{PROMPT} {i}", max_tokens=3) as s:
            assert len(await collect(s)) == 3
        retries += s.stats.retries
    statuses = [r["status"] for r in stream_records(mock)]
    assert statuses.count(429) == retries and statuses.count(200) == 6
