"""The mock's options, declared once: :class:`MockConfig`.

Every option is one dataclass field whose ``metadata`` carries its command-line form, so
``MockServer(**options)``, ``create_app(**options)`` and ``holynb-mock --flags`` all derive from
this one declaration (``_cli.build_parser`` reads it). Values are validated in
``__post_init__``; :func:`make_config` accepts friendly types (a path string, a comma list of
keys) and names an unknown option with the known ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._faults import FaultError, parse_faults
from ._latency import JITTERS

__all__ = [
    "PLACEHOLDER_KEYS",
    "MockConfig",
    "make_config",
    "mask_key",
    "parse_rate_limit",
]

PLACEHOLDER_KEYS = frozenset({"", "YOUR_HOLYSHEEP_API_KEY", "YOUR_API_KEY", "sk-xxx"})
# The folder of the cassettes that ship with the package (the default for ``cassettes``).
SHIPPED_DIR = Path(__file__).parent / "cassettes"
MAX_REASONING_TOKENS = 100_000


def mask_key(key: str | None) -> str:
    """A key shown as ``sk-…abcd``; never the whole key."""
    if not key:
        return "<none>"
    prefix = key[:3] if key.startswith("sk-") else ""
    return f"{prefix}…{key[-4:]}" if len(key) >= 12 else f"{prefix}…"


def parse_rate_limit(text: str) -> tuple[int, float]:
    """``"10/s"``, ``"600/min"``, ``"5"`` (per second) → (capacity, period seconds)."""
    count, _, unit = text.strip().partition("/")
    periods = {"": 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
    try:
        capacity = int(count)
    except ValueError:
        capacity = 0
    if capacity < 1 or unit.strip() not in periods:
        raise ValueError(
            f"rate limit {text!r} is not COUNT[/s|/min|/h] with COUNT >= 1, e.g. '10/s'"
        )
    return capacity, periods[unit.strip()]


def option(
    help: str,
    default: Any = None,
    *,
    flag: str | None = None,
    metavar: str | None = None,
    cli_default: Any = dataclasses.MISSING,
    choices: Iterable[str] | None = None,
    repr: bool = True,
) -> Any:
    """A config field with its command-line form (``flag`` defaults to ``--field-name``)."""
    meta = {"help": help, "flag": flag, "metavar": metavar, "cli_default": cli_default,
            "choices": tuple(choices) if choices else None}
    return field(default=default, repr=repr, metadata=meta)


@dataclass(frozen=True, kw_only=True)
class MockConfig:
    """Everything that shapes the mock's behaviour; immutable once the server starts.

    ``ttft_ms``/``tps`` of None use the model's profile; 0 means as fast as possible.
    ``jitter`` of None means ``"uniform"`` when ``jitter_ms`` is set, else ``"none"``.
    ``cassettes`` of None uses the shipped folder; an empty tuple disables cassettes.
    ``seed`` of None draws ids, jitter and fault probabilities from OS entropy; any integer
    makes them reproducible. Generated text depends only on the request.
    """

    host: str = option("bind address (default 127.0.0.1)", "127.0.0.1")
    port: int = option("port (default 8765 on the command line, 0 in-process; 0 picks a free "
                       "one)", 0, cli_default=8765)
    workers: int = option("serve from N processes on one port (SO_REUSEPORT); the journal, "
                          "reset and rate limits are shared (default 1)", 1, metavar="N")
    cassettes: tuple[Path, ...] | None = option(
        "cassette file or folder (repeatable; default: the shipped cassettes)", metavar="PATH")
    ttft_ms: float | None = option("time to first token for every model (ms)")
    tps: float | None = option("tokens per second for every model (0 = max speed)")
    jitter_ms: float | None = option("jitter added to the TTFT and each gap (ms)")
    jitter: str | None = option("jitter distribution (default: uniform when --jitter-ms is set)",
                                choices=JITTERS)
    reasoning_tokens: int = option("reasoning tokens streamed before the answer "
                                   "(delta.reasoning_content; default 0)", 0, metavar="N")
    seed: int | None = option("seed for ids, jitter and fault probabilities")
    speed: float = option("time scale for schedules and cassettes (2 = twice as fast, 0 = no "
                          "waits)", 1.0)
    fault: str | None = option("faults applied to every request, e.g. 'disconnect:after=5'",
                               metavar="SPEC")
    keys: frozenset[str] | None = option(
        "comma-separated accepted API keys (default: any real key)", repr=False,
        metavar="K1,K2")
    idle_timeout_s: float = option("close idle WebSocket connections after S seconds "
                                   "(default 120)", 120.0, flag="--idle-timeout", metavar="S")
    body_timeout_s: float = option("answer 408 when a request body has not arrived within S "
                                   "seconds (default 30)", 30.0, flag="--body-timeout",
                                   metavar="S")
    strict: bool = option("answer only from cassettes; explain misses with a 400", False)
    record_upstream: str | None = option("record mode: proxy to this base URL and save "
                                         "cassettes", metavar="URL")
    record_dir: Path | None = option("where record mode writes cassettes", metavar="DIR")
    rate_limit: str | None = option("token bucket per key, e.g. '10/s' or '600/min'",
                                    metavar="N/s")
    max_body_bytes: int = option("largest request body or WebSocket message accepted "
                                 "(default 4 MiB)", 4 * 1024 * 1024, metavar="BYTES")
    drain_timeout_s: float = option("on shutdown, wait up to S seconds for open streams "
                                    "(default 10)", 10.0, flag="--drain-timeout", metavar="S")

    def __post_init__(self) -> None:
        for name in ("ttft_ms", "tps", "jitter_ms"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        if self.jitter is not None and self.jitter not in JITTERS:
            raise ValueError(f"jitter must be one of {', '.join(JITTERS)}, got {self.jitter!r}")
        if not self.speed >= 0:
            raise ValueError(f"speed must be >= 0 (0 = as fast as possible), got {self.speed!r}")
        for name in ("idle_timeout_s", "body_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0-65535, got {self.port!r}")
        if not 1 <= self.workers <= 64:
            raise ValueError(f"workers must be 1-64, got {self.workers!r}")
        if not 0 <= self.reasoning_tokens <= MAX_REASONING_TOKENS:
            raise ValueError(f"reasoning_tokens must be 0-{MAX_REASONING_TOKENS}, got "
                             f"{self.reasoning_tokens!r}")
        if self.max_body_bytes < 1024:
            raise ValueError(f"max_body_bytes must be >= 1024, got {self.max_body_bytes!r}")
        if self.fault:
            try:
                parse_faults(self.fault)
            except FaultError as exc:
                raise ValueError(f"fault: {exc}") from None
        if self.rate_limit:
            parse_rate_limit(self.rate_limit)
        if self.keys is not None:
            bad = [k for k in self.keys if not isinstance(k, str) or k in PLACEHOLDER_KEYS]
            if bad or not self.keys:
                raise ValueError("keys must be a non-empty set of real key strings")
        if self.record_upstream and not self.record_upstream.startswith(("http://", "https://")):
            raise ValueError(
                f"record_upstream must be an http(s) base URL, got {self.record_upstream!r}"
            )

    @property
    def jitter_kind(self) -> str:
        """The effective jitter distribution."""
        if self.jitter is not None:
            return self.jitter
        return "uniform" if self.jitter_ms else "none"

    @property
    def cassette_paths(self) -> tuple[Path, ...]:
        """Folders/files to load cassettes from."""
        return (SHIPPED_DIR,) if self.cassettes is None else self.cassettes

    def accepts(self, key: str | None) -> bool:
        """Whether a request with this key is authorised."""
        if key is None or key.strip() in PLACEHOLDER_KEYS:
            return False
        return self.keys is None or key in self.keys

    def public(self) -> dict[str, Any]:
        """The configuration as JSON for ``GET /_mock/config`` (keys reduced to a count)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Path):
                value = str(value)
            out[f.name] = value
        out["jitter"] = self.jitter_kind
        out["cassettes"] = [str(p) for p in self.cassette_paths]
        out["keys"] = "any non-placeholder key" if self.keys is None else f"{len(self.keys)} keys"
        return out


OPTION_NAMES = tuple(f.name for f in dataclasses.fields(MockConfig))


def make_config(
    *,
    cassettes: str | Path | Iterable[str | Path] | None = None,
    keys: Iterable[str] | str | None = None,
    record_dir: str | Path | None = None,
    **options: Any,
) -> MockConfig:
    """Build a :class:`MockConfig` from friendly argument types (paths, key lists)."""
    unknown = sorted(set(options) - set(OPTION_NAMES))
    if unknown:
        raise TypeError(f"unknown mock option {unknown[0]!r}; known: {', '.join(OPTION_NAMES)}")
    if cassettes is not None:
        if isinstance(cassettes, (str, Path)):
            cassettes = (Path(cassettes),)
        else:
            cassettes = tuple(Path(p) for p in cassettes)
    if isinstance(keys, str):
        keys = [k for k in keys.split(",") if k.strip()]
    return MockConfig(
        cassettes=cassettes,
        keys=frozenset(keys) if keys is not None else None,
        record_dir=Path(record_dir) if record_dir is not None else None,
        **options,
    )
