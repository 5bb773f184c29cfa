"""Bench: bytes ChatPanel sends to the browser for one streamed reply, against re-rendering.

Two replies are fed to the panel's live view (``holynb.notebook.panel_live.LiveReply``) on a real
asyncio loop, as fast as a fast model streams (8 tokens per millisecond), and every value the
widgets send is counted (each new widget's first value, each value change):

1. the synthetic ~1,700-token reply of ``tests/panel/test_panel_live.py`` (paragraphs and
   Python code blocks) — the figure the panel's budget is stated in (12.8 kB before issue 11);
2. the shipped ``long-markdown`` cassette (1,934 tokens: headings, lists, a table, code).

For each: widget values sent, bytes sent (of which the final render), and what re-rendering the
whole reply as HTML on every token would send. Run: ``python bench/panel_render.py``.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import ipywidgets as w

from holynb.notebook.panel_live import UPDATE_INTERVAL_S, LiveReply
from holynb.notebook.safe_markdown import render_html
from mockserver._cassettes import SHIPPED_DIR, content_deltas, load_cassette

BEFORE_BYTES = 12_800  # the synthetic reply's bytes before issue 11 (docs/panel.md)


def synthetic_tokens(paragraphs: int = 30, words: int = 40) -> list[str]:
    """The reply of tests/panel/test_panel_live.py: prose with a code block every 5 paragraphs."""
    tokens: list[str] = []
    for p in range(paragraphs):
        if p % 5 == 4:
            tokens += ["```python\n", *[f"x{i} = {i}\n" for i in range(8)], "```\n\n"]
        tokens += [f"word{p}_{i} " for i in range(words)]
        tokens.append(".\n\n")
    return tokens


async def measure(tokens: list[str]) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    box = w.VBox()
    live = LiveReply(box, loop)
    sent: list[int] = []
    watched: set[int] = set()

    def watch(widget: w.Widget) -> None:
        watched.add(id(widget))
        widget.observe(lambda change: sent.append(len(change["new"])), "value")

    def on_children(change: dict[str, Any]) -> None:
        for child in change["new"]:
            if id(child) not in watched:
                sent.append(len(child.value))
                watch(child)

    for child in box.children:
        watch(child)
    box.observe(on_children, "children")
    for i in range(0, len(tokens), 8):  # ~8 tokens per millisecond
        for token in tokens[i : i + 8]:
            live.feed(token)
        await asyncio.sleep(0.001)
    await asyncio.sleep(UPDATE_INTERVAL_S * 2)
    before_final = sum(sent)
    live.finish()
    text = "".join(tokens)
    naive = 0
    for n in range(1, len(tokens) + 1):
        naive += len(render_html("".join(tokens[:n])))
    live.discard()
    return {
        "tokens": len(tokens),
        "chars": len(text),
        "values": len(sent),
        "bytes": sum(sent),
        "final_bytes": sum(sent) - before_final,
        "naive_bytes": naive,
    }


def main() -> int:
    cassette = load_cassette(SHIPPED_DIR / "long-markdown.json")
    replies = {
        "synthetic reply": synthetic_tokens(),
        "long-markdown cassette": [delta for _, delta in content_deltas(cassette)],
    }
    rows = {name: asyncio.run(measure(tokens)) for name, tokens in replies.items()}
    print(f"{'':<24}{'tokens':>8}{'values':>8}{'bytes':>10}{'final':>8}{'per-token':>12}{'ratio':>8}")
    for name, r in rows.items():
        ratio = r["naive_bytes"] / r["bytes"]
        print(
            f"{name:<24}{r['tokens']:>8}{r['values']:>8}{r['bytes']:>10,}{r['final_bytes']:>8,}"
            f"{r['naive_bytes']:>12,}{'1/' + format(ratio, '.0f'):>8}"
        )
    synthetic = rows["synthetic reply"]["bytes"]
    within = synthetic <= 2 * BEFORE_BYTES
    print(
        f"\nsynthetic reply: {synthetic / 1000:.1f} kB vs {BEFORE_BYTES / 1000:.1f} kB before "
        f"(×{synthetic / BEFORE_BYTES:.2f}); {'PASS' if within else 'MISS'} within 2×"
    )
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
