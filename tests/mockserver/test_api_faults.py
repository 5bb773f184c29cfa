"""Every fault over every API's stream, from one table: the pipeline's faults act on frames
whatever the format, and render in each API's own vocabulary (error events, keep-alives, end
markers) — or are refused with a 400 that says why the API's wire cannot carry them.

Streams are read with a raw-socket client (one HTTP chunk per server write) so cut, reset,
sliced and inserted frames stay visible.
"""

from __future__ import annotations

import json

import aiohttp
import pytest
from mockutil import raw_request

from mockserver import MOCK_KEY, MockServer
from mockserver.formats import anthropic, gemini, responses

PROMPT = "fault table"
APIS = {
    "responses": ("/v1/responses", {"model": "gpt-4.1", "input": PROMPT, "stream": True,
                                    "max_output_tokens": 16}, {}),
    "anthropic": ("/v1/messages", {"model": "claude-sonnet-4.5", "max_tokens": 8,
                                   "stream": True,
                                   "messages": [{"role": "user", "content": PROMPT}]},
                  {"x-api-key": MOCK_KEY, "anthropic-version": "2023-06-01"}),
    "gemini": ("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
               {"contents": [{"parts": [{"text": PROMPT}]}],
                "generationConfig": {"maxOutputTokens": 8}}, {"x-goog-api-key": MOCK_KEY}),
    "gemini-array": ("/v1beta/models/gemini-2.5-flash:streamGenerateContent",
                     {"contents": [{"parts": [{"text": PROMPT}]}],
                      "generationConfig": {"maxOutputTokens": 8}}, {"x-goog-api-key": MOCK_KEY}),
}
KITS = {"responses": responses.frame_kit("sse"), "anthropic": anthropic.frame_kit("sse"),
        "gemini": gemini.frame_kit("sse"), "gemini-array": gemini.ARRAY.frame_kit("sse")}
END = {"responses": b"event: response.incomplete", "anthropic": b"event: message_stop",
       "gemini-array": b"\r\n]"}


def run(mock: MockServer, api: str, fault: str):
    path, body, headers = APIS[api]
    return raw_request(mock.url, path, body, headers={**headers, "X-Mock-Fault": fault},
                       timeout=5)


@pytest.mark.parametrize("api", list(APIS))
def test_status_is_the_api_error_before_the_stream(holy_mock: MockServer, api: str) -> None:
    r = run(holy_mock, api, "status:code=429,retry_after=2")
    assert r.status == 429 and r.headers["retry-after"] == "2"
    body = r.json()
    if api == "anthropic":
        assert body["error"]["type"] == "rate_limit_error"
    elif api.startswith("gemini"):
        assert body["error"]["status"] == "RESOURCE_EXHAUSTED"
        assert body["error"]["details"][0]["retryDelay"] == "2s"
    else:
        assert body["error"]["code"] == "rate_limit_exceeded"


@pytest.mark.parametrize("api", list(APIS))
def test_disconnect_and_reset_cut_the_stream(holy_mock: MockServer, api: str) -> None:
    cut = run(holy_mock, api, "disconnect:after=3")
    assert len(cut.chunks) == 3 and not cut.complete
    reset = run(holy_mock, api, "reset:after=2")
    assert len(reset.chunks) <= 2 and not reset.complete
    assert [r["outcome"] for r in holy_mock.journal()] == ["fault:disconnect", "fault:reset"]


@pytest.mark.parametrize("api", list(APIS))
def test_malformed_inserts_the_api_broken_frame(holy_mock: MockServer, api: str) -> None:
    clean = run(holy_mock, api, "slice:size=100000")
    holy_mock.reset()  # the same repeat count: the same seeded ids
    broken = run(holy_mock, api, "malformed:at=2")
    assert broken.chunks[1] == KITS[api].malformed
    assert broken.chunks[:1] + broken.chunks[2:] == clean.chunks and broken.complete


@pytest.mark.parametrize("api", list(APIS))
def test_error_event_in_the_api_vocabulary(holy_mock: MockServer, api: str) -> None:
    r = run(holy_mock, api, "error-event:at=4,code=529")
    assert r.complete and len(r.chunks) >= 4
    tail = r.body[sum(len(c) for c in r.chunks[:3]):].decode()
    if api == "responses":
        assert tail.startswith("event: error\ndata: ")
        error, failed = (json.loads(line[6:]) for line in tail.splitlines()
                         if line.startswith("data: "))
        assert (error["type"], error["code"], error["sequence_number"]) == (
            "error", "server_error", 3)
        assert failed["type"] == "response.failed" and failed["sequence_number"] == 4
    elif api == "anthropic":
        assert tail.startswith("event: error\ndata: ")
        assert json.loads(tail.split("data: ", 1)[1])["error"]["type"] == "overloaded_error"
    else:
        data = tail.split("{", 1)[1]
        error = json.loads("{" + data.removesuffix("\r\n\r\n").removesuffix("\r\n]"))["error"]
        assert (error["code"], error["status"]) == (529, "INTERNAL")


@pytest.mark.parametrize("api", list(APIS))
def test_slice_and_stall_act_on_every_wire(holy_mock: MockServer, api: str) -> None:
    whole = run(holy_mock, api, "stall:after=2,ms=100")
    assert holy_mock.journal()[0]["faults"] == ["stall:after=2,ms=100"]
    holy_mock.reset()
    sliced = run(holy_mock, api, "slice:size=7")
    assert sliced.body == whole.body and all(len(c) <= 7 for c in sliced.chunks)


@pytest.mark.parametrize("api", list(APIS))
def test_no_done_drops_the_end_marker_or_says_why_not(holy_mock: MockServer, api: str) -> None:
    r = run(holy_mock, api, "no-done")
    if api == "gemini":
        assert r.status == 400 and "no end marker" in r.json()["error"]["message"]
        return
    assert r.complete and END[api] not in r.body
    assert END[api] in run(holy_mock, api, "slice:size=100000").body


@pytest.mark.parametrize("api", list(APIS))
def test_heartbeat_is_the_api_keepalive(holy_mock: MockServer, api: str) -> None:
    r = run(holy_mock, api, "stall:after=2,ms=250;heartbeat:ms=40")
    if api == "gemini-array":
        assert r.status == 400 and "alt=sse" in r.json()["error"]["message"]
        return
    keepalive = KITS[api].heartbeat
    assert keepalive is not None and r.chunks.count(keepalive) >= 3
    if api == "anthropic":
        assert keepalive == b'event: ping\ndata: {"type": "ping"}\n\n'


@pytest.mark.parametrize("api", list(APIS))
def test_crlf_and_ws_close(holy_mock: MockServer, api: str) -> None:
    r = run(holy_mock, api, "crlf")
    if api == "gemini-array":
        assert r.status == 400
    else:
        assert b"\n" not in r.body.replace(b"\r\n", b"")
    refused = run(holy_mock, api, "ws-close:code=1011")
    assert refused.status == 400 and refused.json() != {}


async def test_websocket_mode_faults(holy_mock: MockServer) -> None:
    url = holy_mock.url.replace("http://", "ws://") + "/responses"
    create = json.dumps({"type": "response.create", "model": "gpt-4.1", "input": PROMPT})
    auth = {"Authorization": f"Bearer {MOCK_KEY}"}
    async with aiohttp.ClientSession(headers=auth) as session:
        async with session.ws_connect(url + "?X-Mock-Fault=error-event%3Aat%3D4") as ws:
            await ws.send_str(create)
            got = [json.loads((await ws.receive(timeout=5)).data) for _ in range(5)]
        async with session.ws_connect(url + "?X-Mock-Fault=ws-close%3Acode%3D1013%2Cafter%3D3"
                                      ) as ws:
            await ws.send_str(create)
            frames = [await ws.receive(timeout=5) for _ in range(4)]
    assert [e["type"] for e in got[3:]] == ["error", "response.failed"]
    assert [e["sequence_number"] for e in got] == [0, 1, 2, 3, 4]
    assert frames[-1].type == aiohttp.WSMsgType.CLOSE and frames[-1].data == 1013
