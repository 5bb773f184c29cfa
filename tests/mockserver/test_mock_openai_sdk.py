"""The official openai SDK against the mock: streams, non-streams, maps injected errors."""

from __future__ import annotations

import openai
import pytest

from mockserver import MOCK_KEY, MockServer


def client(mock: MockServer, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=mock.url, api_key=MOCK_KEY, max_retries=0,
                         default_headers=headers or None)


MESSAGES = [{"role": "user", "content": "Say something"}]


def test_sdk_non_streaming(holy_mock: MockServer) -> None:
    with client(holy_mock) as c:
        result = c.chat.completions.create(model="deepseek-v3.2", messages=MESSAGES, max_tokens=9)
    assert result.choices[0].finish_reason == "length"
    assert result.usage is not None and result.usage.completion_tokens == 9
    assert result.choices[0].message.content


def test_sdk_streaming_matches_non_streaming(holy_mock: MockServer) -> None:
    with client(holy_mock) as c:
        whole = c.chat.completions.create(model="gpt-4.1", messages=MESSAGES)
        stream = c.chat.completions.create(
            model="gpt-4.1", messages=MESSAGES, stream=True,
            stream_options={"include_usage": True},
        )
        pieces, usage, finish = [], None, None
        for chunk in stream:
            if chunk.usage:
                usage = chunk.usage
            for choice in chunk.choices:
                pieces.append(choice.delta.content or "")
                finish = choice.finish_reason or finish
    assert "".join(pieces) == whole.choices[0].message.content
    assert finish == "stop" and usage is not None and usage.completion_tokens == 64


def test_sdk_models(holy_mock: MockServer) -> None:
    with client(holy_mock) as c:
        assert "gemini-2.5-flash" in {m.id for m in c.models.list()}


@pytest.mark.parametrize("stream", [False, True])
def test_sdk_raises_rate_limit_error(holy_mock: MockServer, stream: bool) -> None:
    with client(holy_mock, **{"X-Mock-Fault": "status:code=429,retry_after=1"}) as c:
        with pytest.raises(openai.RateLimitError) as info:
            c.chat.completions.create(model="gpt-4.1", messages=MESSAGES, stream=stream)
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after-ms"] == "1000"


def test_sdk_raises_authentication_error(holy_mock: MockServer) -> None:
    with openai.OpenAI(base_url=holy_mock.url, api_key="YOUR_HOLYSHEEP_API_KEY",
                       max_retries=0) as c:
        with pytest.raises(openai.AuthenticationError):
            c.chat.completions.create(model="gpt-4.1", messages=MESSAGES)
    with client(holy_mock, **{"X-Mock-Fault": "status:code=401"}) as c:
        with pytest.raises(openai.AuthenticationError):
            c.chat.completions.create(model="gpt-4.1", messages=MESSAGES, stream=True)


@pytest.mark.parametrize(
    ("code", "exc"),
    [(400, openai.BadRequestError), (404, openai.NotFoundError),
     (500, openai.InternalServerError), (503, openai.InternalServerError)],
)
def test_sdk_maps_other_statuses(holy_mock: MockServer, code: int, exc: type) -> None:
    with client(holy_mock, **{"X-Mock-Fault": f"status:code={code}"}) as c:
        with pytest.raises(exc):
            c.chat.completions.create(model="gpt-4.1", messages=MESSAGES)


def test_sdk_sees_an_error_event_mid_stream(holy_mock: MockServer) -> None:
    with client(holy_mock, **{"X-Mock-Fault": "error-event:at=3"}) as c:
        stream = c.chat.completions.create(model="gpt-4.1", messages=MESSAGES, stream=True)
        got = []
        with pytest.raises(openai.APIError):
            for chunk in stream:
                got.append(chunk)
    assert len(got) == 2


def test_sdk_retries_a_flaky_server_with_the_mock_hints(holy_mock_factory) -> None:
    mock = holy_mock_factory(seed=5, fault="status:code=429,retry_after=0.01,p=0.5")
    with openai.OpenAI(base_url=mock.url, api_key=MOCK_KEY, max_retries=8) as c:
        result = c.chat.completions.create(model="gpt-4.1", messages=MESSAGES, max_tokens=2)
    assert result.usage is not None and result.usage.completion_tokens == 2
