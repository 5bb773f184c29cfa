"""API formats: each renders a :class:`~mockserver._reply.Reply` as its API's frames.

A format knows one API's wire: how its requests look (parsing and validation into a request
record the pipeline reads), how a reply plan becomes frames for each path (``sse``, ``ws``,
``json``), what its end marker, in-stream errors and broken frames are (a
:class:`~mockserver._faults.FrameKit` for the fault machinery) and how its errors are shaped.
Chat completions is :mod:`mockserver.formats.chat`.
"""

from __future__ import annotations

import json
from typing import Any

from .._errors import MockError

__all__ = ["parse_json"]


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
