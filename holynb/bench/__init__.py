"""Benchmark a streaming LLM endpoint: TTFT, ITL, TPOT, E2E, throughput and goodput.

``holynb bench`` (CLI) and :func:`run_bench` / :func:`run` (API) send streaming requests over SSE,
WebSocket or both, speaking chat completions, OpenAI Responses, Anthropic Messages or several of
them: each API over each transport is a *wire* (:func:`plan_wires`), run one after the other and
reported side by side. Requests arrive on an open-loop schedule — all at once, or
``request_rate`` per second as a seeded Poisson or gamma process (:mod:`holynb.bench.arrivals`) —
optionally capped at ``max_concurrency`` in flight; a run is a number of requests or a
duration. With no base URL the bundled mock server starts in-process.

Metric definitions (aligned with vLLM's ``benchmarks/serve.py``):

- **TTFT** (time to first token): from just before the request is sent (before the client is
  created when ``pooled=False``) to the arrival of the first non-empty content delta. An arrival
  that waits for a free slot under ``max_concurrency`` starts its clock when it is sent.
- **ITL** (inter-token latency): the gap between two consecutive content chunks of one reply.
  Every gap of every completed request is pooled into one distribution.
- **TPOT** (time per output token): per request, ``(e2e − TTFT) / (output_tokens − 1)``;
  requests with fewer than two output tokens have none.
- **E2E** (end-to-end latency, vLLM's E2EL): from sending the request to the end of the stream.
- **output tokens**: the completion tokens of the usage the server reports (chat completions
  send it when asked with ``stream_options.include_usage``, which the client does; Responses and
  Messages always do), else the number of content chunks.
- **duration**: from the start of the arrival schedule to the end of the last stream.
  **request / output throughput**: completed requests / output tokens of completed requests
  per second of duration. **goodput**: completed requests meeting every SLO given (TTFT, TPOT,
  E2EL in ms; DistServe's definition, as vLLM counts it) per second of duration.
- **timeline**: per second of the run, the mean and peak number of requests in flight, requests
  sent, completed and failed, and output tokens received.

Latency figures (mean, std, p50, p90, p95, p99; percentiles by linear interpolation, as numpy)
count completed requests only. A failed request (any error, or a reply with no content) is
counted in ``failed`` and by error type, and never stops the run. Retries are off by default
(``max_retries=0``) so that every failure is seen rather than hidden inside a latency figure.
"""

from __future__ import annotations

from holynb.bench.arrivals import arrival_times
from holynb.bench.metrics import (
    Distribution,
    RequestRecord,
    TimelineSecond,
    TransportSummary,
    parse_goodput,
    percentile,
    summarise,
)
from holynb.bench.report import BenchResult
from holynb.bench.run import DEFAULT_PROMPT, Wire, measure_stream, plan_wires, run, run_bench

__all__ = [
    "DEFAULT_PROMPT",
    "BenchResult",
    "Distribution",
    "RequestRecord",
    "TimelineSecond",
    "TransportSummary",
    "Wire",
    "arrival_times",
    "measure_stream",
    "parse_goodput",
    "percentile",
    "plan_wires",
    "run",
    "run_bench",
    "summarise",
]
