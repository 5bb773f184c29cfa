"""Deterministic generated replies, used when no cassette answers a request.

The text depends only on the request's model and messages and the seed (``X-Mock-Seed`` or the
server's), so a retry of the same request gets the same text, a streamed and a non-streamed
request agree, and tests can predict it. One token per chunk; ``max_tokens`` tokens (64 when
absent).
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ._request import ChatRequest

__all__ = [
    "DEFAULT_TOKENS",
    "Completion",
    "completion_body",
    "iter_chunk_payloads",
    "make_completion",
    "request_digest",
]

DEFAULT_TOKENS = 64
FINGERPRINT = "fp_holynb_mock"

# Mostly plain English, with a few multi-byte words so that sliced writes split UTF-8 sequences.
_WORDS = (
    "the stream of tokens arrives in order and every chunk carries a small delta of text "
    "while the client renders it live without waiting for the whole answer to finish "
    "latency matters because people read faster when the first words appear quickly "
    "a notebook cell shows markdown with lists tables and code that grows as tokens land "
    "model server request response buffer network socket event reply retry timeout "
    "café naïve résumé Grüße 東京 สวัสดี Xin chào 🙂 ±5 ms → done"
).split()


@dataclass(frozen=True, slots=True)
class Completion:
    """A generated (or assembled) reply, ready to be framed for any transport."""

    id: str
    created: int
    model: str
    tokens: list[str]
    finish_reason: str
    prompt_tokens: int
    include_usage: bool

    @property
    def text(self) -> str:
        """The whole reply text."""
        return "".join(self.tokens)

    def usage(self) -> dict[str, int]:
        """OpenAI ``usage`` object."""
        n = len(self.tokens)
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": n,
            "total_tokens": self.prompt_tokens + n,
        }


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
    rng = random.Random(f"text:{key}")
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


def generate_tokens(
    model: str, messages: list[dict[str, Any]], n: int, *, seed: int | None
) -> list[str]:
    """``n`` tokens of deterministic prose for this model, messages and seed."""
    # Cached: retries and benchmark loads repeat the same request many times.
    return list(_tokens(request_digest({"model": model, "messages": messages, "seed": seed}), n))


def make_completion(
    req: ChatRequest, *, seed: int | None, rng: random.Random, created: int
) -> Completion:
    """The generated reply for a request; ``rng`` supplies the completion id."""
    n = req.max_tokens or DEFAULT_TOKENS
    tokens = generate_tokens(req.model, req.messages, n, seed=seed)
    return Completion(
        id=f"chatcmpl-{rng.getrandbits(96):024x}",
        created=created,
        model=req.model,
        tokens=tokens,
        # A reply cut by an explicit max_tokens is reported like OpenAI does: "length".
        finish_reason="length" if req.max_tokens is not None else "stop",
        prompt_tokens=count_prompt_tokens(req.messages),
        include_usage=req.include_usage,
    )


def iter_chunk_payloads(c: Completion) -> Iterator[str]:
    """One ``chat.completion.chunk`` JSON per token, then the usage chunk if asked for.

    The first chunk carries ``role``; the last content chunk carries ``finish_reason``.
    A generator built on string templates: chunks are made as they are sent, so a burst of
    requests does not block the event loop, and json.dumps of a dict per token is avoided.
    """
    head = json.dumps(
        {
            "id": c.id,
            "object": "chat.completion.chunk",
            "created": c.created,
            "model": c.model,
            "system_fingerprint": FINGERPRINT,
        },
        ensure_ascii=False,
    )[:-1]
    dumps = _dump_str
    last = len(c.tokens) - 1
    finish = dumps(c.finish_reason)
    for i, token in enumerate(c.tokens):
        yield (
            f'{head}, "choices": [{{"index": 0, "delta": {{'
            f'{_ROLE if i == 0 else ""}"content": {dumps(token)}}}, "logprobs": null, '
            f'"finish_reason": {finish if i == last else "null"}}}]}}'
        )
    if c.include_usage:
        yield f'{head}, "choices": [], "usage": {json.dumps(c.usage())}}}'


_ROLE = '"role": "assistant", '
_dump_str = json.JSONEncoder(ensure_ascii=False).encode


def completion_body(c: Completion) -> dict[str, Any]:
    """The non-streaming ``chat.completion`` object."""
    return {
        "id": c.id,
        "object": "chat.completion",
        "created": c.created,
        "model": c.model,
        "system_fingerprint": FINGERPRINT,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": c.text, "refusal": None},
                "logprobs": None,
                "finish_reason": c.finish_reason,
            }
        ],
        "usage": c.usage(),
    }
