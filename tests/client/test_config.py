"""Settings precedence, refused keys, option validation, prices, stats and messages."""

from __future__ import annotations

import pytest
from client_helpers import KEY

import holynb
from holynb import AsyncClient, ConfigError, StreamStats
from holynb._client import build_messages
from holynb._config import configure, current_defaults, reset_defaults


def test_missing_key_says_how_to_set_it():
    with pytest.raises(ConfigError) as info:
        AsyncClient()
    message = str(info.value)
    assert "HOLYSHEEP_API_KEY" in message and "%holy mock start" in message
    assert "\n" not in message


def test_placeholder_key_is_refused(monkeypatch):
    monkeypatch.setenv("HOLYSHEEP_API_KEY", "YOUR_HOLYSHEEP_API_KEY")
    with pytest.raises(ConfigError, match="placeholder YOUR_HOLYSHEEP_API_KEY.*HOLYSHEEP_API_KEY"):
        AsyncClient()


def test_precedence_argument_configure_environment_default(monkeypatch):
    client = AsyncClient(api_key=KEY)
    assert client.base_url == "https://api.holysheep.ai/v1"
    assert client.model == "deepseek-v3.2" and client.transport == "sse"

    monkeypatch.setenv("HOLYSHEEP_API_KEY", "sk-from-the-environment-1")
    monkeypatch.setenv("HOLYSHEEP_BASE_URL", "http://env.example/v1/")
    monkeypatch.setenv("HOLYNB_MODEL", "gpt-4.1")
    monkeypatch.setenv("HOLYNB_TRANSPORT", "ws")
    client = AsyncClient()
    assert client.base_url == "http://env.example/v1" and client.model == "gpt-4.1"
    assert client.transport == "ws" and client.masked_key == "sk-…nt-1"

    configure(base_url="http://configured.example/v1", model="gemini-2.5-flash",
              api_key="sk-configured-key-22", transport="sse")
    client = AsyncClient()
    assert client.base_url == "http://configured.example/v1"
    assert client.model == "gemini-2.5-flash" and client.transport == "sse"
    assert client.masked_key == "sk-…y-22"
    assert current_defaults()["api_key"] == "sk-…y-22"

    client = AsyncClient(base_url="http://arg.example/v1", model="claude-sonnet-4.5",
                         api_key=KEY, transport="ws")
    assert (client.base_url, client.model, client.transport) == (
        "http://arg.example/v1", "claude-sonnet-4.5", "ws")
    reset_defaults()
    assert AsyncClient().base_url == "http://env.example/v1"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"base_url": "api.holysheep.ai/v1"}, "must start with http"),
        ({"transport": "grpc"}, "Unknown transport 'grpc'"),
        ({"idle_timeout": 0}, "idle_timeout must be a positive number"),
        ({"first_token_timeout": "60"}, "first_token_timeout must be a positive"),
        ({"max_retries": -1}, "max_retries must be an integer >= 0"),
        ({"model": " "}, "model name is empty"),
    ],
)
def test_bad_options_are_one_line_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match) as info:
        AsyncClient(api_key=KEY, **kwargs)
    assert "\n" not in str(info.value)


def test_per_call_options_are_validated():
    client = AsyncClient(api_key=KEY)
    with pytest.raises(ConfigError, match="total_timeout"):
        client.stream("hi", total_timeout=-1)
    with pytest.raises(ConfigError, match="stream= is set by holynb"):
        client.stream("hi", stream=False)
    with pytest.raises(ConfigError, match="transport"):
        client.stream("hi", transport="carrier-pigeon")


def test_build_messages():
    assert build_messages("Hi") == [{"role": "user", "content": "Hi"}]
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    assert build_messages(msgs) == msgs and build_messages(msgs) is not msgs
    with pytest.raises(ConfigError, match="prompt is empty"):
        build_messages("  ")
    with pytest.raises(ConfigError, match="non-empty list of messages"):
        build_messages([])
    with pytest.raises(ConfigError, match="Message 1 must be a dict with a 'role'"):
        build_messages([{"role": "user", "content": "a"}, "b"])


def test_stats_definitions():
    stats = StreamStats(ttft_s=0.5, tokens=10)
    stats.finish(2.5)
    assert stats.total_s == 2.5 and stats.tokens_per_s == pytest.approx(5.0)
    stats = StreamStats(ttft_s=0.5, tokens=10, completion_tokens=40)
    stats.finish(1.5)
    assert stats.tokens == 40 and stats.tokens_per_s == pytest.approx(40.0)
    assert StreamStats().to_dict()["itl_s"] == []
    assert "TTFT 500 ms" in str(stats) and "40 tokens" in str(stats)
    empty = StreamStats()
    empty.finish(0.1)
    assert empty.tokens_per_s is None and empty.ttft_s is None


def test_public_names():
    for name in ["AsyncClient", "Client", "StreamStats", "HolyError", "ConfigError",
                 "AuthenticationError", "RateLimitError", "APIStatusError",
                 "StreamInterrupted", "StreamTimeout", "MalformedChunkError"]:
        assert getattr(holynb, name).__name__ == name
    assert issubclass(holynb.RateLimitError, holynb.APIStatusError)
    assert issubclass(holynb.AuthenticationError, holynb.APIStatusError)
    for name in ["ConfigError", "APIStatusError", "StreamInterrupted", "StreamTimeout",
                 "MalformedChunkError"]:
        assert issubclass(getattr(holynb, name), holynb.HolyError)
