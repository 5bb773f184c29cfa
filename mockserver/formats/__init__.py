"""API formats: each renders a :class:`~mockserver._reply.Reply` as its API's frames.

A format knows one API's wire: how its requests look (parsing and validation into a request
record the pipeline reads), how a reply plan becomes frames for each path (``sse``, ``ws``,
``json``), what its end marker, in-stream errors and broken frames are (a
:class:`~mockserver._faults.FrameKit` for the fault machinery) and how its errors are shaped.
Chat completions is :mod:`mockserver.formats.chat`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Protocol

from .._errors import MockError
from .._faults import FrameKit
from .._frames import Frame
from .._reply import Reply

__all__ = ["Format", "Request", "parse_json"]


class Request(Protocol):
    """What the pipeline reads of a parsed request, whatever its API."""

    model: str
    messages: list[dict[str, Any]]  # the conversation, for matching and generated text
    stream: bool
    max_tokens: int | None
    include_usage: bool
    raw: dict[str, Any]


class Format(Protocol):
    """One API's wire, as a module (``formats.chat`` is one): the pipeline parses requests and
    renders reply plans through it; the fault machinery reads its :class:`FrameKit`."""

    def parse_request(self, body: Any) -> Request:
        """A decoded body as this API's request; a 400 :class:`MockError` naming the bad field."""

    def reply_frames(self, r: Reply, path: str) -> Iterator[Frame]:
        """A reply plan as frames for ``path`` ("sse", "ws" or "json")."""

    def frame_kit(self, path: str) -> FrameKit:
        """What this API's end marker, in-stream error and broken frame look like."""

    def ws_error(self, err: MockError) -> str:
        """An error as a WebSocket message."""

    def recorded_ws_error(self, raw: bytes, status: int) -> str:
        """A recorded HTTP error body as a WebSocket message."""


def parse_json(data: bytes | str, *, hint: str = "Send a JSON object.") -> Any:
    """Decode a JSON body or frame; raise a 400 :class:`MockError` saying what is wrong."""
    try:
        # Decode explicitly: json.loads(bytes) would guess UTF-16/32 from a BOM.
        return json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
    except UnicodeDecodeError:
        raise MockError(400, "The body is not valid UTF-8; send UTF-8 encoded JSON.") from None
    except json.JSONDecodeError as exc:
        raise MockError(
            400,
            f"We could not parse the JSON body of your request ({exc.msg} at line {exc.lineno} "
            f"column {exc.colno}). {hint}",
            code="invalid_json",
        ) from None
    except (ValueError, RecursionError):
        # Valid JSON the decoder refuses: nesting past the recursion limit, or an integer
        # longer than Python's int-conversion limit (4300 digits).
        raise MockError(
            400,
            "We could not parse the JSON body of your request: it is nested too deeply or holds "
            f"a number too long to read. {hint}",
            code="invalid_json",
        ) from None
