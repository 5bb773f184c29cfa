"""Model prices (US$ per million output tokens, from the HolySheep price list)."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["DEFAULT_PRICES", "cost_usd"]

DEFAULT_PRICES: dict[str, float] = {
    "gpt-4.1": 8.00,
    "claude-sonnet-4.5": 15.00,
    "gemini-2.5-flash": 2.50,
    "deepseek-v3.2": 0.42,
}


def cost_usd(model: str, tokens: int, prices: Mapping[str, float] | None = None) -> float | None:
    """Cost in US$ of ``tokens`` tokens of ``model``; None when the model has no known price."""
    table = DEFAULT_PRICES if prices is None else prices
    price = table.get(model)
    if price is None:
        return None
    return tokens * price / 1_000_000
