"""What the notebook faces remember of a reply, for the next turn of a conversation.

A reply's ``.message`` (the client's, for every API) is in chat form, with the API's own
reasoning blocks under ``thinking_blocks``: Anthropic thinking blocks with their signatures,
Responses reasoning items. They go back with the turn, so the next request carries them as the
API expects; each API sends back the blocks it knows and leaves the others out, so one
conversation can change API between turns. Tool calls are not sent back: the faces run no tools,
and every API refuses a tool call that no tool result follows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from holynb._apis.base import THINKING_BLOCKS

__all__ = ["remembered"]


def remembered(message: Mapping[str, Any]) -> dict[str, Any] | None:
    """The assistant turn to send back for ``message``; None when it has no text (a reply that
    only called tools leaves nothing to send)."""
    content = message.get("content")
    if not content:
        return None
    turn: dict[str, Any] = {"role": "assistant", "content": content}
    blocks = message.get(THINKING_BLOCKS)
    if blocks:
        turn[THINKING_BLOCKS] = [dict(block) for block in blocks]
    return turn
