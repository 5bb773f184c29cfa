"""One price rule and one stats line for every face (magic, panel, CLI)."""

from __future__ import annotations

import pytest

from holynb._pricing import DEFAULT_PRICES, Price, cost_usd, price_table
from holynb._stats import StreamStats, format_cost, reply_cost, stats_line


def test_default_prices_have_input_and_output() -> None:
    # Output prices are the HolySheep price list's; input prices the providers' list prices.
    assert {m: p.output for m, p in DEFAULT_PRICES.items()} == {
        "gpt-4.1": 8.0,
        "claude-sonnet-4.5": 15.0,
        "gemini-2.5-flash": 2.5,
        "deepseek-v3.2": 0.42,
    }
    assert all(p.input < p.output for p in DEFAULT_PRICES.values())


def test_input_and_output_tokens_are_charged_at_their_own_price() -> None:
    cost = cost_usd("gpt-4.1", input_tokens=1_000_000, output_tokens=1_000_000)
    assert cost == pytest.approx(2.0 + 8.0)
    assert cost_usd("deepseek-v3.2", output_tokens=500) == pytest.approx(0.00021)
    assert cost_usd("unknown-model", output_tokens=10) is None


@pytest.mark.parametrize(
    ("value", "price"),
    [
        (1.0, Price(1.0, 1.0)),
        (3, Price(3.0, 3.0)),
        ((0.5, 2.0), Price(0.5, 2.0)),
        ([0.5, 2.0], Price(0.5, 2.0)),
        ({"input": 0.5, "output": 2.0}, Price(0.5, 2.0)),
        (Price(1.0, 2.0), Price(1.0, 2.0)),
    ],
)
def test_price_forms(value: object, price: Price) -> None:
    assert Price.of(value) == price


@pytest.mark.parametrize("value", ["cheap", True, (1.0,), {"in": 1.0, "out": 2.0}, None])
def test_bad_prices_say_what_a_price_is(value: object) -> None:
    with pytest.raises(TypeError, match="a price is a number"):
        Price.of(value)


def test_overrides_merge_over_the_defaults() -> None:
    table = price_table({"mine": 1.0, "gpt-4.1": (1.0, 4.0)})
    assert table["mine"] == Price(1.0, 1.0)
    assert table["gpt-4.1"] == Price(1.0, 4.0)
    assert table["deepseek-v3.2"] == DEFAULT_PRICES["deepseek-v3.2"]
    assert cost_usd("mine", output_tokens=2_000_000, prices={"mine": 1.0}) == 2.0
    assert cost_usd("deepseek-v3.2", output_tokens=10**6, prices={"mine": 1.0}) == 0.42


def test_one_stats_line() -> None:
    stats = StreamStats(ttft_s=0.098, tokens=120, prompt_tokens=24, retries=1)
    stats.finish(1.79)
    line = stats_line(stats, model="deepseek-v3.2", transport="sse")
    assert line == (
        "deepseek-v3.2 · SSE · TTFT 98 ms · 120 tokens (+24 prompt) · 70.9 tok/s · "
        "total 1.79 s · $0.000057 · 1 retry"
    )
    bare = stats_line(StreamStats(), model="x-model")
    assert bare == "x-model · 0 tokens"  # nothing known, no cost invented


def test_cost_formatting_and_reply_cost() -> None:
    assert format_cost(0.000057) == "$0.000057"
    assert format_cost(1.5) == "$1.5000"
    stats = StreamStats(tokens=1000, prompt_tokens=1000)
    assert reply_cost(stats, "gpt-4.1") == pytest.approx((2.0 + 8.0) / 1000)
    assert reply_cost(StreamStats(), "gpt-4.1") is None


def test_reasoning_in_the_stats_line_and_the_cost() -> None:
    stats = StreamStats(ttft_s=2.2, tokens=40, reasoning_tokens=60, ttfr_s=0.1, reasoning_s=2.1)
    stats.finish(3.0)
    line = stats_line(stats, model="deepseek-v3.2", transport="ws")
    assert line.startswith("deepseek-v3.2 · WS · thinking 2.1 s (60 tokens) · TTFT 2200 ms · ")
    # No usage: the reasoning chunks are output tokens too.
    assert reply_cost(stats, "deepseek-v3.2") == pytest.approx(100 * 0.42 / 1e6)
    # Usage's completion_tokens already include them.
    stats = StreamStats(tokens=100, completion_tokens=100, reasoning_tokens=60)
    assert reply_cost(stats, "deepseek-v3.2") == pytest.approx(100 * 0.42 / 1e6)
