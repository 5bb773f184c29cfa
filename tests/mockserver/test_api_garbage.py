"""Malformed requests to every API get a 400 in that API's own error shape, at once."""

from __future__ import annotations

import pytest
from mockutil import raw_request

from mockserver import MOCK_KEY, MockServer

APIS = {
    "responses": ("/v1/responses", {}),
    "anthropic": ("/v1/messages", {"x-api-key": MOCK_KEY, "anthropic-version": "2023-06-01"}),
    "gemini": ("/v1beta/models/gemini-2.5-flash:generateContent", {"x-goog-api-key": MOCK_KEY}),
}
GARBAGE = [b"{not json", b"[1, 2]", b"\xff\xfe", b"[" * 100_000 + b"]" * 100_000, b'"text"']


def shape(api: str, body: dict) -> str:
    """The error's kind, read the way the API's SDK reads it."""
    if api == "anthropic":
        assert body["type"] == "error"
        return body["error"]["type"]
    if api == "gemini":
        assert body["error"]["code"] == 400
        return body["error"]["status"]
    return body["error"]["type"]


@pytest.mark.parametrize("api", list(APIS))
@pytest.mark.parametrize("raw", GARBAGE, ids=["broken", "array", "not-utf8", "deep", "string"])
def test_garbage_is_a_400_in_the_api_shape(holy_mock: MockServer, api: str, raw: bytes) -> None:
    path, headers = APIS[api]
    r = raw_request(holy_mock.url, path, raw_body=raw, headers=headers, timeout=10)
    assert r.status == 400 and r.complete
    assert shape(api, r.json()) in ("invalid_request_error", "INVALID_ARGUMENT")
    record = holy_mock.journal()[-1]
    assert (record["api"], record["outcome"], record["status"]) == (api, "error", 400)


@pytest.mark.parametrize("api", list(APIS))
def test_unknown_routes_and_methods_answer_in_the_api_shape(holy_mock: MockServer,
                                                            api: str) -> None:
    path, headers = APIS[api]
    r = raw_request(holy_mock.url, path, method="PUT", raw_body=b"{}", headers=headers)
    assert r.status == 405 and "allow" in r.headers
    body = r.json()
    assert (body["type"] == "error") if api == "anthropic" else ("error" in body)
