"""Model prices and the one cost rule every face (``%%holy``, ``ChatPanel``, the CLI) uses.

Prices are US$ per million tokens, separately for input (prompt) and output (completion,
reasoning included) tokens. The defaults are the providers' list prices; their output prices
are the figures of the HolySheep price list (see docs/client.md, "Cost"). A face's ``prices``
option is merged over the defaults, one model at a time; a model's price is given as

- ``Price(input, output)``, a pair ``(input, output)`` or ``{"input": x, "output": y}``;
- a single number: one price for every token, input and output alike.

A model with no known price has no cost (``None``), never a guessed one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_PRICES", "Price", "cost_usd", "price_table"]


@dataclass(frozen=True, slots=True)
class Price:
    """US$ per million input tokens and per million output tokens of one model."""

    input: float
    output: float

    @classmethod
    def of(cls, value: Any) -> Price:
        """A price from any accepted form (see the module docstring)."""
        if isinstance(value, Price):
            return value
        if isinstance(value, bool):
            raise TypeError(f"a price is a number or (input, output), got {value!r}")
        if isinstance(value, int | float):
            return cls(float(value), float(value))
        if isinstance(value, Mapping) and set(value) == {"input", "output"}:
            return cls(float(value["input"]), float(value["output"]))
        if isinstance(value, list | tuple) and len(value) == 2:
            return cls(float(value[0]), float(value[1]))
        raise TypeError(
            f"a price is a number (US$ per million tokens) or (input, output), got {value!r}"
        )


DEFAULT_PRICES: dict[str, Price] = {
    "gpt-4.1": Price(2.00, 8.00),
    "claude-sonnet-4.5": Price(3.00, 15.00),
    "gemini-2.5-flash": Price(0.30, 2.50),
    "deepseek-v3.2": Price(0.28, 0.42),
}


def price_table(overrides: Mapping[str, Any] | None = None) -> dict[str, Price]:
    """The default prices with ``overrides`` merged over them (one model at a time)."""
    table = dict(DEFAULT_PRICES)
    for model, value in (overrides or {}).items():
        table[model] = Price.of(value)
    return table


def cost_usd(
    model: str,
    *,
    input_tokens: int = 0,
    output_tokens: int = 0,
    prices: Mapping[str, Any] | None = None,
) -> float | None:
    """Cost in US$ of one reply; None when ``model`` has no known price.

    ``prices`` are overrides merged over :data:`DEFAULT_PRICES`.
    """
    value = prices.get(model) if prices else None
    price = Price.of(value) if value is not None else DEFAULT_PRICES.get(model)
    if price is None:
        return None
    return (input_tokens * price.input + output_tokens * price.output) / 1_000_000
