"""Several processes behind one port: a small supervisor and its workers.

Why this and not gunicorn: the workers are plain aiohttp servers (the same ``create_app`` and
``AppRunner`` as one process), each with its own listening socket bound with ``SO_REUSEPORT``,
so the kernel spreads new connections evenly over them — one shared accept queue (gunicorn's
pre-fork model) lets the busiest worker take more than its share under load. The supervisor is
about a hundred lines with no new dependency; it also reserves the port first (a bound,
non-listening ``SO_REUSEPORT`` socket), so ``--port 0`` works and every worker gets the same port.
Linux balances ``SO_REUSEPORT`` listeners; other systems do not, so ``workers > 1`` is for Linux.

The workers share one SQLite store (``_store.SharedStore``): the journal of every worker is
visible from any request, ``/_mock/reset`` resets all of them, and a rate limit is one bucket per
key across workers. SIGINT or SIGTERM to the supervisor stops every worker the graceful way (each
drains its open streams, bounded by ``drain_timeout_s``); a worker that dies is restarted.

A worker is ``python -c "...worker_main()" --port P --store FILE --slot I``; it reads its
config as JSON on stdin (never on the command line, where other users could read an API key)
and prints ``ready`` once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from ._app import create_app
from ._config import MockConfig, make_config

__all__ = ["Supervisor"]

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent
_RESTARTS = 5  # restarts allowed per minute before the supervisor gives up
_WORKER = "from mockserver._workers import worker_main; worker_main()"


def _config_json(config: MockConfig) -> str:
    options: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, (tuple, frozenset)):
            value = [str(v) for v in value]
        elif isinstance(value, Path):
            value = str(value)
        options[f.name] = value
    options["workers"] = 1
    return json.dumps(options)


class Supervisor:
    """Runs ``config.workers`` worker processes on one port and stops them."""

    def __init__(self, config: MockConfig) -> None:
        self.config = config
        self.port = config.port
        self.store_path: Path | None = None
        self._dir: str | None = None
        self._reserved: socket.socket | None = None
        self._procs: list[subprocess.Popen[bytes]] = []
        self._restarts: list[float] = []

    @property
    def url(self) -> str:
        """The OpenAI-style base URL, ``http://host:port/v1``."""
        host = self.config.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}/v1"

    def start(self) -> str:
        """Reserve the port, start every worker, wait until all listen; return the URL."""
        family = socket.getaddrinfo(self.config.host, None, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((self.config.host, self.config.port))
        except OSError:
            sock.close()
            raise
        self._reserved = sock
        self.port = sock.getsockname()[1]
        self._dir = tempfile.mkdtemp(prefix="holynb-mock-")
        self.store_path = Path(self._dir) / "store.sqlite"
        try:
            self._procs = [self._spawn(slot) for slot in range(self.config.workers)]
            for proc in self._procs:
                self._wait_ready(proc)
        except BaseException:
            self.stop()
            raise
        return self.url

    def _spawn(self, slot: int) -> subprocess.Popen[bytes]:
        env = {**os.environ,
               "PYTHONPATH": os.pathsep.join(filter(None, [str(_PACKAGE_ROOT),
                                                           os.environ.get("PYTHONPATH")]))}
        proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER, "--port", str(self.port),
             "--store", str(self.store_path), "--slot", str(slot)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
        )
        assert proc.stdin is not None
        proc.stdin.write(_config_json(self.config).encode())
        proc.stdin.close()
        return proc

    @staticmethod
    def _wait_ready(proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != b"ready":
            proc.wait(5)
            raise OSError(f"a mock worker failed to start (exit code {proc.returncode})")

    def check(self) -> None:
        """Restart workers that died (at most a few a minute; then raise ``RuntimeError``)."""
        for i, proc in enumerate(self._procs):
            if proc.poll() is None:
                continue
            now = time.monotonic()
            self._restarts = [t for t in self._restarts if now - t < 60] + [now]
            if len(self._restarts) > _RESTARTS:
                raise RuntimeError("mock workers keep dying; giving up")
            print(f"holynb-mock: worker {proc.pid} exited ({proc.returncode}); restarting",
                  file=sys.stderr, flush=True)
            self._procs[i] = self._spawn(i)
            self._wait_ready(self._procs[i])

    def stop(self) -> None:
        """SIGTERM every worker (each drains, bounded by ``drain_timeout_s``), then clean up."""
        for proc in self._procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.config.drain_timeout_s + 5
        for proc in self._procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        self._procs = []
        if self._reserved is not None:
            self._reserved.close()
            self._reserved = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def serve(self, on_ready: Callable[[str, int], None]) -> int:
        """Run until SIGINT/SIGTERM (the command line's ``--workers``); return the exit code."""
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        self.start()
        try:
            on_ready(self.url, self.config.workers)
            while not stop.wait(0.5):
                self.check()
            print("draining open streams…", file=sys.stderr, flush=True)
        except RuntimeError as exc:
            print(f"holynb-mock: error: {exc}", file=sys.stderr, flush=True)
            return 1
        finally:
            self.stop()
        return 0


async def _work(config: MockConfig, port: int, store: str, slot: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    app = create_app(config, shared=store, slot=slot)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None,
                           shutdown_timeout=config.drain_timeout_s)
    await runner.setup()
    try:
        await web.TCPSite(runner, config.host, port, reuse_port=True).start()
        gc.freeze()  # as the one-process server does (see _cli)
        print("ready", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


def worker_main() -> None:
    """A worker process: ``--port``, ``--store``, and the config as JSON on stdin."""
    p = argparse.ArgumentParser(prog="mockserver worker")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--store", required=True)
    p.add_argument("--slot", type=int, required=True)
    args = p.parse_args()
    config = make_config(**json.loads(sys.stdin.read()))
    asyncio.run(_work(config, args.port, args.store, args.slot))
