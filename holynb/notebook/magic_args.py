"""``%%holy`` arguments: the flags, splitting a ``%holy`` line, and resolving one request.

A request is resolved from three layers, most specific first: the cell's flags, the
``%config HolyMagics.*`` traits, then holynb's configuration (``configure()``, environment).
"""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from IPython.core.error import UsageError
from IPython.core.magic_arguments import argument, magic_arguments

from holynb import _config
from holynb._errors import ConfigError
from holynb.notebook.output import FORMATS
from holynb.notebook.prompt import interpolate

__all__ = ["DEFAULT_CHAT", "Request", "holy_arguments", "parse_line", "resolve", "split_options"]

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_CHAT = "default"


def holy_arguments(func: F) -> F:
    """Declare the ``%%holy`` flags on ``func`` (IPython's ``magic_arguments``)."""
    flags = [
        argument("-m", "--model", help="model name (see %%holy models)"),
        argument("-s", "--system", help="system prompt"),
        argument("-t", "--temperature", type=float, help="sampling temperature, 0–2"),
        argument("--max-tokens", type=int, help="maximum tokens in the reply"),
        argument("-f", "--format", choices=FORMATS, help="how to show the reply"),
        argument("--transport", choices=("sse", "ws"), help="streaming transport"),
        argument(
            "--api",
            choices=_config.APIS,
            help="chat (chat completions), responses (OpenAI Responses) or messages "
            "(Anthropic Messages)",
        ),
        argument("--base-url", help="API base URL for this cell"),
        argument("-o", "--out", metavar="VAR", help="store the reply in this variable"),
        argument(
            "-c",
            "--chat",
            nargs="?",
            const=DEFAULT_CHAT,
            metavar="NAME",
            help="continue a conversation (default one when NAME is omitted)",
        ),
        argument("--new", action="store_true", help="start the conversation afresh"),
        argument("--no-stats", action="store_true", help="no stats line"),
        argument("--no-stream", action="store_true", help="one request, one render"),
        argument("--no-reasoning", action="store_true", help="hide the model's thinking"),
        argument("--timeout", type=float, help="seconds for the whole reply"),
        argument("--connect-timeout", type=float, help="seconds to connect"),
        argument("--first-token-timeout", type=float, help="seconds to the first token"),
        argument("--idle-timeout", type=float, help="longest silence mid-stream, seconds"),
        argument("--retries", type=int, help="retries before the first token"),
    ]
    for flag in reversed(flags):
        func = flag(func)
    return magic_arguments()(func)


@dataclass(slots=True)
class Request:
    """Everything one ``%%holy`` run needs, resolved from flags, config and the namespace."""

    prompt: str
    messages: list[dict[str, Any]]
    chat: str | None
    model: str
    api: str
    fmt: str
    out: str | None
    stream: bool
    show_stats: bool
    show_reasoning: bool
    client_key: tuple[Any, ...] = field(repr=False)  # holds the API key: never shown
    call: dict[str, Any] = field(default_factory=dict)


def parse_line(parser: argparse.ArgumentParser, line: str) -> argparse.Namespace:
    """Parse option flags with shell quoting (``-s "Be terse."``)."""
    try:
        tokens = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"cannot parse the options {line!r}: {exc}") from None
    return parser.parse_args(tokens)


def split_options(parser: argparse.ArgumentParser, line: str) -> tuple[list[str], str]:
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


def _pick(flag: Any, trait: Any) -> Any:
    return flag if flag is not None else trait


def resolve(
    magics: Any, args: argparse.Namespace, raw_prompt: str, chats: dict[str, list[dict[str, Any]]]
) -> Request:
    """The request a cell asks for: ``args`` over ``magics``' traits over holynb's config."""
    prompt = interpolate(raw_prompt, magics.shell.user_ns).strip()
    if not prompt:
        raise UsageError(
            "Empty prompt: write the question in the cell body (%%holy) or after %holy."
        )
    temperature = _pick(args.temperature, magics.temperature)
    if temperature is not None and not 0 <= temperature <= 2:
        raise UsageError(f"Temperature must be between 0 and 2, got {temperature}.")
    max_tokens = _pick(args.max_tokens, magics.max_tokens)
    if max_tokens is not None and max_tokens < 1:
        raise UsageError(f"--max-tokens must be at least 1, got {max_tokens}.")
    retries = _pick(args.retries, magics.max_retries)
    if retries < 0:
        raise UsageError(f"--retries must be 0 or more, got {retries}.")
    if args.out is not None and not args.out.isidentifier():
        raise UsageError(f"-o needs a variable name, got {args.out!r}.")
    chat = args.chat or magics.chat
    if args.new and chat is None:
        chat = DEFAULT_CHAT
    if args.new and chat is not None:
        chats.pop(chat, None)
    api, transport = _api_and_transport(args.api or magics.api, args.transport or magics.transport)
    system = _pick(args.system, magics.system)
    messages: list[dict[str, Any]] = []
    if system:
        messages.append({"role": "system", "content": system})
    if chat is not None:
        messages.extend(chats.get(chat, []))
    messages.append({"role": "user", "content": prompt})
    base_url = _config.resolve_base_url(args.base_url or magics.base_url)
    key = _config.resolve_api_key()
    model = _config.resolve_model(args.model or magics.model)
    stream = not args.no_stream and magics.stream
    call: dict[str, Any] = {
        "model": model,
        "api": api,
        "transport": transport,
        "max_retries": retries,
        "extra_headers": dict(magics.extra_headers),
    }
    if stream:
        call["first_token_timeout"] = _pick(args.first_token_timeout, magics.first_token_timeout)
        call["idle_timeout"] = _pick(args.idle_timeout, magics.idle_timeout)
    call["total_timeout"] = _pick(args.timeout, magics.total_timeout)
    if temperature is not None:
        call["temperature"] = temperature
    if max_tokens is not None:
        call["max_tokens"] = max_tokens
    return Request(
        prompt=prompt,
        messages=messages,
        chat=chat,
        model=model,
        api=api,
        fmt=args.format or magics.format,
        out=args.out,
        stream=stream,
        show_stats=magics.show_stats and not args.no_stats,
        show_reasoning=magics.show_reasoning and not args.no_reasoning,
        client_key=(
            base_url,
            key,
            _pick(args.connect_timeout, magics.connect_timeout),
            magics.skip_malformed,
            magics.verify,
        ),
        call=call,
    )


def _api_and_transport(api: str | None, transport: str | None) -> tuple[str, str]:
    """The API and transport a cell uses (flag > trait > configure() > environment), refusing
    what no API offers."""
    try:
        api = _config.resolve_api(api)
    except ConfigError:
        raise UsageError(
            "The default API (HOLYNB_API) is not chat, responses or messages: fix it, or pass "
            "--api."
        ) from None
    try:
        transport = _config.resolve_transport(transport)
    except ConfigError:
        raise UsageError(
            "The default transport (HOLYNB_TRANSPORT) is not sse or ws: fix it, or pass "
            "--transport."
        ) from None
    if api == "messages" and transport == "ws":
        raise UsageError(
            "The Anthropic Messages API has no WebSocket mode: use --transport sse with "
            "--api messages (or --api chat / responses over ws)."
        )
    return api, transport
