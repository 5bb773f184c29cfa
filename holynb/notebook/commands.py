"""``%holy`` subcommands: ``models``, ``config``, ``history``, ``stats``, ``error``, ``mock``.

A mixin of :class:`~holynb.notebook.magic.HolyMagics`: the subcommands read and change the
state the magic keeps (conversations, turns, the last error, the mock it started).
"""

from __future__ import annotations

import argparse
import shlex
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from holynb import _config, _mock
from holynb._bridge import Runner
from holynb._errors import ConfigError, HolyError
from holynb._pricing import price_table
from holynb._stats import api_label, format_cost, stats_line
from holynb.notebook.messages import error_line, scrub, what_happened

if TYPE_CHECKING:
    from holynb.notebook.magic import Turn

__all__ = ["SUBCOMMANDS", "Subcommands"]

SUBCOMMANDS = ("models", "config", "history", "stats", "error", "mock")
_MOCK_USAGE = (
    "Usage: %holy mock start [--tps N] [--ttft-ms N] [--jitter-ms N] [--seed N] [--speed X] "
    "[--fault SPEC] [--cassettes PATH] [--reasoning-tokens N] | stop | status"
)


class Subcommands:
    """The ``%holy <subcommand>`` implementations (mixed into ``HolyMagics``, which provides
    ``_remember_error``, ``_client_for`` and ``_close_clients``)."""

    # Set by HolyMagics.__init__ (and its traits).
    chats: dict[str, list[dict[str, Any]]]
    turns: list[Turn]
    last_error: BaseException | None
    _last_error_text: str
    _mock: Any
    _mock_saved: dict[str, str] | None
    model: str | None
    base_url: str | None
    transport: str | None
    api: str | None
    format: str
    system: str
    temperature: float | None
    max_tokens: int | None
    chat: str | None
    stream: bool
    show_stats: bool
    show_reasoning: bool
    connect_timeout: float | None
    first_token_timeout: float | None
    idle_timeout: float | None
    total_timeout: float | None
    max_retries: int
    max_updates_per_s: float
    prices: dict[str, Any]
    verify: bool | str

    def run_subcommand(self, word: str, rest: str) -> None:
        """Run ``%holy <word> <rest>``."""
        getattr(self, f"_cmd_{word}")(rest.strip())

    def _print(self, text: str) -> None:
        print(scrub(text))

    def _stats_line(self, turn: Turn) -> str:
        stats = turn.stats
        return stats_line(
            stats, model=turn.model, transport=turn.transport, api=turn.api, prices=self.prices
        )

    def _cmd_models(self, rest: str) -> None:
        api = None
        try:
            client, api = self._client_for(rest)
            models = Runner().run(client.models(api=api))
        except HolyError as exc:
            self._remember_error(exc)
            self._print(error_line(exc, "magic", api=api))
            return
        prices = price_table(self.prices)
        default = _config.resolve_model(self.model)
        rows = []
        for name in models:
            price = prices.get(name)
            cost = (
                f"${price.input:g} in / ${price.output:g} out per MTok"
                if price is not None
                else "price unknown"
            )
            rows.append(f"{'*' if name == default else ' '} {name:<24} {cost}")
        self._print("\n".join(rows) if rows else "The server lists no models.")

    def _cmd_config(self, rest: str) -> None:
        try:
            key = _config.mask_key(_config.resolve_api_key())
        except ConfigError as exc:
            key = f"<not set: {what_happened(exc)}>"
        try:
            base_url = _config.resolve_base_url(self.base_url)
        except ConfigError as exc:
            base_url = f"<invalid: {what_happened(exc)}>"
        try:
            api = _config.resolve_api(self.api)
        except ConfigError:
            api = "<invalid: HOLYNB_API is not chat, responses or messages>"
        prices = ", ".join(
            f"{name} {price.input:g}/{price.output:g}"
            for name, price in price_table(self.prices).items()
        )
        rows = {
            "base_url": base_url,
            "api_key": key,
            "model": _config.resolve_model(self.model),
            "api": api,
            "transport": _config.resolve_transport(self.transport),
            "format": self.format,
            "system": self.system or "<none>",
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "chat": self.chat,
            "stream": self.stream,
            "show_stats": self.show_stats,
            "show_reasoning": self.show_reasoning,
            "timeouts (s)": (
                f"connect {self.connect_timeout}, first token {self.first_token_timeout}, "
                f"idle {self.idle_timeout}, total {self.total_timeout}"
            ),
            "max_retries": self.max_retries,
            "verify (TLS)": self.verify,
            "max_updates_per_s": self.max_updates_per_s,
            "prices ($/MTok in/out)": prices,
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
            api = "" if turn.api == "chat" else f" · {api_label(turn.api)}"
            lines.append(f"{n}. {where}{turn.model}{api}{status}")
            lines.append(f"   you: {_short(turn.prompt)}")
            lines.append(f"   ai:  {_short(turn.reply)}")
        for name, messages in self.chats.items():
            turns = sum(m["role"] == "user" for m in messages)
            lines.append(f"conversation {name!r}: {turns} turns remembered")
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
            f"{tokens} tokens · {format_cost(cost)} · mean TTFT {mean_ttft}"
        )

    def _cmd_error(self, rest: str) -> None:
        exc = self.last_error
        if exc is None:
            self._print("No error in this session.")
            return
        rows = [f"{type(exc).__module__}.{type(exc).__name__}: {what_happened(exc)}"]
        for attr in ("status_code", "error_type", "code", "retry_after", "phase", "timeout"):
            value = getattr(exc, attr, None)
            if value is not None:
                rows.append(f"{attr.replace('_', ' ')}: {value}")
        for attr in ("body", "raw"):
            value = getattr(exc, attr, None)
            if value:
                rows.append(f"{attr}: {value!r}")
        partial = getattr(exc, "partial_text", "")
        if partial:
            rows.append(f"partial answer: {len(partial)} characters (kept in the cell above)")
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
            raise UsageError(_MOCK_USAGE)

    def _mock_start(self, words: list[str]) -> None:
        parser = argparse.ArgumentParser(prog="%holy mock start", add_help=False)
        parser.add_argument("--tps", type=float)
        parser.add_argument("--ttft-ms", type=float)
        parser.add_argument("--jitter-ms", type=float)
        parser.add_argument("--seed", type=int)
        parser.add_argument("--speed", type=float)
        parser.add_argument("--fault")
        parser.add_argument("--cassettes")
        parser.add_argument("--reasoning-tokens", type=int)
        try:
            options = vars(parser.parse_args(words))
        except SystemExit:
            raise UsageError(_MOCK_USAGE) from None
        if self._mock is not None:
            self._mock_stop(quiet=True)
        try:
            mock = _mock.start_mock(**options)
        except (ValueError, TypeError, OSError) as exc:  # bad options, cassettes or port
            raise UsageError(f"The mock server did not start: {exc}") from None
        self._mock = mock
        # What configure() had set before, restored by ``%holy mock stop``.
        self._mock_saved = _config.snapshot_defaults()
        _config.configure(base_url=mock.url, api_key=_mock.mock_key())
        self._print(_mock.describe(mock, **options) + "; holynb now uses it (%holy mock stop).")

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


def _short(text: str, limit: int = 100) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"

