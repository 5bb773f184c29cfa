"""The cassette format, request normalisation, matching and transport conversion (no server)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from holynb.sse import SSEDecoder
from mockserver._cassettes import (
    SHIPPED_DIR,
    Cassette,
    CassetteError,
    CassetteStore,
    UnknownCassetteError,
    completion_from_messages,
    content_deltas,
    convert_frames,
    dump_cassette,
    load_cassette,
    normalise_request,
    save_cassette,
    sse_to_ws,
    ws_to_sse,
)
from mockserver._frames import Frame

SHIPPED = sorted(SHIPPED_DIR.glob("*.json"))
PROMPTS = {
    "long-markdown": "Explain how to stream chat completions into a Jupyter notebook.",
    "thai-answer": "อธิบายการสตรีมคำตอบแบบ Server-Sent Events เป็นภาษาไทย",
    "code-answer": "Write a Python function that returns the n-th Fibonacci number.",
    "tool-calls": "What is the weather in Bangkok and Chiang Mai right now?",
    "usage-chunk": "Summarise the benefits of streaming responses in one paragraph.",
    "ws-haiku": "Write a haiku about WebSockets.",
    "reasoning-answer": "Is 1013 a prime number? Think it through before answering.",
}


def chat(prompt: str, model: str = "deepseek-v3.2", **params: object) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": prompt}], **params}


def sse_cassette(name: str, match: dict, text: str = "hi", **kw: Any) -> Cassette:
    chunk = {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": "stop"}]}
    frames = [Frame(0.01, f"data: {json.dumps(chunk)}\n\n".encode()),
              Frame(0.02, b"data: [DONE]\n\n")]
    return Cassette(name=name, match=match, transport="sse", frames=frames, **kw)


def matched(store: CassetteStore, request: dict, transport: str = "sse") -> str | None:
    """The name of the cassette answering ``request`` (None when none does)."""
    found = store.match(request, transport)
    return found.name if found else None


def raw(frames: list[Frame]) -> list[bytes]:
    """SSE frame payloads as bytes."""
    return [f.data if isinstance(f.data, bytes) else f.data.encode() for f in frames]


def write_doc(tmp_path: Path, doc: object, name: str = "c.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


# -- format ------------------------------------------------------------------------------------


def test_all_shipped_cassettes_are_present() -> None:
    assert {p.stem for p in SHIPPED} == set(PROMPTS)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_cassette_round_trips_byte_exactly(path: Path, tmp_path: Path) -> None:
    c = load_cassette(path)
    assert c.name == path.stem and c.path == path
    assert dump_cassette(c).encode("utf-8") == path.read_bytes()
    again = load_cassette(save_cassette(c, tmp_path / "copy.json"))
    assert (tmp_path / "copy.json").read_bytes() == path.read_bytes()
    assert again == c


def test_round_trip_keeps_invalid_utf8_and_exact_offsets(tmp_path: Path) -> None:
    thai = "สวัสดี".encode()
    frames = [
        Frame(0.0, b"data: {\"a\": 1}\r\n\r\n"),
        Frame(0.1234567891, b"data: " + thai[:4]),  # ends inside a character
        Frame(0.2, thai[4:] + b"\n\n"),
        Frame(0.2, b"\x00\xff\xfe"),
    ]
    c = Cassette(name="bytes", match={"prompt": "x"}, transport="sse", frames=frames,
                 status=200, headers={"content-type": "text/event-stream"}, fault="crlf")
    path = save_cassette(c, tmp_path / "bytes.json")
    text = path.read_text(encoding="utf-8")
    assert '"b64"' in text and '"text": "data: {\\"a\\": 1}\\r\\n\\r\\n"' in text
    assert len([ln for ln in text.splitlines() if ln.strip().startswith('{"at"')]) == 4
    loaded = load_cassette(path)
    assert loaded == c
    assert [f.data for f in loaded.frames] == [f.data for f in frames]
    assert save_cassette(loaded, tmp_path / "again.json").read_bytes() == path.read_bytes()


def test_ws_frames_keep_text_and_binary_apart(tmp_path: Path) -> None:
    c = Cassette(name="ws", match={}, transport="ws",
                 frames=[Frame(0.0, "héllo"), Frame(0.5, b"\x01\x02"), Frame(0.6, "[DONE]")])
    loaded = load_cassette(save_cassette(c, tmp_path / "ws.json"))
    assert [f.data for f in loaded.frames] == ["héllo", b"\x01\x02", "[DONE]"]


def test_sse_frames_must_be_bytes() -> None:
    c = Cassette(name="x", match={}, transport="sse", frames=[Frame(0.0, "data: x\n\n")])
    with pytest.raises(CassetteError, match="sse frames must be bytes"):
        dump_cassette(c)


GOOD = {"version": 1, "name": "ok", "match": {"prompt": "p"}, "transport": "sse",
        "status": 200, "headers": {}, "fault": None, "frames": [{"at": 0.1, "text": "data: x\n\n"}]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": 2}, "unsupported version 2"),
        ({"name": ""}, "'name' must be a non-empty string"),
        ({"transport": "grpc"}, "'transport' must be one of sse, ws, json, got 'grpc'"),
        ({"status": 99}, "'status' must be an HTTP status code"),
        ({"headers": {"a": 1}}, "'headers' must be an object of string names"),
        ({"fault": "disconect:after=3"},
         "'fault' is not a valid X-Mock-Fault spec: unknown fault 'disconect'"),
        ({"fault": 3}, "'fault' must be null or a string"),
        ({"match": {"temprature": 0.2}}, "unknown match field 'temprature'"),
        ({"match": {"model": 4}}, "match field 'model' must be a string"),
        ({"match": {"messages": "hi"}}, "'messages' must be a list of message objects"),
        ({"frames": {}}, "'frames' must be a list"),
        ({"frames": [{"at": -1, "text": "x"}]}, "frames[0].at must be a number of seconds >= 0"),
        ({"frames": [{"at": "0", "text": "x"}]}, "frames[0].at must be a number"),
        ({"frames": [{"at": 1, "text": "x"}, {"at": 0.5, "text": "y"}]},
         "frames[1].at=0.5 goes back in time"),
        ({"frames": [{"at": 0, "text": "x", "b64": "eA=="}]}, "exactly one of 'text' or 'b64'"),
        ({"frames": [{"at": 0}]}, "exactly one of 'text' or 'b64'"),
        ({"frames": [{"at": 0, "b64": "%%%"}]}, "frames[0].b64 is not valid base64"),
        ({"frames": [{"at": 0, "data": "x"}]}, "frames[0] has unknown field 'data'"),
        ({"frames": [7]}, "frames[0] must be an object"),
        ({"extra": 1}, "unknown field 'extra'"),
    ],
)
def test_load_errors_name_the_file_and_the_problem(
    tmp_path: Path, change: dict, message: str
) -> None:
    path = write_doc(tmp_path, {**GOOD, **change})
    with pytest.raises(CassetteError) as info:
        load_cassette(path)
    text = str(info.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "invalid JSON at line 1 column 2"),
        (b"\xff\xfe{}", "cassette files must be UTF-8"),
        (b"[]", "expected a JSON object at the top level, got list"),
        (b'{"version": 1, "name": "x", "frames": []}', "missing required field 'transport'"),
    ],
)
def test_load_errors_for_unreadable_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(CassetteError, match=message):
        load_cassette(path)


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CassetteError, match="no such cassette file or folder"):
        CassetteStore(tmp_path / "nope")
    with pytest.raises(CassetteError, match="cannot read cassette"):
        load_cassette(tmp_path / "nope.json")


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    write_doc(tmp_path, GOOD, "a.json")
    write_doc(tmp_path, GOOD, "b.json")
    with pytest.raises(CassetteError, match="duplicate cassette name 'ok'.*rename one"):
        CassetteStore(tmp_path)


# -- normalisation and matching ----------------------------------------------------------------


def test_normalise_request_keeps_only_what_matching_uses() -> None:
    norm = normalise_request({
        "model": "gpt-4.1",
        "messages": [{"role": "system", "content": "be brief", "name": None},
                     {"role": "user", "content": [{"type": "text", "text": "hel"},
                                                  {"type": "text", "text": "lo"}]}],
        "temperature": 1.0, "max_completion_tokens": 50, "stop": "END",
        "stream": True, "stream_options": {"include_usage": True}, "n": 1, "user": "u1",
    })
    assert norm == {
        "model": "gpt-4.1",
        "messages": [{"role": "system", "content": "be brief"},
                     {"role": "user", "content": [{"type": "text", "text": "hel"},
                                                  {"type": "text", "text": "lo"}]}],
        "prompt": "hello",
        "temperature": 1,
        "max_tokens": 50,
        "stop": ["END"],
    }


def test_prompt_match_ignores_model_system_prompt_and_unlisted_keys() -> None:
    store = CassetteStore(SHIPPED_DIR)
    req = {"model": "gpt-4.1", "stream": True, "user": "x",
           "messages": [{"role": "system", "content": "You are terse."},
                        {"role": "user", "content": PROMPTS["code-answer"]}]}
    assert matched(store, req, "sse") == "code-answer"
    assert store.match(chat(PROMPTS["code-answer"] + " "), "sse") is None


@pytest.mark.parametrize("name", sorted(PROMPTS))
def test_each_shipped_prompt_matches_its_cassette_over_every_transport(name: str) -> None:
    store = CassetteStore(SHIPPED_DIR)
    for transport in ("sse", "ws", "json"):
        assert matched(store, chat(PROMPTS[name]), transport) == name


def test_model_in_the_key_must_match() -> None:
    store = CassetteStore()
    store.add(sse_cassette("only-gpt", {"model": "gpt-4.1", "prompt": "p"}))
    assert store.match(chat("p", "gpt-4.1"), "sse") is not None
    assert store.match(chat("p", "deepseek-v3.2"), "sse") is None
    assert store.models() == ["gpt-4.1"]


def test_most_specific_cassette_wins_then_same_transport_then_load_order() -> None:
    store = CassetteStore()
    store.add(sse_cassette("any", {"prompt": "p"}))
    store.add(sse_cassette("cool", {"prompt": "p", "temperature": 0.2}))
    ws = Cassette(name="cool-ws", match={"prompt": "p", "temperature": 0.2}, transport="ws",
                  frames=[Frame(0.0, "[DONE]")])
    store.add(ws)
    assert matched(store, chat("p"), "sse") == "any"
    assert matched(store, chat("p", temperature=0.2), "sse") == "cool"
    assert matched(store, chat("p", temperature=0.2), "ws") == "cool-ws"
    assert matched(store, chat("p", temperature=0.9), "sse") == "any"


def test_integral_floats_and_ints_match() -> None:
    store = CassetteStore()
    store.add(sse_cassette("t1", {"prompt": "p", "temperature": 1}))
    assert store.match(chat("p", temperature=1.0), "sse") is not None


def test_repeat_counting_returns_recordings_in_order_then_cycles(tmp_path: Path) -> None:
    key = {"model": "m", "messages": [{"role": "user", "content": "again"}]}
    for n in (10, 2, 1):  # natural order: -1, -2, -10
        save_cassette(sse_cassette(f"again-{n}", key, text=str(n)), tmp_path / f"again-{n}.json")
    store = CassetteStore(tmp_path)
    req = chat("again", "m")
    seen = [matched(store, req) for _ in range(4)]
    assert seen == ["again-1", "again-2", "again-10", "again-1"]
    other = chat("again", "m", temperature=0.5)  # a different request has its own counter
    assert matched(store, other, "sse") == "again-1"
    store.reset()
    assert matched(store, req, "sse") == "again-1"


def test_json_cassettes_answer_only_non_streaming_requests() -> None:
    store = CassetteStore()
    body = b'{"object": "chat.completion"}'
    store.add(Cassette(name="j", match={"prompt": "p"}, transport="json",
                       frames=[Frame(0.3, body)]))
    assert store.match(chat("p"), "sse") is None
    assert matched(store, chat("p"), "json") == "j"
    assert store.get("j").frames_for("json") == [Frame(0.3, body)]
    assert "json cassettes answer only non-streaming" in store.explain(chat("p"), "sse")


def test_strict_mode_refuses_parameters_the_cassette_does_not_record() -> None:
    loose, strict = CassetteStore(), CassetteStore(strict=True)
    for store in (loose, strict):
        store.add(sse_cassette("p", {"prompt": "p"}))
    req = chat("p", temperature=0.3)
    assert loose.match(req, "sse") is not None
    assert strict.match(req, "sse") is None
    assert strict.match(chat("p"), "sse") is not None
    assert strict.explain(req, "sse") == (
        "no cassette matches this sse request; closest is 'p': the request sets "
        'temperature="0.3", which the cassette does not record (strict mode)'
    )


def test_explain_names_the_closest_cassette_and_first_difference() -> None:
    store = CassetteStore(SHIPPED_DIR)
    text = store.explain(chat("Write a Python function that returns the n-th prime number."), "sse")
    assert text == (
        "no cassette matches this sse request; closest is 'code-answer' (code-answer.json): "
        'prompt differs at character 46: request "at returns the n-th prime number." '
        'vs cassette "at returns the n-th Fibonacci number."'
    )
    text = store.explain(chat("Write a haiku about WebSocket servers."), "sse")
    assert "closest is 'ws-haiku' (ws-haiku.json): prompt differs at character 29" in text
    assert store.explain(chat(PROMPTS["ws-haiku"]), "ws") == (
        "cassette 'ws-haiku' (ws-haiku.json) matches this ws request"
    )
    assert CassetteStore().explain(chat("x"), "sse") == "no cassettes are loaded"


def test_explain_points_into_messages() -> None:
    store = CassetteStore()
    key = {"messages": [{"role": "system", "content": "be kind"}, {"role": "user", "content": "q"}]}
    store.add(sse_cassette("conv", key))
    req = {"model": "m", "messages": [{"role": "system", "content": "be brief"},
                                      {"role": "user", "content": "q"}]}
    assert store.explain(req, "sse").endswith(
        'messages[0].content differs at character 3: request "be brief" vs cassette "be kind"'
    )
    count = store.explain(chat("q"), "sse")
    assert "messages count differs: request has 1, cassette has 2" in count
    absent = _store_with(sse_cassette("t", {"temperature": 0.5})).explain(chat("q"), "sse")
    assert "the request has no temperature; the cassette wants temperature=" in absent


def _store_with(*cassettes: Cassette) -> CassetteStore:
    store = CassetteStore()
    for c in cassettes:
        store.add(c)
    return store


def test_get_by_name_and_unknown_names() -> None:
    store = CassetteStore(SHIPPED_DIR)
    assert store.get("tool-calls").match == {"prompt": PROMPTS["tool-calls"]}
    with pytest.raises(UnknownCassetteError, match=r"no cassette named 'nope' \(known: code-ans"):
        store.get("nope")
    with pytest.raises(LookupError):
        store.get("nope")
    with pytest.raises(ValueError, match="transport must be one of sse, ws, json"):
        store.match(chat("x"), "grpc")


# -- transport conversion ----------------------------------------------------------------------


def events_of(frames: list[Frame]) -> list[str]:
    decoder = SSEDecoder()
    return [e.data for data in raw(frames) for e in decoder.feed(data)]


def test_sse_cassette_over_ws_gives_one_message_per_event() -> None:
    thai = load_cassette(SHIPPED_DIR / "thai-answer.json")
    messages = thai.frames_for("ws")
    assert [m.data for m in messages] == events_of(thai.frames)
    assert messages[-1].data == "[DONE]"
    assert all(isinstance(m.data, str) for m in messages)
    # every message is stamped with the offset of the write that completed it
    ends = [f.at for f, data in zip(thai.frames, raw(thai.frames), strict=True)
            if data.endswith(b"\n\n")]
    assert [m.at for m in messages] == ends
    assert any(b"\xe0" in data and not data.endswith(b"\n\n") for data in raw(thai.frames))


def test_ws_cassette_over_sse_and_back() -> None:
    haiku = load_cassette(SHIPPED_DIR / "ws-haiku.json")
    sse = haiku.frames_for("sse")
    assert [f.at for f in sse] == [f.at for f in haiku.frames]
    assert sse[-1].data == b"data: [DONE]\n\n"
    assert sse_to_ws(sse) == haiku.frames
    two_lines = [Frame(0.0, b"data: a\ndata: b\n\n")]
    assert ws_to_sse([Frame(0.0, "a\nb"), Frame(0.1, b"\x00")]) == two_lines
    assert haiku.headers_for("sse")["content-type"].startswith("text/event-stream")


def test_streams_assemble_into_a_completion_body() -> None:
    store = CassetteStore(SHIPPED_DIR)
    (frame,) = store.get("tool-calls").frames_for("json")
    body = json.loads(frame.data)
    assert body["object"] == "chat.completion"
    message = body["choices"][0]["message"]
    assert body["choices"][0]["finish_reason"] == "tool_calls" and message["content"] is None
    assert [(c["id"][:5], c["function"]["name"], json.loads(c["function"]["arguments"]))
            for c in message["tool_calls"]] == [
        ("call_", "get_weather", {"city": "Bangkok", "unit": "celsius"}),
        ("call_", "get_weather", {"city": "Chiang Mai", "unit": "celsius"}),
    ]
    usage = json.loads(store.get("usage-chunk").frames_for("json")[0].data)["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    md = json.loads(store.get("long-markdown").frames_for("json")[0].data)
    text = md["choices"][0]["message"]["content"]
    assert text.startswith("# Streaming chat completions") and text.count("```") >= 12
    assert "| Strategy |" in text and "\n  - " in text and "\n## " in text
    assert completion_from_messages(['{"error": {"message": "x"}}', "[DONE]"])["choices"][0][
        "message"] == {"role": "assistant", "content": None, "refusal": None}


def test_error_cassettes_are_sent_as_recorded() -> None:
    body = b'{"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}}'
    c = Cassette(name="429", match={}, transport="sse", status=429, frames=[Frame(0.05, body)],
                 headers={"content-type": "application/json", "retry-after": "1"})
    assert c.frames_for("sse") == c.frames_for("json") == [Frame(0.05, body)]
    assert c.frames_for("ws") == [Frame(0.05, body.decode())]
    assert c.headers_for("json") == c.headers


def test_shipped_cassettes_look_like_a_real_upstream() -> None:
    store = CassetteStore(SHIPPED_DIR)
    md = store.get("long-markdown")
    assert len(md.frames) >= 1200
    gaps = [b.at - a.at for a, b in zip(md.frames, md.frames[1:], strict=False)]
    mean_gap = sum(gaps) / len(gaps)
    assert 0.009 < mean_gap < 0.02 and 0.05 < md.frames[0].at < 0.2  # ~71 tok/s, ~94 ms TTFT
    for c in store.cassettes:
        if c.transport == "sse":
            assert c.frames[-1].data == b"data: [DONE]\n\n"
            assert c.headers["content-type"].startswith("text/event-stream")
    usage_chunks = [json.loads(m.data) for m in store.get("usage-chunk").frames_for("ws")[:-1]]
    assert usage_chunks[-1]["choices"] == [] and usage_chunks[-1]["usage"]["completion_tokens"] > 50


def test_content_deltas_rebuild_each_shipped_reply() -> None:
    for path in SHIPPED:
        cassette = load_cassette(path)
        deltas = content_deltas(cassette)
        messages = convert_frames(cassette.frames, cassette.transport, "ws")
        body = completion_from_messages(m.data for m in messages if isinstance(m.data, str))
        assert "".join(d for _, d in deltas) == (body["choices"][0]["message"]["content"] or "")
        offsets = [at for at, _ in deltas]
        assert offsets == sorted(offsets)
