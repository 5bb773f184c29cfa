"""Prompt interpolation for ``%%holy``: ``{name}``, ``{obj.attr}``, ``{In[3]}``, ``{Out[2]}``.

Prompts are full of braces that are not fields — code, JSON, f-strings, ``{x + 1}``, ``{0}`` —
so only a field naming a value that exists (not a function or module) is replaced; everything
else stays exactly as written and nothing raises. ``{{name}}`` writes a literal ``{name}``.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["interpolate"]

_FIELD = r"(?:(?P<hist>In|Out)\[(?P<index>-?\d+)\]|(?P<name>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*))"
_ESCAPED = _FIELD.replace("?P<", "?P<e_")  # same shape, other group names
_PATTERN = re.compile(r"\{\{(?P<escaped>" + _ESCAPED + r")\}\}|\{" + _FIELD + r"\}")
_MISSING = object()


def _lookup(namespace: Mapping[str, Any], match: re.Match[str]) -> Any:
    """The value a field names, or ``_MISSING``."""
    if match.group("hist"):
        table = namespace.get(match.group("hist"))
        index = int(match.group("index"))
        try:
            return table[index]  # In is a list (negative indices work), Out a dict
        except (TypeError, KeyError, IndexError):
            return _MISSING
    root, *attrs = match.group("name").split(".")
    value = namespace.get(root, _MISSING)
    for attr in attrs:
        if value is _MISSING or attr.startswith("_"):
            return _MISSING
        try:
            value = getattr(value, attr)
        except Exception:  # a property may raise anything; the field then stays as written
            return _MISSING
    return value


def interpolate(prompt: str, namespace: Mapping[str, Any]) -> str:
    """Replace fields that name a variable (or In/Out entry) in ``namespace``; keep the rest."""

    def replace(match: re.Match[str]) -> str:
        if match.group("escaped") is not None:
            return "{" + match.group("escaped") + "}"
        value = _lookup(namespace, match)
        if value is _MISSING or inspect.isroutine(value) or inspect.ismodule(value):
            # Functions and modules are code, not data: ``{print}`` in a snippet stays as is.
            return match.group(0)
        try:
            return str(value)
        except Exception:  # a broken __str__ must not break the prompt
            return match.group(0)

    return _PATTERN.sub(replace, prompt)
