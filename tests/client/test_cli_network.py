"""The CLI's --ca-bundle / --insecure / --proxy / --api reach the client (a real TLS upstream, a
proxy, a Responses + Messages server)."""

from __future__ import annotations

import asyncio
import json
import os
import sys

from client_helpers import KEY


async def _holynb(*args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["HOLYSHEEP_API_KEY"] = KEY
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "holynb", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_ca_bundle_insecure_and_refused(upstream, tls):
    server_ctx, bundle = tls
    up = await upstream(ssl_context=server_ctx)
    code, out, err = await _holynb("models", "--base-url", up.url, "--ca-bundle", bundle)
    assert (code, out.split()) == (0, ["deepseek-v3.2"]), err
    code, out, _ = await _holynb("chat", "--base-url", up.url, "--insecure", "--no-stats", "Hi")
    assert code == 0 and out.strip() == "The answer is 42."
    code, out, err = await _holynb("models", "--base-url", up.url)
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1
    assert "certificate" in err and "127.0.0.1" in err and KEY not in err


async def test_proxy_flag(upstream, proxy):
    up = await upstream()
    code, out, err = await _holynb("chat", "--base-url", up.url, "--proxy", proxy.url,
                                   "--no-stats", "Hi")
    assert code == 0 and out.strip() == "The answer is 42.", err
    assert proxy.requests == [("POST", f"{up.url}/chat/completions")]


async def test_bench_takes_the_network_flags(upstream, tls, proxy):
    server_ctx, bundle = tls
    up = await upstream(ssl_context=server_ctx)
    bench = ("bench", "--base-url", up.url, "--requests", "2", "--max-tokens", "3",
             "--no-progress", "--json", "-")
    code, out, err = await _holynb(*bench, "--ca-bundle", bundle)
    assert code == 0, err
    assert json.loads(out)["summary"]["sse"]["completed"] == 2, out
    code, _, err = await _holynb(*bench)
    assert code != 0 and "certificate" in err and KEY not in err
    plain = await upstream()
    code, out, err = await _holynb("bench", "--base-url", plain.url, "--requests", "1",
                                   "--max-tokens", "3", "--no-progress", "--proxy", proxy.url)
    assert code == 0, err
    assert proxy.requests == [("POST", f"{plain.url}/chat/completions")]


async def test_api_flag(api_server):
    code, out, err = await _holynb("chat", "--base-url", api_server.url, "--api", "messages",
                                   "--no-stats", "Hello")
    assert code == 0 and out.strip() == "Hello!", err
    assert api_server.seen[-1]["path"] == "/v1/messages"
    code, out, err = await _holynb("models", "--base-url", api_server.url, "--api", "messages")
    assert code == 0 and out.split() == ["claude-opus-4", "claude-sonnet-4", "claude-haiku-4"]
    code, out, err = await _holynb("chat", "--base-url", api_server.url, "--api", "responses",
                                   "--transport", "ws", "Tell me")
    assert code == 0 and out.strip() == "In", err
    assert api_server.seen[-1]["body"]["type"] == "response.create"
    code, out, err = await _holynb("chat", "--base-url", api_server.url, "--api", "messages",
                                   "--transport", "ws", "Hi")
    assert code == 1 and "no WebSocket mode" in err and len(err.strip().splitlines()) == 1
    assert "use --transport sse" in err and "transport='sse'" not in err  # the CLI's words
