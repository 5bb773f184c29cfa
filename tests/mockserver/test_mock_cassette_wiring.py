"""How the server uses cassettes: selection by header, matching, strict mode, faults, speed."""

from __future__ import annotations

import json

import httpx
import pytest
from mockutil import AUTH, chat, raw_request, raw_ws_frames

from mockserver import MockServer
from mockserver._cassettes import Cassette, save_cassette
from mockserver._frames import Frame

CODE_PROMPT = "Write a Python function that returns the n-th Fibonacci number."


def write(tmp_path, name: str, frames: list[Frame], **kw) -> None:
    save_cassette(Cassette(name=name, match=kw.pop("match", {"prompt": name}), transport="sse",
                           frames=frames, **kw), tmp_path / f"{name}.json")


def sse_frames(*texts: str, gap: float = 0.01) -> list[Frame]:
    frames = []
    for i, t in enumerate(texts):
        chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m-rec",
                 "choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}]}
        frames.append(Frame(i * gap, f"data: {json.dumps(chunk)}\n\n".encode()))
    frames.append(Frame(len(texts) * gap, b"data: [DONE]\n\n"))
    return frames


def test_shipped_cassette_answers_its_prompt_byte_for_byte(holy_mock_factory) -> None:
    mock = holy_mock_factory(speed=0)
    r = raw_request(mock.url, "/v1/chat/completions", chat(CODE_PROMPT, stream=True))
    path = mock.config.cassette_paths[0] / "code-answer.json"
    recorded = json.loads(path.read_text(encoding="utf-8"))
    assert len(r.chunks) == len(recorded["frames"])  # the same pieces...
    assert r.chunks[0].decode() == recorded["frames"][0]["text"]  # ...and the same bytes
    assert mock.journal()[-1]["cassette"] == "code-answer"


def test_header_selects_a_cassette_for_any_request(tmp_path) -> None:
    write(tmp_path, "hello", sse_frames("Hel", "lo"))
    with MockServer(cassettes=tmp_path, speed=0) as mock:
        r = raw_request(mock.url, "/v1/chat/completions", chat("unrelated", stream=True),
                        headers={"X-Mock-Cassette": "hello"})
        assert [json.loads(e)["choices"][0]["delta"]["content"] for e in r.events()[:-1]] == [
            "Hel", "lo"]
        missing = httpx.post(f"{mock.url}/chat/completions", json=chat(),
                             headers={**AUTH, "X-Mock-Cassette": "nope"})
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "cassette_not_found"
        # Non-streaming requests get one body assembled from the chunks.
        body = httpx.post(f"{mock.url}/chat/completions", json=chat("hello"), headers=AUTH).json()
        assert body["choices"][0]["message"]["content"] == "Hello"
        # A model named only in a cassette is served.
        write(tmp_path, "recmodel", sse_frames("x"), match={"model": "m-rec", "prompt": "p"})
    with MockServer(cassettes=tmp_path, speed=0) as mock:
        models = httpx.get(f"{mock.url}/models", headers=AUTH).json()["data"]
        assert "m-rec" in {m["id"] for m in models}


def test_strict_mode_explains_a_miss(tmp_path) -> None:
    write(tmp_path, "only", sse_frames("a"))
    with MockServer(cassettes=tmp_path, strict=True, speed=0) as mock:
        r = httpx.post(f"{mock.url}/chat/completions", json=chat("other"), headers=AUTH)
        assert r.status_code == 400
        err = r.json()["error"]
        assert err["code"] == "no_matching_cassette" and "closest is 'only'" in err["message"]
        ok = httpx.post(f"{mock.url}/chat/completions", json=chat("only"), headers=AUTH)
        assert ok.status_code == 200


def test_cassette_fault_and_timing_and_ws(tmp_path) -> None:
    write(tmp_path, "faulty", sse_frames("a", "b", "c", gap=0.2), fault="disconnect:after=2")
    with MockServer(cassettes=tmp_path, speed=100) as mock:
        r = raw_request(mock.url, "/v1/chat/completions", chat("faulty", stream=True))
        assert len(r.chunks) == 2 and not r.complete
        assert mock.journal()[-1]["outcome"] == "fault:disconnect"
        frames = raw_ws_frames(mock.url, json.dumps(chat("faulty")))
        texts = [p.decode() for _, op, p in frames if op == 1]
        assert len(texts) == 2 and "[DONE]" not in texts


@pytest.mark.parametrize("status", [429, 500])
def test_error_cassette_is_replayed_with_its_status(tmp_path, status: int) -> None:
    body = json.dumps({"error": {"message": "recorded", "type": "x", "param": None,
                                 "code": None}}).encode()
    save_cassette(Cassette(name="err", match={"prompt": "err"}, transport="json", status=status,
                           headers={"content-type": "application/json"},
                           frames=[Frame(0, body)]), tmp_path / "err.json")
    with MockServer(cassettes=tmp_path, speed=0) as mock:
        r = httpx.post(f"{mock.url}/chat/completions", json=chat("err"), headers=AUTH)
        assert r.status_code == status and r.json()["error"]["message"] == "recorded"


def test_error_cassette_over_websocket_and_json_cassette_for_a_stream(tmp_path) -> None:
    body = json.dumps({"error": {"message": "slow down", "type": "requests", "param": None,
                                 "code": "rate_limit_exceeded"}}).encode()
    save_cassette(Cassette(name="err", match={"prompt": "err"}, transport="json", status=429,
                           frames=[Frame(0, body)]), tmp_path / "err.json")
    ok = json.dumps({"id": "x", "object": "chat.completion", "choices": []}).encode()
    save_cassette(Cassette(name="plain", match={"prompt": "plain"}, transport="json",
                           frames=[Frame(0, ok)]), tmp_path / "plain.json")
    with MockServer(cassettes=tmp_path, speed=0) as mock:
        frames = raw_ws_frames(mock.url, json.dumps(chat("x")), query="?X-Mock-Cassette=err")
        err = json.loads(frames[0][2])["error"]
        assert (err["status"], err["message"]) == (429, "slow down")
        r = httpx.post(f"{mock.url}/chat/completions", json=chat("x", stream=True),
                       headers={**AUTH, "X-Mock-Cassette": "plain"})
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "cassette_transport_mismatch"
