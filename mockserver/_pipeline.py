"""One request, from bytes to a plan of frames — the same for HTTP streaming, JSON and WebSocket.

A request goes through, in order:

1. **auth** — the key, or 401;
2. **controls** — ``X-Mock-*`` headers (WebSocket: query parameters), or 400
   ``invalid_mock_control``;
3. **parsed request** — the body as the format's request (400 naming the bad field), which
   fixes the path: ``sse`` (streamed HTTP), ``json`` (one HTTP body) or ``ws``; every fault the
   request asked for must apply to that path (else 400 ``invalid_mock_control`` saying why);
4. **rate-limit decision** — the key's token bucket, or 429;
5. **reply plan** — a cassette (by name, by match; strict mode explains a miss) or a generated
   reply with its latency schedule, rendered as the path's frames by the format;
6. **fault plan** — server, cassette and request faults that apply to the path, drawn by their
   probabilities from the request's seeded RNG; a ``status`` fault answers with that error.

The transports (``_http``, ``_ws``) only run steps 1–2 at their door (:meth:`Pipeline.admit`),
hand the body to :meth:`Pipeline.answer`, and write what comes back: an :class:`Answer`, or a
raised :class:`~mockserver._errors.MockError` / :class:`InjectedStatus`.
"""

from __future__ import annotations

import random
import time
from array import array
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import formats
from ._cassettes import Cassette, CassetteError
from ._config import mask_key
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
from ._frames import join_frames
from ._generate import DEFAULT_TOKENS, generate_reply, request_digest
from ._journal import SCHEDULE_CAP, Record
from ._latency import profile_for, schedule
from ._reply import Reply
from ._state import MockState
from .formats import chat

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


class Pipeline:
    """Turns requests into answers for one app (its state holds config, cassettes, store)."""

    def __init__(self, state: MockState) -> None:
        self.state = state
        self.config = state.config
        self.server_faults = parse_faults(state.config.fault)

    # -- steps 1 and 2 -----------------------------------------------------------------------

    def admit(
        self, key: str | None, source: Mapping[str, str], *, path: str | None = None
    ) -> RequestControls:
        """Authenticate and read the controls; with ``path`` known (WebSocket) also check the
        requested faults apply to it. Raises :class:`MockError` (401, 400)."""
        self.authorize(key)
        try:
            controls = parse_controls(source)
        except ControlError as exc:
            raise _control_error(str(exc)) from None
        if path is not None:
            self._check_faults(controls.faults, path)
        return controls

    def authorize(self, key: str | None) -> None:
        """Raise a 401 :class:`MockError` unless the key is accepted."""
        if self.config.accepts(key):
            return
        if key is None or not key.strip():
            message = (
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            )
            code = "missing_api_key"
        elif self.config.keys is None:  # any key but a placeholder would have been accepted
            message = (
                f"The API key {key.strip()!r} is a placeholder. Set HOLYSHEEP_API_KEY to a real "
                "key (the mock accepts any other key, e.g. sk-holynb-mock)."
            )
            code = "invalid_api_key"
        else:
            message = f"Incorrect API key provided: {mask_key(key)}."
            code = "invalid_api_key"
        raise MockError(401, message, "invalid_request_error", None, code)

    @staticmethod
    def _check_faults(faults: list[FaultSpec], path: str) -> None:
        try:
            applicable(faults, path, strict=True)
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
    ) -> Answer:
        """Plan the answer to one request body in the API ``fmt``; raise :class:`MockError` for
        an error answer and :class:`InjectedStatus` when a ``status`` fault fired."""
        state = self.state
        raw = body.encode() if isinstance(body, str) else body
        record.key = mask_key(key) if key else None
        record.controls = controls.public()
        record.set_request(raw, key)
        req = fmt.parse_request(formats.parse_json(
            raw, hint="Send a JSON object with 'model' and 'messages'."))
        path = "ws" if websocket else "sse" if req.stream else "json"
        record.model, record.stream, record.transport = req.model, websocket or req.stream, path
        if not websocket:
            self._check_faults(controls.faults, path)
        if state.limiter is not None:
            self._check_rate(key)
        cassette = self._pick_cassette(req.raw, controls, path)
        if cassette is None and req.model not in state.models:
            raise status_error(404, model=req.model)
        seed = controls.seed if controls.seed is not None else self.config.seed
        rng = self._rng(req.raw, seed)
        cassette_faults = parse_faults(cassette.fault) if cassette and cassette.fault else []
        faults = fired(
            merge_faults(
                applicable(self.server_faults, path, strict=False),
                applicable(cassette_faults, path, strict=False),
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
        kit = fmt.frame_kit(path)
        if cassette is not None:
            try:
                frames = cassette.frames_for(path)
            except ValueError as exc:
                raise MockError(400, f"cassette {cassette.name!r}: {exc}",
                                code="cassette_transport_mismatch") from None
            end = frames[-1].at if frames else 0.0
            if cassette.status >= 400:  # a recorded error answers any path with its body
                return Answer(path, Plan(frames), cassette.status, cassette.headers_for(path), end)
            plan = plan_reply(frames, faults, path=path, kit=kit)
            return Answer(path, plan, 200, cassette.headers_for(path), end)
        reply = self._generate(req, controls, seed, rng, record)
        plan = plan_reply(fmt.reply_frames(reply, path), faults, path=path, kit=kit)
        return Answer(path, plan, 200, None, reply.end)

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
        self, body: dict[str, Any], controls: RequestControls, path: str
    ) -> Cassette | None:
        """The cassette that answers, None for a generated reply; strict misses raise."""
        store = self.state.cassettes
        if controls.cassette:
            try:
                return store.get(controls.cassette)
            except CassetteError as exc:
                raise MockError(404, str(exc), "invalid_request_error", None,
                                "cassette_not_found") from None
        found = store.match(body, path) if len(store) else None
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
        rng: random.Random, record: Record,
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
        n = reasoning + (req.max_tokens or DEFAULT_TOKENS)
        times = schedule(n, profile, jitter_ms=jitter_ms or 0.0, jitter=kind, rng=rng)
        record.latency = {
            "ttft_ms": profile.ttft_ms,
            "tps": profile.tps,
            "jitter_ms": jitter_ms or 0.0,
            "jitter": kind if jitter_ms else "none",
        }
        record.schedule = array("d", times[:SCHEDULE_CAP])
        return generate_reply(
            req.model, req.messages, max_tokens=req.max_tokens, reasoning=reasoning,
            include_usage=req.include_usage, seed=seed, reply_id=reply_id, times=times,
            created=int(time.time()) if seed is None else None,
        )
