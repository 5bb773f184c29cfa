"""``ChatPanel``: an ipywidgets chat panel that streams replies without blocking the kernel.

Each reply runs as an asyncio task on the kernel's own event loop (ipykernel runs one), so
other cells execute while tokens arrive and widget updates happen on the kernel thread.
Rendering follows the budget in DESIGN.md: one widget per finished Markdown block, sent once,
only the block in progress re-sent, at most ~20 updates per second, and a final render that
only completes the block in progress (see ``panel_live.py``).
"""

from __future__ import annotations

import asyncio
import html
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import ipywidgets as w
import traitlets as t

from holynb import _config, _mock
from holynb._errors import ConfigError
from holynb._pricing import DEFAULT_PRICES, price_table
from holynb._retry import RetryEvent
from holynb._stats import api_label, stats_line
from holynb.notebook.history import remembered
from holynb.notebook.messages import advice, what_happened
from holynb.notebook.panel_assets import PANEL_CSS, PANEL_JS
from holynb.notebook.panel_live import LiveReply, Message
from holynb.notebook.safe_markdown import code_blocks, code_span

__all__ = ["ChatPanel"]

COUNTDOWN_TICK_S = 0.1
STOP_MARKER = "⏹ stopped"
INTERRUPTED_MARKER = "⚠ interrupted"
# What the browser reports after "Code → cell" (see panel_assets.PANEL_JS), as status lines.
_INSERT_OUTCOMES = {
    "inserted": "Code inserted into a new cell below the panel.",
    "copied": (
        "Copied the code to the clipboard: this page has no holynb frontend extension to insert "
        "a cell (reinstall holynb and reload), or run panel.insert_code() in a cell."
    ),
    "failed": (
        "Could not insert or copy the code here; run panel.insert_code() in a cell instead."
    ),
    "none": "No code block in the assistant's replies yet.",
}


def _running_loop() -> asyncio.AbstractEventLoop:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(
            "ChatPanel streams on a running asyncio loop: use it in Jupyter (the kernel runs "
            "one) or from async code."
        ) from None


def _from_home(
    home: asyncio.AbstractEventLoop, method: Callable[..., Awaitable[str]], *args: Any
) -> Any:
    """Run ``method`` on the home loop; return an awaitable for the caller's loop."""

    async def call() -> str:
        return await method(*args)

    future = asyncio.run_coroutine_threadsafe(call(), home)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return future  # called from a plain thread: a concurrent.futures.Future
    return asyncio.wrap_future(future)


class ChatPanel(w.VBox):
    """A chat panel: live Markdown transcript, Send/Stop/Clear, model, API and transport
    pickers."""

    model = t.Unicode(help="Model used for the next reply (the dropdown).")
    api = t.Enum(
        _config.APIS,
        default_value="chat",
        help="The API of the next reply: chat (completions), responses (OpenAI Responses) or "
        "messages (Anthropic Messages, SSE only).",
    )
    transport = t.Enum(("sse", "ws"), default_value="sse", help="Stream over SSE or WebSocket.")
    system = t.Unicode("", help="System prompt sent before the conversation ('' for none).")
    temperature = t.Float(0.7, min=0.0, max=2.0, help="Sampling temperature of the next reply.")
    max_tokens = t.Int(0, min=0, help="Reply length limit in tokens (0: the server default).")
    streaming = t.Bool(False, read_only=True, help="True while a reply is streaming.")
    status = t.Unicode("", read_only=True, help="One-line state shown under the input.")
    show_reasoning = t.Bool(True, help="Show the model's thinking above each reply.")

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        model: str | None = None,
        transport: str | None = None,
        api: str | None = None,
        system: str = "",
        temperature: float = 0.7,
        max_tokens: int | None = None,
        mock: bool | dict[str, Any] = False,
        client_options: dict[str, Any] | None = None,
        prices: dict[str, Any] | None = None,
        show_reasoning: bool = True,
        verify: Any = True,
        **kwargs: Any,
    ) -> None:
        """Build the panel; ``mock=True`` (or a dict of mock options: ``tps``, ``ttft_ms``,
        ``speed``, ``fault`` ...) starts the bundled mock server. ``api`` is ``"chat"``,
        ``"responses"`` or ``"messages"`` (default: ``HOLYNB_API``, else chat); the picker
        changes it between replies. ``prices`` ($/MTok by model: a number or ``(input,
        output)``) are merged over the default price table. ``verify`` (True, False, a CA bundle
        path or an ``ssl.SSLContext``) is passed to the client."""
        api = _config.resolve_api(api)
        transport = _config.resolve_transport(transport)
        if api == "messages" and transport == "ws":
            raise ValueError(
                "The Anthropic Messages API has no WebSocket mode: use transport='sse' with "
                "api='messages'."
            )
        super().__init__(**kwargs)
        self._prices = dict(prices or {})
        price_table(self._prices)  # a bad price fails here, not under the first reply
        self._mock: Any = None
        mock_line = ""
        if mock:
            options = mock if isinstance(mock, dict) else {}
            self._mock = _mock.start_mock(**options)
            base_url, api_key = self._mock.url, _mock.mock_key()
            mock_line = _mock.describe(self._mock, **options)
        self._base_url = base_url
        self._api_key = api_key
        self._client_options = {"verify": verify, **(client_options or {})}
        self._client: Any = None
        self._task: asyncio.Task[str] | None = None
        self._countdown: asyncio.Task[None] | None = None
        # The loop replies run on: the one the panel is created on (the kernel's main loop).
        # Widget callbacks may arrive on another thread and loop (JupyterLab sends comm
        # messages to a kernel subshell), so they hop back here before touching anything.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested = False
        self._reply_started = False
        self._messages: list[Message] = []
        self._models_task: asyncio.Task[None] | None = None
        self._retry_action: Callable[[], object] | None = None

        model_name = _config.resolve_model(model)
        self._build(model_name)
        self.model = model_name
        self.api = api
        self.transport = transport
        self.system = system
        self.temperature = temperature
        self.max_tokens = max_tokens or 0
        self.show_reasoning = show_reasoning
        for name in ("model", "api", "transport", "system", "temperature", "max_tokens"):
            t.link((self, name), (self._controls[name], "value"))
        self._sync_transport_control()
        self._set_status(mock_line or "Ctrl+Enter or Shift+Enter sends · model output is sanitised")

        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            pass  # no loop yet: the first send() adopts the loop it runs on
        try:
            _config.resolve_api_key(api_key)
            _config.resolve_base_url(base_url)
        except ConfigError as err:
            self._show_error(err)
        else:
            if self._loop is not None:
                # Fill the model list without blocking construction (or the kernel).
                self._schedule_models()

    # ----------------------------------------------------------------------------- building
    def _build(self, model_name: str) -> None:
        model = w.Dropdown(
            options=sorted({*DEFAULT_PRICES, model_name}),
            description="Model",
            layout=w.Layout(width="260px"),
        )
        api = w.Dropdown(
            options=[
                ("Chat completions", "chat"),
                ("OpenAI Responses", "responses"),
                ("Anthropic Messages", "messages"),
            ],
            description="API",
            # Room for the longest label ("Anthropic Messages") beside the select's arrow.
            layout=w.Layout(width="260px"),
        )
        transport = w.ToggleButtons(
            options=[("SSE", "sse"), ("WebSocket", "ws")],
            style={"button_width": "110px"},
            tooltips=["Server-Sent Events", "WebSocket"],
        )
        temperature = w.FloatSlider(
            min=0.0, max=2.0, step=0.1, description="Temp", layout=w.Layout(width="230px")
        )
        max_tokens = w.BoundedIntText(
            min=0, max=1_000_000, description="Max tokens", layout=w.Layout(width="170px")
        )
        system = w.Textarea(
            placeholder="System prompt (optional)",
            rows=2,
            layout=w.Layout(width="auto"),
        )
        self._controls: dict[str, w.ValueWidget] = {
            "model": model,
            "api": api,
            "transport": transport,
            "temperature": temperature,
            "max_tokens": max_tokens,
            "system": system,
        }

        self._log = w.VBox()  # the messages
        self._log.add_class("holynb-log")
        # column-reverse keeps the view pinned to the newest text while it grows, without JS.
        self._scroll = w.Box(
            (self._log,),
            layout=w.Layout(
                flex_flow="column-reverse", overflow="auto", max_height="480px", min_height="60px"
            ),
        )
        self._scroll.add_class("holynb-scroll")

        # The text takes the room that is left and wraps; the buttons keep their full width.
        self._banner_text = w.HTML(layout=w.Layout(flex="1 1 auto", min_width="0"))
        self._retry_button = w.Button(
            description="Retry",
            icon="redo",
            button_style="warning",
            layout=w.Layout(width="auto", flex="0 0 auto"),
        )
        self._dismiss_button = w.Button(
            description="Dismiss",
            tooltip="Hide this message",
            layout=w.Layout(width="auto", flex="0 0 auto"),
        )
        self._banner = w.HBox(
            (self._banner_text, self._retry_button, self._dismiss_button),
            layout=w.Layout(display="none", align_items="center", width="100%"),
        )
        self._banner.add_class("holynb-banner")

        self._input = w.Textarea(
            placeholder="Ask something… (Ctrl+Enter to send)",
            rows=3,
            continuous_update=True,
            layout=w.Layout(width="auto"),
        )
        self._input.add_class("holynb-input")
        self._send_button = w.Button(description="Send", icon="paper-plane", button_style="primary")
        self._send_button.add_class("holynb-send")
        self._stop_button = w.Button(description="Stop", icon="stop", disabled=True)
        self._stop_button.add_class("holynb-stop")
        self._clear_button = w.Button(description="Clear", icon="trash")
        self._insert_button = w.Button(
            description="Code → cell",
            icon="code",
            tooltip="Put the last code block of the replies into a new cell below the panel",
        )
        self._insert_button.add_class("holynb-insert")
        # The browser does the insertion (panel_assets.PANEL_JS) and reports what happened here.
        self._insert_report = w.Text(continuous_update=True, layout=w.Layout(display="none"))
        self._insert_report.add_class("holynb-insert-report")
        self._insert_report.observe(self._guard(self._on_insert_report), "value")
        self._status = w.HTML()
        self._status.add_class("holynb-status")
        # Callback errors and the keyboard-shortcut script land here.
        self._out = w.Output()
        self._out.outputs = (
            {
                "output_type": "display_data",
                "data": {"application/javascript": PANEL_JS, "text/plain": ""},
                "metadata": {},
            },
        )

        self._send_button.on_click(self._guard(lambda _: self.send()))
        self._stop_button.on_click(self._guard(lambda _: self.stop()))
        self._clear_button.on_click(self._guard(lambda _: self.clear()))
        self._retry_button.on_click(self._guard(lambda _: self._on_retry_click()))
        self._dismiss_button.on_click(self._guard(lambda _: self._hide_banner()))

        self.add_class("holynb-panel")
        self.children = (
            w.HTML(PANEL_CSS),
            w.HBox(
                (model, api, transport, temperature, max_tokens), layout={"flex_flow": "row wrap"}
            ),
            system,
            self._scroll,
            self._banner,
            self._input,
            w.HBox((self._send_button, self._stop_button, self._clear_button, self._insert_button)),
            self._status,
            self._insert_report,
            self._out,
        )

    # -------------------------------------------------------------------------- public API
    @property
    def messages(self) -> list[dict[str, Any]]:
        """The conversation as ``{"role", "content"}`` dicts (the system prompt excluded);
        replies that called tools also have ``"tool_calls"`` (OpenAI form)."""
        messages: list[dict[str, Any]] = []
        for m in self._messages:
            entry: dict[str, Any] = {"role": m.role, "content": self._content(m)}
            calls = m.live.tool_calls if m.live is not None else m.tool_calls
            if calls:
                entry["tool_calls"] = calls
            messages.append(entry)
        return messages

    def send(self, text: str | None = None) -> asyncio.Future[str]:
        """Send ``text`` (default: the input box) and stream the reply; await it for the text."""
        if (home := self._away()) is not None:
            return _from_home(home, self.send, text)
        self._check_idle()
        from_input = text is None
        text = self._input.value if text is None else text
        if not isinstance(text, str) or not text.strip():
            raise ValueError("Nothing to send: type a message first.")
        loop = self._home()
        if from_input:
            self._input.value = ""
        self._append(Message("user", text))
        return self._start_reply(loop)

    def retry(self) -> asyncio.Future[str]:
        """Stream a fresh reply to the last user message, replacing a failed partial reply."""
        if (home := self._away()) is not None:
            return _from_home(home, self.retry)
        self._check_idle()
        loop = self._home()
        if self._messages and self._messages[-1].role == "assistant":
            if self._messages[-1].status == "done":
                raise RuntimeError("The last reply completed: there is nothing to retry.")
            self._remove(self._messages[-1])
        if not self._messages:
            raise RuntimeError("Nothing to retry: send a message first.")
        return self._start_reply(loop)

    def stop(self) -> None:
        """Stop the streaming reply; the partial reply stays in the transcript, marked."""
        if (home := self._away()) is not None:
            home.call_soon_threadsafe(self.stop)
            return
        task = self._task
        if task is not None and not task.done():
            self._stop_requested = True
            # A task cancelled before its first step would skip its own clean-up: an unstarted
            # reply sees the flag instead and ends at once as stopped.
            if self._reply_started:
                task.cancel()

    def clear(self) -> None:
        """Stop any reply and empty the transcript."""
        if (home := self._away()) is not None:
            home.call_soon_threadsafe(self.clear)
            return
        self.stop()
        for message in self._messages:
            message.close()
        self._messages.clear()
        self._log.children = ()
        self._hide_banner()

    def export(self, format: str = "markdown", path: str | Path | None = None) -> str:
        """Return the conversation as ``"markdown"`` or ``"json"``; also write it to ``path``."""
        if format == "markdown":
            text = self._export_markdown()
        elif format == "json":
            text = self._export_json()
        else:
            raise ValueError(f"Unknown export format {format!r}: use 'markdown' or 'json'.")
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def last_code(self) -> str | None:
        """The last code block of the assistant's replies, or None if there is none."""
        for message in reversed(self._messages):
            if message.role == "assistant":
                blocks = code_blocks(self._content(message))
                if blocks:
                    return blocks[-1].body.rstrip("\n")
        return None

    def insert_code(self) -> str:
        """Put the last code block into a new cell below the running one (call from a cell)."""
        code = self.last_code()
        if code is None:
            raise LookupError("No code block in the assistant's replies yet.")
        from IPython import get_ipython

        shell = get_ipython()
        if shell is None:
            raise RuntimeError("insert_code() needs IPython: run it in a notebook cell.")
        shell.set_next_input(code, replace=False)
        return code

    async def refresh_models(self) -> list[str]:
        """Fill the model dropdown from the server's ``/models`` list and return it."""
        models = sorted(await self._get_client().models(api=self.api))
        dropdown = self._controls["model"]
        current = self.model
        dropdown.options = models if current in models else [*models, current]
        dropdown.value = current
        return models

    async def aclose(self) -> None:
        """Stop streaming, wait for the reply task, close the client, then the widgets."""
        self.stop()
        for task in (self._task, self._models_task):
            if task is not None and not task.done():
                await asyncio.wait([task])
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
        self.close()

    def close(self) -> None:
        """Stop streaming, close the client and the mock (if started), then the widgets."""
        if "_messages" not in self.__dict__:
            super().close()  # the constructor refused its arguments: nothing else was made
            return
        self.stop()
        if self._models_task is not None:
            self._models_task.cancel()
        client, self._client = self._client, None
        if client is not None:
            try:
                asyncio.get_running_loop().create_task(client.aclose())
            except RuntimeError:
                pass  # no loop left to close it on; its sockets close with the process
        if self._mock is not None:
            self._mock.stop()
            self._mock = None
        for message in self._messages:
            message.close()
        # A reply task still unwinding then sees its message gone and opens no new widgets.
        self._messages.clear()
        for child in self._all_children():
            child.close()
        super().close()

    # ----------------------------------------------------------------------------- streaming
    def _start_reply(self, loop: asyncio.AbstractEventLoop) -> asyncio.Task[str]:
        self._hide_banner()
        history = self._history()
        message = Message("assistant", "", model=self.model)
        message.status = "streaming"
        message.set_footer("streaming…")
        message.live = live = LiveReply(message.body, loop)
        self._append(message)
        where = "" if self.api == "chat" else f" ({api_label(self.api)})"
        self._set_status(f"Streaming from {self.model}{where} over {self.transport.upper()}…")
        self._stop_requested = self._reply_started = False
        self.set_trait("streaming", True)
        self._task = loop.create_task(self._reply(message, live, history))
        return self._task

    async def _reply(
        self, message: Message, live: LiveReply, history: list[dict[str, Any]]
    ) -> str:
        self._reply_started = True
        stream: Any = None
        try:
            if self._stop_requested:
                raise asyncio.CancelledError  # stopped before it began
            params: dict[str, Any] = {"temperature": self.temperature}
            if self.max_tokens:
                params["max_tokens"] = self.max_tokens
            async with self._get_client().stream(
                history, model=self.model, api=self.api, transport=self.transport, **params
            ) as stream:
                async for event in stream.events():
                    if self._countdown is not None:
                        self._end_countdown(hide=True)  # retried successfully
                    if event.type == "content":
                        live.feed(event.text)
                    elif event.type == "reasoning":
                        live.add_reasoning(event.text, shown=self.show_reasoning)
                    elif event.type == "tool_call":
                        live.tool_call(event.index, event.id, event.name, event.arguments)
            message.status = "done"
            message.reply = stream.message
            line = stats_line(
                stream.stats,
                model=stream.model,
                transport=stream.transport,
                api=stream.api,
                prices=self._prices,
            )
            message.set_footer(line)
            self._set_status("Ready")
        except asyncio.CancelledError:
            message.status = "stopped"
            message.set_footer(self._partial_line(STOP_MARKER, stream))
            self._set_status("Stopped")
            if not self._stop_requested:
                raise
        except Exception as err:  # noqa: BLE001 — every failure must reach the banner
            partial = getattr(err, "partial_text", "") or live.text
            if partial and not live.text:
                live.feed(partial)
            message.status = "interrupted"
            message.set_footer(self._partial_line(INTERRUPTED_MARKER, stream))
            self._show_error(err, retry=self.retry)
            self._set_status("Failed — see the banner above")
        finally:
            # A retry countdown still shown (stopped mid-wait, or an empty reply) goes away;
            # after a failure the error banner has replaced it and stays.
            self._end_countdown(hide=message.status != "interrupted")
            message.content = live.text
            message.reasoning = live.reasoning
            message.tool_calls = live.tool_calls
            message.live = None
            received = message.content or message.reasoning or message.tool_calls
            if message not in self._messages:
                live.discard()  # cleared while streaming: its widgets are gone
            elif message.status == "interrupted" and not received:
                live.discard()
                self._remove(message)  # nothing arrived: the banner says why
            else:
                live.finish()
            self.set_trait("streaming", False)
        return message.content

    def _get_client(self) -> Any:
        if self._client is None:
            from holynb._client import AsyncClient

            self._client = AsyncClient(
                base_url=self._base_url,
                api_key=self._api_key,
                on_retry=self._on_retry,
                **self._client_options,
            )
        return self._client

    def _history(self) -> list[dict[str, Any]]:
        history: list[dict[str, Any]] = (
            [{"role": "system", "content": self.system}] if self.system.strip() else []
        )
        for m in self._messages:
            if m.role != "assistant":
                history.append({"role": m.role, "content": self._content(m)})
            elif m.reply is not None:
                # A completed reply goes back as its API needs it (thinking blocks, reasoning
                # items), without its tool calls (see notebook/history.py).
                turn = remembered(m.reply)
                if turn is not None:
                    history.append(turn)
            elif self._content(m):
                # A stopped or failed reply: its partial text. One stopped before its first
                # token has nothing to send back.
                history.append({"role": "assistant", "content": self._content(m)})
        return history

    async def _refresh_models_quietly(self) -> None:
        try:
            await self.refresh_models()
        except Exception as err:  # noqa: BLE001 — shown in the banner, not lost
            self._show_error(err, retry=self._schedule_models)

    def _schedule_models(self) -> asyncio.Task[None]:
        self._hide_banner()
        self._models_task = self._home().create_task(self._refresh_models_quietly())
        return self._models_task

    @t.observe("streaming")
    def _on_streaming(self, change: dict[str, Any]) -> None:
        streaming = change["new"]
        self._send_button.disabled = streaming
        self._stop_button.disabled = not streaming
        self._controls["model"].disabled = streaming
        self._controls["api"].disabled = streaming
        self._sync_transport_control()

    @t.validate("transport")
    def _check_transport(self, proposal: dict[str, Any]) -> str:
        if proposal["value"] == "ws" and self.api == "messages":
            raise t.TraitError(
                "The Anthropic Messages API has no WebSocket mode: the panel streams it over SSE."
            )
        return proposal["value"]

    @t.observe("api")
    def _on_api(self, change: dict[str, Any]) -> None:
        if change["new"] == "messages" and self.transport == "ws":
            self.transport = "sse"
            self._set_status("Anthropic Messages streams over SSE (the API has no WebSocket mode)")
        self._sync_transport_control()
        if change["old"] != change["new"] and self._loop is not None:
            # Each API lists its models with its own auth (Anthropic's listing has its shape).
            # The picker's change may arrive on another thread (a kernel subshell).
            if (home := self._away()) is not None:
                home.call_soon_threadsafe(self._schedule_models)
            else:
                self._schedule_models()

    def _sync_transport_control(self) -> None:
        """The transport picker: off while streaming, and for the API without WebSocket."""
        control = self._controls["transport"]
        control.disabled = self.streaming or self.api == "messages"

    # ------------------------------------------------------------------- retries and banner
    def _on_retry(self, event: RetryEvent) -> None:
        self._end_countdown(hide=False)
        self._countdown = asyncio.get_running_loop().create_task(self._count_down(event))

    async def _count_down(self, event: RetryEvent) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + event.delay_s
        while True:
            left = max(0.0, deadline - loop.time())
            self._show_banner(
                f"⏳ {event.reason} — retrying in {left:.1f} s "
                f"({event.attempt}/{event.max_retries})",
                retrying=True,
            )
            if left <= 0:
                return
            await asyncio.sleep(min(COUNTDOWN_TICK_S, left))

    def _end_countdown(self, *, hide: bool) -> None:
        countdown, self._countdown = self._countdown, None
        if countdown is not None:
            countdown.cancel()
            if hide:
                self._hide_banner()

    def _show_error(self, err: BaseException, *, retry: Callable[[], object] | None = None) -> None:
        tip = advice(err, "panel", api=self.api)
        if retry is None and tip.endswith("press Retry"):
            tip = tip.removesuffix("press Retry") + "try again"  # no Retry offered here
        self._show_banner(f"{what_happened(err)} — {tip}", retrying=False, retry=retry)

    def _show_banner(
        self, text: str, *, retrying: bool, retry: Callable[[], object] | None = None
    ) -> None:
        try:
            key: str | None = _config.resolve_api_key(self._api_key)
        except ConfigError:
            key = None
        text = _config.scrub(text, key)  # in case a server echoes the key back
        self._banner_text.value = html.escape(text)
        if retrying:
            self._banner.add_class("holynb-retrying")
        else:
            self._banner.remove_class("holynb-retrying")
        self._retry_action = retry
        self._retry_button.layout.display = None if retry is not None else "none"
        self._banner.layout.display = "flex"

    def _hide_banner(self) -> None:
        self._banner.layout.display = "none"
        self._banner_text.value = ""
        self._retry_action = None

    def _on_retry_click(self) -> None:
        if self._retry_action is None:
            raise RuntimeError("Nothing to retry.")
        self._retry_action()

    @property
    def banner(self) -> str:
        """The text of the error/retry banner ('' when hidden)."""
        shown = self._banner.layout.display != "none"
        return html.unescape(self._banner_text.value) if shown else ""

    # ----------------------------------------------------------------------------- helpers
    def _guard(self, action: Callable[[Any], Any]) -> Callable[[Any], None]:
        """Wrap a button callback so that its errors show in the banner instead of vanishing."""

        def guarded(arg: Any) -> None:
            try:
                action(arg)
            except Exception as err:  # noqa: BLE001
                self._show_error(err)

        def run(arg: Any) -> None:
            if (home := self._away()) is not None:
                home.call_soon_threadsafe(guarded, arg)
            else:
                guarded(arg)

        return run

    def _home(self) -> asyncio.AbstractEventLoop:
        if self._loop is None or self._loop.is_closed():
            self._loop = _running_loop()
        return self._loop

    def _away(self) -> asyncio.AbstractEventLoop | None:
        """The home loop when called from another thread (e.g. a kernel subshell), else None."""
        loop = self._loop
        if loop is None or loop.is_closed() or not loop.is_running():
            return None
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        return None if here is loop else loop

    def _check_idle(self) -> None:
        if self._task is not None and not self._task.done():
            raise RuntimeError("A reply is still streaming: press Stop (or call .stop()) first.")

    def _on_insert_report(self, change: dict[str, Any]) -> None:
        """The browser's account of a "Code → cell" click (``outcome#nonce``) as the status."""
        outcome = change["new"].partition("#")[0]
        if outcome:
            self._set_status(_INSERT_OUTCOMES.get(outcome, _INSERT_OUTCOMES["failed"]))

    def _append(self, message: Message) -> None:
        self._messages.append(message)
        self._log.children = (*self._log.children, message.box)

    def _remove(self, message: Message) -> None:
        self._messages.remove(message)
        self._log.children = tuple(c for c in self._log.children if c is not message.box)
        message.close()

    def _content(self, message: Message) -> str:
        return message.live.text if message.live is not None else message.content

    def _set_status(self, text: str) -> None:
        self.set_trait("status", text)
        self._status.value = html.escape(text)

    def _partial_line(self, marker: str, stream: Any) -> str:
        tokens = stream.stats.tokens if stream is not None else 0
        return f"{marker} · {tokens} tokens received" if tokens else marker

    def _all_children(self) -> list[w.Widget]:
        found: list[w.Widget] = []
        todo: list[w.Widget] = list(self.children)
        while todo:
            widget = todo.pop()
            found.append(widget)
            todo.extend(getattr(widget, "children", ()))
        return found

    def _export_markdown(self) -> str:
        lines = []
        if self.system.strip():
            lines += ["## System", "", self.system.strip(), ""]
        for m in self._messages:
            title = "You" if m.role == "user" else f"Assistant ({m.model})"
            lines += [f"## {title}", ""]
            if m.reasoning:
                lines += ["<details><summary>Thinking</summary>", "", m.reasoning.strip(), "",
                          "</details>", ""]
            lines += [self._content(m).rstrip(), ""]
            for call in m.tool_calls:
                function = call["function"]
                name, args = code_span(function["name"]), code_span(function["arguments"])
                lines += [f"🔧 Tool call {name}: {args}", ""]
            if m.status == "stopped":
                lines += [f"*{STOP_MARKER}*", ""]
            elif m.status == "interrupted":
                lines += [f"*{INTERRUPTED_MARKER}*", ""]
            if m.role == "assistant" and m.footer_text and m.status == "done":
                lines += [f"<sub>{html.escape(m.footer_text)}</sub>", ""]
        return "\n".join(lines)

    def _export_json(self) -> str:
        system = [{"role": "system", "content": self.system}] if self.system.strip() else []
        messages = system + [m for m in self.messages if m["content"] or m.get("tool_calls")]
        return json.dumps(
            {"model": self.model, "messages": messages}, ensure_ascii=False, indent=2
        )
