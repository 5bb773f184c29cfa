"""What both faces show while a reply streams, in JupyterLab and Notebook 7 (Chromium): line
breaks, tables and code spans, the scroll position; ``%%holy`` and ``ChatPanel`` side by side."""

from __future__ import annotations

import time
from pathlib import Path

from browser_helpers import NotebookPage
from cassette_files import write_cassette

HAIKU_PROMPT = "Write a haiku about WebSockets."
LONG_PROMPT = "Explain how to stream chat completions into a Jupyter notebook."

HAIKU = ["One socket stays open,", "tokens drift in like spring rain—", "no request to wait."]
# The rendered Markdown outputs of a cell, as the user reads them.
RENDERED_JS = """(index) => {
  const cell = window.jupyterapp.shell.currentWidget.content.widgets[index];
  return [...cell.node.querySelectorAll('.jp-OutputArea-output.jp-RenderedMarkdown')]
    .map(node => node.innerText);
}"""
# The answer of the panel's last reply, as the user reads it.
PANEL_ANSWER_JS = """() => {
  const replies = document.querySelectorAll('.holynb-panel .holynb-assistant');
  const last = replies[replies.length - 1];
  return last ? [...last.querySelectorAll('.holynb-answer')].map(n => n.innerText).join('') : '';
}"""
PANEL_CELL = 'from holynb import ChatPanel\npanel = ChatPanel(mock={mock})\npanel'


def test_haiku_keeps_its_three_lines(nb: NotebookPage) -> None:
    nb.open(
        "haiku.ipynb",
        [
            "%load_ext holynb\n%holy mock start --speed 4",
            f"%%holy --transport ws\n{HAIKU_PROMPT}",
            PANEL_CELL.format(mock={"speed": 4}),
            f"panel.transport = 'ws'\nawait panel.send({HAIKU_PROMPT!r})",
        ],
    )
    nb.run_all()
    nb.wait_executed(3)
    (answer,) = nb.page.evaluate(RENDERED_JS, 1)
    assert answer.strip().splitlines() == HAIKU  # print(reply) shows three lines; so does this
    assert nb.page.evaluate(PANEL_ANSWER_JS).strip().splitlines() == HAIKU
    nb.screenshot("haiku")


# Every frame of a streaming reply is checked: raw pipes in a paragraph, or a backtick shown as
# text, are a "flash" of unrendered Markdown. Watches %%holy's output and the panel alike.
WATCH_FLASHES_JS = """(selector) => {
  window.__holynbFlashes = [];
  window.__holynbTables = 0;
  const check = () => {
    const roots = document.querySelectorAll(selector);
    for (const root of roots) {
      for (const p of root.querySelectorAll('p')) {
        const text = p.innerText;
        if (text.trim().startsWith('|')) { window.__holynbFlashes.push(text); }
        const plain = [...p.childNodes].filter(n => n.nodeType === Node.TEXT_NODE)
          .map(n => n.textContent).join('');
        if (plain.includes('`')) { window.__holynbFlashes.push(text); }
      }
      window.__holynbTables = Math.max(window.__holynbTables,
                                       root.querySelectorAll('table').length);
    }
  };
  new MutationObserver(check).observe(document.body, {subtree: true, childList: true,
                                                      characterData: true});
}"""


# A reply whose table header arrives, then waits 600 ms for its delimiter row; then an inline
# code span that stays open for half a second.
TABLE_PIECES = [
    "Prices per million tokens:\n\n",
    "| model ",
    "| input ",
    "| output |\n",
    "|---",
    "|---:",
    "|---:|\n",
    "| gpt-4.1 | 2.00 | 8.00 |\n",
    "| deepseek-v3.2 | 0.28 | 0.42 |\n\n",
    "Use `holynb",
    " models` to list them.",
]
TABLE_AT = [0.0, 0.1, 0.2, 0.3, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.9]


def test_no_raw_markdown_while_a_table_or_code_span_streams(
    nb: NotebookPage, tmp_path: Path
) -> None:
    prompt = "Show the prices as a table."
    tmp_path = tmp_path / "cassettes"  # a folder of its own: the mock reads every file in it
    tmp_path.mkdir()
    write_cassette(tmp_path, "table", prompt, TABLE_PIECES, at=TABLE_AT)
    cells = [
        f"%load_ext holynb\n%holy mock start --cassettes {tmp_path}",
        f"%%holy\n{prompt}",
        PANEL_CELL.format(mock={"cassettes": str(tmp_path)}),
        f"await panel.send({prompt!r})",
    ]
    nb.open("table.ipynb", cells)
    nb.run_cell(0)
    nb.wait_executed(0)
    nb.page.evaluate(WATCH_FLASHES_JS, ".jp-OutputArea-output.jp-RenderedMarkdown")
    nb.run_cell(1)
    nb.wait_executed(1)
    assert nb.page.evaluate("() => window.__holynbFlashes") == []
    assert nb.page.evaluate("() => window.__holynbTables") == 1
    text = "\n".join(nb.page.evaluate(RENDERED_JS, 1))
    assert "holynb models" in text and "`" not in text  # the code span, never a bare tick
    nb.screenshot("magic-table", nb.cell(1))
    # The panel: same reply, same checks, frame by frame.
    nb.run_cell(2)
    nb.wait_executed(2)
    nb.page.evaluate(WATCH_FLASHES_JS, ".holynb-panel .holynb-assistant")
    nb.run_cell(3)
    nb.wait_executed(3)
    assert nb.page.evaluate("() => window.__holynbFlashes") == []
    assert nb.page.evaluate("() => window.__holynbTables") == 1
    assert "holynb models" in nb.page.evaluate(PANEL_ANSWER_JS)
    nb.screenshot("panel-table", nb.page.locator(".holynb-panel"))


# The element the reader scrolls: the streaming cell's output area where the frontend made it
# a scrolled box (Notebook 7 does for long outputs), else the notebook itself. Every scroll of
# any element is recorded (scroll events do not bubble, but they reach a capturing listener).
WATCH_SCROLL_JS = """(index) => {
  window.__holynbCell = window.jupyterapp.shell.currentWidget.content.widgets[index].node;
  window.__holynbScrolls = [];
  document.addEventListener('scroll', (e) => {
    window.__holynbScrolls.push([e.target === window.__holynbScroller, e.target.scrollTop]);
  }, true);
}"""
PARK_AT_END_JS = """() => {
  const scrollable = (el) => el && el.scrollHeight > el.clientHeight + 1
    && ['auto', 'scroll'].includes(getComputedStyle(el).overflowY);
  const output = window.__holynbCell.querySelector('.jp-OutputArea');
  const s = scrollable(output) ? output : window.__holynbCell.closest('.jp-WindowedPanel-outer');
  window.__holynbScroller = s;
  s.scrollTop = s.scrollHeight;
  return s.scrollTop;
}"""


def test_final_render_keeps_the_scroll_position(nb: NotebookPage) -> None:
    cells = ["%load_ext holynb\n%holy mock start --speed 4", f"%%holy\n{LONG_PROMPT}", "1 + 1"]
    nb.open("scroll.ipynb", cells)
    nb.run_cell(0)
    nb.wait_executed(0)
    nb.page.evaluate(WATCH_SCROLL_JS, 1)
    nb.run_cell(1)
    # Follow the answer as a reader does, keeping the view at the end, until its last section.
    deadline = time.monotonic() + 60
    while "Typical figures for a relay" not in nb.output_text(1):
        nb.page.evaluate(PARK_AT_END_JS)
        assert time.monotonic() < deadline, "the answer did not come"
        time.sleep(0.05)
    parked = nb.page.evaluate(PARK_AT_END_JS)
    nb.page.evaluate("() => { window.__holynbScrolls = []; }")
    nb.wait_executed(1)
    time.sleep(0.5)  # let the final render and any re-layout settle
    assert "tok/s" in nb.output_text(1)
    assert parked > 300, "the long answer should have scrolled"
    after = nb.page.evaluate("() => window.__holynbScroller.scrollTop")
    moves = [top for ours, top in nb.page.evaluate("() => window.__holynbScrolls") if ours]
    # Parked at the end, the last text and the final render moved nothing: no jump back.
    assert after >= parked - 5 and all(top >= parked - 5 for top in moves), (parked, moves)
    nb.screenshot("magic-scroll-end")


def test_interrupt_is_said_once(nb: NotebookPage) -> None:
    cells = [
        "%load_ext holynb\n%holy mock start --tps 30",
        "%%holy --max-tokens 400\nTell me a long story.",
        "print('not reached')",
    ]
    nb.open("interrupt.ipynb", cells)
    nb.run_cell(0)
    nb.wait_executed(0)
    nb.run_all_from(1)
    nb.page.wait_for_function(
        "() => window.jupyterapp.shell.currentWidget.content.widgets[1].node"
        ".querySelector('.jp-RenderedMarkdown')?.innerText.split(' ').length > 10",
        timeout=30_000,
    )
    # The toolbar's interrupt button, as a user stops a cell.
    nb.page.locator("[data-command='notebook:interrupt-kernel']").first.click()
    nb.wait_executed(1)
    text = nb.output_text(1)
    assert text.count("interrupted") == 1, text
    assert "⏹ interrupted — partial answer kept above" in text
    assert "KeyboardInterrupt" not in text and "Traceback" not in text
    # The one line is the interrupt's own output: the last, alone on its line.
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines[-1].startswith("⏹ interrupted — partial answer kept above · deepseek-v3.2")
    # "Run All" stopped at the interrupted cell.
    assert nb.output_text(2) == ""
    nb.screenshot("magic-interrupted", nb.cell(1))
