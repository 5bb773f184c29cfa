"""Run a benchmark: arrivals, the concurrency cap, warm-up, one measured stream per request.

:func:`run_bench` (async) and :func:`run` (blocking) drive the client over one or more *wires* — an
API (chat completions, Responses, Messages) over a transport (SSE, WebSocket) — one wire after the
other (:func:`plan_wires`); :func:`measure_stream` times one stream and is shared with the Locust
user in :mod:`holynb.loadtest`, so both report the same figures the same way.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from holynb.bench.arrivals import arrival_times, check_burstiness, check_rate
from holynb.bench.metrics import RequestRecord, parse_goodput, summarise
from holynb.bench.report import BenchResult

if TYPE_CHECKING:
    from holynb._client import AsyncClient

__all__ = [
    "DEFAULT_PROMPT",
    "TRANSPORT_CHOICES",
    "Wire",
    "measure_stream",
    "plan_wires",
    "run",
    "run_bench",
]

DEFAULT_PROMPT = "Write a short story about a lighthouse keeper who collects lost letters."
DEFAULT_REQUESTS = 20
TRANSPORT_CHOICES = ("sse", "ws", "both")

Progress = Callable[[str, int, "int | None"], None]
"""Called as ``progress(wire, done, total)`` with the wire's label (``"sse"``, ``"chat/ws"``):
first with ``done=0``, then per request. ``total`` is None in a time-limited run."""


class Wire(NamedTuple):
    """One API over one transport, and its label in the result (``"sse"`` or ``"chat/sse"``)."""

    api: str
    transport: str
    label: str


def plan_wires(
    api: str | Sequence[str] | None = None, transport: str = "sse"
) -> tuple[list[Wire], dict[str, str]]:
    """The wires a run benchmarks, in order, and the combinations left out with why.

    ``api`` is a name (``"chat"``, ``"responses"``, ``"messages"``), a sequence of names,
    ``"all"``, or None for the client's default (``HOLYNB_API`` or chat); ``transport`` is
    ``"sse"``, ``"ws"`` or ``"both"``. Every API runs over every transport; a wire's label is the
    transport alone when one API is benched, ``"api/transport"`` when several are. A combination
    the APIs do not offer (Messages over WebSocket) is skipped when it comes from a combination
    and raises the client's :class:`~holynb.ConfigError` when it is the only one asked for.
    """
    from holynb._config import APIS, check_api_transport, resolve_api
    from holynb._errors import ConfigError

    if transport not in TRANSPORT_CHOICES:
        raise ValueError(
            f"transport must be one of {', '.join(TRANSPORT_CHOICES)}; got {transport!r}"
        )
    transports = ["sse", "ws"] if transport == "both" else [transport]
    if isinstance(api, str) and api.strip().lower() == "all":
        apis = list(APIS)
    elif api is None or isinstance(api, str):
        apis = [resolve_api(api)]
    else:
        apis = list(dict.fromkeys(resolve_api(name) for name in api))
        if not apis:
            raise ValueError("api must name at least one API (or be 'all')")
    wires: list[Wire] = []
    skipped: dict[str, str] = {}
    for one_api in apis:
        for one_transport in transports:
            try:
                check_api_transport(one_api, one_transport)
            except ConfigError as exc:
                if len(apis) * len(transports) == 1:
                    raise  # asked for alone: the client's own error says what to use instead
                # The reason, without the client's advice (which is for a single request).
                skipped[f"{one_api}/{one_transport}"] = exc.message
                continue
            label = f"{one_api}/{one_transport}" if len(apis) > 1 else one_transport
            wires.append(Wire(one_api, one_transport, label))
    return wires, skipped


async def run_bench(
    base_url: str | None = None,
    *,
    model: str | None = None,
    requests: int | None = None,
    duration_s: float | None = None,
    request_rate: float = math.inf,
    burstiness: float = 1.0,
    max_concurrency: int | None = None,
    warmup: int = 0,
    goodput: Mapping[str, float] | Iterable[str] | None = None,
    max_tokens: int = 32,
    transport: str = "sse",
    api: str | Sequence[str] | None = None,
    api_key: str | None = None,
    prompt: str = DEFAULT_PROMPT,
    headers: Mapping[str, str] | None = None,
    seed: int | None = None,
    mock_ttft_ms: float | None = None,
    mock_tps: float | None = None,
    mock_fault: str | None = None,
    pooled: bool = True,
    max_retries: int = 0,
    client_options: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> BenchResult:
    """Run the benchmark and return its result (see :mod:`holynb.bench` for the metrics).

    Requests arrive on an open-loop schedule (:func:`~holynb.bench.arrivals.arrival_times`):
    ``request_rate`` per second (``inf``: all at once) with ``burstiness`` 1 for a Poisson
    process, seeded by ``seed`` (0 when None). ``max_concurrency`` caps requests in flight; an
    arrival that finds no free slot waits for one (its TTFT clock starts when it is sent). The
    run is ``requests`` long (default 20) or, with ``duration_s``, takes arrivals for that many
    seconds and then lets the requests in flight finish. ``warmup`` requests go first and are
    not counted. ``goodput`` gives SLOs in ms (``{"ttft": 500}`` or ``["ttft:500"]``).

    ``api`` and ``transport`` choose the wires (see :func:`plan_wires`): each runs the same plan,
    seed and mock controls, one after the other, and is one column of the result, keyed by its
    label. ``api=None`` is the client's default (``HOLYNB_API`` or chat).

    ``base_url=None`` starts the bundled mock server for the run (in a background thread, so its
    timing does not share this event loop). ``mock_ttft_ms``, ``mock_tps`` and ``mock_fault``
    are sent as ``X-Mock-*`` controls, which the mock honours and other servers ignore. With a
    ``seed``, request ``i`` carries ``seed + i`` in its body (chat's ``seed``; ``metadata`` for
    Responses and Messages, which have no seed) and the run sends ``X-Mock-Seed``: a run
    against a freshly started mock repeats exactly. ``pooled=False`` opens a fresh client
    per request; ``client_options`` are passed to every :class:`holynb.AsyncClient`.
    """
    from holynb._config import resolve_model

    plan = _Plan.check(
        requests=requests,
        duration_s=duration_s,
        request_rate=request_rate,
        burstiness=burstiness,
        max_concurrency=max_concurrency,
        warmup=warmup,
        seed=seed,
    )
    _check_positive("max_tokens", max_tokens)
    wires, skipped = plan_wires(api, transport)
    clash = sorted({"api", "transport"} & set(client_options or {}))
    if clash:
        raise ValueError(f"pass {clash[0]}=... to run_bench itself, not in client_options")
    slos = parse_goodput(goodput)
    model = resolve_model(model)
    controls = _mock_headers(mock_ttft_ms=mock_ttft_ms, mock_tps=mock_tps, mock_fault=mock_fault)
    controls.update(headers or {})

    async with _endpoint(base_url, api_key) as (url, key, bundled):
        bench = _Bench(
            plan,
            client_options={
                **(client_options or {}),
                "base_url": url,
                "api_key": key,
                "model": model,
                "max_retries": max_retries,
            },
            prompt=prompt,
            max_tokens=max_tokens,
            headers=controls,
            seed=seed,
            pooled=pooled,
        )
        records: list[RequestRecord] = []
        summaries = {}
        for wire in wires:
            rows, duration = await bench.run_wire(wire, progress)
            records += rows
            summaries[wire.label] = summarise(
                wire.transport, rows, duration, goodput=slos, api=wire.api
            )

    config = {
        "base_url": url,
        "bundled_mock": bundled,
        "model_id": model,
        "num_prompts": plan.requests,
        "time_limit_s": plan.duration_s,
        "request_rate": plan.request_rate,
        "burstiness": plan.burstiness,
        "max_concurrency": plan.max_concurrency,
        "num_warmups": plan.warmup,
        "goodput": slos or None,
        "max_tokens": max_tokens,
        "apis": list(dict.fromkeys(wire.api for wire in wires)),
        "transports": list(dict.fromkeys(wire.transport for wire in wires)),
        "wires": [wire.label for wire in wires],
        "skipped_wires": skipped,
        "pooled": pooled,
        "max_retries": max_retries,
        "seed": seed,
        "mock_ttft_ms": mock_ttft_ms,
        "mock_tps": mock_tps,
        "mock_fault": mock_fault,
        "prompt": prompt,
    }
    return BenchResult(config=config, summaries=summaries, records=records)


def run(base_url: str | None = None, **options: Any) -> BenchResult:
    """Blocking :func:`run_bench`; also works where an event loop is already running (Jupyter)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run_bench(base_url, **options))
    # A running loop (e.g. a notebook cell) cannot be blocked on: use a private loop in a thread.
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="holynb-bench") as pool:
        return pool.submit(asyncio.run, run_bench(base_url, **options)).result()


async def measure_stream(
    client: AsyncClient,
    record: RequestRecord,
    *,
    prompt: str,
    params: Mapping[str, Any],
    headers: Mapping[str, str],
    run_start: float,
    started: float | None = None,
) -> BaseException | None:
    """Stream one reply, filling ``record`` as it goes; return the failure, or None if it completed.

    The clock starts at ``started`` (a ``time.perf_counter()`` value; default: now, just before
    the request is sent); ``record.start_s`` is it relative to ``run_start``. A reply that ends
    without any content is a failure too (``EmptyReply``).
    """
    start = time.perf_counter() if started is None else started
    record.api = client.api
    record.start_s = start - run_start
    chunks = 0
    last = start
    failure: BaseException | None = None
    try:
        async with client.stream(prompt, extra_headers=headers, **params) as stream:
            async for delta in stream:
                now = time.perf_counter()
                if not delta:
                    continue
                if chunks == 0:
                    record.ttft_s = now - start
                else:
                    record.itl_s.append(now - last)
                last = now
                chunks += 1
        end = time.perf_counter()
        record.tokens = stream.stats.completion_tokens or chunks
        if chunks == 0:
            failure = EmptyReply("the stream ended without any content")
        else:
            record.e2e_s = end - start
    except Exception as exc:  # noqa: BLE001 — a failed request is data, not a crash
        end = time.perf_counter()
        record.tokens = chunks
        failure = exc
    record.end_s = end - run_start
    record.ok = failure is None
    record.error = None if failure is None else one_line(failure)
    return failure


class EmptyReply(Exception):
    """The stream ended normally but carried no content."""


class _Plan:
    """The validated shape of a run: how many requests, when they arrive, how many at once."""

    def __init__(self, **values: Any) -> None:
        self.requests: int | None = values["requests"]
        self.duration_s: float | None = values["duration_s"]
        self.request_rate: float = values["request_rate"]
        self.burstiness: float = values["burstiness"]
        self.max_concurrency: int | None = values["max_concurrency"]
        self.warmup: int = values["warmup"]
        self.seed: int = values["seed"] if values["seed"] is not None else 0

    @classmethod
    def check(cls, **values: Any) -> _Plan:
        if values["requests"] is not None and values["duration_s"] is not None:
            raise ValueError("give either requests or duration_s, not both")
        if values["requests"] is None and values["duration_s"] is None:
            values["requests"] = DEFAULT_REQUESTS
        if values["requests"] is not None:
            _check_positive("requests", values["requests"])
        duration = values["duration_s"]
        if duration is not None and (
            isinstance(duration, bool)
            or not isinstance(duration, int | float)
            or not 0 < duration < math.inf
        ):
            raise ValueError(f"duration_s must be a positive number of seconds, got {duration!r}")
        check_rate(values["request_rate"])
        check_burstiness(values["burstiness"])
        if values["max_concurrency"] is not None:
            _check_positive("max_concurrency", values["max_concurrency"])
        if values["warmup"] != 0:
            _check_positive("warmup", values["warmup"])
        if (
            duration is not None
            and math.isinf(values["request_rate"])
            and (values["max_concurrency"] is None)
        ):
            raise ValueError(
                "a time-limited run at request_rate inf needs max_concurrency "
                "(otherwise it would send unlimited requests at once)"
            )
        return cls(**values)


class _Bench:
    """The request loop shared by every wire of one run."""

    def __init__(
        self,
        plan: _Plan,
        *,
        client_options: dict[str, Any],
        prompt: str,
        max_tokens: int,
        headers: dict[str, str],
        seed: int | None,
        pooled: bool,
    ) -> None:
        self.plan = plan
        self.client_options = client_options
        self.prompt = prompt
        # The client asks for the usage chunk itself (stream_options.include_usage).
        self.params: dict[str, Any] = {"max_tokens": max_tokens}
        self.headers = headers
        self.seed = seed
        self.pooled = pooled

    async def run_wire(
        self, wire: Wire, progress: Progress | None
    ) -> tuple[list[RequestRecord], float]:
        """Warm up, then run the plan over one wire; return the records and the duration."""
        # Built even when unpooled: a bad setting (no key, bad URL) stops the run here, once.
        shared = self._client(wire)
        try:
            client = shared if self.pooled else None
            if self.plan.warmup:
                await self._warmup(client, wire)
            return await self._measure(client, wire, progress)
        except BaseExceptionGroup as group:
            # A setting that fails every request (ConfigError) stopped the run: raise it alone.
            raise group.exceptions[0] from None
        finally:
            await shared.aclose()

    def _client(self, wire: Wire) -> AsyncClient:
        from holynb._client import AsyncClient

        return AsyncClient(api=wire.api, transport=wire.transport, **self.client_options)

    async def _warmup(self, client: AsyncClient | None, wire: Wire) -> None:
        """Send the warm-up requests (capped like the run) and forget what they measured."""
        slots = asyncio.Semaphore(self.plan.max_concurrency or self.plan.warmup)

        async def one() -> None:
            async with slots:
                record = RequestRecord(transport=wire.transport, index=-1, ok=False, start_s=0.0)
                await self._one(client, wire, record, time.perf_counter(), seeded=False)

        async with asyncio.TaskGroup() as group:
            for _ in range(self.plan.warmup):
                group.create_task(one())

    async def _measure(
        self, client: AsyncClient | None, wire: Wire, progress: Progress | None
    ) -> tuple[list[RequestRecord], float]:
        plan = self.plan
        total = plan.requests
        cap = plan.max_concurrency
        slots = asyncio.Semaphore(cap) if cap is not None else None
        # At rate inf the next request "arrives" when a slot is free (a closed loop); otherwise
        # arrivals follow the schedule and queue for a slot.
        closed_loop = math.isinf(plan.request_rate)
        records: list[RequestRecord] = []

        async def one(index: int, scheduled: float, holding_slot: bool) -> None:
            record = RequestRecord(
                transport=wire.transport, index=index, ok=False, start_s=0.0, scheduled_s=scheduled
            )
            try:
                if slots is not None and not holding_slot:
                    await slots.acquire()
                await self._one(client, wire, record, t0, seeded=True)
            finally:
                if slots is not None:
                    slots.release()
            records.append(record)
            if progress is not None:
                progress(wire.label, len(records), total)

        async def dispatch() -> None:
            schedule = arrival_times(plan.request_rate, burstiness=plan.burstiness, seed=plan.seed)
            async with asyncio.TaskGroup() as group:
                for index, offset in enumerate(schedule):
                    if total is not None and index >= total:
                        break
                    if closed_loop:
                        if slots is not None:
                            await slots.acquire()
                        now = time.perf_counter() - t0
                        if plan.duration_s is not None and now >= plan.duration_s:
                            slots.release()  # type: ignore[union-attr] — checked in _Plan
                            break
                        # Count mode: everything arrived at 0 and queued; timed mode: now.
                        scheduled = 0.0 if plan.duration_s is None else now
                    else:
                        if plan.duration_s is not None and offset >= plan.duration_s:
                            break
                        # Sleep to an absolute time: a late wake-up never shifts later arrivals.
                        delay = t0 + offset - time.perf_counter()
                        if delay > 0:
                            await asyncio.sleep(delay)
                        scheduled = offset
                    group.create_task(one(index, scheduled, holding_slot=closed_loop))

        if progress is not None:
            progress(wire.label, 0, total)
        t0 = time.perf_counter()
        await dispatch()
        records.sort(key=lambda r: r.index)
        # From the start of the schedule (vLLM's benchmark start) to the last stream's end.
        return records, max((r.end_s for r in records if r.end_s is not None), default=0.0)

    async def _one(
        self,
        shared: AsyncClient | None,
        wire: Wire,
        record: RequestRecord,
        t0: float,
        *,
        seeded: bool,
    ) -> None:
        from holynb._errors import ConfigError

        headers = dict(self.headers)
        params = dict(self.params)
        if self.seed is not None:
            # One X-Mock-Seed for the whole run, and a distinct body per request: the mock
            # keys its per-request RNG on (seed, request body), so draws don't depend on the
            # order in which concurrent requests arrive. A per-request header would change the
            # WebSocket URL (controls ride in its query) and cost a new connection per request.
            headers["X-Mock-Seed"] = str(self.seed)
            if seeded:
                params.update(_seed_param(wire.api, self.seed + record.index))
        # Unpooled, the clock starts before the fresh client exists: its set-up is what counts.
        started = time.perf_counter()
        async with contextlib.AsyncExitStack() as stack:
            client = shared
            if client is None:
                client = await stack.enter_async_context(self._client(wire))
            failure = await measure_stream(
                client,
                record,
                prompt=self.prompt,
                params=params,
                headers=headers,
                run_start=t0,
                started=started,
            )
        if isinstance(failure, ConfigError):
            raise failure  # a bad setting fails every request: stop the run and say what to fix


def _seed_param(api: str, seed: int) -> dict[str, Any]:
    """A per-request body field that makes each request distinct, in a form the API accepts:
    chat completions take ``seed``; Responses and Messages have no seed but take ``metadata``
    (Messages only its ``user_id``), which a real endpoint stores and ignores."""
    if api == "chat":
        return {"seed": seed}
    if api == "messages":
        return {"metadata": {"user_id": f"holynb-bench-{seed}"}}
    return {"metadata": {"holynb_seed": str(seed)}}


@contextlib.asynccontextmanager
async def _endpoint(
    base_url: str | None, api_key: str | None
) -> AsyncIterator[tuple[str, str | None, bool]]:
    """Yield ``(base_url, api_key, bundled)``, starting the bundled mock when no URL is given."""
    from holynb._config import resolve_base_url

    if base_url is not None:
        yield resolve_base_url(base_url), api_key, False
        return
    from holynb._mock import mock_key, start_mock

    # The mock runs on its own loop in a background thread so that its timing is not skewed by
    # the client work on this loop.
    server = await asyncio.to_thread(start_mock)
    try:
        yield server.url, api_key or mock_key(), True
    finally:
        await asyncio.to_thread(server.stop)


def _mock_headers(
    *, mock_ttft_ms: float | None, mock_tps: float | None, mock_fault: str | None
) -> dict[str, str]:
    headers: dict[str, str] = {}
    if mock_ttft_ms is not None:
        if mock_ttft_ms < 0:
            raise ValueError(f"mock_ttft_ms must be >= 0, got {mock_ttft_ms}")
        headers["X-Mock-TTFT-Ms"] = f"{mock_ttft_ms:g}"
    if mock_tps is not None:
        if mock_tps < 0:
            raise ValueError(f"mock_tps must be >= 0 (0 = as fast as possible), got {mock_tps}")
        headers["X-Mock-TPS"] = f"{mock_tps:g}"
    if mock_fault:
        headers["X-Mock-Fault"] = mock_fault
    return headers


def one_line(exc: BaseException) -> str:
    """``Type: message`` on one line, at most 200 characters."""
    text = " ".join(str(exc).split()) or "no message"
    if len(text) > 200:
        text = text[:197] + "..."
    return f"{type(exc).__name__}: {text}"


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
