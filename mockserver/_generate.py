"""Deterministic generated replies, used when no cassette answers a request.

The text depends only on the request's model and messages and the seed (``X-Mock-Seed`` or the
server's), so a retry of the same request gets the same text, a streamed and a non-streamed
request agree, and tests can predict it. One token per delta; ``max_tokens`` answer tokens (64
when absent), after ``reasoning`` tokens of thinking when asked for.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
from collections.abc import Mapping, Sequence
from typing import Any

from ._reply import Reply

__all__ = ["DEFAULT_TOKENS", "answer_length", "generate_reply", "request_digest"]

DEFAULT_TOKENS = 64
FINGERPRINT = "fp_holynb_mock"
# `created` of every seeded reply, so that the same seed gives byte-identical streams.
SEEDED_CREATED = 1_735_689_600  # 2025-01-01T00:00:00Z

# Mostly plain English, with a few multi-byte words so that sliced writes split UTF-8 sequences.
_WORDS = (
    "the stream of tokens arrives in order and every chunk carries a small delta of text "
    "while the client renders it live without waiting for the whole answer to finish "
    "latency matters because people read faster when the first words appear quickly "
    "a notebook cell shows markdown with lists tables and code that grows as tokens land "
    "model server request response buffer network socket event reply retry timeout "
    "café naïve résumé Grüße 東京 สวัสดี Xin chào 🙂 ±5 ms → done"
).split()


def request_digest(body: dict[str, Any]) -> str:
    """A stable hash of a request body (canonical JSON)."""
    canon = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canon.encode()).hexdigest()[:32]


def count_prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """A rough prompt token count: ~4 characters per token plus per-message overhead."""
    chars = 0
    for msg in messages:
        content = msg.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            chars += sum(
                len(str(part.get("text", ""))) for part in content if isinstance(part, dict)
            )
    return max(1, chars // 4) + 3 * len(messages)


@functools.lru_cache(maxsize=1024)
def _tokens(key: str, n: int) -> tuple[str, ...]:
    rng = random.Random(key)
    choice, roll_of = rng.choice, rng.random
    tokens: list[str] = []
    capital = True
    for i in range(n):
        word = choice(_WORDS)
        if capital:
            word = word[:1].upper() + word[1:]
        piece = word if i == 0 or tokens[-1].endswith("\n") else " " + word
        capital = False
        roll = roll_of()
        if roll < 0.08:
            piece += "."
            capital = True
        elif roll < 0.11:
            piece += ".\n\n"
            capital = True
        elif roll < 0.15:
            piece += ","
        tokens.append(piece)
    return tuple(tokens)


def answer_length(
    max_tokens: int | None, *, natural: int | None = None, budget: bool = False
) -> tuple[int, bool]:
    """How many answer tokens a generated reply has, and whether ``max_tokens`` cut it.

    ``natural`` is the length the answer has on its own (``X-Mock-Tokens``; 64 when None). A
    chat-style ``max_tokens`` without it asks for exactly that many tokens (the mock's
    long-standing way to get a stream of a chosen length); with it, or when the API's
    ``max_tokens`` is a required ``budget`` (Anthropic), ``max_tokens`` only cuts the answer.
    """
    if max_tokens is None:
        return natural or DEFAULT_TOKENS, False
    if natural is None and not budget:
        return max_tokens, True
    length = natural or DEFAULT_TOKENS
    return min(length, max_tokens), max_tokens < length


def generate_reply(
    model: str,
    messages: list[dict[str, Any]],
    *,
    max_tokens: int | None,
    natural: int | None = None,
    budget: bool = False,
    reasoning: int,
    include_usage: bool,
    seed: int | None,
    reply_id: str,
    times: Sequence[float] = (),
    created: int | None = None,
    echo: Mapping[str, Any] | None = None,
) -> Reply:
    """The generated reply for a request, with its id and latency schedule (``times``).

    ``reasoning`` thinking tokens come before the answer, which is as long as
    :func:`answer_length` says. A reply cut by ``max_tokens`` is reported like OpenAI does:
    ``finish_reason`` "length".
    """
    tokens, cut = answer_length(max_tokens, natural=natural, budget=budget)
    # Cached: retries and benchmark loads repeat the same request many times.
    key = request_digest({"model": model, "messages": messages, "seed": seed})
    return Reply(
        id=reply_id,
        created=created if created is not None else SEEDED_CREATED,
        model=model,
        content=_tokens(f"text:{key}", tokens),
        reasoning=_tokens(f"reasoning:{key}", reasoning) if reasoning else (),
        finish_reason="length" if cut else "stop",
        prompt_tokens=count_prompt_tokens(messages),
        include_usage=include_usage,
        times=times,
        fingerprint=FINGERPRINT,
        echo=echo or {},
    )


