"""Per-stream statistics (definitions in docs/client.md) and the one stats line of every face."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from holynb._pricing import cost_usd

__all__ = ["StreamStats", "api_label", "format_cost", "reply_cost", "stats_line"]


@dataclass(slots=True)
class StreamStats:
    """Timing and size figures of one stream, filled in while it runs.

    - ``ttft_s``: request start (first attempt) to the first non-empty content delta.
    - ``ttfr_s``: request start to the first reasoning (thinking) delta, None without one.
    - ``reasoning_s``: first reasoning delta to the first content delta (or to the end when no
      content came); ``reasoning_tokens``: ``usage.completion_tokens_details.reasoning_tokens``
      when the server reports it, else reasoning chunks.
    - ``itl_s``: gaps between consecutive content chunks (chunks read together get 0.0).
    - ``tokens``: ``usage.completion_tokens`` when the server sent usage; else what the model
      generated as it arrived: content chunks plus tool-call chunks (those carrying a function
      name or arguments), so a reply that only calls tools is not "0 tokens". Reasoning chunks
      are counted apart, in ``reasoning_tokens``.
    - ``tokens_per_s``: ``tokens / (total_s - ttft_s)``, the generation rate after the first token.
    - ``total_s``: request start to the end of the stream (or to the failure).
    - ``retries``: attempts retried before the first delta; ``bytes``: body bytes read;
      ``chunks``: data chunks received; ``skipped_chunks``: malformed chunks skipped.
    """

    ttft_s: float | None = None
    itl_s: list[float] = field(default_factory=list)
    tokens: int = 0
    tokens_per_s: float | None = None
    total_s: float | None = None
    retries: int = 0
    bytes: int = 0
    chunks: int = 0
    skipped_chunks: int = 0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int = 0
    ttfr_s: float | None = None
    reasoning_s: float | None = None

    def finish(self, total_s: float) -> None:
        """Set ``total_s``, prefer usage for ``tokens`` and compute ``tokens_per_s``."""
        self.total_s = total_s
        if self.ttfr_s is not None and self.reasoning_s is None and self.ttft_s is None:
            self.reasoning_s = total_s - self.ttfr_s
        if self.completion_tokens is not None:
            self.tokens = self.completion_tokens
        if self.ttft_s is not None and total_s > self.ttft_s and self.tokens:
            self.tokens_per_s = self.tokens / (total_s - self.ttft_s)

    def to_dict(self) -> dict[str, Any]:
        """The figures as a plain dict (JSON-serialisable)."""
        return asdict(self)

    def __str__(self) -> str:
        ttft = "–" if self.ttft_s is None else f"{self.ttft_s * 1000:.0f} ms"
        rate = "–" if self.tokens_per_s is None else f"{self.tokens_per_s:.1f} tok/s"
        total = "–" if self.total_s is None else f"{self.total_s:.2f} s"
        retries = f", {self.retries} retries" if self.retries else ""
        return f"TTFT {ttft} · {self.tokens} tokens · {rate} · total {total}{retries}"


def format_cost(cost: float) -> str:
    """US$ with enough digits to show a one-reply cost (``$0.000061``, ``$0.0123``)."""
    return f"${cost:.6f}" if cost < 0.01 else f"${cost:.4f}"


def reply_cost(
    stats: StreamStats, model: str, prices: Mapping[str, Any] | None = None
) -> float | None:
    """What the reply cost under the one price rule of ``holynb._pricing``; None if unknown."""
    # Usage's completion_tokens include the reasoning tokens; without usage, both were counted.
    output = stats.tokens if stats.completion_tokens is not None else (
        stats.tokens + stats.reasoning_tokens
    )
    if not output and not stats.prompt_tokens:
        return None
    return cost_usd(
        model, input_tokens=stats.prompt_tokens or 0, output_tokens=output, prices=prices
    )


def api_label(api: str) -> str:
    """How the faces name an API: ``chat completions``, ``Responses``, ``Anthropic Messages``."""
    from holynb._apis import load_api  # the API modules import this one

    return load_api(api).label


def stats_line(
    stats: StreamStats,
    *,
    model: str,
    transport: str | None = None,
    api: str | None = None,
    prices: Mapping[str, Any] | None = None,
) -> str:
    """The one stats line every face shows under a reply (figures not known are left out).

    E.g. ``deepseek-v3.2 · SSE · thinking 2.1 s (60 tokens) · TTFT 98 ms · 120 tokens
    (+24 prompt) · 71.2 tok/s · total 1.79 s · $0.000055 · 1 retry``. An API other than chat
    completions is named after the model (``claude-sonnet-4.5 · Anthropic Messages · SSE · …``).
    """
    parts = [model]
    if api and api != "chat":
        parts.append(api_label(api))
    if transport:
        parts.append(transport.upper())
    if stats.reasoning_tokens or stats.reasoning_s is not None:
        seconds = f"{stats.reasoning_s:.1f} s " if stats.reasoning_s is not None else ""
        parts.append(f"thinking {seconds}({stats.reasoning_tokens} tokens)")
    if stats.ttft_s is not None:
        parts.append(f"TTFT {stats.ttft_s * 1000:.0f} ms")
    tokens = f"{stats.tokens} tokens"
    if stats.prompt_tokens:
        tokens += f" (+{stats.prompt_tokens} prompt)"
    parts.append(tokens)
    if stats.tokens_per_s is not None:
        parts.append(f"{stats.tokens_per_s:.1f} tok/s")
    if stats.total_s is not None:
        parts.append(f"total {stats.total_s:.2f} s")
    cost = reply_cost(stats, model, prices)
    if cost is not None:
        parts.append(format_cost(cost))
    if stats.retries:
        parts.append(f"{stats.retries} retr{'y' if stats.retries == 1 else 'ies'}")
    return " · ".join(parts)
