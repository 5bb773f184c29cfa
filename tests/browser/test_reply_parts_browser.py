"""Tool calls and thinking, as both faces show them in the browser (the real client and mock)."""

from __future__ import annotations

import re
import time

from browser_helpers import TOOL_BLOCKS_JS, WEATHER, NotebookPage


def test_tool_calls_show_name_and_arguments(nb: NotebookPage) -> None:
    cells = [
        "%load_ext holynb\n%holy mock start --speed 2",
        f"%%holy -o reply\n{WEATHER}",
        "[call['function']['name'] for call in reply.tool_calls]",
        "from holynb import ChatPanel\npanel = ChatPanel(mock={'speed': 2})\npanel",
        f"await panel.send({WEATHER!r})",
    ]
    nb.open("tools.ipynb", cells)
    nb.run_all()
    nb.wait_executed(4)
    magic = nb.page.evaluate(TOOL_BLOCKS_JS, ".jp-OutputArea-output.jp-RenderedMarkdown")
    panel = nb.page.evaluate(TOOL_BLOCKS_JS, ".holynb-panel .holynb-tool-call")
    for face, blocks in (("magic", magic), ("panel", panel)):
        assert len(blocks) == 2, (face, blocks)
        for block, city in zip(blocks, ("Bangkok", "Chiang Mai"), strict=True):
            assert "get_weather" in block["text"], (face, block)
            # Pretty-printed arguments: one key per line, indented.
            assert f'"{city}' in block["code"] and '\n  "' in block["code"], (face, block)
    assert "'get_weather', 'get_weather'" in nb.output_text(2)  # -o gets the tool calls
    stats = nb.output_text(1).strip().splitlines()[-1]
    assert stats.startswith("deepseek-v3.2 · SSE") and "tokens" in stats
    nb.screenshot("tool-calls")


# Samples the thinking blocks of both faces on every change: open or not, and their summary.
WATCH_THINKING_JS = """() => {
  window.__holynbThinking = [];
  const check = () => {
    for (const d of document.querySelectorAll('details.holynb-thinking')) {
      const face = d.closest('.holynb-panel') ? 'panel' : 'magic';
      const answered = face === 'panel'
        ? !!d.closest('.holynb-msg').querySelector('.holynb-answer')?.innerText.trim()
        : d.closest('.jp-OutputArea').querySelectorAll('.jp-RenderedMarkdown').length > 1;
      window.__holynbThinking.push({face, open: d.open, answered,
        summary: d.querySelector('summary').innerText});
    }
  };
  new MutationObserver(check).observe(document.body,
    {subtree: true, childList: true, characterData: true, attributes: true});
}"""


def test_thinking_block_open_while_thinking_then_collapsed(nb: NotebookPage) -> None:
    cells = [
        "%load_ext holynb\n%holy mock start --tps 40 --reasoning-tokens 60",
        "%%holy --max-tokens 40\nIs 97 a prime number?",
        "from holynb import ChatPanel\n"
        "panel = ChatPanel(mock={'tps': 40, 'reasoning_tokens': 60}, max_tokens=40)\npanel",
        "await panel.send('Is 97 a prime number?')",
    ]
    nb.open("thinking.ipynb", cells)
    nb.run_cell(0)
    nb.wait_executed(0)
    nb.page.evaluate(WATCH_THINKING_JS)
    nb.run_all_from(1)
    nb.wait_executed(3, timeout=90)
    time.sleep(0.3)
    samples = nb.page.evaluate("() => window.__holynbThinking")
    for face in ("magic", "panel"):
        seen = [s for s in samples if s["face"] == face]
        assert any(s["open"] and s["summary"].startswith("💭 Thinking") for s in seen), face
        final = seen[-1]
        assert not final["open"] and final["summary"].startswith("💭 Thought for "), final
        # Open while the model thinks; collapsed once the answer shows.
        assert not any(s["open"] and s["answered"] for s in seen), face
    stats = nb.output_text(1).strip().splitlines()[-1]
    assert re.search(r"· thinking [\d.]+ s \(60 tokens\) ·", stats), stats
    nb.screenshot("thinking")
