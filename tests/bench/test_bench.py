"""``holynb.bench`` against the real mock server, over both transports."""

from __future__ import annotations

import asyncio
import json

import pytest

from holynb import ConfigError, bench
from mockserver import MOCK_KEY


async def test_result_structure_both_transports(holy_mock) -> None:
    result = await bench.run_bench(
        holy_mock.url,
        api_key=MOCK_KEY,
        transport="both",
        requests=6,
        max_concurrency=3,
        max_tokens=5,
    )
    assert list(result.summaries) == ["sse", "ws"]
    assert [r.transport for r in result.records] == ["sse"] * 6 + ["ws"] * 6
    assert [r.index for r in result.records] == list(range(6)) * 2
    for summary in result.summaries.values():
        assert (summary.requests, summary.completed, summary.failed) == (6, 6, 0)
        assert summary.total_output_tokens == 30  # the mock replies with exactly max_tokens
        assert summary.ttft_ms is not None and summary.ttft_ms.count == 6
        assert summary.itl_ms is not None and summary.itl_ms.count == 6 * 4
        assert summary.tpot_ms is not None and summary.e2e_ms is not None
        assert summary.ttft_ms.p50 > 0
        assert summary.e2e_ms.p50 >= summary.ttft_ms.p50
        assert summary.request_throughput > 0 and summary.output_throughput > 0
        assert summary.error_types == {}
    for record in result.records:
        assert record.ok and record.error is None
        assert record.tokens == 5 and len(record.itl_s) == 4
        assert 0 < record.ttft_s <= record.e2e_s
    assert result.config["bundled_mock"] is False
    assert result.config["transports"] == ["sse", "ws"]
    journal = holy_mock.journal()
    assert sorted(r["transport"] for r in journal) == ["sse"] * 6 + ["ws"] * 6
    assert all(r["outcome"] == "completed" and r["model"] == "deepseek-v3.2" for r in journal)


@pytest.mark.parametrize("transport", ["sse", "ws"])
async def test_mock_controls_are_sent(holy_mock, transport: str) -> None:
    result = await bench.run_bench(
        holy_mock.url,
        api_key=MOCK_KEY,
        transport=transport,
        requests=2,
        max_concurrency=2,
        max_tokens=3,
        mock_ttft_ms=40,
        mock_tps=100,
    )
    summary = result.summaries[transport]
    assert summary.completed == 2
    # The mock never sends a chunk before its deadline, so lower bounds prove the headers
    # reached it: first token at 40 ms, the third 2 × 10 ms later.
    assert summary.ttft_ms is not None and summary.ttft_ms.p50 >= 39.0
    assert summary.e2e_ms is not None and summary.e2e_ms.p50 >= 59.0


@pytest.mark.parametrize("transport", ["sse", "ws"])
async def test_errors_are_counted_not_fatal(holy_mock, transport: str) -> None:
    async def once() -> bench.BenchResult:
        return await bench.run_bench(
            holy_mock.url,
            api_key=MOCK_KEY,
            transport=transport,
            requests=12,
            max_concurrency=4,
            max_tokens=4,
            seed=11,
            mock_fault="status:code=500,p=0.5",
        )

    first = await once()
    summary = first.summaries[transport]
    assert summary.requests == 12
    assert 0 < summary.failed < 12
    assert summary.completed + summary.failed == 12
    assert set(summary.error_types) == {"APIStatusError"}
    assert summary.ttft_ms is not None and summary.ttft_ms.count == summary.completed
    failed = [r for r in first.records if not r.ok]
    assert all(r.error and r.error.startswith("APIStatusError: ") for r in failed)
    assert all(r.ttft_s is None and r.tpot_s is None for r in failed)
    # Request i is sent seed 11 + i: against a fresh mock the same requests fail again.
    holy_mock.reset()
    second = await once()
    assert [r.ok for r in second.records] == [r.ok for r in first.records]


@pytest.mark.parametrize("transport", ["sse", "ws"])
async def test_mid_stream_failure_keeps_partial_token_count(holy_mock, transport: str) -> None:
    result = await bench.run_bench(
        holy_mock.url,
        api_key=MOCK_KEY,
        transport=transport,
        requests=2,
        max_concurrency=1,
        max_tokens=10,
        mock_fault="disconnect:after=3",
    )
    summary = result.summaries[transport]
    assert summary.failed == 2 and summary.ttft_ms is None
    assert set(summary.error_types) == {"StreamInterrupted"}
    assert [r.tokens for r in result.records] == [3, 3]


async def test_unpooled_opens_a_client_per_request(holy_mock) -> None:
    result = await bench.run_bench(
        holy_mock.url,
        api_key=MOCK_KEY,
        transport="both",
        requests=3,
        max_concurrency=3,
        max_tokens=2,
        pooled=False,
    )
    assert all(s.completed == 3 for s in result.summaries.values())
    assert result.config["pooled"] is False
    assert "unpooled" in result.table()


async def test_bundled_mock_and_progress() -> None:
    calls: list[tuple[str, int, int]] = []
    result = await bench.run_bench(
        None,
        transport="ws",
        requests=3,
        max_concurrency=2,
        max_tokens=2,
        mock_ttft_ms=0,
        mock_tps=0,
        progress=lambda *args: calls.append(args),
    )
    assert result.config["bundled_mock"] is True
    assert result.config["base_url"].startswith("http://127.0.0.1:")
    assert result.summaries["ws"].completed == 3
    assert calls == [("ws", 0, 3), ("ws", 1, 3), ("ws", 2, 3), ("ws", 3, 3)]
    assert "endpoint: bundled mock at http://127.0.0.1:" in result.table()


def test_sync_run_outside_and_inside_a_loop(holy_mock) -> None:
    options = {"api_key": MOCK_KEY, "requests": 2, "max_concurrency": 2, "max_tokens": 2}
    assert bench.run(holy_mock.url, **options).summaries["sse"].completed == 2

    async def inside() -> bench.BenchResult:
        return bench.run(holy_mock.url, **options)  # a running loop, as in a notebook cell

    assert asyncio.run(inside()).summaries["sse"].completed == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"requests": 0}, "requests must be a positive integer"),
        ({"max_concurrency": -1}, "max_concurrency must be a positive integer"),
        ({"max_tokens": 1.5}, "max_tokens must be a positive integer"),
        ({"transport": "grpc"}, "transport must be one of sse, ws, both"),
        ({"mock_tps": -1}, "mock_tps must be >= 0"),
    ],
)
async def test_bad_options_say_what_to_fix(holy_mock, options, message) -> None:
    with pytest.raises(ValueError, match=message):
        await bench.run_bench(holy_mock.url, api_key=MOCK_KEY, **options)


async def test_rejected_key_is_counted_and_never_shown(holy_mock_factory) -> None:
    secret = "sk-bench-secret-0123456789abcdef"
    mock = holy_mock_factory(keys=["sk-the-only-good-key-123456"])
    result = await bench.run_bench(
        mock.url, api_key=secret, transport="both", requests=2, max_concurrency=1, max_tokens=2
    )
    assert all(set(s.error_types) == {"AuthenticationError"} for s in result.summaries.values())
    rendered = result.table() + json.dumps(result.to_dict()) + result.csv()
    assert secret not in rendered


async def test_config_error_stops_an_unpooled_run(holy_mock, monkeypatch) -> None:
    monkeypatch.delenv("HOLYSHEEP_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="HOLYSHEEP_API_KEY"):
        await bench.run_bench(holy_mock.url, requests=2, pooled=False)
