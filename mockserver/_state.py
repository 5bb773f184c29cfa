"""Shared server state and the transport-independent half of answering a chat request.

Both the HTTP handler and the WebSocket handler authenticate, validate, pick a reply (cassette or
generated), draw faults and build frames here; they differ only in how frames reach the wire.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ._cassettes import Cassette, CassetteError, CassetteStore
from ._config import MockConfig, RequestControls, mask_key
from ._errors import MockError, status_error
from ._faults import FaultSpec, fired, merge_faults, parse_faults
from ._frames import Frame
from ._generate import completion_body, iter_chunk_payloads, make_completion, request_digest
from ._journal import Journal, Record
from ._latency import PROFILES, profile_for, schedule
from ._ratelimit import RateLimiter
from ._request import ChatRequest
from ._sse import DONE, encode_event

__all__ = ["InjectedStatus", "MockState", "Reply"]

# `created` of every seeded reply, so that the same seed gives byte-identical streams.
SEEDED_CREATED = 1_735_689_600  # 2025-01-01T00:00:00Z
# Up to this many concurrent streams, frames wait precisely (see _sse.sleep_until): the
# busy last millisecond is cheap for a few streams and would starve the loop for many.
PRECISE_STREAMS = 4


class InjectedStatus(Exception):
    """A ``status`` fault fired: answer with this error instead of a reply."""

    def __init__(self, error: MockError) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass(slots=True)
class Reply:
    """Frames for one transport ("sse", "ws" or "json"), the faults that fired, status, headers.

    A status >= 400 (a recorded error) makes ``frames`` the error body, not a stream.
    """

    frames: Iterable[Frame]  # lazy for generated replies; a list for cassettes and JSON
    faults: dict[str, FaultSpec]
    status: int = 200
    headers: dict[str, str] | None = None


class MockState:
    """Everything handlers share: config, journal, cassettes, limiter, open sockets."""

    def __init__(self, config: MockConfig) -> None:
        self.config = config
        self.journal = Journal()
        self.store = CassetteStore(config.cassette_paths, strict=config.strict)
        self.limiter = RateLimiter(config.rate_limit) if config.rate_limit else None
        self.server_faults = config.faults()
        self.websockets: set[Any] = set()
        self.active = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.draining = False
        self._occurrences: Counter[str] = Counter()

    # -- bookkeeping ---------------------------------------------------------------------------

    def stream_started(self) -> None:
        """Count an active stream (drain waits for these)."""
        self.active += 1
        self.idle.clear()

    def precise(self) -> bool:
        """Whether few enough streams run for sub-millisecond waits (they cost a busy loop)."""
        return self.active <= PRECISE_STREAMS

    def stream_ended(self) -> None:
        """Uncount an active stream."""
        self.active -= 1
        if self.active <= 0:
            self.active = 0
            self.idle.set()

    def reset(self) -> None:
        """Clear the journal, cassette sequences, rate-limit buckets and repeat counters."""
        self.journal.clear()
        self.store.reset()
        if self.limiter:
            self.limiter.reset()
        self._occurrences.clear()

    def models(self) -> list[str]:
        """Models this mock serves."""
        return sorted(set(PROFILES) | set(self.store.models()))

    # -- checks --------------------------------------------------------------------------------

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

    def check_rate(self, key: str | None) -> None:
        """Raise a 429 :class:`MockError` when this key's bucket is empty."""
        if self.limiter is None:
            return
        key_id = hashlib.sha256((key or "").encode()).hexdigest()
        ok, _remaining, wait = self.limiter.acquire(key_id)
        if not ok:
            raise MockError(
                429,
                f"Rate limit reached: {self.config.rate_limit} per key. "
                f"Please try again in {wait:.3f}s.",
                "requests",
                None,
                "rate_limit_exceeded",
                retry_after=wait,
                limit=self.limiter.capacity,
            )

    # -- replies -------------------------------------------------------------------------------

    def request_rng(self, req: ChatRequest, seed: int | None) -> random.Random:
        """The request's RNG: seeded by (seed, request, repeat count), or OS entropy."""
        if seed is None:
            return random.Random()
        digest = request_digest(req.raw)
        self._occurrences[digest] += 1
        return random.Random(f"{seed}:{digest}:{self._occurrences[digest]}")

    def pick_cassette(
        self, req: ChatRequest, controls: RequestControls, transport: str
    ) -> Cassette | None:
        """The cassette that answers, None for a generated reply; strict misses raise."""
        if controls.cassette:
            try:
                return self.store.get(controls.cassette)
            except CassetteError as exc:
                raise MockError(404, str(exc), "invalid_request_error", None,
                                "cassette_not_found") from None
        found = self.store.match(req.raw, transport) if len(self.store) else None
        if found is None and self.config.strict:
            raise MockError(
                400,
                "strict mode: " + self.store.explain(req.raw, transport),
                "invalid_request_error",
                None,
                "no_matching_cassette",
            )
        return found

    def build_reply(
        self, req: ChatRequest, controls: RequestControls, transport: str, record: Record
    ) -> Reply:
        """Pick the source, draw faults and produce frames; raise for errors and status faults."""
        cassette = self.pick_cassette(req, controls, transport)
        if cassette is None and req.model not in PROFILES and req.model not in self.store.models():
            raise status_error(404, model=req.model)
        seed = controls.seed if controls.seed is not None else self.config.seed
        rng = self.request_rng(req, seed)
        cassette_faults = parse_faults(cassette.fault) if cassette and cassette.fault else []
        faults = fired(merge_faults(self.server_faults, cassette_faults, controls.faults), rng)
        record.faults = [str(f) for f in faults.values()]
        record.cassette = cassette.name if cassette else None
        if "status" in faults:
            spec = faults["status"]
            raise InjectedStatus(
                status_error(
                    spec.params["code"], model=req.model, retry_after=spec.params.get("retry_after")
                )
            )
        if cassette is not None:
            # A recorded error (status >= 400) answers any transport with its body.
            try:
                frames = cassette.frames_for(transport)
            except ValueError as exc:
                raise MockError(400, f"cassette {cassette.name!r}: {exc}",
                                code="cassette_transport_mismatch") from None
            return Reply(frames, faults, cassette.status, cassette.headers_for(transport))
        created = int(time.time()) if seed is None else SEEDED_CREATED
        completion = make_completion(req, seed=seed, rng=rng, created=created)
        profile = profile_for(
            req.model,
            ttft_ms=controls.ttft_ms if controls.ttft_ms is not None else self.config.ttft_ms,
            tps=controls.tps if controls.tps is not None else self.config.tps,
        )
        jitter_ms = controls.jitter_ms if controls.jitter_ms is not None else self.config.jitter_ms
        kind = self.config.jitter_kind
        if kind == "none" and jitter_ms:
            kind = "uniform"
        times = schedule(
            len(completion.tokens), profile, jitter_ms=jitter_ms or 0.0, jitter=kind, rng=rng
        )
        record.latency = {
            "ttft_ms": profile.ttft_ms,
            "tps": profile.tps,
            "jitter_ms": jitter_ms or 0.0,
            "jitter": kind if jitter_ms else "none",
        }
        record.schedule = times[:1000]
        end = times[-1] if times else 0.0
        if transport == "json":
            body = json.dumps(completion_body(completion), ensure_ascii=False).encode()
            return Reply([Frame(end, body)], faults)
        if transport == "sse":
            frames = _frames(times, iter_chunk_payloads(completion), end, encode_event, DONE)
        else:
            frames = _frames(times, iter_chunk_payloads(completion), end, str, "[DONE]")
        return Reply(frames, faults)


def _frames(
    times: list[float],
    payloads: Iterator[str],
    end: float,
    encode: Callable[[str], Any],
    done: bytes | str,
) -> Iterator[Frame]:
    """Generated frames, made one at a time as the writer asks for them."""
    # zip stops at the shorter ``times`` without consuming a payload: the rest (the usage
    # chunk) goes out with the last token.
    for t, payload in zip(times, payloads):  # noqa: B905
        yield Frame(t, encode(payload))
    for payload in payloads:
        yield Frame(end, encode(payload))
    yield Frame(end, done)


def scrub(value: Any, key: str | None) -> Any:
    """``value`` (JSON data) with every occurrence of ``key`` masked."""
    if not key:
        return value
    text = json.dumps(value, ensure_ascii=False)
    if key not in text:
        return value
    return json.loads(text.replace(key, mask_key(key)))
