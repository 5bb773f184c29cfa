"""The async client: configuration, ``stream()``, ``complete()`` and ``models()``.

A client owns one network :class:`~holynb._transports.session.Session` (TLS, proxies, one
connection pool) and a WebSocket pool per API on top of it; an API module (``holynb._apis``:
chat completions, Responses, Anthropic Messages) shapes request bodies and parses replies.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from holynb._apis import load_api
from holynb._apis.base import APISpec, assistant_message, build_messages
from holynb._config import (
    Options,
    check_api_transport,
    check_headers,
    check_timeout,
    mask_key,
    mask_url,
    resolve_api,
    resolve_api_key,
    resolve_base_url,
    resolve_model,
    resolve_transport,
    url_password,
)
from holynb._errors import APIStatusError, ConfigError, HolyError, StreamTimeout
from holynb._retry import RetryEvent, plan_retry, wait_retry
from holynb._stats import StreamStats
from holynb._stream import AsyncStream, Attempt
from holynb._transports.config import NetConfig

if TYPE_CHECKING:
    from holynb._transports.session import Session
    from holynb._transports.ws import WSTransport

__all__ = ["AsyncClient", "CompletionResult", "build_messages"]

log = logging.getLogger("holynb")

_UNSET: Any = object()
# Anthropic lists models in pages; more than this many pages is not a model list.
_MAX_MODEL_PAGES = 20
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
    reasoning: str = ""
    raw_finish_reason: str | None = None
    raw_usage: dict[str, Any] | None = None
    blocks: tuple[dict[str, Any], ...] = ()

    @property
    def message(self) -> dict[str, Any]:
        """The reply as an assistant message to append to the conversation (chat form; the
        API's reasoning blocks, e.g. Anthropic thinking signatures, under "thinking_blocks")."""
        return assistant_message(self.text, self.tool_calls, self.blocks)


class AsyncClient:
    """Streams replies over SSE or WebSocket (one aiohttp session), with retries.

    ``api`` is the API spoken: ``"chat"`` (chat completions, ``{base_url}/chat/completions``),
    ``"responses"`` (OpenAI Responses, ``/responses``) or ``"messages"`` (Anthropic Messages,
    ``/messages``, SSE only); conversations, tools, results and errors have one form whatever
    the API. Keyword arguments override ``holynb._config.configure()`` values, which override
    the environment (``HOLYSHEEP_API_KEY``, ``HOLYSHEEP_BASE_URL``, ``HOLYNB_MODEL``,
    ``HOLYNB_TRANSPORT``, ``HOLYNB_API``). Timeouts are in seconds (None = no limit).
    ``verify`` is True (system CAs, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``), False, a CA bundle
    path or an ``ssl.SSLContext``; ``proxy`` a proxy URL (default: ``HTTPS_PROXY`` /
    ``HTTP_PROXY`` / ``ALL_PROXY`` / ``NO_PROXY``). Both are read once, here. Use it as
    ``async with AsyncClient() as c:``.
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
        verify: bool | str | os.PathLike[str] | ssl.SSLContext = True,
        proxy: str | None = None,
        api: str | None = None,
    ) -> None:
        url = resolve_base_url(base_url)
        self._key = resolve_api_key(api_key)
        self.model = resolve_model(model)
        self.transport = resolve_transport(transport)
        self.api = resolve_api(api)
        check_api_transport(self.api, self.transport)
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
        self._url = url
        self.base_url = mask_url(url)
        self._secrets = (self._key, url_password(url))
        self._net = NetConfig.resolve(verify, proxy)
        self._max_connections = max_connections
        self._ws_pool_size = ws_pool_size
        self._ping_interval = ping_interval
        self._session: Session | None = None
        self._ws: dict[str, WSTransport] = {}
        self._closed = False

    @property
    def masked_key(self) -> str:
        """The API key as ``sk-…abcd``."""
        return mask_key(self._key)

    def __repr__(self) -> str:
        return (
            f"AsyncClient(base_url={self.base_url!r}, model={self.model!r}, "
            f"api={self.api!r}, transport={self.transport!r}, api_key={self.masked_key!r})"
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close pooled connections (HTTP and WebSocket)."""
        self._closed = True
        pools, self._ws = list(self._ws.values()), {}
        session, self._session = self._session, None
        try:
            await asyncio.gather(*(ws.aclose() for ws in pools))
        finally:
            if session is not None:
                await session.aclose()

    # -- the network ---------------------------------------------------------------------------

    def _net_session(self) -> Session:
        if self._closed:
            raise ConfigError("This client is closed: create a new AsyncClient.")
        if self._session is None:
            from holynb._transports.session import Session

            self._session = Session(
                base_url=self._url,
                key=self._key,
                net=self._net,
                max_connections=self._max_connections,
            )
        return self._session

    def _ws_transport(self, api: APISpec) -> WSTransport:
        session = self._net_session()
        ws = self._ws.get(api.name)
        if ws is None:
            from holynb._transports.ws import WSTransport

            ws = self._ws[api.name] = WSTransport(
                session, api, pool_size=self._ws_pool_size, ping_interval=self._ping_interval
            )
        return ws

    # -- streaming -----------------------------------------------------------------------------

    def stream(
        self,
        messages_or_prompt: str | Sequence[Mapping[str, Any]],
        *,
        model: str | None = None,
        transport: str | None = None,
        api: str | None = None,
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
        """Start a streamed reply; use as ``async with c.stream(...) as s``.

        ``messages_or_prompt`` is a prompt or a chat-form conversation, whatever the ``api``.
        ``params`` are request parameters in chat-completions terms (``temperature``,
        ``max_tokens``, ``tools``, ``tool_choice``... translated for the API) or the API's own.
        ``extra_headers`` are sent as HTTP headers (SSE) or URL query parameters (WS).
        """
        if self._closed:
            raise ConfigError("This client is closed: create a new AsyncClient.")
        options = self._options(
            api=api,
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
        chosen = self.model if model is None else resolve_model(model)
        spec = load_api(options.api)
        body = spec.build_body(chosen, messages_or_prompt, params, stream=True)

        async def opener(stats: StreamStats) -> Attempt:
            return await self._open_attempt(spec, body, options, stats)

        return AsyncStream(
            opener,
            spec.parser,
            options,
            model=chosen,
            secrets=self._secrets,
            label=f"key={self.masked_key}",
        )

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
        values["api"] = self.api if given.get("api") is None else resolve_api(given["api"])
        check_api_transport(values["api"], values["transport"])
        values["extra_headers"] = check_headers(given.get("extra_headers"))
        return Options(**values)

    async def _open_attempt(
        self, api: APISpec, body: dict[str, Any], options: Options, stats: StreamStats
    ) -> Attempt:
        """Open one request attempt on the chosen transport (the stream's opener)."""
        log.debug(
            "stream %s api=%s model=%s transport=%s key=%s",
            self.base_url,
            api.name,
            body["model"],
            options.transport,
            self.masked_key,
        )
        if options.transport == "ws":
            return await self._ws_transport(api).open(
                body,
                query=options.extra_headers,
                connect_timeout=options.connect_timeout,
                stats=stats,
            )
        from holynb._transports.sse import open_sse

        return await open_sse(
            self._net_session(),
            api,
            body,
            headers=options.extra_headers,
            connect_timeout=options.connect_timeout,
            stats=stats,
        )

    # -- one-shot requests ---------------------------------------------------------------------

    async def complete(
        self,
        messages_or_prompt: str | Sequence[Mapping[str, Any]],
        *,
        model: str | None = None,
        api: str | None = None,
        on_retry: Callable[[RetryEvent], Any] | None = _UNSET,
        max_retries: int = _UNSET,
        connect_timeout: float | None = _UNSET,
        total_timeout: float | None = _UNSET,
        extra_headers: Mapping[str, str] | None = None,
        **params: Any,
    ) -> CompletionResult:
        """Ask for a whole reply (one HTTP JSON request, not streamed) and return it."""
        options = self._options(
            api=api,
            transport="sse",
            on_retry=on_retry,
            max_retries=max_retries,
            connect_timeout=connect_timeout,
            total_timeout=total_timeout,
            extra_headers=extra_headers,
        )
        chosen = self.model if model is None else resolve_model(model)
        spec = load_api(options.api)
        body = spec.build_body(chosen, messages_or_prompt, params, stream=False)
        stats = StreamStats()
        t0 = time.perf_counter()
        data = await self._request_json("POST", spec, spec.path, body, options, stats)
        reply = spec.parse_reply(data, stats)
        total = time.perf_counter() - t0
        stats.ttft_s = total
        # Without usage: one content chunk and one chunk per tool call, as a stream counts them.
        stats.tokens = stats.completion_tokens or (bool(reply.text) + len(reply.tool_calls))
        stats.chunks = 1
        stats.finish(total)
        return CompletionResult(
            text=reply.text,
            finish_reason=reply.finish_reason,
            usage=reply.usage,
            tool_calls=reply.tool_calls,
            model=reply.model or chosen,
            stats=stats,
            raw=data if isinstance(data, dict) else None,
            reasoning=reply.reasoning,
            raw_finish_reason=reply.raw_finish_reason,
            raw_usage=reply.raw_usage,
            blocks=reply.blocks,
        )

    async def models(self, *, api: str | None = None) -> list[str]:
        """The model ids the server offers (``GET /models`` with ``api``'s auth, every page of
        Anthropic's paged listing); also a cheap key check."""
        options = self._options(api=api, transport="sse")
        spec = load_api(options.api)
        ids: list[str] = []
        query = ""
        for _ in range(_MAX_MODEL_PAGES):
            data = await self._request_json(
                "GET", spec, spec.models_path, None, options, StreamStats(), query=query
            )
            items = data.get("data") if isinstance(data, dict) else None
            if not isinstance(items, list):
                raise APIStatusError(
                    f"GET {self.base_url}{spec.models_path} returned no model list",
                    hint="check the base URL",
                    status_code=200,
                    body=data,
                )
            ids += [m["id"] for m in items if isinstance(m, dict) and "id" in m]
            # Anthropic pages its listing: has_more and the last id to continue after.
            last = data.get("last_id")
            if data.get("has_more") is not True or not isinstance(last, str) or not items:
                break
            query = "?" + urllib.parse.urlencode({"after_id": last, "limit": 1000})
        return ids

    async def _request_json(
        self,
        method: str,
        api: APISpec,
        path: str,
        body: dict[str, Any] | None,
        options: Options,
        stats: StreamStats,
        *,
        query: str = "",
    ) -> Any:
        """One JSON request with the retry policy and the connect/total timeouts."""
        session = self._net_session()
        retries = 0
        total = options.total_timeout
        loop = asyncio.get_running_loop()
        deadline = None if total is None else loop.time() + total
        while True:
            try:
                async with asyncio.timeout_at(deadline) as scope:
                    data, size = await session.request_json(
                        method,
                        path,
                        body,
                        api=api,
                        headers=options.extra_headers,
                        connect_timeout=options.connect_timeout,
                        query=query,
                    )
                stats.bytes += size
                return data
            except TimeoutError:
                if not scope.expired():
                    raise
                error: HolyError = StreamTimeout(
                    f"{method} {self.base_url}{path} took longer than {total} s",
                    hint="raise total_timeout=...",
                    phase="total",
                    timeout=total or 0.0,
                )
            except HolyError as exc:
                error = exc
            event = plan_retry(error, retries, options, deadline)
            if event is None:
                raise error
            retries = event.attempt
            await wait_retry(event, options, stats)
