"""``%%holy`` / ``%holy``: stream chat answers into notebook cells (``%load_ext holynb``).

The kernel's event loop is already running, so requests run on holynb's private loop thread
(``holynb._bridge``, as ``%%script`` does) while the cell's thread renders: it waits on a queue
of stream events with a timeout set by the rendering budget, so the last text is never held
back and Kernel → Interrupt (KeyboardInterrupt in this thread) stops the stream at once.
See docs/magic.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import queue
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from traitlets import Bool, Dict, Enum, Float, Int, Unicode, Union, validate
from traitlets.config import Configurable

from holynb import _config
from holynb._bridge import CLOSE_WAIT_S, Runner
from holynb._client import AsyncClient, CompletionResult
from holynb._errors import ConfigError
from holynb._events import ContentDelta, ReasoningDelta, StreamEvent, ToolCallDelta
from holynb._pricing import Price
from holynb._stats import StreamStats, reply_cost
from holynb.notebook.commands import SUBCOMMANDS, Subcommands
from holynb.notebook.history import remembered
from holynb.notebook.live_markdown import Budget
from holynb.notebook.magic_args import Request, holy_arguments, parse_line, resolve, split_options
from holynb.notebook.messages import error_line, scrub
from holynb.notebook.output import (
    FORMATS,
    Output,
    Reply,
    RichOutput,
    TextOutput,
    final_bundle,
    show_event,
)

__all__ = ["HolyInterrupt", "HolyMagics", "load_ipython_extension", "unload_ipython_extension"]

# Upper bound on one wait for the next event, so the cell thread stays responsive.
_MAX_WAIT_S = 0.25
# The folder that holds the holynb package: stripped from the file names of %holy error.
_INSTALL_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")) + os.sep
INTERRUPTED_LINE = "⏹ interrupted — partial answer kept above"


class HolyInterrupt(KeyboardInterrupt):
    """Kernel → Interrupt stopped a stream.

    Raised so that "Run All" stops at this cell, like any interrupt. It is the one place that
    says so: its traceback is the single line ``⏹ interrupted — partial answer kept above ·
    <stats>`` (the cell shows no status line of its own).
    """

    def _render_traceback_(self) -> list[str]:
        return [str(self)]


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
    transport: str | None = None
    api: str = "chat"


@dataclass(slots=True)
class _Collected:
    """What one run received: answer text, reasoning, the final figures, the failure."""

    parts: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None

    @property
    def text(self) -> str:
        return "".join(self.parts)


@magics_class
class HolyMagics(Subcommands, Magics, Configurable):
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
    api = Enum(
        list(_config.APIS),
        None,
        allow_none=True,
        help="chat (chat completions), responses (OpenAI Responses) or messages (Anthropic "
        "Messages); None: configure() > HOLYNB_API > chat.",
    ).tag(config=True)
    system = Unicode("", help="System prompt for every request ('' for none).").tag(config=True)
    temperature = Float(None, allow_none=True, help="Sampling temperature.").tag(config=True)
    max_tokens = Int(None, allow_none=True, help="Maximum tokens in a reply.").tag(config=True)
    format = Enum(list(FORMATS), "markdown", help="Output format.").tag(config=True)
    show_stats = Bool(True, help="Show the stats line under each answer.").tag(config=True)
    show_reasoning = Bool(True, help="Show the model's thinking above the answer.").tag(
        config=True
    )
    stream = Bool(True, help="Stream the answer (False: one request, one render).").tag(config=True)
    chat = Unicode(None, allow_none=True, help="Conversation every cell continues.").tag(
        config=True
    )
    prices = Dict(
        help="US$ per million tokens by model, merged over the defaults: a number (every "
        "token) or (input, output)."
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
    verify = Union(
        [Bool(), Unicode()],
        default_value=True,
        help="TLS: True (system CAs), False (no check) or the path of a CA bundle.",
    ).tag(config=True)
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
        self.chats: dict[str, list[dict[str, Any]]] = {}
        self.turns: list[Turn] = []
        self.last_error: BaseException | None = None
        self._last_error_text = ""
        self._clients: dict[tuple[Any, ...], AsyncClient] = {}
        self._mock: Any = None
        self._mock_saved: dict[str, str] | None = None

    @validate("prices")
    def _check_prices(self, proposal: dict[str, Any]) -> dict[str, Any]:
        for value in proposal["value"].values():
            Price.of(value)  # a bad price fails at %config time, not under the first answer
        return proposal["value"]

    # -- the magic -------------------------------------------------------------------------

    @holy_arguments
    @line_cell_magic
    @no_var_expand  # IPython would evaluate {x + 1} in the line; holynb interpolates itself
    def holy(self, line: str, cell: str | None = None) -> None:
        """Ask a chat model: ``%%holy [options]`` with the prompt as the cell, or ``%holy prompt``.

        Subcommands (line magic): ``models``, ``config``, ``history [clear [NAME]]``, ``stats``,
        ``error``, ``mock start|stop|status``.
        """
        parser = self.holy.parser  # type: ignore[attr-defined]
        if cell is None:
            word, _, rest = line.strip().partition(" ")
            if word in SUBCOMMANDS:
                self.run_subcommand(word, rest)
                return
            tokens, prompt = split_options(parser, line)
            self._ask(parser.parse_args(tokens), prompt)
        else:
            self._ask(parse_line(parser, line), cell)

    def _ask(self, args: argparse.Namespace, prompt: str) -> None:
        """Resolve the request, stream it into the cell and record the outcome."""
        try:
            request = resolve(self, args, prompt, self.chats)
            client = self._client(request.client_key)
        except ConfigError as exc:
            self._remember_error(exc)
            self._output(args.format or self.format).finish("", None, error_line(exc, "magic"))
            return
        output = self._output(request.fmt)
        outcome, got = self._run(client, request, output)
        text = got.text
        stats: StreamStats = got.info.get("stats") or StreamStats()
        model = got.info.get("model") or request.model
        transport = got.info.get("transport")
        turn = Turn(
            request.chat,
            model,
            request.prompt,
            text,
            outcome,
            stats,
            transport=transport,
            api=request.api,
        )
        turn.cost = reply_cost(stats, model, self.prices)
        self.turns.append(turn)
        reply = Reply(
            text, tool_calls=got.info.get("tool_calls"), reasoning="".join(got.reasoning)
        )
        bundle = None
        problem = None
        if outcome == "ok":
            bundle, value, problem = final_bundle(request.fmt, text)
            self._record_chat(request, got.info.get("message"))
            if request.out:
                self.shell.user_ns[request.out] = _with_parts(value, reply)
            if request.fmt == "code" and text.strip():
                self.shell.set_next_input(value, replace=False)
        elif request.out and (text or reply.tool_calls):
            self.shell.user_ns[request.out] = reply  # partial text is still worth keeping
        if outcome == "interrupted":
            line = None  # HolyInterrupt, raised below, says it
        elif got.error is not None:
            self._remember_error(got.error)
            line = error_line(got.error, "magic", partial=bool(text.strip()), api=request.api)
        else:
            line = self._stats_line(turn) if request.show_stats else None
            if problem:
                line = f"⚠ {problem}" + (f" · {line}" if line else "")
        output.finish(text, bundle, line)
        if outcome == "interrupted":
            stats = " · " + self._stats_line(turn) if request.show_stats else ""
            raise HolyInterrupt(INTERRUPTED_LINE + stats)

    def _output(self, fmt: str) -> Output:
        mode = self.display_mode
        if mode == "auto":
            mode = "rich" if getattr(self.shell, "kernel", None) is not None else "text"
        if mode == "text":
            return TextOutput(sys.stdout)
        return RichOutput(self.shell, fmt=fmt, budget=Budget(self.max_updates_per_s))

    def _client(self, key: tuple[Any, ...]) -> AsyncClient:
        client = self._clients.get(key)
        if client is None:
            base_url, api_key, connect_timeout, skip_malformed, verify = key
            client = AsyncClient(
                base_url=base_url,
                api_key=api_key,
                connect_timeout=connect_timeout,
                skip_malformed=skip_malformed,
                verify=verify,
            )
            self._clients[key] = client
        return client

    def _client_for(self, rest: str) -> tuple[AsyncClient, str]:
        """The client and API a cell with flags ``rest`` would use (for ``%holy models``)."""
        args = parse_line(self.holy.parser, rest)  # type: ignore[attr-defined]
        request = resolve(self, args, "models", {})
        return self._client(request.client_key), request.api

    def _record_chat(self, request: Request, message: dict[str, Any] | None) -> None:
        """Remember the turn: the prompt, and the reply as its API needs it back."""
        if request.chat is None:
            return
        history = self.chats.setdefault(request.chat, [])
        history.append({"role": "user", "content": request.prompt})
        turn = remembered(message) if message is not None else None
        if turn is not None:
            history.append(turn)

    # -- streaming ---------------------------------------------------------------------------

    def _run(self, client: AsyncClient, request: Request, output: Output) -> tuple[str, _Collected]:
        """Stream the request into ``output``; return (outcome, what was received)."""
        events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        got = _Collected()

        def on_event(item: tuple[str, Any]) -> None:
            kind, value = item
            if kind == "event":
                if value.type == "content":
                    got.parts.append(value.text)
                elif value.type == "reasoning":
                    got.reasoning.append(value.text)
                    if not request.show_reasoning:
                        return
                show_event(output, value)
            elif kind == "retry":
                output.status(scrub(f"⟳ {value}"))
            elif kind == "info":
                got.info = value
            elif kind == "error":
                got.error = value

        def on_idle() -> float:
            output.poll()
            due = output.due_in()
            return _MAX_WAIT_S if due is None else min(due, _MAX_WAIT_S)

        try:
            Runner().run(
                self._pump(client, request, events),
                events=events,
                on_event=on_event,
                on_idle=on_idle,
            )
        except KeyboardInterrupt:
            return "interrupted", got
        outcome = "ok" if got.error is None else type(got.error).__name__
        return outcome, got

    async def _pump(
        self,
        client: AsyncClient,
        request: Request,
        events: queue.SimpleQueue[tuple[str, Any]],
    ) -> None:
        """On the loop thread: run the request and queue events, retries and the outcome."""
        call = dict(request.call, on_retry=lambda ev: events.put(("retry", ev)))
        stream = None
        try:
            if request.stream:
                stream = client.stream(request.messages, **call)
                async with stream:
                    async for event in stream.events():
                        events.put(("event", event))
                events.put(("info", _stream_info(stream)))
            else:
                for name in ("first_token_timeout", "idle_timeout", "transport"):
                    call.pop(name, None)
                reply = await client.complete(request.messages, **call)
                for event in _reply_events(reply):
                    events.put(("event", event))
                info = {
                    "stats": reply.stats,
                    "model": reply.model,
                    "tool_calls": reply.tool_calls,
                    "message": reply.message,
                }
                events.put(("info", info))
        except asyncio.CancelledError:
            if stream is not None:
                events.put(("info", _stream_info(stream)))
            raise
        except Exception as exc:  # every failure is shown in the cell, as one line
            if stream is not None:
                events.put(("info", _stream_info(stream)))
            events.put(("error", exc))

    # -- lines -------------------------------------------------------------------------------

    def _remember_error(self, exc: BaseException) -> None:
        self.last_error = exc
        details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        # holynb's frames as holynb/... (where it is installed is not part of the error).
        details = details.replace(f'File "{_INSTALL_ROOT}', 'File "')
        self._last_error_text = scrub(details)

    def _close_clients(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        if not clients:
            return

        async def close_all() -> None:
            await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)

        Runner().wait(close_all(), timeout=CLOSE_WAIT_S)

    def close(self) -> None:
        """Stop the mock (if started here) and close pooled connections."""
        self._mock_stop(quiet=True)
        self._close_clients()


def _stream_info(stream: Any) -> dict[str, Any]:
    return {
        "stats": stream.stats,
        "model": stream.model,
        "transport": stream.transport,
        "tool_calls": stream.tool_calls,
        "message": stream.message,
    }


def _reply_events(reply: CompletionResult) -> list[StreamEvent]:
    """A non-streamed reply as the events a stream of it would have given."""
    events: list[StreamEvent] = []
    if reply.reasoning:
        events.append(ReasoningDelta(reply.reasoning))
    if reply.text:
        events.append(ContentDelta(reply.text))
    for index, call in enumerate(reply.tool_calls):
        function = call.get("function") or {}
        name, args = function.get("name"), function.get("arguments") or ""
        events.append(ToolCallDelta(index=index, id=call.get("id"), name=name, arguments=args))
    return events


def _with_parts(value: Any, reply: Reply) -> Any:
    """The ``-o`` value: text formats keep the reply's tool calls and reasoning on the str."""
    if isinstance(value, str):
        return Reply(value, tool_calls=reply.tool_calls, reasoning=reply.reasoning)
    return value


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%%holy`` / ``%holy`` on ``ipython`` (``%load_ext holynb``)."""
    ipython.register_magics(HolyMagics(shell=ipython))


def unload_ipython_extension(ipython: Any) -> None:
    """Close what the magics opened (``%unload_ext holynb``)."""
    for configurable in list(ipython.configurables):
        if isinstance(configurable, HolyMagics):
            configurable.close()
            ipython.configurables.remove(configurable)
