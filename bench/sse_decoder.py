"""SSE decoding speed: holynb.sse vs httpx-sse vs the openai SDK, on the same bytes.

Builds a realistic stream of ~100k ``chat.completion.chunk`` events (``data: {...}\\n\\n``,
~190 bytes each, some Thai and emoji, ending in ``[DONE]``) and feeds it to each decoder in
4 KiB and 64 KiB pieces and one event per read, the way each library is fed by its own HTTP
layer. Prints events/s (best of a few rounds) and the speed-up over each peer.

    python bench/sse_decoder.py [--events 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import codecs
import json
import time
from collections.abc import Callable, Iterable

from holynb.sse import SSEDecoder

Decoder = Callable[[Iterable[bytes]], int]

WORDS = ["The", " quick", " brown", " fox", " สวัสดี", " ครับ", " 🎉", " jumps", "\n\n", " `code`"]


def make_stream(n: int) -> bytes:
    """A chat-completions SSE body with n content chunks, a finish chunk and [DONE]."""
    parts = []
    for i in range(n):
        chunk = {
            "id": "chatcmpl-9f8e7d6c5b4a",
            "object": "chat.completion.chunk",
            "created": 1732200000,
            "model": "deepseek-v3.2",
            "choices": [
                {"index": 0, "delta": {"content": WORDS[i % len(WORDS)]}, "finish_reason": None}
            ],
        }
        parts.append(b"data: " + json.dumps(chunk, ensure_ascii=False).encode() + b"\n\n")
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


def holynb_decoder(chunks: Iterable[bytes]) -> int:
    """holynb.sse: bytes in, events out."""
    decoder = SSEDecoder()
    n = 0
    for chunk in chunks:
        n += len(decoder.feed(chunk))
    decoder.close()
    return n


def httpx_sse_decoder(chunks: Iterable[bytes]) -> int:
    """httpx-sse, fed as ``EventSource.aiter_sse`` feeds it.

    httpx's ``aiter_text`` decodes bytes with an incremental UTF-8 decoder, ``SSELineDecoder``
    splits the text into lines, and each line (``rstrip("\\n")``) goes to ``SSEDecoder.decode``.
    """
    from httpx_sse._decoders import SSEDecoder as HttpxSSEDecoder
    from httpx_sse._decoders import SSELineDecoder

    text_decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    lines = SSELineDecoder()
    decoder = HttpxSSEDecoder()
    n = 0
    for chunk in chunks:
        text = text_decoder.decode(chunk)
        if not text:
            continue
        for line in lines.decode(text):
            if decoder.decode(line.rstrip("\n")) is not None:
                n += 1
    for line in lines.flush():
        if decoder.decode(line.rstrip("\n")) is not None:
            n += 1
    return n


def openai_decoder(chunks: Iterable[bytes]) -> int:
    """The openai SDK's decoder (``openai._streaming.SSEDecoder.iter_bytes``)."""
    from openai._streaming import SSEDecoder as OpenAISSEDecoder

    return sum(1 for _ in OpenAISSEDecoder().iter_bytes(iter(chunks)))


def measure(decoder: Decoder, chunks: list[bytes], expected: int, rounds: int) -> float:
    """Best events/s over `rounds` runs; checks that every event came out."""
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        n = decoder(chunks)
        elapsed = time.perf_counter() - start
        if n != expected:
            raise SystemExit(f"{decoder.__name__} decoded {n} events, expected {expected}")
        best = max(best, n / elapsed)
    return best


def main() -> None:
    """Run the comparison and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="content chunks in the stream")
    parser.add_argument("--rounds", type=int, default=3, help="runs per cell; the best counts")
    args = parser.parse_args()

    body = make_stream(args.events)
    expected = args.events + 1
    events = [part + b"\n\n" for part in body.split(b"\n\n")[:-1]]
    feeds = {
        "4 KiB reads": [body[i : i + 4096] for i in range(0, len(body), 4096)],
        "64 KiB reads": [body[i : i + 65536] for i in range(0, len(body), 65536)],
        "1 event/read": events,
    }
    decoders: dict[str, Decoder] = {
        "holynb.sse": holynb_decoder,
        "httpx-sse": httpx_sse_decoder,
        "openai SDK": openai_decoder,
    }
    print(
        f"stream: {expected:,} events, {len(body) / expected:.0f} bytes/event on average, "
        f"{len(body) / 2**20:.1f} MiB; best of {args.rounds}"
    )
    header = f"{'feed':<14}" + "".join(f"{name:>16}" for name in decoders) + "   holynb speed-up"
    print(header)
    print("-" * len(header))
    for feed_name, chunks in feeds.items():
        rates = {name: measure(fn, chunks, expected, args.rounds) for name, fn in decoders.items()}
        ours = rates["holynb.sse"]
        ratios = ", ".join(f"{ours / r:.1f}x {name}" for name, r in rates.items() if r != ours)
        cells = "".join(f"{r:>14,.0f}/s" for r in rates.values())
        print(f"{feed_name:<14}{cells}   {ratios}")


if __name__ == "__main__":
    main()
