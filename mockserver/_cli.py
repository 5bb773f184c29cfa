"""``holynb-mock`` / ``python -m mockserver``: run the mock upstream from a shell.

Every flag is a :class:`~mockserver.MockConfig` field (its ``metadata`` holds the help text), so
the command line, ``MockServer(**options)`` and ``create_app(**options)`` take the same options.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import resource
import signal
import sys
from collections.abc import Sequence
from typing import Any, get_type_hints

from ._config import MockConfig, make_config
from ._latency import PROFILES
from ._server import MOCK_KEY, MockServer
from ._workers import Supervisor

__all__ = ["build_parser", "main"]

_HINTS = get_type_hints(MockConfig)


def _argument(f: dataclasses.Field[Any]) -> tuple[str, dict[str, Any]]:
    meta = f.metadata
    flag = meta["flag"] or "--" + f.name.replace("_", "-")
    kw: dict[str, Any] = {"help": meta["help"], "dest": f.name}
    if meta["metavar"]:
        kw["metavar"] = meta["metavar"]
    if meta["choices"]:
        kw["choices"] = meta["choices"]
    hint = str(_HINTS[f.name])
    if f.name == "cassettes":
        kw["action"] = "append"
    elif hint == "<class 'bool'>":
        kw["action"] = "store_true"
    elif "float" in hint:
        kw["type"] = float
    elif "int" in hint:
        kw["type"] = int
    default = meta["cli_default"]
    kw["default"] = f.default if default is dataclasses.MISSING else default
    return flag, kw


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to render ``--help`` in the docs)."""
    p = argparse.ArgumentParser(
        prog="holynb-mock",
        description="Offline upstream for OpenAI chat completions (SSE + WebSocket), OpenAI "
        "Responses (SSE + WebSocket mode), Anthropic Messages and Gemini, with per-model "
        "latency, cassettes and injectable faults. Prints its base URL, then serves until "
        "SIGINT/SIGTERM, draining open streams before exiting.",
    )
    for f in dataclasses.fields(MockConfig):
        flag, kw = _argument(f)
        p.add_argument(flag, **kw)
        if f.name == "cassettes":
            p.add_argument("--no-cassettes", action="store_true",
                           help="serve generated replies only")
    return p


def config_from_args(args: argparse.Namespace) -> MockConfig:
    """The config the parsed flags describe."""
    options = {f.name: getattr(args, f.name) for f in dataclasses.fields(MockConfig)}
    if args.no_cassettes:
        options["cassettes"] = ()
    return make_config(**options)


def _banner(url: str, workers: int) -> None:
    print(url, flush=True)
    models = ", ".join(sorted(PROFILES))
    where = f" from {workers} processes" if workers > 1 else ""
    print(f"holynb mock serving {models}{where} — key {MOCK_KEY} (or any non-placeholder key); "
          "Ctrl+C to stop", file=sys.stderr, flush=True)


async def _serve(server: MockServer) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await server.astart()
    # Everything made so far (modules, app, cassettes) lives as long as the process: keep it
    # out of the collector's full passes, whose pauses would show as late frames.
    gc.freeze()
    try:
        _banner(server.url, 1)
        await stop.wait()
        print("draining open streams…", file=sys.stderr, flush=True)
    finally:
        await server.astop()


def _allow_many_connections() -> None:
    """Raise this process's open-file limit to its hard limit (inherited by workers): a load
    test's thousands of streams are thousands of sockets, past the common soft limit of 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until SIGINT/SIGTERM; return the exit code."""
    args = build_parser().parse_args(argv)
    _allow_many_connections()
    try:
        config = config_from_args(args)
        if config.workers > 1:
            return Supervisor(config).serve(on_ready=_banner)
        asyncio.run(_serve(MockServer(config)))
    except (ValueError, OSError) as exc:
        print(f"holynb-mock: error: {exc}", file=sys.stderr)
        return 2
    return 0
