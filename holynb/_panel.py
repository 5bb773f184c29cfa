"""``ChatPanel``: an ipywidgets chat panel that streams replies without blocking the kernel.

Each reply runs as an asyncio task on the kernel's own event loop (ipykernel runs one), so
other cells execute while tokens arrive and widget updates happen on the kernel thread.
Rendering follows the budget in DESIGN.md: one widget per message, finished Markdown blocks
sent once, only the block in progress re-sent, at most ~20 updates per second, and one final
complete render per reply.
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

from holynb import _config
from holynb._errors import (
    APIStatusError,
    AuthenticationError,
    ConfigError,
    MalformedChunkError,
    RateLimitError,
    StreamInterrupted,
    StreamTimeout,
)
from holynb._panel_assets import PANEL_CSS, PANEL_JS
from holynb._panel_render import code_blocks, render_markdown
from holynb._pricing import DEFAULT_PRICES, cost_usd
from holynb._render import Budget, MarkdownBlocks
from holynb._retry import RetryEvent

__all__ = ["ChatPanel"]

UPDATE_INTERVAL_S = 0.05  # at most ~20 transcript updates per second per reply
COUNTDOWN_TICK_S = 0.1
STOP_MARKER = "⏹ stopped"
INTERRUPTED_MARKER = "⚠ interrupted"


class _LiveBody:
    """The body of the reply being streamed: finished blocks sent once, the tail re-rendered."""

    def __init__(self, box: w.Box, loop: asyncio.AbstractEventLoop) -> None:
        self._box = box
        self._loop = loop
        self._markdown = MarkdownBlocks()
        self._finished: list[str] = []  # finished blocks not yet sent
        self._tail = w.HTML()
        self._blocks: list[w.HTML] = []
        self._budget = Budget(1 / UPDATE_INTERVAL_S, clock=loop.time)
        self._timer: asyncio.TimerHandle | None = None
        box.children = (self._tail,)

    @property
    def text(self) -> str:
        """Everything received so far."""
        return self._markdown.text

    def feed(self, delta: str) -> None:
        """Take a delta; render now if the last update is old enough, else schedule one."""
        self._finished += self._markdown.feed(delta)
        self._markdown.trim(self._markdown.boundary)  # finished text is kept in _finished
        wait = self._budget.due_in()
        if wait == 0:
            self.flush()
        elif self._timer is None:
            # Tokens that arrive in a burst and then pause must still show within the interval.
            self._timer = self._loop.call_later(wait, self.flush)

    def flush(self) -> None:
        """Send newly finished blocks once and re-render the block in progress."""
        self._cancel_timer()
        self._budget.take()
        # A half-written code fence is shown closed, so it renders as code while it streams.
        tail = render_markdown(self._markdown.pending + self._markdown.closing_fence())
        if self._finished:
            # The tail widget freezes in place as the finished blocks, then a new tail follows.
            # In this order the browser never shows a finished block twice (once frozen, once
            # still in the old tail) between the two widget messages.
            frozen = self._tail
            frozen.value = render_markdown("".join(self._finished))
            self._finished.clear()
            self._blocks.append(frozen)
            self._tail = w.HTML(tail)
            self._box.children = (*self._blocks, self._tail)
        elif tail != self._tail.value:
            self._tail.value = tail

    def finish(self) -> None:
        """Replace the live blocks by one complete render of the whole reply."""
        old = [*self._blocks, self._tail]
        self._box.children = (w.HTML(render_markdown(self.text)),)
        self.discard(old)

    def discard(self, widgets: list[w.HTML] | None = None) -> None:
        """Stop rendering and close the live widgets (all of them by default)."""
        self._cancel_timer()
        for widget in [*self._blocks, self._tail] if widgets is None else widgets:
            widget.close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _Message:
    """One transcript entry: its role, text, status and the widgets showing it."""

    def __init__(self, role: str, content: str, *, model: str = "") -> None:
        self.role = role
        self.content = content
        self.model = model
        self.status = "done"  # done | streaming | stopped | interrupted
        self.footer_text = ""
        self.live: _LiveBody | None = None  # set while the reply streams
        who = "You" if role == "user" else f"Assistant · {html.escape(model)}"
        self.header = w.HTML(f'<span class="holynb-role">{who}</span>')
        self.body = w.VBox()
        self.footer = w.HTML()
        self.box = w.VBox((self.header, self.body, self.footer))
        self.box.add_class("holynb-msg")
        self.box.add_class(f"holynb-{role}")
        if content:
            self.body.children = (w.HTML(render_markdown(content)),)

    def set_footer(self, text: str) -> None:
        self.footer_text = text
        self.footer.value = f'<span class="holynb-footer">{html.escape(text)}</span>'

    def close(self) -> None:
        for child in self.body.children:
            child.close()
        for widget in (self.header, self.body, self.footer, self.box):
            widget.close()


def _describe(err: BaseException) -> str:
    """One line telling the user what went wrong and what to do."""
    if isinstance(err, ConfigError):
        return f"{err} In a notebook you can also use ChatPanel(mock=True)."
    if isinstance(err, AuthenticationError):
        return (
            f"The API key was refused ({err.status_code}): {err} "
            "Check HOLYSHEEP_API_KEY or pass api_key=..."
        )
    if isinstance(err, RateLimitError):
        hint = f" The server asks to wait {err.retry_after:g} s." if err.retry_after else ""
        return f"Rate limited (429) and out of retries: {err}{hint} Press Retry to try again."
    if isinstance(err, StreamTimeout):
        return f"Timed out ({err.phase}): {err} The partial reply, if any, is kept."
    if isinstance(err, StreamInterrupted):
        return f"Connection lost mid-reply: {err} The partial reply is kept."
    if isinstance(err, MalformedChunkError):
        return f"The server sent a malformed chunk: {err}"
    if isinstance(err, APIStatusError):
        return f"Server error {err.status_code}: {err}"
    return f"{type(err).__name__}: {err}"


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
    """A chat panel: live Markdown transcript, Send/Stop/Clear, model and transport pickers."""

    model = t.Unicode(help="Model used for the next reply (the dropdown).")
    transport = t.Enum(("sse", "ws"), default_value="sse", help="Stream over SSE or WebSocket.")
    system = t.Unicode("", help="System prompt sent before the conversation ('' for none).")
    temperature = t.Float(0.7, min=0.0, max=2.0, help="Sampling temperature of the next reply.")
    max_tokens = t.Int(0, min=0, help="Reply length limit in tokens (0: the server default).")
    streaming = t.Bool(False, read_only=True, help="True while a reply is streaming.")
    status = t.Unicode("", read_only=True, help="One-line state shown under the input.")

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        model: str | None = None,
        transport: str | None = None,
        system: str = "",
        temperature: float = 0.7,
        max_tokens: int | None = None,
        mock: bool | dict[str, Any] = False,
        client_options: dict[str, Any] | None = None,
        prices: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        """Build the panel; ``mock=True`` (or a dict of MockServer options) starts the mock."""
        super().__init__(**kwargs)
        self._mock: Any = None
        if mock:
            from mockserver import MOCK_KEY, MockServer

            self._mock = MockServer(**(mock if isinstance(mock, dict) else {}))
            self._mock.start()
            base_url, api_key = self._mock.url, MOCK_KEY
        self._base_url = base_url
        self._api_key = api_key
        self._client_options = dict(client_options or {})
        self._prices = prices
        self._client: Any = None
        self._task: asyncio.Task[str] | None = None
        self._countdown: asyncio.Task[None] | None = None
        # The loop replies run on: the one the panel is created on (the kernel's main loop).
        # Widget callbacks may arrive on another thread and loop (JupyterLab sends comm
        # messages to a kernel subshell), so they hop back here before touching anything.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested = False
        self._reply_started = False
        self._messages: list[_Message] = []
        self._models_task: asyncio.Task[None] | None = None
        self._retry_action: Callable[[], object] | None = None

        model_name = _config.resolve_model(model)
        self._build(model_name)
        self.model = model_name
        self.transport = _config.resolve_transport(transport)
        self.system = system
        self.temperature = temperature
        self.max_tokens = max_tokens or 0
        for name in ("model", "transport", "system", "temperature", "max_tokens"):
            t.link((self, name), (self._controls[name], "value"))
        self._set_status("Ctrl+Enter or Shift+Enter sends · model output is sanitised")

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
            layout=w.Layout(width="100%"),
        )
        self._controls: dict[str, w.ValueWidget] = {
            "model": model,
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

        self._banner_text = w.HTML()
        self._retry_button = w.Button(
            description="Retry", icon="redo", button_style="warning", layout={"width": "auto"}
        )
        self._dismiss_button = w.Button(icon="times", tooltip="Dismiss", layout={"width": "36px"})
        self._banner = w.HBox(
            (self._banner_text, self._retry_button, self._dismiss_button),
            layout=w.Layout(display="none", align_items="center"),
        )
        self._banner.add_class("holynb-banner")

        self._input = w.Textarea(
            placeholder="Ask something… (Ctrl+Enter to send)",
            rows=3,
            continuous_update=True,
            layout=w.Layout(width="100%"),
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
            tooltip="Put the last code block into a new cell (or the clipboard)",
        )
        self._insert_button.add_class("holynb-insert")
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
        self._insert_button.on_click(self._guard(lambda _: self._on_insert_click()))
        self._retry_button.on_click(self._guard(lambda _: self._on_retry_click()))
        self._dismiss_button.on_click(self._guard(lambda _: self._hide_banner()))

        self.add_class("holynb-panel")
        self.children = (
            w.HTML(PANEL_CSS),
            w.HBox((model, transport, temperature, max_tokens), layout={"flex_flow": "row wrap"}),
            system,
            self._scroll,
            self._banner,
            self._input,
            w.HBox((self._send_button, self._stop_button, self._clear_button, self._insert_button)),
            self._status,
            self._out,
        )

    # -------------------------------------------------------------------------- public API
    @property
    def messages(self) -> list[dict[str, str]]:
        """The conversation as ``{"role", "content"}`` dicts (the system prompt excluded)."""
        return [{"role": m.role, "content": self._content(m)} for m in self._messages]

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
        self._append(_Message("user", text))
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
                    return blocks[-1].rstrip("\n")
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
        models = sorted(await self._get_client().models())
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
        message = _Message("assistant", "", model=self.model)
        message.status = "streaming"
        message.set_footer("streaming…")
        message.live = live = _LiveBody(message.body, loop)
        self._append(message)
        self._set_status(f"Streaming from {self.model} over {self.transport.upper()}…")
        self._stop_requested = self._reply_started = False
        self.set_trait("streaming", True)
        self._task = loop.create_task(self._reply(message, live, history))
        return self._task

    async def _reply(
        self, message: _Message, live: _LiveBody, history: list[dict[str, str]]
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
                history, model=self.model, transport=self.transport, **params
            ) as stream:
                async for delta in stream:
                    if self._countdown is not None:
                        self._end_countdown(hide=True)  # retried successfully
                    live.feed(delta)
            message.status = "done"
            message.set_footer(self._stats_line(stream))
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
            message.live = None
            if message not in self._messages:
                live.discard()  # cleared while streaming: its widgets are gone
            elif message.status == "interrupted" and not message.content:
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

    def _history(self) -> list[dict[str, str]]:
        history = [{"role": "system", "content": self.system}] if self.system.strip() else []
        # A reply stopped before its first token has no text to send back.
        return history + [m for m in self.messages if m["content"] or m["role"] != "assistant"]

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
        self._controls["transport"].disabled = streaming

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
        self._show_banner(_describe(err), retrying=False, retry=retry)

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

    def _on_insert_click(self) -> None:
        if self.last_code() is None:
            raise LookupError("No code block in the assistant's replies yet.")
        self._set_status(
            "Last code block sent to a new cell (or copied to the clipboard); "
            "from a cell, panel.insert_code() also works."
        )

    def _append(self, message: _Message) -> None:
        self._messages.append(message)
        self._log.children = (*self._log.children, message.box)

    def _remove(self, message: _Message) -> None:
        self._messages.remove(message)
        self._log.children = tuple(c for c in self._log.children if c is not message.box)
        message.close()

    def _content(self, message: _Message) -> str:
        return message.live.text if message.live is not None else message.content

    def _set_status(self, text: str) -> None:
        self.set_trait("status", text)
        self._status.value = html.escape(text)

    def _stats_line(self, stream: Any) -> str:
        stats = stream.stats
        parts = []
        if stats.ttft_s is not None:
            parts.append(f"TTFT {stats.ttft_s * 1000:.0f} ms")
        if stats.tokens_per_s is not None:
            parts.append(f"{stats.tokens_per_s:.1f} tok/s")
        parts.append(f"{stats.tokens} tokens")
        cost = cost_usd(stream.model or self.model, stats.tokens, self._prices)
        if cost is not None:
            parts.append(f"${cost:.6f}")
        parts.append(self.transport.upper())
        return " · ".join(parts)

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
            lines += [f"## {title}", "", self._content(m).rstrip(), ""]
            if m.status == "stopped":
                lines += [f"*{STOP_MARKER}*", ""]
            elif m.status == "interrupted":
                lines += [f"*{INTERRUPTED_MARKER}*", ""]
            if m.role == "assistant" and m.footer_text and m.status == "done":
                lines += [f"<sub>{html.escape(m.footer_text)}</sub>", ""]
        return "\n".join(lines)

    def _export_json(self) -> str:
        return json.dumps(
            {"model": self.model, "messages": self._history()}, ensure_ascii=False, indent=2
        )
