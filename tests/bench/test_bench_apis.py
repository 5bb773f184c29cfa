"""``run_bench(api=...)``: chat completions, Responses and Messages side by side, real mock."""

from __future__ import annotations

import csv
import io
import json

import pytest

from holynb import ConfigError, bench
from mockserver import MOCK_KEY

ALL_WIRES = ["chat/sse", "chat/ws", "responses/sse", "responses/ws", "messages/sse"]
# Where each wire's requests land on the mock: (journal method, path, api).
ENDPOINTS = {
    "chat/sse": ("POST", "/v1/chat/completions", "chat"),
    "chat/ws": ("WS", "/v1/ws/chat", "chat"),
    "responses/sse": ("POST", "/v1/responses", "responses"),
    "responses/ws": ("WS", "/v1/responses", "responses"),
    "messages/sse": ("POST", "/v1/messages", "anthropic"),
}
MAX_TOKENS = 16  # the Responses API (and so the mock) wants max_output_tokens >= 16


async def _run(mock, **options) -> bench.BenchResult:
    """Two requests per wire of MAX_TOKENS tokens against ``mock`` (``options`` override)."""
    options = {"requests": 2, "max_tokens": MAX_TOKENS, **options}
    return await bench.run_bench(mock.url, api_key=MOCK_KEY, **options)


async def test_every_api_over_every_transport(holy_mock) -> None:
    calls: list[tuple[str, int, int | None]] = []
    result = await _run(
        holy_mock,
        api="all",
        transport="both",
        requests=3,
        max_concurrency=3,
        seed=7,
        progress=lambda *args: calls.append(args),
    )
    assert list(result.summaries) == ALL_WIRES
    for label, summary in result.summaries.items():
        api, transport = label.split("/")
        assert (summary.api, summary.transport) == (api, transport)
        assert (summary.requests, summary.completed, summary.failed) == (3, 3, 0)
        assert summary.total_output_tokens == 3 * MAX_TOKENS  # the usage each API reports
        assert summary.ttft_ms is not None and summary.ttft_ms.count == 3
        assert sum(second.started for second in summary.timeline) == 3
    assert [(r.api, r.transport) for r in result.records] == [
        tuple(label.split("/")) for label in ALL_WIRES for _ in range(3)
    ]
    assert all(r.ok and r.tokens == MAX_TOKENS for r in result.records)

    # The mock saw every wire on its own endpoint, the same plan each time, all completed.
    journal = holy_mock.journal()
    assert len(journal) == 15 and all(r["outcome"] == "completed" for r in journal)
    for label, (method, path, api) in ENDPOINTS.items():
        hits = [r for r in journal if (r["method"], r["path"], r["api"]) == (method, path, api)]
        assert len(hits) == 3, label
        # Each request distinct in its body, in a field the API accepts (no seed outside chat).
        seeds = {
            "chat": lambda body: body["seed"],
            "responses": lambda body: int(body["metadata"]["holynb_seed"]),
            "anthropic": lambda body: int(body["metadata"]["user_id"].rsplit("-", 1)[1]),
        }[api]
        assert sorted(seeds(r["request"]) for r in hits) == [7, 8, 9]
        assert api == "chat" or all("seed" not in r["request"] for r in hits)
        assert all(r["controls"]["seed"] == 7 for r in hits)

    assert [c for c in calls if c[1] in (0, 3)] == [
        (label, done, 3) for label in ALL_WIRES for done in (0, 3)
    ]
    config = result.config
    assert config["apis"] == ["chat", "responses", "messages"]
    assert config["transports"] == ["sse", "ws"]
    assert config["wires"] == ALL_WIRES
    assert config["skipped_wires"] == {
        "messages/ws": "The Anthropic Messages API has no WebSocket mode"
    }

    table = result.table()
    header = next(line for line in table.splitlines() if line.strip().startswith("chat/sse"))
    assert header.split() == ALL_WIRES
    assert "APIs chat, responses, messages" in table
    assert "skipped messages/ws: The Anthropic Messages API has no WebSocket mode" in table
    assert [line.split()[0] for line in result.timeline().splitlines() if "timeline" in line] == (
        ALL_WIRES
    )

    data = json.loads(json.dumps(result.to_dict()))
    assert list(data["summary"]) == ALL_WIRES
    assert data["summary"]["responses/ws"]["api"] == "responses"
    assert data["summary"]["responses/ws"]["transport"] == "ws"
    assert {(r["api"], r["transport"]) for r in data["requests"]} == {
        tuple(label.split("/")) for label in ALL_WIRES
    }
    rows = list(csv.DictReader(io.StringIO(result.csv())))
    assert [(r["api"], r["transport"], r["index"]) for r in rows[:4]] == [
        ("chat", "sse", "0"), ("chat", "sse", "1"), ("chat", "sse", "2"), ("chat", "ws", "0"),
    ]  # fmt: skip
    assert rows[-1]["api"] == "messages" and rows[-1]["transport"] == "sse"


async def test_one_api_keeps_the_transport_labels(holy_mock) -> None:
    result = await _run(holy_mock, api="responses", transport="both")
    assert list(result.summaries) == ["sse", "ws"]
    assert all(s.api == "responses" and s.completed == 2 for s in result.summaries.values())
    assert {r.api for r in result.records} == {"responses"}
    assert [(r["method"], r["path"]) for r in holy_mock.journal()] == (
        [("POST", "/v1/responses")] * 2 + [("WS", "/v1/responses")] * 2
    )
    assert result.config["apis"] == ["responses"] and result.config["wires"] == ["sse", "ws"]
    assert result.config["skipped_wires"] == {}
    assert "API responses" in result.table()


async def test_the_default_api_is_the_clients(holy_mock, monkeypatch) -> None:
    monkeypatch.setenv("HOLYNB_API", "messages")
    result = await _run(holy_mock)
    assert list(result.summaries) == ["sse"] and result.summaries["sse"].completed == 2
    assert {r["path"] for r in holy_mock.journal()} == {"/v1/messages"}
    assert result.config["apis"] == ["messages"]


async def test_a_list_of_apis(holy_mock) -> None:
    result = await _run(holy_mock, api=["chat", "responses", "chat"])  # repeated: runs once
    assert list(result.summaries) == ["chat/sse", "responses/sse"]
    assert all(s.completed == 2 for s in result.summaries.values())
    assert result.config["apis"] == ["chat", "responses"]


async def test_messages_over_websocket(holy_mock) -> None:
    # Asked for alone it is the client's own error, before any request is sent.
    with pytest.raises(ConfigError, match="The Anthropic Messages API has no WebSocket mode"):
        await _run(holy_mock, api="messages", transport="ws")
    assert holy_mock.journal() == []

    # Out of a combination it is left out, and said so.
    result = await _run(holy_mock, api=["chat", "messages"], transport="ws")
    assert list(result.summaries) == ["chat/ws"]
    assert list(result.config["skipped_wires"]) == ["messages/ws"]

    result = await _run(holy_mock, api="messages", transport="both")
    assert list(result.summaries) == ["sse"] and result.summaries["sse"].api == "messages"
    assert result.config["transports"] == ["sse"]
    assert list(result.config["skipped_wires"]) == ["messages/ws"]


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"api": "gemini"}, ConfigError, "Unknown API 'gemini': use 'chat'"),
        ({"api": ["chat", "grpc"]}, ConfigError, "Unknown API 'grpc'"),
        ({"api": []}, ValueError, "api must name at least one API"),
        ({"client_options": {"api": "chat"}}, ValueError, "pass api=... to run_bench itself"),
    ],
)
async def test_bad_apis_say_what_to_fix(holy_mock, options, error, message) -> None:
    with pytest.raises(error, match=message):
        await _run(holy_mock, **options)
    assert holy_mock.journal() == []


def test_plan_wires() -> None:
    wires, skipped = bench.plan_wires("All", "both")  # any case, as the client reads names
    assert [w.label for w in wires] == ALL_WIRES
    assert [(w.api, w.transport) for w in wires][-1] == ("messages", "sse")
    assert list(skipped) == ["messages/ws"]
    assert bench.plan_wires("chat", "ws") == ([bench.Wire("chat", "ws", "ws")], {})
