"""The async client: configuration, transports, ``stream()``, ``complete()`` and ``models()``."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from holynb._chunks import ChunkParser, error_from_status
from holynb._config import (
    check_timeout,
    mask_key,
    resolve_api_key,
    resolve_base_url,
    resolve_model,
    resolve_transport,
    scrub,
)
from holynb._errors import APIStatusError, ConfigError, HolyError, StreamTimeout
from holynb._retry import RetryEvent, retry_after_from_headers
from holynb._stats import StreamStats
from holynb._stream import AsyncStream, Attempt, Options, plan_retry, wait_retry

if TYPE_CHECKING:
    from holynb._transport_sse import SSETransport
    from holynb._transport_ws import WSTransport

__all__ = ["AsyncClient", "CompletionResult", "build_messages"]

log = logging.getLogger("holynb")

_UNSET: Any = object()
_TIMEOUTS = ("connect_timeout", "first_token_timeout", "idle_timeout", "total_timeout")


@dataclass(slots=True)
class CompletionResult:
    """The result of a non-streaming :meth:`AsyncClient.complete` call."""

    text: str
    finish_reason: str | None
    usage: dict[str, Any] | None
    tool_calls: list[dict[str, Any]]
    model: str
    stats: StreamStats = field(default_factory=StreamStats)
    raw: dict[str, Any] | None = None


def build_messages(messages_or_prompt: str | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A prompt string becomes one user message; a message list is checked and copied."""
    if isinstance(messages_or_prompt, str):
        if not messages_or_prompt.strip():
            raise ConfigError("The prompt is empty: pass some text or a list of messages.")
        return [{"role": "user", "content": messages_or_prompt}]
    if not isinstance(messages_or_prompt, Sequence) or not messages_or_prompt:
        raise ConfigError(
            "Pass a prompt string or a non-empty list of messages like "
            '[{"role": "user", "content": "Hi"}].'
        )
    messages: list[dict[str, Any]] = []
    for i, message in enumerate(messages_or_prompt):
        if not isinstance(message, Mapping) or "role" not in message:
            raise ConfigError(
                f"Message {i} must be a dict with a 'role' (and 'content'), got {message!r:.80}."
            )
        messages.append(dict(message))
    return messages


class AsyncClient:
    """Streams chat completions over SSE (httpx) or WebSocket (aiohttp), with retries.

    Keyword arguments override ``holynb._config.configure()`` values, which override the
    environment (``HOLYSHEEP_API_KEY``, ``HOLYSHEEP_BASE_URL``, ``HOLYNB_MODEL``,
    ``HOLYNB_TRANSPORT``). Timeouts are in seconds (None = no limit).
    Use it as ``async with AsyncClient() as c:``.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        model: str | None = None,
        transport: str | None = None,
        *,
        max_retries: int = 3,
        connect_timeout: float | None = 10.0,
        first_token_timeout: float | None = 60.0,
        idle_timeout: float | None = 30.0,
        total_timeout: float | None = 600.0,
        skip_malformed: bool = False,
        on_retry: Callable[[RetryEvent], Any] | None = None,
        max_connections: int = 1000,
        ws_pool_size: int = 100,
        ping_interval: float = 30.0,
    ) -> None:
        self.base_url = resolve_base_url(base_url)
        self._key = resolve_api_key(api_key)
        self.model = resolve_model(model)
        self.transport = resolve_transport(transport)
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigError(f"max_retries must be an integer >= 0, got {max_retries!r}.")
        if not isinstance(max_connections, int) or max_connections < 1:
            raise ConfigError(f"max_connections must be an integer >= 1, got {max_connections!r}.")
        self._defaults: dict[str, Any] = {
            "max_retries": max_retries,
            "connect_timeout": check_timeout("connect_timeout", connect_timeout),
            "first_token_timeout": check_timeout("first_token_timeout", first_token_timeout),
            "idle_timeout": check_timeout("idle_timeout", idle_timeout),
            "total_timeout": check_timeout("total_timeout", total_timeout),
            "skip_malformed": bool(skip_malformed),
            "on_retry": on_retry,
        }
        self._max_connections = max_connections
        self._ws_pool_size = ws_pool_size
        self._ping_interval = ping_interval
        self._sse: SSETransport | None = None
        self._ws: WSTransport | None = None
        self._closed = False

    @property
    def masked_key(self) -> str:
        """The API key as ``sk-…abcd``."""
        return mask_key(self._key)

    def __repr__(self) -> str:
        return (
            f"AsyncClient(base_url={self.base_url!r}, model={self.model!r}, "
            f"transport={self.transport!r}, api_key={self.masked_key!r})"
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close pooled connections (HTTP and WebSocket)."""
        self._closed = True
        sse, self._sse = self._sse, None
        ws, self._ws = self._ws, None
        try:
            if ws is not None:
                await ws.aclose()
        finally:
            if sse is not None:
                await sse.aclose()

    # -- streaming -----------------------------------------------------------------------------

    def stream(
        self,
        messages_or_prompt: str | Sequence[Mapping[str, Any]],
        *,
        model: str | None = None,
        transport: str | None = None,
        on_retry: Callable[[RetryEvent], Any] | None = _UNSET,
        max_retries: int = _UNSET,
        connect_timeout: float | None = _UNSET,
        first_token_timeout: float | None = _UNSET,
        idle_timeout: float | None = _UNSET,
        total_timeout: float | None = _UNSET,
        skip_malformed: bool = _UNSET,
        extra_headers: Mapping[str, str] | None = None,
        **params: Any,
    ) -> AsyncStream:
        """Start a streamed chat completion; use as ``async with c.stream(...) as s``.

        ``params`` are chat-completions parameters (``temperature``, ``max_tokens``, ``tools``,
        ...). ``extra_headers`` are sent as HTTP headers (SSE) or URL query parameters (WS).
        """
        if self._closed:
            raise ConfigError("This client is closed: create a new AsyncClient.")
        options = self._options(
            transport=transport,
            on_retry=on_retry,
            max_retries=max_retries,
            connect_timeout=connect_timeout,
            first_token_timeout=first_token_timeout,
            idle_timeout=idle_timeout,
            total_timeout=total_timeout,
            skip_malformed=skip_malformed,
            extra_headers=extra_headers,
        )
        body = self._body(messages_or_prompt, model, params, stream=True)
        return AsyncStream(self, body, options)

    def _options(self, **given: Any) -> Options:
        values = dict(self._defaults)
        for name, value in given.items():
            if value is _UNSET:
                continue
            if name in _TIMEOUTS:
                value = check_timeout(name, value)
            elif name == "max_retries" and (not isinstance(value, int) or value < 0):
                raise ConfigError(f"max_retries must be an integer >= 0, got {value!r}.")
            values[name] = value
        chosen = given.get("transport")
        values["transport"] = self.transport if chosen is None else resolve_transport(chosen)
        values["extra_headers"] = dict(given.get("extra_headers") or {})
        return Options(**values)

    def _body(
        self,
        messages_or_prompt: str | Sequence[Mapping[str, Any]],
        model: str | None,
        params: dict[str, Any],
        *,
        stream: bool,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model if model is None else resolve_model(model),
            "messages": build_messages(messages_or_prompt),
        }
        if stream:
            body["stream"] = True
            # Ask for the usage chunk (OpenAI sends it only when asked); stream_options=None omits.
            body["stream_options"] = {"include_usage": True}
        for name, value in params.items():
            if name in ("stream", "model", "messages"):
                raise ConfigError(f"{name}= is set by holynb; pass the prompt/model arguments.")
            if value is None:
                body.pop(name, None)
            else:
                body[name] = value
        return body

    async def _open_attempt(
        self, body: dict[str, Any], options: Options, stats: StreamStats
    ) -> Attempt:
        """Open one request attempt on the chosen transport (called by AsyncStream)."""
        if self._closed:
            raise ConfigError("This client is closed: create a new AsyncClient.")
        log.debug(
            "stream %s model=%s transport=%s key=%s",
            self.base_url,
            body["model"],
            options.transport,
            self.masked_key,
        )
        if options.transport == "ws":
            return await self._ws_transport().open(
                body,
                query=options.extra_headers,
                connect_timeout=options.connect_timeout,
                stats=stats,
            )
        return await self._sse_transport().open(
            f"{self.base_url}/chat/completions",
            body,
            headers=options.extra_headers,
            connect_timeout=options.connect_timeout,
            stats=stats,
        )

    def _sse_transport(self) -> SSETransport:
        if self._sse is None:
            from holynb._transport_sse import SSETransport

            self._sse = SSETransport(
                key=self._key, base_url=self.base_url, max_connections=self._max_connections
            )
        return self._sse

    def _ws_transport(self) -> WSTransport:
        if self._ws is None:
            from holynb._transport_ws import WSTransport

            self._ws = WSTransport(
                base_url=self.base_url,
                key=self._key,
                pool_size=self._ws_pool_size,
                ping_interval=self._ping_interval,
            )
        return self._ws

    # -- one-shot requests ---------------------------------------------------------------------

    async def complete(
        self,
        messages_or_prompt: str | Sequence[Mapping[str, Any]],
        *,
        model: str | None = None,
        on_retry: Callable[[RetryEvent], Any] | None = _UNSET,
        max_retries: int = _UNSET,
        connect_timeout: float | None = _UNSET,
        total_timeout: float | None = _UNSET,
        extra_headers: Mapping[str, str] | None = None,
        **params: Any,
    ) -> CompletionResult:
        """Run a non-streaming chat completion (HTTP JSON) and return its result."""
        options = self._options(
            on_retry=on_retry,
            max_retries=max_retries,
            connect_timeout=connect_timeout,
            total_timeout=total_timeout,
            extra_headers=extra_headers,
        )
        body = self._body(messages_or_prompt, model, params, stream=False)
        stats = StreamStats()
        t0 = time.perf_counter()
        data = await self._request_json("POST", "/chat/completions", body, options, stats)
        parser = ChunkParser(stats, t0=t0, skip_malformed=False, key=self._key)
        message: dict[str, Any] = {}
        choices = data.get("choices") if isinstance(data, dict) else None
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            message = choices[0].get("message") or {}
            parser.finish_reason = choices[0].get("finish_reason")
        if isinstance(data, dict) and isinstance(data.get("usage"), dict):
            parser._usage(data["usage"])
        text = message.get("content") or ""
        if message.get("tool_calls"):
            parser.tools.add(message["tool_calls"])
        total = time.perf_counter() - t0
        stats.ttft_s = total
        stats.tokens = stats.completion_tokens or (1 if text else 0)
        stats.chunks = 1
        stats.finish(total)
        return CompletionResult(
            text=text,
            finish_reason=parser.finish_reason,
            usage=parser.usage,
            tool_calls=parser.tools.result(),
            model=(data.get("model") if isinstance(data, dict) else None) or body["model"],
            stats=stats,
            raw=data if isinstance(data, dict) else None,
        )

    async def models(self) -> list[str]:
        """The model ids the server offers (``GET /models``); also a cheap key check."""
        options = self._options()
        data = await self._request_json("GET", "/models", None, options, StreamStats())
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise APIStatusError(
                f"GET {self.base_url}/models returned no model list — check the base URL.",
                status_code=200,
                body=data,
            )
        return [m["id"] for m in items if isinstance(m, dict) and "id" in m]

    async def _request_json(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        options: Options,
        stats: StreamStats,
    ) -> Any:
        """One JSON request with the retry policy and the connect/total timeouts."""
        import httpx

        from holynb._transport_sse import connect_error

        http = self._sse_transport().http
        url = f"{self.base_url}{path}"
        attempt = 0
        total = options.total_timeout
        loop = asyncio.get_running_loop()
        deadline = None if total is None else loop.time() + total
        while True:
            try:
                async with asyncio.timeout_at(deadline) as scope:
                    try:
                        response = await http.request(
                            method,
                            url,
                            content=None if body is None else json.dumps(body).encode(),
                            headers={"Content-Type": "application/json", **options.extra_headers},
                            timeout=httpx.Timeout(options.connect_timeout, read=None),
                        )
                    except (httpx.TimeoutException, httpx.TransportError) as exc:
                        raise connect_error(exc, url, options.connect_timeout, self._key) from None
                stats.bytes += len(response.content)
                if response.status_code >= 400:
                    raise error_from_status(
                        response.status_code,
                        response.content,
                        url=url,
                        key=self._key,
                        retry_after=retry_after_from_headers(response.headers),
                    )
                try:
                    return response.json()
                except ValueError:
                    start = scrub(response.text[:80], self._key)
                    raise APIStatusError(
                        f"{method} {url} did not return JSON ({start!r}) — check the base URL.",
                        status_code=response.status_code,
                        body=scrub(response.text, self._key),
                    ) from None
            except TimeoutError:
                if not scope.expired():
                    raise
                raise StreamTimeout(
                    f"{method} {url} took longer than {total} s (total_timeout) — "
                    "raise total_timeout=...",
                    phase="total",
                    timeout=total or 0.0,
                ) from None
            except HolyError as exc:
                event = plan_retry(exc, attempt, options, deadline)
                if event is None:
                    raise
                attempt = event.attempt
                await wait_retry(event, options, stats)
