"""Every failure a notebook user meets, as ``%%holy`` shows it in the browser: one line of at most
100 columns, what happened and one hint, no Python field names; the partial answer kept."""

from __future__ import annotations

from typing import Any

from browser_helpers import ERROR_LINES_JS, PYTHON_NAMES, NotebookPage, fault_cell

# (name, cell, a piece of the advice, whether text arrived before the failure)
FAULTS = [
    ("429", fault_cell("X-Mock-Fault", "status:code=429,retry_after=0.05", "--retries 1"),
     "wait a little", False),
    ("500", fault_cell("X-Mock-Fault", "status:code=500", "--retries 0"),
     "the server failed", False),
    ("disconnect", fault_cell("X-Mock-Fault", "disconnect:after=5"), "run the cell again", True),
    ("reset", fault_cell("X-Mock-Fault", "reset:after=5"), "run the cell again", True),
    ("malformed", fault_cell("X-Mock-Fault", "malformed:at=5"), "not valid JSON", True),
    ("error-event", fault_cell("X-Mock-Fault", "error-event:at=5"), "run the cell again", True),
    ("idle", fault_cell("X-Mock-Fault", "stall:after=5,ms=3000", "--idle-timeout 0.3"),
     "--idle-timeout", True),
    ("total", fault_cell("X-Mock-Fault", "stall:after=5,ms=3000", "--timeout 0.6"),
     "--timeout", True),
    ("first-token", fault_cell("X-Mock-TTFT-Ms", "3000", "--first-token-timeout 0.3"),
     "--first-token-timeout", False),
    ("dns", "%holy --base-url http://api.holysheep.invalid/v1 --retries 0 hello",
     "check the base URL", False),
    ("refused", "%holy --base-url http://127.0.0.1:9/v1 --retries 0 hello",
     "is the server running", False),
]  # fmt: skip


def test_each_fault_is_one_line_with_one_hint(nb: NotebookPage, holy_mock_factory: Any) -> None:
    wrong_key = holy_mock_factory(keys=["sk-some-other-key-000"])
    cells = ["%load_ext holynb\n%holy mock start --seed 1"]
    cells += [cell for _, cell, _, _ in FAULTS]
    cells.append(f"%holy --base-url {wrong_key.url} hello")
    nb.open("faults.ipynb", cells)
    nb.run_all()
    nb.wait_executed(len(cells) - 1, timeout=120)
    results = nb.page.evaluate(ERROR_LINES_JS)
    expected = [*FAULTS, ("401", "", "HOLYSHEEP_API_KEY", False)]
    for (name, _, advice, partial), result in zip(expected, results[1:], strict=True):
        assert result is not None, f"{name}: no error line"
        line = result["line"]
        assert result["rows"] == 1, f"{name} wraps at 100 columns: {line}"
        assert len(line) <= 100 and line.count(" — ") == 1, f"{name}: {line}"
        assert advice in line, f"{name}: {line}"
        assert not PYTHON_NAMES.search(line), f"{name}: {line}"
        if partial:
            assert result["partial"] > 0 and line.endswith("· partial answer kept"), name
    # A DNS failure says it never connected, not that a connection dropped.
    dns_line = results[1 + [f[0] for f in FAULTS].index("dns")]["line"]
    assert "dropped" not in dns_line
    nb.screenshot("magic-error-lines")
