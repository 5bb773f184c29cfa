"""Every API format by the name the journal and cassette files use."""

from __future__ import annotations

from types import MappingProxyType

from . import Format, anthropic, chat, gemini, responses

__all__ = ["APIS", "FORMATS"]

FORMATS: MappingProxyType[str, Format] = MappingProxyType({
    "chat": chat,  # type: ignore[dict-item]
    "responses": responses,  # type: ignore[dict-item]
    "anthropic": anthropic,  # type: ignore[dict-item]
    "gemini": gemini,  # type: ignore[dict-item]
    "gemini-array": gemini.ARRAY,
})
APIS = tuple(FORMATS)
