"""Gemini against the mock: the official google-genai SDK (``generate_content``,
``generate_content_stream``, sync and async, its error types) and the raw wire (SSE, the JSON
array without ``alt=sse``, ``?key=``)."""

from __future__ import annotations

import json

import pytest
from google import genai
from google.genai import errors, types
from mockutil import raw_request

from mockserver import MOCK_KEY, MockServer

MODEL = "gemini-2.5-flash"
PATH = f"/v1beta/models/{MODEL}"
BODY = {"contents": [{"role": "user", "parts": [{"text": "Say something"}]}],
        "generationConfig": {"maxOutputTokens": 6}}
KEY = {"x-goog-api-key": MOCK_KEY, "Authorization": ""}


def client(mock: MockServer, key: str = MOCK_KEY, **headers: str) -> genai.Client:
    options = types.HttpOptions(base_url=mock.base_url, api_version="v1beta",
                                headers=headers or None,
                                retry_options=types.HttpRetryOptions(attempts=1))
    return genai.Client(api_key=key, http_options=options)


def test_sdk_generate_and_stream_agree(holy_mock: MockServer) -> None:
    c = client(holy_mock)
    whole = c.models.generate_content(model=MODEL, contents="Say something")
    chunks = list(c.models.generate_content_stream(model=MODEL, contents="Say something"))
    assert whole.text == "".join(ch.text or "" for ch in chunks)
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert chunks[-1].usage_metadata.candidates_token_count == 64
    assert whole.model_version == MODEL and whole.response_id


# google-genai's async client subclasses aiohttp.ClientSession, which aiohttp warns about.
@pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")
async def test_sdk_async_stream_with_thoughts(holy_mock: MockServer) -> None:
    c = client(holy_mock, **{"X-Mock-Reasoning": "4"})
    thoughts, text = [], []
    async for chunk in await c.aio.models.generate_content_stream(
            model=MODEL, contents="Think", config=types.GenerateContentConfig(
                max_output_tokens=5, thinking_config=types.ThinkingConfig(include_thoughts=True))):
        for part in chunk.candidates[0].content.parts:
            (thoughts if part.thought else text).append(part.text)
    assert len(thoughts) == 4 and len(text) == 5
    assert chunk.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert chunk.usage_metadata.thoughts_token_count == 4


def test_sdk_function_calls_from_the_tool_calls_cassette(holy_mock: MockServer) -> None:
    c = client(holy_mock)  # held: a collected Client closes its connection pool
    response = c.models.generate_content(
        model=MODEL, contents="What is the weather in Bangkok and Chiang Mai right now?")
    calls = response.function_calls
    assert [(c.name, c.args["city"]) for c in calls] == [("get_weather", "Bangkok"),
                                                         ("get_weather", "Chiang Mai")]


@pytest.mark.parametrize(("fault", "exc", "code"), [
    ("status:code=429,retry_after=3", errors.ClientError, 429),
    ("status:code=503", errors.ServerError, 503),
    ("status:code=401", errors.ClientError, 401),
    ("status:code=529", errors.ServerError, 529),
])
def test_sdk_raises_its_error_types(holy_mock: MockServer, fault: str, exc: type,
                                    code: int) -> None:
    c = client(holy_mock, **{"X-Mock-Fault": fault})
    with pytest.raises(exc) as info:
        list(c.models.generate_content_stream(model=MODEL, contents="x"))
    assert info.value.code == code
    assert info.value.status == {429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE",
                                 401: "UNAUTHENTICATED", 529: "INTERNAL"}[code]


def test_sdk_raises_on_an_error_chunk_mid_stream(holy_mock: MockServer) -> None:
    c = client(holy_mock, **{"X-Mock-Fault": "error-event:at=3"})
    seen = []
    with pytest.raises(errors.ServerError) as info:
        for chunk in c.models.generate_content_stream(model=MODEL, contents="x"):
            seen.append(chunk.text)
    assert len(seen) == 2 and info.value.code == 500 and info.value.status == "INTERNAL"


def test_sdk_bad_key(holy_mock_factory) -> None:
    mock = holy_mock_factory(keys="AIza-good-key-0001")
    c = client(mock, key="AIza-wrong-key-0002")
    with pytest.raises(errors.ClientError) as info:
        c.models.generate_content(model=MODEL, contents="x")
    assert info.value.code == 400 and "API key not valid" in info.value.message
    assert info.value.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"


def test_wire_sse(holy_mock: MockServer) -> None:
    r = raw_request(holy_mock.url, f"{PATH}:streamGenerateContent?alt=sse", BODY, headers=KEY)
    assert r.status == 200 and r.headers["content-type"].startswith("text/event-stream")
    blocks = [b for b in r.body.decode().split("\r\n\r\n") if b]
    assert all(b.startswith("data: ") and "\n" not in b for b in blocks)
    chunks = [json.loads(b[len("data: "):]) for b in blocks]
    assert len(chunks) == 6 and b"[DONE]" not in r.body
    assert all("finishReason" not in c["candidates"][0] for c in chunks[:-1])
    last = chunks[-1]
    assert last["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert last["usageMetadata"]["candidatesTokenCount"] == 6
    assert last["candidates"][0]["content"]["role"] == "model"


def test_wire_json_array_and_query_key(holy_mock: MockServer) -> None:
    r = raw_request(holy_mock.url, f"{PATH}:streamGenerateContent?key={MOCK_KEY}", BODY,
                    headers={"Authorization": ""})
    assert r.status == 200 and r.headers["content-type"].startswith("application/json")
    assert r.chunks[0].startswith(b"[{") and r.chunks[-1] == b"\r\n]"
    array = json.loads(r.body)
    assert len(array) == 6 and array[-1]["candidates"][0]["finishReason"] == "MAX_TOKENS"
    record = holy_mock.journal()[-1]
    assert record["api"] == "gemini-array" and MOCK_KEY not in json.dumps(record)


@pytest.mark.parametrize(("path", "headers", "status", "google"), [
    (f"{PATH}:generateContent", {"Authorization": ""}, 403, "PERMISSION_DENIED"),
    (f"{PATH}:generateContent", {"x-goog-api-key": "YOUR_API_KEY", "Authorization": ""}, 400,
     "INVALID_ARGUMENT"),
    ("/v1beta/models/nope:generateContent", KEY, 404, "NOT_FOUND"),
    (f"{PATH}:countEverything", KEY, 404, "NOT_FOUND"),
])
def test_errors_in_google_shape(holy_mock: MockServer, path: str, headers: dict, status: int,
                                google: str) -> None:
    r = raw_request(holy_mock.url, path, BODY, headers=headers)
    assert r.status == status
    assert r.json()["error"]["status"] == google and r.json()["error"]["code"] == status


def test_bad_body_is_invalid_argument(holy_mock: MockServer) -> None:
    r = raw_request(holy_mock.url, f"{PATH}:generateContent", {"contents": []}, headers=KEY)
    assert r.status == 400 and "contents" in r.json()["error"]["message"]


def test_models_list(holy_mock: MockServer) -> None:
    c = client(holy_mock)
    names = [m.name for m in c.models.list()]
    assert f"models/{MODEL}" in names
    r = raw_request(holy_mock.url, PATH, method="GET", headers=KEY)
    assert "generateContent" in r.json()["supportedGenerationMethods"]
