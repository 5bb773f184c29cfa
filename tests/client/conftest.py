"""Fixtures for the client tests: a recognisable key, both transports, journal helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from client_helpers import KEY

from holynb import AsyncClient
from holynb._config import reset_defaults


@pytest.fixture(autouse=True)
def _clean_config(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HOLYSHEEP_API_KEY", "HOLYSHEEP_BASE_URL", "HOLYNB_MODEL", "HOLYNB_TRANSPORT",
                 "HOLYNB_API"):
        monkeypatch.delenv(name, raising=False)
    reset_defaults()


@pytest.fixture(params=["sse", "ws"])
def transport(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once per transport."""
    return request.param


@pytest.fixture
async def make_client() -> AsyncIterator[Callable[..., AsyncClient]]:
    """``make(mock, **kwargs)``: an AsyncClient on the mock (closed at teardown)."""
    clients: list[AsyncClient] = []

    def make(mock: Any, **kwargs: Any) -> AsyncClient:
        client = AsyncClient(base_url=mock.url, api_key=KEY, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def upstream() -> AsyncIterator[Callable[..., Any]]:
    """``await start(ssl_context=None, **app_options)``: a chat upstream; returns Upstream."""
    from netservers import Upstream, start_app, upstream_app

    runners = []

    async def start(ssl_context: Any = None, host: str = "127.0.0.1", **options: Any) -> Any:
        seen: list[dict[str, Any]] = []
        runner, port = await start_app(upstream_app(seen, **options), ssl_context)
        runners.append(runner)
        scheme = "https" if ssl_context else "http"
        return Upstream(f"{scheme}://{host}:{port}/v1", seen)

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[..., Any]]:
    """``await start(handler)``: a raw asyncio server answering with ``handler(reader, writer)``."""
    import asyncio

    servers: list[asyncio.Server] = []
    writers: set[asyncio.StreamWriter] = set()

    async def start(handler: Any, ssl_context: Any = None) -> str:
        async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.add(writer)
            try:
                await handler(reader, writer)
            finally:
                writer.close()

        server = await asyncio.start_server(tracked, "127.0.0.1", 0, ssl=ssl_context)
        servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"

    yield start
    # Connections a handler still holds are closed here, inside the loop: closing the server
    # does not close them, and a socket left to the garbage collector warns in a later test.
    for writer in writers:
        writer.close()
    for server in servers:
        server.close()
        await server.wait_closed()
    await asyncio.sleep(0)


@pytest.fixture
async def proxy() -> AsyncIterator[Any]:
    """A running forwarding/CONNECT proxy (``.url``, ``.requests``)."""
    from netservers import Proxy

    running = await Proxy().start()
    yield running
    await running.stop()


@pytest.fixture(scope="session")
def ca() -> Any:
    """A trustme certificate authority and a server certificate for localhost / 127.0.0.1."""
    import trustme

    authority = trustme.CA()
    return authority


@pytest.fixture
def tls(ca: Any, tmp_path: Any) -> Any:
    """(server SSLContext, CA bundle path) for a server certificate of localhost/127.0.0.1."""
    import ssl

    cert = ca.issue_cert("localhost", "127.0.0.1")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    return server, str(bundle)


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Proxy and CA variables of the machine must not leak into the tests.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "SSL_CERT_FILE",
                 "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def _serve_in_thread(make_app: Callable[[], Any]) -> Any:
    """Run the app ``make_app()`` on a loop in a thread (for the sync Client); yield its URL."""
    import asyncio
    import threading

    from netservers import start_app

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> Any:
        return await start_app(make_app())

    runner, port = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    yield f"http://127.0.0.1:{port}/v1"
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


@pytest.fixture
def upstream_sync() -> Any:
    """The chat upstream on a loop in a thread (for the sync Client); yields its base URL."""
    from netservers import upstream_app

    yield from _serve_in_thread(lambda: upstream_app([]))


@pytest.fixture
def upstream_sync_api() -> Any:
    """The Responses + Messages server on a loop in a thread; yields its base URL."""
    from apiservers import create_app

    yield from _serve_in_thread(create_app)


@pytest.fixture
async def api_server() -> AsyncIterator[Any]:
    """The Responses + Messages server playing documentation streams (``.url``, ``.seen``,
    ``.left``: streams the client left early)."""
    from types import SimpleNamespace

    from apiservers import LEFT, SEEN, create_app
    from netservers import start_app

    app = create_app()
    runner, port = await start_app(app)
    yield SimpleNamespace(url=f"http://127.0.0.1:{port}/v1", seen=app[SEEN], left=app[LEFT])
    await runner.cleanup()
