"""The reply plan: what the model "says" and when, before any API's wire format.

Generated replies (``_generate``) and replies read back from cassettes (``_cassettes.convert``,
whatever API they were recorded in) are a :class:`Reply`; a format (``formats/``) renders one as
the frames of its API — chat completion chunks, Responses events, Anthropic Messages events or
Gemini ``GenerateContentResponse`` chunks — and the fault machinery then acts on those frames.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Reply", "ToolCall"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One function call the reply makes: its id, name, and the argument text in fragments."""

    id: str
    name: str
    arguments: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class Reply:
    """A reply plan: reasoning, answer text, tool calls, usage, finish reason and timing.

    Deltas are streamed in this order: each ``reasoning`` piece, each ``content`` piece, then
    for each tool call one opening delta (id and name) and one per argument fragment.
    ``times`` gives the offset (seconds from the request) of each delta in that order; deltas
    past its end go out with the last one (as the usage chunk does). ``usage`` of None means
    "count it": prompt tokens as given, one completion token per delta; otherwise it is in the
    chat-completions shape whatever API the reply came from. ``echo`` holds the request
    parameters an API repeats in its reply (the Responses object echoes ``instructions``,
    ``tools``, ``previous_response_id``, ...).
    """

    id: str
    created: int
    model: str
    content: Sequence[str]
    reasoning: Sequence[str] = ()
    tool_calls: Sequence[ToolCall] = ()
    finish_reason: str | None = "stop"
    prompt_tokens: int = 0
    include_usage: bool = False
    times: Sequence[float] = ()
    fingerprint: str | None = None
    usage: dict[str, Any] | None = field(default=None)
    echo: Mapping[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The whole answer text."""
        return "".join(self.content)

    @property
    def end(self) -> float:
        """The offset of the last delta (0 when there are none)."""
        return self.times[-1] if self.times else 0.0

    def deltas(self) -> Iterator[tuple[float, str, int, str]]:
        """Every delta in stream order as ``(offset, kind, n, text)``: kind ``"reasoning"`` or
        ``"content"`` (n is 0), ``"call"`` (the opening of tool call n; text is "") or
        ``"args"`` (a fragment of tool call n's arguments)."""
        times, end = self.times, self.end
        count = len(times)
        i = 0
        for kind, pieces in (("reasoning", self.reasoning), ("content", self.content)):
            for text in pieces:
                yield (times[i] if i < count else end), kind, 0, text
                i += 1
        for n, call in enumerate(self.tool_calls):
            yield (times[i] if i < count else end), "call", n, ""
            i += 1
            for text in call.arguments:
                yield (times[i] if i < count else end), "args", n, text
                i += 1

    def counts(self) -> tuple[int, int, int]:
        """(prompt, completion, reasoning) tokens, from ``usage`` when it was given."""
        usage = self.usage_body()
        details = usage.get("completion_tokens_details") or {}
        return (int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0),
                int(details.get("reasoning_tokens") or 0))

    def usage_body(self) -> dict[str, Any]:
        """The OpenAI ``usage`` object (with ``completion_tokens_details`` when it reasons)."""
        if self.usage is not None:
            return self.usage
        reasoning = len(self.reasoning)
        # One per delta, tool calls included (an opening delta, then each argument fragment).
        calls = sum(1 + len(call.arguments) for call in self.tool_calls)
        completion = reasoning + len(self.content) + calls
        body: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        }
        if reasoning:
            body["completion_tokens_details"] = {"reasoning_tokens": reasoning}
        return body
