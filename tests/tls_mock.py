"""The bundled mock served over real TLS (a certificate from a trustme CA), on a daemon thread,
for the faces' ``verify=`` tests."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aiohttp import web

from mockserver import create_app


@contextmanager
def tls_mock(folder: Path) -> Iterator[tuple[str, str]]:
    """Yield (https base URL of the mock, path of the CA bundle that trusts it)."""
    import trustme

    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    bundle = folder / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict[str, object] = {}

    async def start() -> None:
        runner = web.AppRunner(create_app(ttft_ms=0, tps=0))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context)
        await site.start()
        state["runner"] = runner
        state["port"] = runner.addresses[0][1]

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="tls-mock", daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield f"https://127.0.0.1:{state['port']}/v1", str(bundle)
    finally:
        runner = state["runner"]
        assert isinstance(runner, web.AppRunner)

        async def stop() -> None:
            await runner.cleanup()
            # A refused handshake is not an aiohttp connection yet: let the loop see the client's
            # close and drop its socket before the loop goes.
            await asyncio.sleep(0.2)

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
