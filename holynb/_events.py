"""Typed stream events: what ``AsyncStream.events()`` yields, in wire order.

Plain iteration over a stream yields the answer text (``str``) only; ``events()`` also shows
the model's thinking and tool-call fragments, for front ends that display them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

__all__ = ["ContentDelta", "ReasoningDelta", "StreamEvent", "ToolCallDelta"]


@dataclass(frozen=True, slots=True)
class ContentDelta:
    """A piece of the answer text."""

    text: str
    type: ClassVar[str] = "content"


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of the model's thinking (``delta.reasoning_content`` / ``delta.reasoning``)."""

    text: str
    type: ClassVar[str] = "reasoning"


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """One fragment of one tool call; ``index`` is the call's position in ``tool_calls``."""

    index: int
    id: str | None
    name: str | None
    arguments: str
    type: ClassVar[str] = "tool_call"


StreamEvent = ContentDelta | ReasoningDelta | ToolCallDelta
