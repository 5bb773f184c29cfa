"""One request, from bytes to a plan of frames — the same for HTTP streaming, JSON and WebSocket.

A request goes through, in order:

1. **auth** — the key, where the request's API carries it, or that API's refusal (401, or
   Gemini's 403/400);
2. **controls** — ``X-Mock-*`` headers (WebSocket: query parameters), or 400
   ``invalid_mock_control``;
3. **parsed request** — the body as the format's request (400 naming the bad field), which
   fixes the path: ``sse`` (streamed HTTP), ``json`` (one HTTP body) or ``ws``; every fault the
   request asked for must apply to that path (else 400 ``invalid_mock_control`` saying why);
4. **rate-limit decision** — the key's token bucket, or 429;
5. **reply plan** — a cassette (by name, by match; strict mode explains a miss) or a generated
   reply with its latency schedule, rendered as the path's frames by the request's API format
   (``formats/``): a cassette recorded in that API replays its bytes, one recorded in another
   is read back into a reply plan and rendered anew; a Responses request with
   ``previous_response_id`` first continues the conversation the mock remembers;
6. **fault plan** — server, cassette and request faults that apply to the path, drawn by their
   probabilities from the request's seeded RNG; a ``status`` fault answers with that error.

The transports (``_http``, ``_ws``) only run steps 1–2 at their door (:meth:`Pipeline.admit`),
hand the body to :meth:`Pipeline.answer`, and write what comes back: an :class:`Answer`, or a
raised :class:`~mockserver._errors.MockError` / :class:`InjectedStatus` (which they render in
the request's API through its format).
"""

from __future__ import annotations

import json
import random
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, replace
from typing import Any

from . import formats
from ._cassettes import Cassette, CassetteError
from ._config import PLACEHOLDER_KEYS, mask_key
from ._controls import ControlError, RequestControls, parse_controls
from ._errors import MockError, status_error
from ._faults import (
    FaultError,
    FaultSpec,
    Plan,
    applicable,
    fired,
    merge_faults,
    parse_faults,
    plan_reply,
)
from ._frames import Frame, join_frames
from ._generate import answer_length, generate_reply, request_digest
from ._journal import SCHEDULE_CAP, Record
from ._latency import profile_for, schedule
from ._reply import Reply
from ._state import MockState
from .formats import chat, responses

__all__ = ["Answer", "InjectedStatus", "Pipeline"]


_UNSEEDED = random.Random()


class InjectedStatus(Exception):
    """A ``status`` fault fired: answer with this error instead of a reply."""

    def __init__(self, error: MockError) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass(slots=True)
class Answer:
    """The plan for one request: what to send over ``path``, with what status and headers.

    A status >= 400 is a recorded error response: ``plan.frames`` is its body. ``end`` is the
    offset at which the whole reply is ready (a non-streaming answer is sent then).
    """

    path: str
    plan: Plan
    status: int = 200
    headers: dict[str, str] | None = None
    end: float = 0.0

    def body(self) -> bytes:
        """All frames as one body (for error answers)."""
        return join_frames(self.plan.frames)


def _control_error(message: str) -> MockError:
    return MockError(400, message, code="invalid_mock_control")


def _recorded_message(cassette: Cassette) -> str:
    """The message of a recorded error body, whatever API's shape it has."""
    try:
        body = json.loads(b"".join(f.data if isinstance(f.data, bytes) else f.data.encode()
                                   for f in cassette.frames))
        error = body.get("error", body)
        return str(error.get("message") or error)
    except (ValueError, AttributeError):
        return f"recorded error response (cassette {cassette.name!r})"


def _published(frames: Iterable[Frame], publish: Callable[[], None]) -> Iterator[Frame]:
    """``frames``, publishing what the store remembered when the second is asked for: the
    writer has queued the first (which names the response) and not yet written it, so every
    worker can continue the response before its client knows the id. Many streams asking in
    one turn of the pacer share one write."""
    frames = iter(frames)
    for first in frames:
        yield first
        publish()
        break
    yield from frames


class Pipeline:
    """Turns requests into answers for one app (its state holds config, cassettes, store)."""

    def __init__(self, state: MockState) -> None:
        self.state = state
        self.config = state.config
        self.server_faults = parse_faults(state.config.fault)

    # -- steps 1 and 2 -----------------------------------------------------------------------

    def admit(
        self, key: str | None, source: Mapping[str, str], *, path: str | None = None,
        fmt: formats.Format = chat,  # type: ignore[assignment]
    ) -> RequestControls:
        """Authenticate and read the controls; with ``path`` known (WebSocket) also check the
        requested faults apply to it. Raises :class:`MockError` (401, 400)."""
        self.authorize(key, fmt)
        try:
            controls = parse_controls(source)
        except ControlError as exc:
            raise _control_error(str(exc)) from None
        if path is not None:
            self._check_faults(controls.faults, path, fmt)
        return controls

    def authorize(
        self, key: str | None, fmt: formats.Format = chat  # type: ignore[assignment]
    ) -> None:
        """Raise the API's auth error (a :class:`MockError`) unless the key is accepted."""
        if self.config.accepts(key):
            return
        # Without a key list any key but a placeholder would have been accepted.
        placeholder = self.config.keys is None or (key or "").strip() in PLACEHOLDER_KEYS
        raise fmt.auth_error(key if key and key.strip() else None, placeholder=placeholder)

    @staticmethod
    def _check_faults(faults: list[FaultSpec], path: str, fmt: formats.Format) -> None:
        try:
            applicable(faults, path, strict=True, unsupported=fmt.frame_kit(path, None).unsupported)
        except FaultError as exc:
            raise _control_error(f"X-Mock-Fault: {exc}") from None

    # -- steps 3 to 6 ------------------------------------------------------------------------

    def answer(
        self,
        body: bytes | str,
        controls: RequestControls,
        key: str | None,
        record: Record,
        *,
        websocket: bool = False,
        fmt: formats.Format = chat,  # type: ignore[assignment]
        route: Mapping[str, str] | None = None,
        memory: MutableMapping[str, str] | None = None,
    ) -> Answer:
        """Plan the answer to one request body in the API ``fmt`` (``route``: what its URL
        says); raise :class:`MockError` for an error answer and :class:`InjectedStatus` when a
        ``status`` fault fired. ``memory`` is a WebSocket connection's own conversations."""
        state = self.state
        raw = body.encode() if isinstance(body, str) else body
        record.api = fmt.API
        record.key = mask_key(key) if key else None
        record.controls = controls.public()
        record.set_request(raw, key)
        req = fmt.parse_request(formats.parse_json(raw), route)
        path = "ws" if websocket else "sse" if req.stream else "json"
        record.model, record.stream, record.transport = req.model, websocket or req.stream, path
        if not websocket:
            self._check_faults(controls.faults, path, fmt)
        if state.limiter is not None:
            self._check_rate(key)
        if isinstance(req, responses.ResponsesRequest) and req.previous_response_id:
            req = req.continued(self._recall(req.previous_response_id, memory))
        cassette = self._pick_cassette(req.chat, controls, path, fmt.API)
        if cassette is None and req.model not in state.models:
            raise status_error(404, model=req.model)
        seed = controls.seed if controls.seed is not None else self.config.seed
        rng = self._rng(req.raw, seed)
        cassette_faults = parse_faults(cassette.fault) if cassette and cassette.fault else []
        unsupported = fmt.frame_kit(path, None).unsupported
        faults = fired(
            merge_faults(
                applicable(self.server_faults, path, strict=False, unsupported=unsupported),
                applicable(cassette_faults, path, strict=False, unsupported=unsupported),
                controls.faults,
            ),
            rng,
        )
        record.faults = [str(f) for f in faults.values()]
        record.cassette = cassette.name if cassette else None
        if "status" in faults:
            spec = faults["status"]
            raise InjectedStatus(status_error(spec.params["code"], model=req.model,
                                              retry_after=spec.params.get("retry_after")))
        echo = getattr(req, "echo", None) or {}
        if cassette is not None:
            answer = self._replay(cassette, fmt, path, faults, echo)
            reply = cassette.reply() if fmt is responses else None
        else:
            reply = self._generate(req, controls, seed, rng, record, echo,
                                   budget=fmt.MAX_TOKENS_IS_BUDGET)
            plan = plan_reply(fmt.reply_frames(reply, path), faults, path=path,
                              kit=fmt.frame_kit(path, reply))
            answer = Answer(path, plan, 200, None, reply.end)
        if reply is not None and fmt is responses and answer.status < 400:
            if self._remember(req, reply, memory):  # type: ignore[arg-type]
                answer.plan.frames = _published(answer.plan.frames, state.store.publish)
        return answer

    def _replay(
        self, cassette: Cassette, fmt: formats.Format, path: str, faults: dict[str, FaultSpec],
        echo: Mapping[str, Any],
    ) -> Answer:
        """A cassette's answer: its own bytes in its own API, else its reply in ``fmt``."""
        if cassette.api == fmt.API:
            try:
                frames = cassette.frames_for(path)
            except ValueError as exc:
                raise MockError(400, f"cassette {cassette.name!r}: {exc}",
                                code="cassette_transport_mismatch") from None
            end = frames[-1].at if frames else 0.0
            if cassette.status >= 400:  # a recorded error answers any path with its body
                return Answer(path, Plan(frames), cassette.status, cassette.headers_for(path),
                              end)
            # Reading the reply back costs a parse of the recording: only Responses' in-stream
            # errors need it (they name the response).
            kit = fmt.frame_kit(path, cassette.reply() if fmt is responses else None)
            return Answer(path, plan_reply(frames, faults, path=path, kit=kit), 200,
                          cassette.headers_for(path), end)
        if cassette.status >= 400:  # another API's error body: the same error in this one
            raise MockError(cassette.status, _recorded_message(cassette))
        if cassette.transport == "json" and path != "json":
            raise MockError(400, f"cassette {cassette.name!r}: a json cassette cannot answer a "
                                 f"{path} request", code="cassette_transport_mismatch")
        reply = replace(cassette.reply(), echo=echo)
        plan = plan_reply(fmt.reply_frames(reply, path), faults, path=path,
                          kit=fmt.frame_kit(path, reply))
        return Answer(path, plan, 200, None, reply.end)

    def _recall(self, response_id: str, memory: Mapping[str, str] | None) -> list[dict[str, Any]]:
        """The conversation a Responses ``previous_response_id`` continues (a WebSocket
        connection's own first, then the stored ones); 400 when the mock never saw it."""
        doc = (memory or {}).get(response_id) or self.state.store.recall("response:" +
                                                                          response_id)
        if doc is None:
            raise MockError(400, f"Previous response with id '{response_id}' not found.",
                            "invalid_request_error", "previous_response_id",
                            "previous_response_not_found")
        return json.loads(doc)

    def _remember(self, req: responses.ResponsesRequest, reply: Reply,
                  memory: MutableMapping[str, str] | None) -> bool:
        """Keep the conversation so far under the reply's id: on the WebSocket connection
        (always) and in the store (unless the request said ``store: false``); True when the
        store has it to publish."""
        turn: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
        if reply.tool_calls:
            turn["tool_calls"] = [
                {"id": c.id, "type": "function",
                 "function": {"name": c.name, "arguments": "".join(c.arguments)}}
                for c in reply.tool_calls]
        doc = json.dumps([*req.history, turn], ensure_ascii=False)
        response_id = responses.response_id(reply)
        if memory is not None:
            memory[response_id] = doc
        if req.store:
            self.state.store.remember("response:" + response_id, doc)
        return req.store

    def _check_rate(self, key: str | None) -> None:
        limiter = self.state.limiter
        assert limiter is not None
        ok, _remaining, wait = limiter.acquire(key)
        if not ok:
            raise MockError(
                429,
                f"Rate limit reached: {self.config.rate_limit} per key. "
                f"Please try again in {wait:.3f}s.",
                "requests",
                None,
                "rate_limit_exceeded",
                retry_after=wait,
                limit=limiter.capacity,
            )

    def _pick_cassette(
        self, body: dict[str, Any], controls: RequestControls, path: str, api: str
    ) -> Cassette | None:
        """The cassette that answers, None for a generated reply; strict misses raise."""
        store = self.state.cassettes
        if controls.cassette:
            try:
                return store.get(controls.cassette)
            except CassetteError as exc:
                raise MockError(404, str(exc), "invalid_request_error", None,
                                "cassette_not_found") from None
        found = store.match(body, path, api) if len(store) else None
        if found is None and self.config.strict:
            raise MockError(400, "strict mode: " + store.explain(body, path),
                            "invalid_request_error", None, "no_matching_cassette")
        return found

    def _rng(self, body: dict[str, Any], seed: int | None) -> random.Random:
        """The request's RNG: seeded by (seed, request, repeat count), or the process's own,
        seeded once from OS entropy."""
        if seed is None:
            return _UNSEEDED
        digest = request_digest(body)
        n = self.state.store.count("request:" + digest) + 1
        return random.Random(f"{seed}:{digest}:{n}")

    def _generate(
        self, req: formats.Request, controls: RequestControls, seed: int | None,
        rng: random.Random, record: Record, echo: Mapping[str, Any], *, budget: bool,
    ) -> Reply:
        config = self.config
        profile = profile_for(
            req.model,
            ttft_ms=controls.ttft_ms if controls.ttft_ms is not None else config.ttft_ms,
            tps=controls.tps if controls.tps is not None else config.tps,
        )
        jitter_ms = controls.jitter_ms if controls.jitter_ms is not None else config.jitter_ms
        kind = config.jitter_kind
        if kind == "none" and jitter_ms:
            kind = "uniform"
        reasoning = controls.reasoning if controls.reasoning is not None else (
            config.reasoning_tokens)
        # The id is drawn before the jitter, so a seeded reply keeps its id whatever the latency.
        reply_id = f"chatcmpl-{rng.getrandbits(96):024x}"
        n = reasoning + answer_length(req.max_tokens, natural=controls.tokens, budget=budget)[0]
        times = schedule(n, profile, jitter_ms=jitter_ms or 0.0, jitter=kind, rng=rng)
        record.latency = {
            "ttft_ms": profile.ttft_ms,
            "tps": profile.tps,
            "jitter_ms": jitter_ms or 0.0,
            "jitter": kind if jitter_ms else "none",
        }
        record.schedule = array("d", times[:SCHEDULE_CAP])
        return generate_reply(
            req.model, req.messages, max_tokens=req.max_tokens, natural=controls.tokens,
            budget=budget, reasoning=reasoning,
            include_usage=req.include_usage, seed=seed, reply_id=reply_id, times=times,
            created=int(time.time()) if seed is None else None, echo=echo,
        )
