"""Settings resolution: explicit argument > configure() > environment > built-in default."""

from __future__ import annotations

import os
from typing import Any

from holynb._errors import ConfigError

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MODEL",
    "PLACEHOLDER_KEY",
    "configure",
    "mask_key",
    "reset_defaults",
    "resolve_api_key",
    "resolve_base_url",
    "resolve_model",
    "resolve_transport",
    "restore_defaults",
    "scrub",
    "snapshot_defaults",
]

DEFAULT_BASE_URL = "https://api.holysheep.ai/v1"
DEFAULT_MODEL = "deepseek-v3.2"
PLACEHOLDER_KEY = "YOUR_HOLYSHEEP_API_KEY"
TRANSPORTS = ("sse", "ws")

_ENV = {
    "base_url": "HOLYSHEEP_BASE_URL",
    "api_key": "HOLYSHEEP_API_KEY",
    "model": "HOLYNB_MODEL",
    "transport": "HOLYNB_TRANSPORT",
}

# Process-wide defaults set by configure() (``%holy mock start``, the panel, ``holynb demo``).
_defaults: dict[str, str] = {}


def configure(
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    model: str | None = None,
    transport: str | None = None,
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


def scrub(text: str, key: str | None) -> str:
    """Replace every occurrence of ``key`` in ``text`` by its masked form."""
    if key and key in text:
        return text.replace(key, mask_key(key))
    return text


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
    return key


def resolve_base_url(explicit: str | None = None) -> str:
    """Return the base URL (without trailing slash), or raise ConfigError if it is not http(s)."""
    url = (_pick("base_url", explicit) or DEFAULT_BASE_URL).strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(
            f"Base URL {url!r} must start with http:// or https:// "
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


def check_timeout(name: str, value: float | None) -> float | None:
    """Validate a timeout in seconds (positive number or None for no limit)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{name} must be a positive number of seconds or None, got {value!r}.")
    return float(value)
