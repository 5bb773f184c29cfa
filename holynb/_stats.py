"""Per-stream statistics (definitions in docs/client.md)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["StreamStats"]


@dataclass(slots=True)
class StreamStats:
    """Timing and size figures of one stream, filled in while it runs.

    - ``ttft_s``: request start (first attempt) to the first non-empty content delta.
    - ``ttfr_s``: request start to the first reasoning (thinking) delta, None without one.
    - ``reasoning_s``: first reasoning delta to the first content delta (or to the end when no
      content came); ``reasoning_tokens``: ``usage.completion_tokens_details.reasoning_tokens``
      when the server reports it, else reasoning chunks.
    - ``itl_s``: gaps between consecutive content chunks (chunks read together get 0.0).
    - ``tokens``: ``usage.completion_tokens`` when the server sent usage, else content chunks.
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
