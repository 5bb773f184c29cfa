"""Request normalisation, cassette matching, repeat sequences and "why no match" answers."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from .convert import SERVABLE
from .format import (
    MATCH_FIELDS,
    MATCH_PARAMS,
    TRANSPORTS,
    Cassette,
    CassetteError,
    UnknownCassetteError,
    canonical_values,
    load_cassette,
)

__all__ = ["CassetteStore", "normalise_request"]


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "") for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def normalise_request(request: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a chat request that matching looks at (see the module docstring)."""
    out: dict[str, Any] = {}
    model = request.get("model")
    if isinstance(model, str):
        out["model"] = model
    messages = request.get("messages")
    if isinstance(messages, list):
        out["messages"] = canonical_values(messages)
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        if users:
            out["prompt"] = _text_of(users[-1].get("content"))
    params = dict(request)
    if params.get("max_tokens") is None and params.get("max_completion_tokens") is not None:
        params["max_tokens"] = params["max_completion_tokens"]
    if isinstance(params.get("stop"), str):
        params["stop"] = [params["stop"]]
    for key in MATCH_PARAMS:
        if params.get(key) is not None:
            out[key] = canonical_values(params[key])
    return out


def _key_id(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _differences(c: Cassette, norm: dict[str, Any], strict: bool) -> list[str]:
    """Fields on which ``norm`` fails ``c.match``, in report order."""
    diffs = [k for k in MATCH_FIELDS if k in c.match and norm.get(k) != c.match[k]]
    if strict:
        implied = {"model", "prompt", "messages"}
        diffs += [k for k in MATCH_PARAMS if k in norm and k not in c.match and k not in implied]
    return diffs


def _natural_key(path: Path) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", str(path))]


def _cassette_files(paths: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            files.extend(sorted(p.rglob("*.json"), key=_natural_key))
        elif p.is_file():
            files.append(p)
        else:
            raise CassetteError(f"{p}: no such cassette file or folder")
    return files


class CassetteStore:
    """All cassettes loaded from some files and folders, with matching and repeat counting."""

    def __init__(
        self,
        paths: str | Path | Iterable[str | Path] = (),
        *,
        strict: bool = False,
        counter: Callable[[str], int] | None = None,
    ) -> None:
        """``counter(key)`` returns how often ``key`` was counted before and counts it once more;
        by default this store counts in memory (the mock's workers share one counter)."""
        if isinstance(paths, (str, Path)):
            paths = [paths]
        self.strict = strict
        self.cassettes: list[Cassette] = []
        self._by_name: dict[str, Cassette] = {}
        self._counts: dict[str, int] = {}
        self._counter = counter or self._count
        for path in _cassette_files(paths):
            self.add(load_cassette(path))

    def _count(self, key: str) -> int:
        n = self._counts.get(key, 0)
        self._counts[key] = n + 1
        return n

    def __len__(self) -> int:
        return len(self.cassettes)

    def __repr__(self) -> str:
        return f"CassetteStore({len(self.cassettes)} cassettes, strict={self.strict})"

    def add(self, cassette: Cassette) -> None:
        """Add one cassette after those already loaded; names must be unique."""
        other = self._by_name.get(cassette.name)
        if other is not None:
            raise CassetteError(
                f"{cassette.path or cassette.name}: duplicate cassette name {cassette.name!r} "
                f"(also in {other.path or 'another cassette'}); rename one of them"
            )
        self._by_name[cassette.name] = cassette
        self.cassettes.append(cassette)

    def get(self, name: str) -> Cassette:
        """The cassette called ``name`` (for ``X-Mock-Cassette``)."""
        try:
            return self._by_name[name]
        except KeyError:
            known = ", ".join(sorted(self._by_name)) or "none loaded"
            raise UnknownCassetteError(f"no cassette named {name!r} (known: {known})") from None

    def models(self) -> list[str]:
        """Models named in cassette match keys, sorted."""
        return sorted({c.match["model"] for c in self.cassettes if "model" in c.match})

    def reset(self) -> None:
        """Rewind every repeat counter kept here, so sequences start again from their first
        cassette (a shared counter is reset where it is kept)."""
        self._counts.clear()

    def match(
        self, request_json: Mapping[str, Any], transport: str, api: str = "chat"
    ) -> Cassette | None:
        """The cassette answering this request (its chat-completions form) over ``transport``
        ("sse", "ws" or "json") in ``api``: among equally specific ones, one recorded in the
        same API first, then over the same transport."""
        servable = _servable(transport)
        norm = normalise_request(request_json)
        candidates = [
            (i, c) for i, c in enumerate(self.cassettes)
            if c.transport in servable and not _differences(c, norm, self.strict)
        ]
        if not candidates:
            return None
        _, best = min(
            candidates,
            key=lambda ic: (-len(ic[1].match), ic[1].api != api, ic[1].transport != transport,
                            ic[0]),
        )
        best_key = _key_id(best.match)
        group = [
            c for _, c in candidates
            if c.transport == best.transport and c.api == best.api
            and _key_id(c.match) == best_key
        ]
        n = self._counter(_key_id([best_key, best.transport, _key_id(norm)]
                                  + ([best.api] if best.api != "chat" else [])))
        return group[n % len(group)]

    def explain(self, request_json: Mapping[str, Any], transport: str) -> str:
        """One line saying why no cassette matches (or which one does)."""
        servable = _servable(transport)
        if not self.cassettes:
            return "no cassettes are loaded"
        pool = [c for c in self.cassettes if c.transport in servable]
        if not pool:
            kinds = ", ".join(sorted({c.transport for c in self.cassettes}))
            return (f"no cassette can answer a {transport} request: the loaded cassettes are "
                    f"{kinds} (json cassettes answer only non-streaming requests)")
        norm = normalise_request(request_json)
        scored = []
        for i, c in enumerate(pool):
            diffs = _differences(c, norm, self.strict)
            scored.append((len(diffs), -_likeness(diffs[0], norm, c.match) if diffs else 0, i, c))
        n_diffs, _, _, closest = min(scored, key=lambda t: t[:3])
        label = f"{closest.name!r}" + (f" ({closest.path.name})" if closest.path else "")
        if n_diffs == 0:
            return f"cassette {label} matches this {transport} request"
        field_name = _differences(closest, norm, self.strict)[0]
        return (f"no cassette matches this {transport} request; closest is {label}: "
                f"{_describe(field_name, norm, closest.match, self.strict)}")


def _likeness(name: str, norm: dict[str, Any], match: dict[str, Any]) -> float:
    """How alike the request's and the cassette's values of one field are (0..1)."""
    if name not in norm or name not in match:
        return 0.0
    got, want = (v if isinstance(v, str) else _key_id(v) for v in (norm[name], match[name]))
    return difflib.SequenceMatcher(None, got[:2000], want[:2000], autojunk=False).ratio()


def _servable(transport: str) -> tuple[str, ...]:
    try:
        return SERVABLE[transport]
    except KeyError:
        raise ValueError(
            f"transport must be one of {', '.join(TRANSPORTS)}, got {transport!r}"
        ) from None


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else _key_id(value)
    text = text.replace("\n", "\\n")
    return json.dumps(text[:limit] + ("…" if len(text) > limit else ""), ensure_ascii=False)


def _describe_str(label: str, got: str, want: str) -> str:
    pairs = enumerate(zip(got, want, strict=False))
    pos = next((i for i, (a, b) in pairs if a != b), min(len(got), len(want)))
    start = max(0, pos - 20)
    return (f"{label} differs at character {pos}: request {_short(got[start:start + 60])} vs "
            f"cassette {_short(want[start:start + 60])}")


def _describe(name: str, norm: dict[str, Any], match: dict[str, Any], strict: bool) -> str:
    if name not in match:
        return (f"the request sets {name}={_short(norm[name])}, which the cassette does not "
                f"record (strict mode)")
    want = match[name]
    if name not in norm:
        return f"the request has no {name}; the cassette wants {name}={_short(want)}"
    got = norm[name]
    if isinstance(got, str) and isinstance(want, str):
        return _describe_str(name, got, want)
    if name == "messages":
        if len(got) != len(want):
            return f"messages count differs: request has {len(got)}, cassette has {len(want)}"
        for i, (a, b) in enumerate(zip(got, want, strict=True)):
            if a == b:
                continue
            if not (isinstance(a, dict) and isinstance(b, dict)):
                return f"messages[{i}] differs: request {_short(a)} vs cassette {_short(b)}"
            for key in sorted(set(a) | set(b)):
                if a.get(key) != b.get(key):
                    label = f"messages[{i}].{key}"
                    if isinstance(a.get(key), str) and isinstance(b.get(key), str):
                        return _describe_str(label, a[key], b[key])
                    return (f"{label} differs: request {_short(a.get(key))} vs cassette "
                            f"{_short(b.get(key))}")
    return f"{name} differs: request {_short(got)} vs cassette {_short(want)}"
