"""The Responses and Anthropic Messages faces as a user sees them in the browser (JupyterLab and
Notebook 7, Chromium): the panel's API picker among its controls at 960 px, and ``%%holy --api``
with tool calls, thinking and error lines, against the real mock."""

from __future__ import annotations

from typing import Any

from browser_helpers import (
    ERROR_LINES_JS,
    PYTHON_NAMES,
    TOOL_BLOCKS_JS,
    WEATHER,
    NotebookPage,
    fault_cell,
)

from holynb._stats import api_label

# Every picker of the panel's controls row, as the user sees it: its box, its label, and
# whether what it shows (the selected option, the readout, the value, each button) fits.
CONTROLS_JS = """() => {
  const panel = document.querySelector('.holynb-panel');
  const row = [...panel.children].find(c => c.querySelector('select'));
  const rowBox = row.getBoundingClientRect();
  const panelBox = panel.getBoundingClientRect();
  const canvas = document.createElement('canvas').getContext('2d');
  const textWidth = (el, text) => {
    const s = getComputedStyle(el);
    canvas.font = `${s.fontWeight} ${s.fontSize} ${s.fontFamily}`;
    return canvas.measureText(text).width;
  };
  const fits = el => el.scrollWidth <= el.clientWidth;
  return [...row.children].map(widget => {
    const box = widget.getBoundingClientRect();
    const label = widget.querySelector('.widget-label');
    const select = widget.querySelector('select');
    const readout = widget.querySelector('.widget-readout');
    const input = widget.querySelector('input');
    const s = select && getComputedStyle(select);
    return {
      classes: widget.className,
      box: {left: box.left, right: box.right, top: box.top, bottom: box.bottom},
      inside: box.left >= panelBox.left - 1 && box.right <= panelBox.right + 1
        && box.right <= window.innerWidth && box.left >= rowBox.left - 1
        && box.right <= rowBox.right + 1,
      label: label && label.innerText ? label.innerText : null,
      labelFits: label ? fits(label) : true,
      shown: select ? select.options[select.selectedIndex].text.replace(/\u00a0/g, ' ') : null,
      optionsFit: select ? [...select.options].every(o => textWidth(select, o.text)
        <= select.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight)) : true,
      active: widget.querySelector('button.mod-active')?.innerText.trim() || null,
      // The selected option's text in the room the select leaves it (the arrow takes the
      // right padding).
      shownFits: select ? textWidth(select, select.options[select.selectedIndex].text)
        <= select.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight) : true,
      readout: readout ? readout.innerText : null,
      readoutFits: readout ? fits(readout) && readout.getBoundingClientRect().right
        <= box.right + 1 : true,
      inputFits: input && !readout && !select ? fits(input)
        && textWidth(input, input.value) <= input.clientWidth : true,
      buttons: [...widget.querySelectorAll('button')].map(b => ({
        text: b.innerText.trim(), fits: fits(b), disabled: b.disabled,
        inside: b.getBoundingClientRect().right <= box.right + 1})),
    };
  });
}"""
# The panel's parts that stick out of it (a 100%-wide widget with a margin does).
PANEL_PARTS_JS = """() => {
  const panel = document.querySelector('.holynb-panel');
  const box = panel.getBoundingClientRect();
  return [...panel.querySelectorAll(':scope > *, textarea, select, button')]
    .filter(el => { const r = el.getBoundingClientRect();
                    return r.width && (r.left < box.left - 0.5 || r.right > box.right + 0.5); })
    .map(el => el.className || el.tagName);
}"""
# The last reply of the panel: its answer, its footer, its thinking summary.
PANEL_REPLY_JS = """() => {
  const replies = document.querySelectorAll('.holynb-panel .holynb-assistant');
  const last = replies[replies.length - 1];
  if (!last) { return null; }
  const footer = last.querySelector('.holynb-footer');
  const summary = last.querySelector('details.holynb-thinking summary');
  return {answer: [...last.querySelectorAll('.holynb-answer')].map(n => n.innerText).join(''),
          footer: footer ? footer.innerText : '', thinking: summary ? summary.innerText : null};
}"""


def overlapping(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["left"] < b["right"] - 1
        and b["left"] < a["right"] - 1
        and (a["top"] < b["bottom"] - 1 and b["top"] < a["bottom"] - 1)
    )


def check_controls(controls: list[dict[str, Any]]) -> None:
    """Every picker whole, inside the panel, not covering another, its text not cut off."""
    assert [c["label"] for c in controls] == ["Model", "API", None, "Temp", "Max tokens"]
    for control in controls:
        assert control["inside"], control
        assert control["labelFits"] and control["shownFits"], control
        assert control["optionsFit"], control  # whichever option is chosen, it is readable
        assert control["readoutFits"] and control["inputFits"], control
        for button in control["buttons"]:
            assert button["fits"] and button["inside"], control
    for i, a in enumerate(controls):
        for b in controls[i + 1 :]:
            assert not overlapping(a["box"], b["box"]), (a, b)


def test_api_picker_at_960px_and_messages_over_sse(
    nb: NotebookPage, holy_mock_factory: Any
) -> None:
    page = nb.page
    page.set_viewport_size({"width": 960, "height": 900})
    mock = holy_mock_factory(tps=200, reasoning_tokens=12)
    nb.open(
        "api-picker.ipynb",
        [
            "from holynb import ChatPanel\n"
            f"panel = ChatPanel(base_url={mock.url!r}, api_key='sk-holynb-mock',"
            " api='responses', transport='ws', max_tokens=24)\npanel"
        ],
    )
    nb.run_cell(0)
    page.wait_for_selector(".holynb-panel button.holynb-send", timeout=60_000)
    controls = page.evaluate(CONTROLS_JS)
    check_controls(controls)
    assert page.evaluate(PANEL_PARTS_JS) == [], "parts of the panel stick out of it"
    picker, toggle = controls[1], controls[2]
    assert picker["shown"] == "OpenAI Responses" and api_label("responses") in picker["shown"]
    assert [(b["text"], b["disabled"]) for b in toggle["buttons"]] == [
        ("SSE", False),
        ("WebSocket", False),
    ]
    assert toggle["active"] == "WebSocket"

    # The user picks Messages: the panel streams it over SSE, and the transport picker is off.
    page.locator(".holynb-panel .widget-dropdown:has-text('API') select").select_option(
        label="Anthropic Messages"
    )
    page.wait_for_function(
        "() => [...document.querySelectorAll('.holynb-panel .widget-toggle-buttons button')]"
        ".every(b => b.disabled)"
    )
    controls = page.evaluate(CONTROLS_JS)
    check_controls(controls)
    assert controls[1]["shown"] == api_label("messages")
    assert controls[2]["active"] == "SSE"
    assert "no WebSocket mode" in page.locator(".holynb-status").inner_text()

    page.locator(".holynb-input textarea").fill("Is 97 a prime number?")
    page.locator("button.holynb-send").click()
    page.wait_for_function(f"() => ({PANEL_REPLY_JS})()?.footer.includes('tok/s')", timeout=30_000)
    reply = page.evaluate(PANEL_REPLY_JS)
    assert reply["answer"].strip() and reply["thinking"].startswith("💭 Thought for "), reply
    assert reply["footer"].startswith("deepseek-v3.2 · Anthropic Messages · SSE · thinking ")
    assert "(12 tokens)" in reply["footer"], reply
    record = mock.journal()[-1]
    assert record["path"] == "/v1/messages" and record["transport"] == "sse"
    # Still the same tidy row after the reply (the pickers are enabled again).
    check_controls(page.evaluate(CONTROLS_JS))
    nb.screenshot("panel-api-messages-960", page.locator(".holynb-panel"))


# Per cell: its rendered outputs, its thinking blocks (summary, open, visible text) and the
# last line of its text output (the stats line or the error line).
CELL_JS = """(index) => {
  const cell = window.jupyterapp.shell.currentWidget.content.widgets[index];
  const texts = [...cell.node.querySelectorAll('.jp-OutputArea-output')]
    .map(node => node.innerText.trim()).filter(Boolean);
  return {
    rendered: [...cell.node.querySelectorAll('.jp-OutputArea-output.jp-RenderedMarkdown')]
      .map(node => node.innerText),
    thinking: [...cell.node.querySelectorAll('details.holynb-thinking')].map(d => ({
      summary: d.querySelector('summary').innerText, open: d.open,
      body: d.innerText.slice(d.querySelector('summary').innerText.length).trim(),
      // Set apart from the answer: the thinking is a quote with a visible left rule.
      apart: [...d.querySelectorAll('blockquote')].some(
        q => parseFloat(getComputedStyle(q).borderLeftWidth) > 0)})),
    last: texts.length ? texts[texts.length - 1].split('\\n').pop() : '',
  };
}"""
APIS = ("responses", "messages")
# (api, fault, words of the line): before the first token, and mid-stream (partial kept).
API_FAULTS = [
    ("responses", "status:code=404", "--api chat"),
    ("responses", "error-event:at=9", "Server error in the stream (500"),
    ("messages", "status:code=529", "HTTP 529: Overloaded — the server is overloaded"),
    ("messages", "error-event:at=9,code=529", "the server is overloaded"),
]


def test_magic_api_cells_show_tools_thinking_and_one_line_errors(nb: NotebookPage) -> None:
    cells = ["%load_ext holynb\n%holy mock start --speed 4"]
    cells += [f"%%holy --api {api} -o call_{api}\n{WEATHER}" for api in APIS]
    cells.append("%config HolyMagics.extra_headers = {'X-Mock-Reasoning': '30'}")
    cells += [f"%%holy --api {api} --max-tokens 40\nIs 97 a prime number?" for api in APIS]
    cells += [
        fault_cell("X-Mock-Fault", fault, f"--api {api} --retries 0")
        for api, fault, _ in API_FAULTS
    ]
    nb.open("api-cells.ipynb", cells)
    nb.run_all()
    nb.wait_executed(len(cells) - 1, timeout=120)

    # Tool calls: a block per call, with the function's name and its arguments, in both APIs.
    blocks = nb.page.evaluate(TOOL_BLOCKS_JS, ".jp-OutputArea-output.jp-RenderedMarkdown")
    assert len(blocks) == 4, blocks
    for block, city in zip(blocks, ("Bangkok", "Chiang Mai") * 2, strict=True):
        assert "get_weather" in block["text"] and f'"{city}' in block["code"], block
        assert '\n  "' in block["code"], block  # pretty-printed, one key per line
    for index, api in enumerate(APIS, start=1):
        stats = nb.page.evaluate(CELL_JS, index)["last"]
        assert stats.startswith(f"deepseek-v3.2 · {api_label(api)} · SSE · "), stats
        assert " 0 tokens" not in stats and "$" in stats, stats

    # Thinking: collapsed once the answer came; a click shows what the model thought.
    for index, api in enumerate(APIS, start=4):
        cell = nb.page.evaluate(CELL_JS, index)
        (thinking,) = cell["thinking"]
        assert thinking["summary"].startswith("💭 Thought for ") and not thinking["open"], cell
        assert cell["rendered"][-1].strip(), cell  # the answer, below the thinking block
        assert cell["last"].startswith(f"deepseek-v3.2 · {api_label(api)} · SSE · thinking ")
        assert "(30 tokens)" in cell["last"], cell
        summary = nb.cell(index).locator("details.holynb-thinking summary")
        assert summary.is_visible()
        summary.click()
        opened = nb.page.evaluate(CELL_JS, index)["thinking"][0]
        assert opened["open"] and opened["body"] and opened["apart"], opened
        nb.screenshot(f"magic-{api}-thinking-open", nb.cell(index))

    # Errors: one line at 100 columns, in the API's words, one hint, no Python names.
    lines = nb.page.evaluate(ERROR_LINES_JS)[-len(API_FAULTS) :]
    for (api, fault, words), result in zip(API_FAULTS, lines, strict=True):
        assert result is not None, (api, fault)
        line = result["line"]
        print(f"\n{nb.frontend} {api} {fault}: {line}")
        assert result["rows"] == 1, f"{api} {fault} wraps at 100 columns: {line}"
        assert len(line) <= 100 and line.count(" — ") == 1, line
        assert words in line and not PYTHON_NAMES.search(line), line
        if "at=" in fault:
            assert result["partial"] > 0 and line.endswith("· partial answer kept"), line
    nb.screenshot("magic-apis")
