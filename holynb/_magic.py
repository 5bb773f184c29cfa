"""``%%holy`` / ``%holy``: stream chat answers into notebook cells (``%load_ext holynb``).

The kernel's event loop is already running, so requests run on holynb's private loop thread
(as ``%%script`` does) while the cell's thread renders: it waits on a queue of deltas with a
timeout set by the rendering budget, so the last text is never held back and Kernel →
Interrupt (KeyboardInterrupt in this thread) stops the stream at once. See docs/magic.md.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import queue
import re
import shlex
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments
from traitlets import Bool, Dict, Enum, Float, Int, Unicode
from traitlets.config import Configurable

from holynb import _config
from holynb._client import AsyncClient
from holynb._errors import (
    APIStatusError,
    AuthenticationError,
    ConfigError,
    HolyError,
    MalformedChunkError,
    RateLimitError,
    StreamInterrupted,
    StreamTimeout,
)
from holynb._pricing import DEFAULT_PRICES, cost_usd
from holynb._render import Budget
from holynb._render_output import FORMATS, Output, RichOutput, TextOutput, final_bundle
from holynb._render_prompt import interpolate
from holynb._stats import StreamStats
from holynb._sync import _background_loop

__all__ = ["HolyMagics", "load_ipython_extension", "unload_ipython_extension"]

SUBCOMMANDS = ("models", "config", "history", "stats", "error", "mock")
DEFAULT_CHAT = "default"
# How long closing the upstream may take after Kernel → Interrupt.
_CLOSE_WAIT_S = 3.0
# Upper bound on one wait for the next delta, so the cell thread stays responsive.
_MAX_WAIT_S = 0.25
_TIMEOUT_FLAGS = {
    "first_token": "--first-token-timeout",
    "idle": "--idle-timeout",
    "total": "--timeout",
    "connect": "HolyMagics.connect_timeout",
}


class HolyInterrupt(KeyboardInterrupt):
    """Kernel → Interrupt stopped a stream; shown as one line instead of a traceback."""

    def _render_traceback_(self) -> list[str]:
        return [f"KeyboardInterrupt: {self}"]


@dataclass(slots=True)
class Turn:
    """One request made by the magic (for ``%holy history`` / ``%holy stats``)."""

    chat: str | None
    model: str
    prompt: str
    reply: str
    outcome: str  # "ok", "interrupted" or the error class name
    stats: StreamStats = field(default_factory=StreamStats)
    cost: float | None = None


@dataclass(slots=True)
class _Request:
    """Everything one ``%%holy`` run needs, resolved from flags, config and the namespace."""

    prompt: str
    messages: list[dict[str, str]]
    chat: str | None
    model: str
    fmt: str
    out: str | None
    stream: bool
    show_stats: bool
    client_key: tuple[Any, ...] = field(repr=False)  # holds the API key: never shown
    call: dict[str, Any] = field(default_factory=dict)


def _split_options(parser: argparse.ArgumentParser, line: str) -> tuple[list[str], str]:
    """Split ``%holy`` arguments into leading option tokens and the prompt (kept verbatim).

    Options end at the first word that is not a known option (or at ``--``); an option that
    takes an optional value (``-c``) takes it only when attached (``-c=work``), so
    ``%holy -c what next?`` asks "what next?" in the default chat.
    """
    token_re = re.compile(r"""(?:"[^"]*"|'[^']*'|[^\s"'])+""")
    tokens: list[str] = []
    pos = 0
    expect_value = False
    while True:
        m = token_re.search(line, pos)
        if m is None:
            return tokens, ""
        word = m.group(0)
        if expect_value:
            tokens.append(_unquote(word))
            expect_value = False
            pos = m.end()
            continue
        if word == "--":
            return tokens, line[m.end() :].strip()
        name = word.split("=", 1)[0]
        # argparse has no public lookup of an option's action by its string.
        actions = parser._option_string_actions
        attached = not word.startswith("--") and name not in actions and word[:2] in actions
        action = actions.get(word[:2] if attached else name)
        if not word.startswith("-") or action is None:
            return tokens, line[m.start() :].strip()
        tokens.append(_unquote(word))
        expect_value = "=" not in word and not attached and action.nargs is None
        pos = m.end()


def _unquote(word: str) -> str:
    try:
        parts = shlex.split(word)
    except ValueError as exc:
        raise UsageError(f"cannot parse {word!r}: {exc}") from None
    return parts[0] if parts else ""


def _money(cost: float) -> str:
    return f"${cost:.5f}" if cost < 0.01 else f"${cost:.4f}"


@magics_class
class HolyMagics(Magics, Configurable):
    """``%%holy`` and ``%holy``: ask a chat model and stream the answer into the cell.

    Options set with ``%config HolyMagics.<name> = ...`` are the defaults for every cell;
    flags on a cell override them for that cell.
    """

    model = Unicode(None, allow_none=True, help="Model (None: configure() > HOLYNB_MODEL).").tag(
        config=True
    )
    base_url = Unicode(None, allow_none=True, help="API base URL (None: environment).").tag(
        config=True
    )
    transport = Enum(["sse", "ws"], None, allow_none=True, help="sse or ws (None: env).").tag(
        config=True
    )
    system = Unicode("", help="System prompt for every request ('' for none).").tag(config=True)
    temperature = Float(None, allow_none=True, help="Sampling temperature.").tag(config=True)
    max_tokens = Int(None, allow_none=True, help="Maximum tokens in a reply.").tag(config=True)
    format = Enum(list(FORMATS), "markdown", help="Output format.").tag(config=True)
    show_stats = Bool(True, help="Show the stats line under each answer.").tag(config=True)
    stream = Bool(True, help="Stream the answer (False: one request, one render).").tag(config=True)
    chat = Unicode(None, allow_none=True, help="Conversation every cell continues.").tag(
        config=True
    )
    prices = Dict(
        value_trait=Float(), help="US$ per million tokens by model, over DEFAULT_PRICES."
    ).tag(config=True)
    connect_timeout = Float(10.0, allow_none=True, help="Seconds to connect.").tag(config=True)
    first_token_timeout = Float(60.0, allow_none=True, help="Seconds to the first token.").tag(
        config=True
    )
    idle_timeout = Float(30.0, allow_none=True, help="Longest silence mid-stream, s.").tag(
        config=True
    )
    total_timeout = Float(600.0, allow_none=True, help="Seconds for the whole reply.").tag(
        config=True
    )
    max_retries = Int(3, help="Retries on 429/5xx/connection failure before the first token.").tag(
        config=True
    )
    skip_malformed = Bool(False, help="Skip malformed chunks instead of failing.").tag(config=True)
    max_updates_per_s = Float(20.0, help="Display messages per second while streaming.").tag(
        config=True
    )
    display_mode = Enum(
        ["auto", "rich", "text"],
        "auto",
        help="rich: Jupyter display messages; text: plain stdout; auto: rich in a kernel.",
    ).tag(config=True)
    extra_headers = Dict(
        value_trait=Unicode(), help="HTTP headers sent with every request (e.g. X-Mock-*)."
    ).tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.chats: dict[str, list[dict[str, str]]] = {}
        self.turns: list[Turn] = []
        self.last_error: BaseException | None = None
        self._last_error_text = ""
        self._clients: dict[tuple[Any, ...], AsyncClient] = {}
        self._mock: Any = None
        self._mock_saved: dict[str, str] | None = None

    # -- the magic -------------------------------------------------------------------------

    @magic_arguments()
    @argument("-m", "--model", help="model name (see %%holy models)")
    @argument("-s", "--system", help="system prompt")
    @argument("-t", "--temperature", type=float, help="sampling temperature, 0–2")
    @argument("--max-tokens", type=int, help="maximum tokens in the reply")
    @argument("-f", "--format", choices=FORMATS, help="how to show the reply")
    @argument("--transport", choices=("sse", "ws"), help="streaming transport")
    @argument("--base-url", help="API base URL for this cell")
    @argument("-o", "--out", metavar="VAR", help="store the reply in this variable")
    @argument(
        "-c",
        "--chat",
        nargs="?",
        const=DEFAULT_CHAT,
        metavar="NAME",
        help="continue a conversation (default one when NAME is omitted)",
    )
    @argument("--new", action="store_true", help="start the conversation afresh")
    @argument("--no-stats", action="store_true", help="no stats line")
    @argument("--no-stream", action="store_true", help="one request, one render")
    @argument("--timeout", type=float, help="seconds for the whole reply")
    @argument("--first-token-timeout", type=float, help="seconds to the first token")
    @argument("--idle-timeout", type=float, help="longest silence mid-stream, seconds")
    @argument("--retries", type=int, help="retries before the first token")
    @line_cell_magic
    @no_var_expand  # IPython would evaluate {x + 1} in the line; holynb interpolates itself
    def holy(self, line: str, cell: str | None = None) -> None:
        """Ask a chat model: ``%%holy [options]`` with the prompt as the cell, or ``%holy prompt``.

        Subcommands (line magic): ``models``, ``config``, ``history [clear [NAME]]``, ``stats``,
        ``error``, ``mock start|stop|status``.
        """
        if cell is None:
            word, _, rest = line.strip().partition(" ")
            if word in SUBCOMMANDS:
                getattr(self, f"_cmd_{word}")(rest.strip())
                return
            parser = self.holy.parser  # type: ignore[attr-defined]
            tokens, prompt = _split_options(parser, line)
            args = parser.parse_args(tokens)
            self._ask(args, prompt, replace=False)
        else:
            self._ask(self._parse(line), cell, replace=True)

    def _parse(self, line: str) -> argparse.Namespace:
        """Parse option flags with shell quoting (``-s "Be terse."``)."""
        try:
            tokens = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"cannot parse the options {line!r}: {exc}") from None
        return self.holy.parser.parse_args(tokens)  # type: ignore[attr-defined]

    def _ask(self, args: argparse.Namespace, prompt: str, *, replace: bool) -> None:
        """Resolve the request, stream it into the cell and record the outcome."""
        try:
            request = self._request(args, prompt)
            client = self._client(request.client_key)
        except ConfigError as exc:
            self._remember_error(exc)
            self._output(args.format or self.format, replace).finish("", None, _error_line(exc))
            return
        output = self._output(request.fmt, replace)
        outcome, text, info, error = self._run(client, request, output)
        stats: StreamStats = info.get("stats") or StreamStats()
        model = info.get("model") or request.model
        turn = Turn(request.chat, model, request.prompt, text, outcome, stats)
        turn.cost = self._cost(model, stats)
        self.turns.append(turn)
        bundle = None
        problem = None
        if outcome == "ok":
            bundle, value, problem = final_bundle(request.fmt, text)
            self._record_chat(request, text)
            if request.out:
                self.shell.user_ns[request.out] = value
            if request.fmt == "code" and text.strip():
                self.shell.set_next_input(value, replace=False)
        elif request.out and text:
            self.shell.user_ns[request.out] = text  # partial text is still worth keeping
        if outcome == "interrupted":
            line = "⏹ interrupted — partial answer kept above"
            if request.show_stats:
                line += " · " + self._stats_line(turn)
        elif error is not None:
            self._remember_error(error)
            line = _error_line(error, partial=bool(text.strip()))
        else:
            line = self._stats_line(turn) if request.show_stats else None
            if problem:
                line = f"⚠ {problem}" + (f" · {line}" if line else "")
        output.finish(text, bundle, line)
        if outcome == "interrupted":
            raise HolyInterrupt("stream stopped; the partial answer is kept above")

    def _output(self, fmt: str, replace: bool) -> Output:
        mode = self.display_mode
        if mode == "auto":
            mode = "rich" if getattr(self.shell, "kernel", None) is not None else "text"
        if mode == "text":
            return TextOutput(sys.stdout)
        budget = Budget(self.max_updates_per_s)
        return RichOutput(self.shell, fmt=fmt, budget=budget, replace=replace)

    # -- request resolution ----------------------------------------------------------------

    def _request(self, args: argparse.Namespace, raw_prompt: str) -> _Request:
        prompt = interpolate(raw_prompt, self.shell.user_ns).strip()
        if not prompt:
            raise UsageError(
                "Empty prompt: write the question in the cell body (%%holy) or after %holy."
            )
        temperature = args.temperature if args.temperature is not None else self.temperature
        if temperature is not None and not 0 <= temperature <= 2:
            raise UsageError(f"Temperature must be between 0 and 2, got {temperature}.")
        max_tokens = args.max_tokens if args.max_tokens is not None else self.max_tokens
        if max_tokens is not None and max_tokens < 1:
            raise UsageError(f"--max-tokens must be at least 1, got {max_tokens}.")
        retries = args.retries if args.retries is not None else self.max_retries
        if retries < 0:
            raise UsageError(f"--retries must be 0 or more, got {retries}.")
        chat = args.chat or self.chat
        if args.new and chat is None:
            chat = DEFAULT_CHAT
        if args.new and chat is not None:
            self.chats.pop(chat, None)
        system = args.system if args.system is not None else self.system
        messages: list[dict[str, str]] = []
        if system:
            messages.append({"role": "system", "content": system})
        if chat is not None:
            messages.extend(self.chats.get(chat, []))
        messages.append({"role": "user", "content": prompt})
        base_url = _config.resolve_base_url(args.base_url or self.base_url)
        key = _config.resolve_api_key()
        model = _config.resolve_model(args.model or self.model)
        client_key = (base_url, key, self.connect_timeout, self.skip_malformed)
        stream = not args.no_stream and self.stream
        call: dict[str, Any] = {
            "model": model,
            "transport": args.transport or self.transport,
            "max_retries": retries,
            "extra_headers": dict(self.extra_headers),
        }
        if stream:
            call["first_token_timeout"] = _pick(args.first_token_timeout, self.first_token_timeout)
            call["idle_timeout"] = _pick(args.idle_timeout, self.idle_timeout)
        call["total_timeout"] = _pick(args.timeout, self.total_timeout)
        if temperature is not None:
            call["temperature"] = temperature
        if max_tokens is not None:
            call["max_tokens"] = max_tokens
        if args.out is not None and not args.out.isidentifier():
            raise UsageError(f"-o needs a variable name, got {args.out!r}.")
        return _Request(
            prompt=prompt,
            messages=messages,
            chat=chat,
            model=model,
            fmt=args.format or self.format,
            out=args.out,
            stream=stream,
            show_stats=self.show_stats and not args.no_stats,
            client_key=client_key,
            call=call,
        )

    def _client(self, key: tuple[Any, ...]) -> AsyncClient:
        client = self._clients.get(key)
        if client is None:
            base_url, api_key, connect_timeout, skip_malformed = key
            client = AsyncClient(
                base_url=base_url,
                api_key=api_key,
                connect_timeout=connect_timeout,
                skip_malformed=skip_malformed,
            )
            self._clients[key] = client
        return client

    def _record_chat(self, request: _Request, reply: str) -> None:
        if request.chat is None:
            return
        history = self.chats.setdefault(request.chat, [])
        history.append({"role": "user", "content": request.prompt})
        history.append({"role": "assistant", "content": reply})

    # -- streaming ---------------------------------------------------------------------------

    def _run(
        self, client: AsyncClient, request: _Request, output: Output
    ) -> tuple[str, str, dict[str, Any], BaseException | None]:
        """Stream the request into ``output``; return (outcome, text, info, error)."""
        events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        loop = _background_loop()
        future = asyncio.run_coroutine_threadsafe(self._pump(client, request, events), loop)
        parts: list[str] = []
        result: dict[str, Any] = {"info": {}, "error": None}
        try:
            self._drain(events, output, parts, result)
        except KeyboardInterrupt:
            future.cancel()
            self._drain_after_interrupt(events, parts, result)
            info = result["info"]
            return "interrupted", "".join(parts), info, None
        except BaseException:
            future.cancel()  # a failing display must not leave the request streaming unread
            raise
        error = result["error"]
        outcome = "ok" if error is None else type(error).__name__
        return outcome, "".join(parts), result["info"], error

    def _drain(
        self,
        events: queue.SimpleQueue[tuple[str, Any]],
        output: Output,
        parts: list[str],
        result: dict[str, Any],
    ) -> None:
        while True:
            due = output.due_in()
            timeout = _MAX_WAIT_S if due is None else min(due, _MAX_WAIT_S)
            try:
                kind, value = events.get(timeout=timeout)
            except queue.Empty:
                output.poll()
                continue
            if kind == "delta":
                parts.append(value)
                output.feed(value)
            elif kind == "retry":
                output.status(_scrub(f"⟳ {value}"))
            elif kind == "info":
                result["info"] = value
            elif kind == "error":
                result["error"] = value
            elif kind == "closed":
                return

    def _drain_after_interrupt(
        self,
        events: queue.SimpleQueue[tuple[str, Any]],
        parts: list[str],
        result: dict[str, Any],
    ) -> None:
        """Wait (bounded) until the upstream is closed, keeping text that had already arrived."""
        deadline = time.monotonic() + _CLOSE_WAIT_S
        while (left := deadline - time.monotonic()) > 0:
            try:
                kind, value = events.get(timeout=left)
            except queue.Empty:
                return
            except KeyboardInterrupt:
                return  # a second interrupt: stop waiting for the close
            if kind == "delta":
                parts.append(value)
            elif kind == "info":
                result["info"] = value
            elif kind == "closed":
                return

    async def _pump(
        self,
        client: AsyncClient,
        request: _Request,
        events: queue.SimpleQueue[tuple[str, Any]],
    ) -> None:
        """On the loop thread: run the request and queue deltas, retries and the outcome."""
        call = dict(request.call, on_retry=lambda ev: events.put(("retry", ev)))
        stream = None
        try:
            if request.stream:
                stream = client.stream(request.messages, **call)
                async with stream:
                    async for delta in stream:
                        events.put(("delta", delta))
                events.put(("info", {"stats": stream.stats, "model": stream.model}))
            else:
                for name in ("first_token_timeout", "idle_timeout", "transport"):
                    call.pop(name, None)
                reply = await client.complete(request.messages, **call)
                if reply.text:
                    events.put(("delta", reply.text))
                events.put(("info", {"stats": reply.stats, "model": reply.model}))
        except asyncio.CancelledError:
            if stream is not None:
                events.put(("info", {"stats": stream.stats, "model": stream.model}))
            raise
        except Exception as exc:  # every failure is shown in the cell, as one line
            if stream is not None:
                events.put(("info", {"stats": stream.stats, "model": stream.model}))
            events.put(("error", exc))
        finally:
            events.put(("closed", None))

    # -- lines -------------------------------------------------------------------------------

    def _prices(self) -> dict[str, float]:
        return {**DEFAULT_PRICES, **self.prices}

    def _cost(self, model: str, stats: StreamStats) -> float | None:
        tokens = stats.tokens + (stats.prompt_tokens or 0)
        return cost_usd(model, tokens, self._prices()) if tokens else None

    def _stats_line(self, turn: Turn) -> str:
        stats = turn.stats
        parts = [turn.model]
        if stats.ttft_s is not None:
            parts.append(f"TTFT {stats.ttft_s * 1000:.0f} ms")
        if stats.tokens_per_s is not None:
            parts.append(f"{stats.tokens_per_s:.1f} tok/s")
        tokens = f"{stats.tokens} tokens"
        if stats.prompt_tokens:
            tokens += f" (+{stats.prompt_tokens} prompt)"
        parts.append(tokens)
        if turn.cost is not None:
            parts.append(_money(turn.cost))
        if stats.retries:
            parts.append(f"{stats.retries} retr{'y' if stats.retries == 1 else 'ies'}")
        return " · ".join(parts)

    def _remember_error(self, exc: BaseException) -> None:
        self.last_error = exc
        details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        self._last_error_text = _scrub(details)

    # -- subcommands -----------------------------------------------------------------------

    def _print(self, text: str) -> None:
        print(_scrub(text))

    def _cmd_models(self, rest: str) -> None:
        try:
            key = self._request(self._parse(rest), "models").client_key
            future = asyncio.run_coroutine_threadsafe(
                self._client(key).models(), _background_loop()
            )
            try:
                models = future.result(timeout=60)
            except (KeyboardInterrupt, TimeoutError):
                future.cancel()
                raise
        except HolyError as exc:
            self._remember_error(exc)
            self._print(_error_line(exc))
            return
        prices = self._prices()
        default = _config.resolve_model(self.model)
        rows = []
        for name in models:
            price = prices.get(name)
            cost = f"${price:.2f}/MTok" if price is not None else "price unknown"
            rows.append(f"{'*' if name == default else ' '} {name:<24} {cost}")
        self._print("\n".join(rows) if rows else "The server lists no models.")

    def _cmd_config(self, rest: str) -> None:
        try:
            key = _config.mask_key(_config.resolve_api_key())
        except ConfigError as exc:
            key = f"<not set: {exc}>"
        try:
            base_url = _config.resolve_base_url(self.base_url)
        except ConfigError as exc:
            base_url = f"<invalid: {exc}>"
        rows = {
            "base_url": base_url,
            "api_key": key,
            "model": _config.resolve_model(self.model),
            "transport": _config.resolve_transport(self.transport),
            "format": self.format,
            "system": self.system or "<none>",
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "chat": self.chat,
            "stream": self.stream,
            "show_stats": self.show_stats,
            "timeouts (s)": (
                f"connect {self.connect_timeout}, first token {self.first_token_timeout}, "
                f"idle {self.idle_timeout}, total {self.total_timeout}"
            ),
            "max_retries": self.max_retries,
            "max_updates_per_s": self.max_updates_per_s,
            "prices ($/MTok)": ", ".join(f"{k} {v:g}" for k, v in self._prices().items()),
            "mock": self._mock.url if self._mock is not None else "not running",
        }
        width = max(len(k) for k in rows)
        self._print("\n".join(f"{k:<{width}}  {v}" for k, v in rows.items()))

    def _cmd_history(self, rest: str) -> None:
        words = rest.split()
        if words[:1] == ["clear"]:
            if len(words) > 1:
                self.chats.pop(words[1], None)
                self.turns = [t for t in self.turns if t.chat != words[1]]
                self._print(f"Conversation {words[1]!r} cleared.")
            else:
                self.chats.clear()
                self.turns.clear()
                self._print("History cleared.")
            return
        if words:
            raise UsageError("Usage: %holy history [clear [NAME]]")
        if not self.turns:
            self._print("No requests yet.")
            return
        lines = []
        for n, turn in enumerate(self.turns, 1):
            where = f"[{turn.chat}] " if turn.chat else ""
            status = "" if turn.outcome == "ok" else f" ({turn.outcome})"
            lines.append(f"{n}. {where}{turn.model}{status}")
            lines.append(f"   you: {_short(turn.prompt)}")
            lines.append(f"   ai:  {_short(turn.reply)}")
        for name, messages in self.chats.items():
            lines.append(f"conversation {name!r}: {len(messages) // 2} turns remembered")
        self._print("\n".join(lines))

    def _cmd_stats(self, rest: str) -> None:
        if not self.turns:
            self._print("No requests yet.")
            return
        last = self.turns[-1]
        ok = [t for t in self.turns if t.outcome == "ok"]
        tokens = sum(t.stats.tokens for t in self.turns)
        cost = sum(t.cost or 0.0 for t in self.turns)
        ttfts = [t.stats.ttft_s for t in ok if t.stats.ttft_s is not None]
        mean_ttft = f"{sum(ttfts) / len(ttfts) * 1000:.0f} ms" if ttfts else "–"
        self._print(
            f"last:    {self._stats_line(last)} ({last.outcome})\n"
            f"session: {len(self.turns)} requests ({len(self.turns) - len(ok)} failed) · "
            f"{tokens} tokens · {_money(cost)} · mean TTFT {mean_ttft}"
        )

    def _cmd_error(self, rest: str) -> None:
        exc = self.last_error
        if exc is None:
            self._print("No error in this session.")
            return
        rows = [f"{type(exc).__module__}.{type(exc).__name__}: {exc}"]
        for attr in ("status_code", "error_type", "code", "retry_after", "phase", "timeout"):
            value = getattr(exc, attr, None)
            if value is not None:
                rows.append(f"{attr}: {value}")
        for attr in ("body", "raw"):
            value = getattr(exc, attr, None)
            if value:
                rows.append(f"{attr}: {value!r}")
        partial = getattr(exc, "partial_text", "")
        if partial:
            rows.append(f"partial_text: {len(partial)} characters")
        rows.append("")
        rows.append(self._last_error_text.rstrip())
        self._print("\n".join(rows))

    def _cmd_mock(self, rest: str) -> None:
        words = shlex.split(rest)
        action = words[0] if words else "status"
        if action == "start":
            self._mock_start(words[1:])
        elif action == "stop":
            self._mock_stop()
        elif action == "status":
            if self._mock is None:
                self._print("The mock server is not running (start it with %holy mock start).")
            else:
                served = len(self._mock.journal())
                self._print(f"Mock server running at {self._mock.url} · {served} requests served")
        else:
            raise UsageError("Usage: %holy mock start [--tps N] [--ttft-ms N] ... | stop | status")

    def _mock_start(self, words: list[str]) -> None:
        import mockserver  # the bundled mock; imported only when asked for

        parser = argparse.ArgumentParser(prog="%holy mock start", add_help=False)
        parser.add_argument("--tps", type=float)
        parser.add_argument("--ttft-ms", type=float)
        parser.add_argument("--jitter-ms", type=float)
        parser.add_argument("--seed", type=int)
        parser.add_argument("--speed", type=float, default=1.0)
        parser.add_argument("--fault")
        parser.add_argument("--cassettes")
        try:
            opts = parser.parse_args(words)
        except SystemExit:
            raise UsageError(
                "Usage: %holy mock start [--tps N] [--ttft-ms N] [--jitter-ms N] [--seed N] "
                "[--speed X] [--fault SPEC] [--cassettes PATH]"
            ) from None
        if self._mock is not None:
            self._mock_stop(quiet=True)
        mock = mockserver.MockServer(**{k: v for k, v in vars(opts).items() if v is not None})
        mock.start()
        self._mock = mock
        # What configure() had set before, restored by ``%holy mock stop``.
        self._mock_saved = _config.snapshot_defaults()
        _config.configure(base_url=mock.url, api_key=mockserver.MOCK_KEY)
        self._print(f"Mock server running at {mock.url}; holynb now uses it (%holy mock stop).")

    def _mock_stop(self, *, quiet: bool = False) -> None:
        mock, self._mock = self._mock, None
        if mock is None:
            if not quiet:
                self._print("The mock server is not running.")
            return
        try:
            mock.stop()
        finally:
            saved, self._mock_saved = self._mock_saved or {}, None
            _config.restore_defaults(saved)
            self._close_clients()
        if not quiet:
            self._print("Mock server stopped; holynb settings restored.")

    def _close_clients(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        if not clients:
            return

        async def close_all() -> None:
            await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)

        future = asyncio.run_coroutine_threadsafe(close_all(), _background_loop())
        try:
            future.result(timeout=_CLOSE_WAIT_S)
        except concurrent.futures.TimeoutError:
            future.cancel()

    def close(self) -> None:
        """Stop the mock (if started here) and close pooled connections."""
        self._mock_stop(quiet=True)
        self._close_clients()


def _pick(flag: float | None, trait: float | None) -> float | None:
    return flag if flag is not None else trait


def _short(text: str, limit: int = 100) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _scrub(text: str) -> str:
    """Mask the configured API key wherever it might appear."""
    try:
        key = _config.resolve_api_key()
    except ConfigError:
        return text
    return _config.scrub(text, key)


def _error_line(exc: BaseException, *, partial: bool = False) -> str:
    """One readable line for a failure, with what to do about it."""
    message = _scrub(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    hint = ""
    if isinstance(exc, AuthenticationError):
        hint = "set a valid key: %env HOLYSHEEP_API_KEY=sk-… (or try offline: %holy mock start)"
    elif isinstance(exc, RateLimitError):
        hint = "wait a little, or allow more retries with --retries N"
    elif isinstance(exc, APIStatusError):
        if exc.status_code == 404:
            hint = "check the model name: %holy models"
        elif exc.status_code >= 500:
            hint = "the server failed; run the cell again"
        else:
            hint = "check the options of this cell"
    elif isinstance(exc, StreamTimeout):
        flag = _TIMEOUT_FLAGS.get(exc.phase, "--timeout")
        hint = f"{exc.phase.replace('_', ' ')} timeout; raise it with {flag}"
    elif isinstance(exc, StreamInterrupted):
        hint = "the connection dropped; run the cell again"
    elif isinstance(exc, MalformedChunkError):
        hint = "the server sent an invalid chunk; %config HolyMagics.skip_malformed = True skips"
    elif not isinstance(exc, HolyError):
        message = f"{type(exc).__name__}: {message}"
    line = f"⚠ {message}"
    if hint and hint not in message:
        line += f" — {hint}"
    if partial:
        line += " · partial answer kept above"
    return line + " · details: %holy error"


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%%holy`` / ``%holy`` on ``ipython`` (``%load_ext holynb``)."""
    ipython.register_magics(HolyMagics(shell=ipython))


def unload_ipython_extension(ipython: Any) -> None:
    """Close what the magics opened (``%unload_ext holynb``)."""
    for configurable in list(ipython.configurables):
        if isinstance(configurable, HolyMagics):
            configurable.close()
            ipython.configurables.remove(configurable)
