"""Latency profiles, jitter, seeded determinism and the absolute-deadline schedule."""

from __future__ import annotations

import random
import statistics

import pytest
from mockutil import chat, raw_request

from mockserver import PROFILES, MockServer
from mockserver._latency import LatencyProfile, profile_for, schedule


def test_profiles_are_the_seed_003_figures() -> None:
    assert {m: (p.ttft_ms, p.tps) for m, p in PROFILES.items()} == {
        "gpt-4.1": (127, 42),
        "claude-sonnet-4.5": (156, 38),
        "gemini-2.5-flash": (89, 67),
        "deepseek-v3.2": (94, 71),
    }


def test_schedule_without_jitter_is_exact() -> None:
    times = schedule(5, LatencyProfile(120, 50))
    assert times == pytest.approx([0.12, 0.14, 0.16, 0.18, 0.20])
    assert schedule(4, LatencyProfile(0, 0)) == [0.0] * 4
    assert schedule(0, LatencyProfile(10, 10)) == []


@pytest.mark.parametrize("kind", ["uniform", "normal", "lognormal"])
def test_jitter_is_seeded_monotonic_and_shaped(kind: str) -> None:
    profile = LatencyProfile(100, 50)
    a = schedule(400, profile, jitter_ms=5, jitter=kind, rng=random.Random(1))
    b = schedule(400, profile, jitter_ms=5, jitter=kind, rng=random.Random(1))
    c = schedule(400, profile, jitter_ms=5, jitter=kind, rng=random.Random(2))
    assert a == b and a != c
    assert all(y >= x for x, y in zip(a, a[1:], strict=False))
    gaps = [(y - x) * 1000 for x, y in zip(a, a[1:], strict=False)]
    if kind == "lognormal":
        assert min(gaps) >= 20 and statistics.median(gaps) == pytest.approx(25, abs=1.5)
    else:
        assert statistics.mean(gaps) == pytest.approx(20, abs=1)
        assert statistics.pstdev(gaps) > 1


def test_overrides_apply_per_field() -> None:
    assert profile_for("gpt-4.1", ttft_ms=None, tps=10) == LatencyProfile(127, 10)
    assert profile_for("unknown-model", ttft_ms=None, tps=None) == LatencyProfile(100, 50)


def test_model_profile_drives_the_schedule(holy_mock_factory) -> None:
    mock = holy_mock_factory(ttft_ms=None, tps=None, speed=0)  # profiles, but no waiting
    for model, profile in PROFILES.items():
        raw_request(mock.url, "/v1/chat/completions", chat(model=model, stream=True, max_tokens=4))
        rec = mock.journal()[-1]
        assert rec["latency"]["ttft_ms"] == profile.ttft_ms and rec["latency"]["tps"] == profile.tps
        gap = 1 / profile.tps
        expect = [profile.ttft_ms / 1000 + i * gap for i in range(4)]
        assert rec["schedule"] == pytest.approx(expect, abs=1e-6)


def test_request_headers_override_server_latency(holy_mock_factory) -> None:
    mock = holy_mock_factory(ttft_ms=200, tps=10, speed=0)
    raw_request(mock.url, "/v1/chat/completions", chat(stream=True, max_tokens=3),
                headers={"X-Mock-TTFT-Ms": "50", "X-Mock-TPS": "100", "X-Mock-Jitter-Ms": "0"})
    assert mock.journal()[-1]["schedule"] == pytest.approx([0.05, 0.06, 0.07])
    raw_request(mock.url, "/v1/chat/completions", chat(stream=True, max_tokens=3),
                headers={"X-Mock-Jitter-Ms": "3", "X-Mock-Seed": "4"})
    rec = mock.journal()[-1]
    assert rec["latency"]["jitter"] == "uniform" and rec["latency"]["jitter_ms"] == 3
    assert rec["schedule"] != pytest.approx([0.2, 0.3, 0.4])


def run_twice(make, **config) -> list[tuple[bytes, list[float]]]:
    out = []
    for _ in range(2):
        mock: MockServer = make(jitter_ms=4, jitter="normal", speed=0, **config)
        got = []
        for i in range(3):
            r = raw_request(mock.url, "/v1/chat/completions",
                            chat(f"q{i}", stream=True, max_tokens=12))
            got.append((r.body, mock.journal()[-1]["schedule"]))
        out.append(got)
    return out


def test_same_seed_same_bytes_and_schedules(holy_mock_factory) -> None:
    first, second = run_twice(holy_mock_factory, seed=42)
    assert first == second
    other, _ = run_twice(holy_mock_factory, seed=43)
    assert [b for b, _ in other] != [b for b, _ in first]


def test_no_seed_gives_fresh_ids_but_the_same_text(holy_mock_factory) -> None:
    first, second = run_twice(holy_mock_factory, seed=None)
    assert first[0][0] != second[0][0]  # ids, created and jitter differ

    def text(body: bytes) -> str:
        import json

        r = body.decode().split("\n\n")
        return "".join(
            json.loads(e[6:])["choices"][0]["delta"]["content"]
            for e in r if e.startswith("data: {")
        )

    assert [text(b) for b, _ in first] == [text(b) for b, _ in second]


def test_speed_scales_waits_but_not_the_schedule(holy_mock_factory) -> None:
    mock = holy_mock_factory(ttft_ms=300, tps=10, speed=100)
    r = raw_request(mock.url, "/v1/chat/completions", chat(stream=True, max_tokens=5))
    assert r.complete
    assert mock.journal()[-1]["schedule"] == pytest.approx([0.3, 0.4, 0.5, 0.6, 0.7])
