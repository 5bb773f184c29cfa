"""Bench: the same ~2,000-token Markdown answer streamed into a REAL kernel two ways.

1. holynb's ``%%holy`` (budgeted renderer: one output per finished block, sent once, the block
   in progress ≤ 20/s, a final render that completes the last block in place);
2. the naive cell most streaming magics use: ``update_display(Markdown(text))`` per token.

The answer is the shipped ``long-markdown`` cassette (1,934 tokens) replayed by the mock
server at ``--speed`` (1.5 ≈ 100 tokens/s, ~19 s per way). All IOPub messages of each cell are
collected with their kernel-side timestamps (``header.date``). Reported per way:

- display messages (display_data + update_display_data + clear_output) and their wire bytes
  (every frame of the signed message, as ``Session.serialize`` produces it) and payload bytes
  (the ``data`` bundles only);
- max display messages in any 1 s window;
- on-screen lag per token: the time from the moment the mock server was scheduled to send the
  token (request start + cassette offset / speed) to the first IOPub message whose visible
  text contains it (mean, p95, max);
- whether the final rendered outputs (joined) equal the full answer.

Run: ``python bench/magic_render.py [--speed 1.5] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import sys
import time
from typing import Any

from jupyter_client.manager import KernelManager

from mockserver import MOCK_KEY, MockServer
from mockserver._cassettes import SHIPPED_DIR, content_deltas, load_cassette

CASSETTE = SHIPPED_DIR / "long-markdown.json"

NAIVE_CELL = """\
from IPython.display import Markdown, display
import holynb
_handle = display(Markdown(""), display_id=True)
_text = ""
with holynb.Client() as _c:
    with _c.stream({prompt!r}) as _s:
        for _delta in _s:
            _text += _delta
            _handle.update(Markdown(_text))
"""


def cassette() -> tuple[str, list[tuple[float, str]]]:
    """(prompt, [(offset s, delta)]) of the long Markdown cassette."""
    doc = load_cassette(CASSETTE)
    return doc.match["prompt"], content_deltas(doc)


def run_cell(kc: Any, code: str) -> list[dict[str, Any]]:
    """Execute ``code``; return its IOPub messages (until the kernel is idle again)."""
    msg_id = kc.execute(code)
    messages = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            msg = kc.get_iopub_msg(timeout=10)
        except queue.Empty:
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        messages.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return messages
    raise RuntimeError("the cell did not finish in 300 s")


class Screen:
    """What a frontend shows for one cell, updated message by message."""

    def __init__(self) -> None:
        self.outputs: list[dict[str, Any]] = []
        self._pending_clear = False

    def apply(self, msg: dict[str, Any]) -> None:
        kind, content = msg["msg_type"], msg["content"]
        if kind == "clear_output":
            if content["wait"]:
                self._pending_clear = True
            else:
                self.outputs.clear()
            return
        if kind == "update_display_data":
            for out in self.outputs:
                if out["id"] == content["transient"]["display_id"]:
                    out["data"] = content["data"]
            return
        if kind != "display_data":
            return
        if self._pending_clear:
            self.outputs.clear()
            self._pending_clear = False
        display_id = (content.get("transient") or {}).get("display_id")
        self.outputs.append({"id": display_id, "data": content["data"]})

    def markdown(self) -> str:
        """The Markdown outputs, in order, joined (the answer as displayed)."""
        return "".join(o["data"].get("text/markdown", "") for o in self.outputs)


def common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    step = 1024
    while i < n and a[i : i + step] == b[i : i + step]:
        i += step
    i = max(0, i - step) if i else 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def measure(
    name: str, kc: Any, code: str, mock: MockServer, full: str, deltas: list, speed: float
) -> dict[str, Any]:
    mock.reset()
    messages = run_cell(kc, code)
    record = [r for r in mock.journal() if r["path"].endswith("/chat/completions")][-1]
    start = record["started"]
    display = [m for m in messages if m["msg_type"] in DISPLAY_TYPES]
    wire = sum(len(part) for m in display for part in kc.session.serialize(m))
    payload = sum(len(json.dumps(m["content"].get("data", {}))) for m in display)
    stamps = [m["header"]["date"].timestamp() for m in display]
    max_window = max(sum(1 for t in stamps if s <= t < s + 1.0) for s in stamps)
    # When did each token first become visible?
    ends, pos = [], 0
    for _, delta in deltas:
        pos += len(delta)
        ends.append(pos)
    screen = Screen()
    visible_at: list[float] = []
    token = 0
    for msg, stamp in zip(display, stamps, strict=True):
        screen.apply(msg)
        covered = common_prefix(screen.markdown(), full)
        while token < len(ends) and ends[token] <= covered:
            visible_at.append(stamp)
            token += 1
    lags = [
        (seen - (start + at / speed)) * 1000
        for seen, (at, _) in zip(visible_at, deltas, strict=False)
    ]
    lags.sort()
    final = screen.markdown()  # %%holy: one output per block; naive: one output
    return {
        "way": name,
        "messages": len(display),
        "wire_bytes": wire,
        "payload_bytes": payload,
        "max_msgs_per_s": max_window,
        "lag_mean_ms": statistics.fmean(lags) if lags else None,
        "lag_p95_ms": lags[int(0.95 * (len(lags) - 1))] if lags else None,
        "lag_max_ms": lags[-1] if lags else None,
        "tokens_seen": len(visible_at),
        "final_equals_answer": final == full,
        "duration_s": stamps[-1] - stamps[0] if stamps else 0.0,
    }


DISPLAY_TYPES = ("display_data", "update_display_data", "clear_output")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed", type=float, default=1.5, help="cassette replay speed")
    parser.add_argument(
        "--rates",
        default="20",
        help="comma-separated HolyMagics.max_updates_per_s values to run holynb at",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    opts = parser.parse_args()
    prompt, deltas = cassette()
    full = "".join(d for _, d in deltas)
    results = []
    with MockServer(speed=opts.speed, seed=0) as mock:
        km = KernelManager(kernel_name="python3")
        env = {**os.environ, "HOLYSHEEP_BASE_URL": mock.url, "HOLYSHEEP_API_KEY": MOCK_KEY}
        km.start_kernel(env=env)
        kc = km.client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=60)
            run_cell(kc, "%load_ext holynb")
            for rate in [float(r) for r in opts.rates.split(",")]:
                run_cell(kc, f"%config HolyMagics.max_updates_per_s = {rate}")
                holy = f"%%holy\n{prompt}"
                way = f"%%holy @{rate:g}/s"
                results.append(measure(way, kc, holy, mock, full, deltas, opts.speed))
            naive = NAIVE_CELL.format(prompt=prompt)
            results.append(measure("naive per-token", kc, naive, mock, full, deltas, opts.speed))
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
    if opts.json:
        print(json.dumps(results, indent=2))
        return 0
    naive = results[-1]
    print(f"answer: {len(deltas)} tokens, {len(full):,} chars, replay speed {opts.speed}×")
    cols = ["messages", "wire_bytes", "payload_bytes", "max_msgs_per_s"]
    cols += ["lag_mean_ms", "lag_p95_ms", "lag_max_ms", "final_equals_answer", "duration_s"]
    print(f"{'':<22}" + "".join(f"{r['way']:>20}" for r in results))
    for col in cols:
        cells = []
        for r in results:
            v = r[col]
            cells.append(f"{v:>20,.1f}" if isinstance(v, float) else f"{v!s:>20}")
        print(f"{col:<22}" + "".join(cells))
    ok = True
    for holy in results[:-1]:
        ratio = naive["wire_bytes"] / holy["wire_bytes"]
        pratio = naive["payload_bytes"] / holy["payload_bytes"]
        print(
            f"\n{holy['way']}: 1/{pratio:.0f} of the naive display payload bytes, "
            f"1/{ratio:.0f} of its wire bytes (IOPub envelope ≈ "
            f"{(holy['wire_bytes'] - holy['payload_bytes']) / holy['messages']:.0f} B/message)"
        )
        checks = {
            "payload bytes <= 1/50 naive": pratio >= 50,
            "wire bytes <= 1/50 naive": ratio >= 50,
            "<= 20 display msgs in any 1 s": holy["max_msgs_per_s"] <= 20,
            "lag p95 <= 100 ms": (holy["lag_p95_ms"] or 0) <= 100,
            "final output == full answer": holy["final_equals_answer"],
        }
        for check, passed in checks.items():
            print(f"  {'PASS' if passed else 'MISS'}  {check}")
        ok = ok and all(v for k, v in checks.items() if not k.startswith("wire"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
