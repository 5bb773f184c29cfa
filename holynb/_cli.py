"""The ``holynb`` command line: ``demo``, ``chat``, ``models`` and ``bench``.

Replies stream live to stdout, delta by delta; the one-line stats summary (the same line the
notebook faces show) and every message go to stderr, so ``holynb chat ... > answer.md``
captures the answer alone. Errors are one line on stderr with exit code 1, never a traceback,
worded for the command line (``holynb/_cli_advice.py``); Ctrl-C keeps the partial text and
exits with 130. Async work runs on holynb's loop thread (``holynb/_bridge.py``), which closes
the connection cleanly on Ctrl-C. Heavy modules (the client, the mock server) are imported
inside the subcommands.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from holynb._config import APIS

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from holynb._client import AsyncClient

__all__ = ["build_parser", "main"]

T = TypeVar("T")

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C

# Matches the bundled long Markdown cassette (mockserver/cassettes/long-markdown.json), a ~29 s
# recording; the demo replays it at 10x speed so that it finishes in about three seconds.
DEMO_PROMPT = "Explain how to stream chat completions into a Jupyter notebook."
DEMO_SPEED = 10.0  # the mock plays frames at offset / speed


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``holynb`` command line; return the process exit code."""
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if args.command == "bench":
        # holynb.bench.cli owns the options; load it only when `bench` is the command.
        from holynb.bench.cli import build_parser as build_bench_parser

        args = build_bench_parser().parse_args(rest, namespace=args)
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    _make_stdout_safe()
    try:
        return args.run(args)
    except KeyboardInterrupt:
        # The text streamed so far stays on screen (_chat ended its line on the way out).
        sys.stdout.flush()
        print("holynb: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, and keep Python from complaining
        # about the unflushable stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR
    except Exception as exc:
        _print_error(exc)
        return EXIT_ERROR


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="holynb",
        description="Stream chat completions from OpenAI-compatible APIs (HolySheep AI by "
        "default). Set HOLYSHEEP_API_KEY, or use --mock / `holynb demo` to run offline.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="stream a reply from the bundled mock server (offline, no key needed)",
        description="Start the bundled mock server in-process and stream a reply from it.",
    )
    demo.add_argument("-m", "--model", help="model to imitate (default: deepseek-v3.2)")
    demo.add_argument("--transport", choices=("sse", "ws"), help="sse (default) or ws")
    demo.add_argument("prompt", nargs="?", default=None, help="prompt (default: a sample)")
    demo.set_defaults(run=_run_demo)

    chat = sub.add_parser(
        "chat",
        help="stream one reply to a prompt",
        description="Stream one chat completion to stdout.",
    )
    chat.add_argument("prompt", metavar="PROMPT", help="the user message ('-': read stdin)")
    chat.add_argument("-m", "--model", help="model (default: HOLYNB_MODEL or deepseek-v3.2)")
    chat.add_argument("-s", "--system", help="system prompt")
    chat.add_argument("-t", "--temperature", type=float, help="sampling temperature")
    chat.add_argument("--max-tokens", type=_positive_int, help="maximum tokens in the reply")
    chat.add_argument("--transport", choices=("sse", "ws"), help="sse or ws (default: sse)")
    _add_endpoint_arguments(chat)
    chat.add_argument("--no-stats", action="store_true", help="do not print the stats line")
    chat.set_defaults(run=_run_chat)

    models = sub.add_parser(
        "models", help="list the models the endpoint serves", description="List models."
    )
    _add_endpoint_arguments(models)
    models.set_defaults(run=_run_models)

    # `holynb bench` options (and its --help) are parsed in main(), by holynb.bench.cli.
    bench = sub.add_parser(
        "bench", help="measure TTFT, inter-token latency and throughput", add_help=False
    )
    bench.set_defaults(run=_run_bench)
    return parser


def _add_endpoint_arguments(
    parser: argparse.ArgumentParser, *, several_apis: bool = False
) -> None:
    """--base-url/--mock, --ca-bundle/--insecure, --proxy and --api; ``several_apis`` lets
    --api take a comma list or ``all`` (``holynb bench`` runs each API in turn)."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--base-url", help="API base URL (default: HOLYSHEEP_BASE_URL or the HolySheep API)"
    )
    where.add_argument(
        "--mock", action="store_true", help="use the bundled mock server (offline, no key needed)"
    )
    tls = parser.add_mutually_exclusive_group()
    tls.add_argument(
        "--ca-bundle",
        metavar="PATH",
        help="trust the CAs in this PEM file or directory (default: the system's, or "
        "SSL_CERT_FILE / SSL_CERT_DIR)",
    )
    tls.add_argument(
        "--insecure", action="store_true", help="do not check the server's TLS certificate"
    )
    parser.add_argument(
        "--proxy",
        metavar="URL",
        help="send requests through this HTTP proxy (default: HTTPS_PROXY / HTTP_PROXY / "
        "NO_PROXY)",
    )
    one_or_several: dict[str, Any] = (
        {"type": _api_names, "metavar": "API[,API...]|all"} if several_apis else {"choices": APIS}
    )
    parser.add_argument(
        "--api",
        **one_or_several,
        help="the API to speak: chat completions, OpenAI Responses or Anthropic Messages"
        + ("; several as a comma list (chat,responses), or all" if several_apis else "")
        + " (default: HOLYNB_API or chat)",
    )


def _api_names(text: str) -> str | list[str]:
    """``--api`` of ``holynb bench``: ``"all"``, or the names of a comma list, checked."""
    if text.strip().lower() == "all":
        return "all"
    names = [name.strip().lower() for name in text.split(",")]
    for name in names:
        if name not in APIS:
            raise argparse.ArgumentTypeError(
                f"invalid choice: {name!r} (choose from {', '.join(APIS)}, a comma list of "
                "them, or all)"
            )
    return names


def _network(args: argparse.Namespace) -> dict[str, Any]:
    """The client's endpoint options from --ca-bundle / --insecure / --proxy / --api."""
    verify: bool | str = False if args.insecure else args.ca_bundle or True
    return {"verify": verify, "proxy": args.proxy, "api": args.api}


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


# --- subcommands -----------------------------------------------------------------------------


def _run_demo(args: argparse.Namespace) -> int:
    prompt = args.prompt or DEMO_PROMPT

    async def demo() -> None:
        async with _endpoint(mock=True, base_url=None, speed=DEMO_SPEED) as (base_url, api_key):
            print(
                f"holynb demo: the bundled mock at {base_url}, replaying at "
                f"{DEMO_SPEED:g}x the recorded speed",
                file=sys.stderr,
            )
            print(f"> {prompt}\n", file=sys.stderr)
            await _chat(
                base_url=base_url,
                api_key=api_key,
                messages=[{"role": "user", "content": prompt}],
                model=args.model,
                transport=args.transport,
                params={},
                stats=True,
            )

    _run(demo())
    return EXIT_OK


def _run_chat(args: argparse.Namespace) -> int:
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    if not prompt.strip():
        raise _UsageError("the prompt is empty: pass it as an argument or pipe it with '-'")
    messages = [{"role": "user", "content": prompt}]
    if args.system:
        messages.insert(0, {"role": "system", "content": args.system})
    params: dict[str, Any] = {}
    if args.temperature is not None:
        params["temperature"] = args.temperature
    if args.max_tokens is not None:
        params["max_tokens"] = args.max_tokens

    async def chat() -> None:
        async with _endpoint(mock=args.mock, base_url=args.base_url) as (base_url, api_key):
            await _chat(
                base_url=base_url,
                api_key=api_key,
                messages=messages,
                model=args.model,
                transport=args.transport,
                params=params,
                stats=not args.no_stats,
                network=_network(args),
            )

    _run(chat())
    return EXIT_OK


def _run_models(args: argparse.Namespace) -> int:
    async def models() -> list[str]:
        async with _endpoint(mock=args.mock, base_url=args.base_url) as (base_url, api_key):
            async with _client(base_url, api_key, _network(args)) as client:
                return await client.models()

    for model in _run(models()):
        print(model)
    return EXIT_OK


def _run_bench(args: argparse.Namespace) -> int:
    from holynb.bench.cli import run_cli

    return run_cli(args)


# --- helpers ---------------------------------------------------------------------------------


def _run(coro: Coroutine[Any, Any, T]) -> T:
    from holynb._bridge import Runner  # not at module level: `holynb --help` should not pay

    return Runner().run(coro)


class _UsageError(Exception):
    """A problem with the command line that argparse cannot see (e.g. an empty prompt)."""


@contextlib.asynccontextmanager
async def _endpoint(
    *, mock: bool, base_url: str | None, speed: float = 1.0
) -> AsyncIterator[tuple[str | None, str | None]]:
    """Yield (base_url, api_key): the bundled mock's, or the given URL and the configured key."""
    if not mock:
        yield base_url, None
        return
    from holynb._mock import mock_key, running_mock

    async with running_mock(speed=speed) as server:
        yield server.url, mock_key()


@contextlib.asynccontextmanager
async def _client(
    base_url: str | None, api_key: str | None, network: dict[str, Any] | None = None
) -> AsyncIterator[AsyncClient]:
    from holynb._client import AsyncClient

    # The CLI makes one request: a quick retry or two, not a long wait, before giving up.
    async with AsyncClient(
        base_url=base_url, api_key=api_key, max_retries=2, **(network or {})
    ) as client:
        yield client


async def _chat(
    *,
    base_url: str | None,
    api_key: str | None,
    messages: list[dict[str, str]],
    model: str | None,
    transport: str | None,
    params: dict[str, Any],
    stats: bool,
    network: dict[str, Any] | None = None,
) -> None:
    """Stream one reply to stdout as it arrives, then print the stats line to stderr."""
    out = sys.stdout
    text_ended_with_newline = True
    async with _client(base_url, api_key, network) as client:
        try:
            async with client.stream(
                messages, model=model, transport=transport, **params
            ) as stream:
                async for delta in stream:
                    if delta:
                        out.write(delta)
                        out.flush()
                        text_ended_with_newline = delta.endswith("\n")
        finally:
            # Whatever happened, the partial text stays and the next line starts clean.
            if not text_ended_with_newline:
                out.write("\n")
                out.flush()
    if stats:
        from holynb._stats import stats_line

        line = stats_line(
            stream.stats, model=stream.model, transport=stream.transport, api=stream.api
        )
        print(line, file=sys.stderr)


def _print_error(exc: BaseException) -> None:
    """One line on stderr: what went wrong (the key masked, however it got into the message)."""
    from holynb._cli_advice import error_message
    from holynb._config import PLACEHOLDER_KEY, scrub

    message = str(exc) if isinstance(exc, _UsageError) else error_message(exc)
    key = os.environ.get("HOLYSHEEP_API_KEY", "").strip()
    if key and key != PLACEHOLDER_KEY:
        message = scrub(message, key)
    print(f"holynb: error: {message}", file=sys.stderr)


def _make_stdout_safe() -> None:
    # A reply may hold any character; on a terminal that cannot show one, print a replacement
    # instead of dying with UnicodeEncodeError halfway through the answer.
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "")
    if reconfigure is not None and encoding != "utf8":
        reconfigure(errors="replace")
