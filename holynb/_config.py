"""Settings resolution: explicit argument > configure() > environment > built-in default."""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from typing import Any

from holynb._errors import ConfigError

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MODEL",
    "PLACEHOLDER_KEY",
    "Options",
    "check_api_transport",
    "check_headers",
    "configure",
    "mask_key",
    "mask_url",
    "reset_defaults",
    "resolve_api",
    "resolve_api_key",
    "resolve_base_url",
    "resolve_model",
    "resolve_transport",
    "restore_defaults",
    "scrub",
    "snapshot_defaults",
    "url_password",
]

DEFAULT_BASE_URL = "https://api.holysheep.ai/v1"
DEFAULT_MODEL = "deepseek-v3.2"
PLACEHOLDER_KEY = "YOUR_HOLYSHEEP_API_KEY"
TRANSPORTS = ("sse", "ws")
APIS = ("chat", "responses", "messages")

_ENV = {
    "base_url": "HOLYSHEEP_BASE_URL",
    "api_key": "HOLYSHEEP_API_KEY",
    "model": "HOLYNB_MODEL",
    "transport": "HOLYNB_TRANSPORT",
    "api": "HOLYNB_API",
}

# Process-wide defaults set by configure() (``%holy mock start``, the panel, ``holynb demo``).
_defaults: dict[str, str] = {}


def configure(
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    model: str | None = None,
    transport: str | None = None,
    api: str | None = None,
) -> None:
    """Set process-wide defaults used by every client created afterwards (None leaves a value)."""
    if base_url is not None:
        _defaults["base_url"] = resolve_base_url(base_url)
    if api_key is not None:
        _defaults["api_key"] = resolve_api_key(api_key)
    if model is not None:
        _defaults["model"] = resolve_model(model)
    if transport is not None:
        _defaults["transport"] = resolve_transport(transport)
    if api is not None:
        _defaults["api"] = resolve_api(api)


def reset_defaults() -> None:
    """Forget every value set by :func:`configure`."""
    _defaults.clear()


def snapshot_defaults() -> dict[str, str]:
    """Copy of the values set by :func:`configure` for :func:`restore_defaults` (holds the key)."""
    return dict(_defaults)


def restore_defaults(snapshot: dict[str, str]) -> None:
    """Put back exactly the defaults captured by :func:`snapshot_defaults`."""
    _defaults.clear()
    _defaults.update(snapshot)


def current_defaults() -> dict[str, Any]:
    """The values set by :func:`configure`, with the key masked (for display)."""
    shown: dict[str, Any] = dict(_defaults)
    if "api_key" in shown:
        shown["api_key"] = mask_key(shown["api_key"])
    return shown


def mask_key(key: str | None) -> str:
    """Show a key as ``sk-…abcd`` (prefix and last four characters), never in full."""
    if not key:
        return "<no key>"
    prefix = key[:3] if key.startswith("sk-") else ""
    if len(key) < 12:
        return f"{prefix}…"
    return f"{prefix}…{key[-4:]}"


def scrub(text: str, *secrets: str | None) -> str:
    """Replace every occurrence of each secret (API key, URL password) by its masked form."""
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, mask_key(secret))
    return text


def mask_url(url: str) -> str:
    """``url`` with any ``user:password@`` part shown as ``***@`` (for messages and reprs)."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"***@{host}"))


def url_password(url: str) -> str | None:
    """The password (else the user name) in ``url``'s userinfo, to scrub from any text."""
    parts = urllib.parse.urlsplit(url)
    return parts.password or parts.username or None


def check_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """Copy ``extra_headers``, refusing what cannot be sent (the value is never shown)."""
    checked: dict[str, str] = {}
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not name or not name.isascii() or not name.isprintable():
            raise ConfigError(f"Header name {name!r:.60} is not a printable ASCII string.")
        if not isinstance(value, str):
            raise ConfigError(f"The value of header {name!r} must be a string.")
        if not value.isascii():
            raise ConfigError(
                f"The value of header {name!r} has non-ASCII characters; HTTP headers carry "
                "ASCII only (percent- or base64-encode the value)."
            )
        if "\r" in value or "\n" in value:
            raise ConfigError(f"The value of header {name!r} contains a line break.")
        checked[name] = value
    return checked


def _pick(name: str, explicit: str | None) -> str | None:
    if explicit is not None:
        return explicit
    if name in _defaults:
        return _defaults[name]
    value = os.environ.get(_ENV[name], "").strip()
    return value or None


def resolve_api_key(explicit: str | None = None) -> str:
    """Return the API key to use, or raise ConfigError saying how to set one."""
    key = _pick("api_key", explicit)
    how = (
        "set the HOLYSHEEP_API_KEY environment variable (or pass api_key=...), "
        "or run `%holy mock start` to use the offline mock"
    )
    if key is None or not key.strip():
        raise ConfigError(f"No API key configured: {how}.")
    key = key.strip()
    if key == PLACEHOLDER_KEY:
        raise ConfigError(f"The API key is the placeholder {PLACEHOLDER_KEY}: {how}.")
    if any(c.isspace() for c in key):
        raise ConfigError("The API key contains whitespace: check HOLYSHEEP_API_KEY / api_key=.")
    if not key.isascii():
        raise ConfigError(
            "The API key has non-ASCII characters: check HOLYSHEEP_API_KEY / api_key=."
        )
    return key


def resolve_base_url(explicit: str | None = None) -> str:
    """Return the base URL (without trailing slash), or raise ConfigError if it is not http(s)."""
    url = (_pick("base_url", explicit) or DEFAULT_BASE_URL).strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(
            f"Base URL {mask_url(url)!r} must start with http:// or https:// "
            "(set HOLYSHEEP_BASE_URL or pass base_url=..., e.g. https://api.holysheep.ai/v1)."
        )
    return url


def resolve_model(explicit: str | None = None) -> str:
    """Return the model name: argument > configure() > HOLYNB_MODEL > deepseek-v3.2."""
    model = (_pick("model", explicit) or DEFAULT_MODEL).strip()
    if not model:
        raise ConfigError("The model name is empty: pass model=... or set HOLYNB_MODEL.")
    return model


def resolve_transport(explicit: str | None = None) -> str:
    """Return ``"sse"`` or ``"ws"``: argument > configure() > HOLYNB_TRANSPORT > sse."""
    transport = (_pick("transport", explicit) or "sse").strip().lower()
    if transport not in TRANSPORTS:
        raise ConfigError(
            f"Unknown transport {transport!r}: use 'sse' or 'ws' "
            "(pass transport=... or set HOLYNB_TRANSPORT)."
        )
    return transport


def resolve_api(explicit: str | None = None) -> str:
    """Return ``"chat"``, ``"responses"`` or ``"messages"``: argument > configure() >
    HOLYNB_API > chat."""
    api = (_pick("api", explicit) or "chat").strip().lower()
    if api not in APIS:
        raise ConfigError(
            f"Unknown API {api!r}: use 'chat' (chat completions), 'responses' (OpenAI Responses) "
            "or 'messages' (Anthropic Messages) (pass api=... or set HOLYNB_API)."
        )
    return api


def check_api_transport(api: str, transport: str) -> None:
    """Refuse a combination the APIs do not offer: Anthropic Messages has no WebSocket mode."""
    if api == "messages" and transport == "ws":
        raise ConfigError(
            "The Anthropic Messages API has no WebSocket mode",
            hint="use transport='sse' with api='messages' (or api='chat' / 'responses' over "
            "WebSocket)",
        )


def check_timeout(name: str, value: float | None) -> float | None:
    """Validate a timeout in seconds (positive number or None for no limit)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{name} must be a positive number of seconds or None, got {value!r}.")
    return float(value)


class Options:
    """Per-request settings after merging call arguments over client defaults."""

    __slots__ = (
        "api",
        "transport",
        "max_retries",
        "connect_timeout",
        "first_token_timeout",
        "idle_timeout",
        "total_timeout",
        "skip_malformed",
        "on_retry",
        "extra_headers",
    )

    def __init__(self, **values: Any) -> None:
        for name in self.__slots__:
            setattr(self, name, values[name])
