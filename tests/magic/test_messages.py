"""What the notebook faces and the CLI say about failures: one line, one hint, their own words."""

from __future__ import annotations

import re

import pytest

from holynb._cli_advice import error_message
from holynb._errors import (
    APIStatusError,
    AuthenticationError,
    ConfigError,
    ConnectError,
    MalformedChunkError,
    RateLimitError,
    StreamInterrupted,
    StreamTimeout,
)
from holynb.notebook.messages import LINE_WIDTH, advice, error_line

# What a notebook user must never be told: the client's attributes, keyword arguments and
# methods. The panel's own constructor (``ChatPanel(mock=True)``) is the panel's control.
PYTHON_NAMES = re.compile(
    r"\.partial_text|\b[a-z_]+=\S|\w\(\)|client\.|skip_malformed|idle_timeout"
    r"|first_token_timeout"
)


def face_controls(line: str) -> str:
    """``line`` without the panel's own constructor calls."""
    return re.sub(r"ChatPanel\([^)]*\)", "ChatPanel", line)
HINT = "what code should do — idle_timeout=60 or .partial_text"

ERRORS = [
    ConfigError("No API key configured.", hint="set HOLYSHEEP_API_KEY or pass api_key="),
    AuthenticationError("The API key was refused (HTTP 401).", status_code=401, hint=HINT),
    RateLimitError("Rate limited (HTTP 429).", hint=HINT),
    APIStatusError("Model 'x' not found (HTTP 404).", status_code=404, hint=HINT),
    APIStatusError("Request too large (HTTP 413).", status_code=413, hint=HINT),
    APIStatusError("Server busy (HTTP 503).", status_code=503, hint=HINT),
    APIStatusError("Bad request (HTTP 400).", status_code=400, hint=HINT),
    StreamTimeout("No first token within 1 s.", phase="first_token", timeout=1, hint=HINT),
    StreamTimeout("No data for 30 s.", phase="idle", timeout=30, hint=HINT),
    StreamTimeout("The reply took longer than 600 s.", phase="total", timeout=600, hint=HINT),
    StreamTimeout("Could not connect within 10 s.", phase="connect", timeout=10, hint=HINT),
    StreamInterrupted("The connection closed before the reply was complete.", hint=HINT),
    MalformedChunkError("A chunk was not valid JSON.", raw="{", hint=HINT),
    ValueError("odd\nsecond line"),
    StreamInterrupted("x" * 300, hint=HINT),
    ConnectError("Could not resolve api.holysheep.ai.", kind="dns", host="api", hint=HINT),
    ConnectError("127.0.0.1:9 refused the connection.", kind="refused", host="h", hint=HINT),
    ConnectError("The certificate of h was refused.", kind="tls", host="h", hint=HINT),
    ConnectError("The proxy failed.", kind="proxy", host="h", hint=HINT),
]


@pytest.mark.parametrize("face", ["magic", "panel"])
@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_one_line_one_hint_no_python_names(error: BaseException, face: str) -> None:
    line = error_line(error, face, partial=True)  # type: ignore[arg-type]
    assert "\n" not in line and line.startswith("⚠ ")
    assert len(line) <= LINE_WIDTH, line
    assert line.count(" — ") == 1, line  # the message, then exactly one piece of advice
    assert not PYTHON_NAMES.search(face_controls(line)), line
    assert line.endswith("· partial answer kept")


@pytest.mark.parametrize(
    ("error", "magic", "panel"),
    [
        (ERRORS[0], "%holy mock start", "ChatPanel(mock=True)"),
        (ERRORS[1], "%env HOLYSHEEP_API_KEY", "HOLYSHEEP_API_KEY"),
        (ERRORS[2], "run the cell again", "Retry"),
        (ERRORS[3], "%holy models", "another model"),
        (ERRORS[4], "--new", "Clear"),
        (ERRORS[5], "run the cell again", "Retry"),
        (ERRORS[7], "--first-token-timeout", "Retry"),
        (ERRORS[8], "--idle-timeout", "Retry"),
        (ERRORS[9], "--timeout", "Retry"),
        (ERRORS[10], "--connect-timeout", "Retry"),
        (ERRORS[11], "run the cell again", "Retry"),
        (ERRORS[12], "run the cell again", "press Retry"),
        (ERRORS[13], "%holy error", "Retry"),
        (ERRORS[15], "check the base URL and the network", "check the base URL"),
        (ERRORS[16], "is the server running?", "is the server running?"),
        (ERRORS[17], "%config HolyMagics.verify", "ChatPanel(verify="),
        (ERRORS[18], "HTTPS_PROXY", "HTTPS_PROXY"),
    ],
)
def test_each_face_advises_with_its_own_controls(
    error: BaseException, magic: str, panel: str
) -> None:
    assert magic in advice(error, "magic")
    assert panel in advice(error, "panel")


def test_the_message_never_includes_the_clients_hint() -> None:
    line = error_line(ERRORS[4], "magic")
    assert line.startswith("⚠ Request too large (HTTP 413). — ")
    assert "idle_timeout=" not in line


def test_timeouts_are_said_from_their_fields() -> None:
    # The client's message may name its keyword ("(idle_timeout)"); the face does not.
    error = StreamTimeout("No data for 30 s (idle_timeout)", phase="idle", timeout=30)
    assert error_line(error, "magic") == (
        "⚠ Stalled: no data for 30 s — allow longer pauses: --idle-timeout 60"
    )


@pytest.mark.parametrize("error", ERRORS[:13] + ERRORS[15:], ids=lambda e: type(e).__name__)
def test_cli_messages_use_the_message_and_cli_words(error: BaseException) -> None:
    text = error_message(error)
    assert "\n" not in text
    assert not PYTHON_NAMES.search(text), text
    assert "%holy" not in text


def test_cli_key_advice_names_the_offline_commands() -> None:
    assert "holynb chat --mock" in error_message(ERRORS[0])
    assert "holynb models" in error_message(ERRORS[3])
    assert "--ca-bundle PATH" in error_message(ERRORS[17])


def test_a_dns_failure_never_says_the_connection_dropped() -> None:
    line = error_line(ERRORS[15], "magic")
    assert "dropped" not in line and "check the base URL" in line
