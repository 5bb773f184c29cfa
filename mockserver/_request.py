"""Validation of chat-completions requests into a small typed record."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ._errors import MockError

__all__ = ["MAX_TOKENS_LIMIT", "ChatRequest", "parse_chat_request", "parse_json"]

MAX_TOKENS_LIMIT = 100_000
_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """The parts of a chat-completions request the mock acts on, plus the raw JSON."""

    model: str
    messages: list[dict[str, Any]]
    stream: bool
    max_tokens: int | None
    include_usage: bool
    raw: dict[str, Any]


def _bad(message: str, param: str | None = None, code: str | None = None) -> MockError:
    return MockError(400, message, "invalid_request_error", param, code)


def parse_json(data: bytes | str) -> Any:
    """Decode a JSON body or frame; raise a 400 :class:`MockError` saying what is wrong."""
    try:
        # Decode explicitly: json.loads(bytes) would guess UTF-16/32 from a BOM.
        return json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
    except UnicodeDecodeError:
        raise _bad("The body is not valid UTF-8; send UTF-8 encoded JSON.") from None
    except json.JSONDecodeError as exc:
        raise _bad(
            f"We could not parse the JSON body of your request ({exc.msg} at line {exc.lineno} "
            f"column {exc.colno}). Send a JSON object with 'model' and 'messages'.",
            code="invalid_json",
        ) from None
    except (ValueError, RecursionError):
        # Valid JSON the decoder refuses: nesting past the recursion limit, or an integer
        # longer than Python's int-conversion limit (4300 digits).
        raise _bad(
            "We could not parse the JSON body of your request: it is nested too deeply or holds "
            "a number too long to read. Send a JSON object with 'model' and 'messages'.",
            code="invalid_json",
        ) from None


def parse_chat_request(body: Any) -> ChatRequest:
    """Check a decoded request body; raise a 400 :class:`MockError` naming the bad field."""
    if not isinstance(body, dict):
        raise _bad(
            f"The request body must be a JSON object, got {type(body).__name__}.",
            code="invalid_type",
        )
    model = body.get("model")
    if model is None:
        raise _bad("you must provide a model parameter", "model", "missing_required_parameter")
    if not isinstance(model, str) or not model.strip():
        raise _bad("'model' must be a non-empty string.", "model", "invalid_type")
    messages = body.get("messages")
    if messages is None:
        raise _bad(
            "Missing required parameter: 'messages'.", "messages", "missing_required_parameter"
        )
    if not isinstance(messages, list) or not messages:
        raise _bad("'messages' must be a non-empty array of message objects.", "messages",
                   "invalid_type")
    for i, msg in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise _bad(f"'{param}' must be an object with 'role' and 'content'.", param,
                       "invalid_type")
        role = msg.get("role")
        if not isinstance(role, str) or role not in _ROLES:
            raise _bad(
                f"'{param}.role' must be one of {sorted(_ROLES)}, got {role!r}.",
                f"{param}.role",
                "invalid_value",
            )
        content = msg.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise _bad(f"'{param}.content' must be a string or an array of parts.",
                       f"{param}.content", "invalid_type")
        for j, part in enumerate(content if isinstance(content, list) else ()):
            # Cassette matching joins the text parts: a non-string text must be refused here.
            if not isinstance(part, dict) or (
                part.get("type") == "text" and not isinstance(part.get("text"), str)
            ):
                raise _bad(f"'{param}.content[{j}]' must be an object; a text part needs a "
                           "string 'text'.", f"{param}.content[{j}]", "invalid_type")
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise _bad("'stream' must be a boolean.", "stream", "invalid_type")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    param = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    if max_tokens is not None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
            raise _bad(f"'{param}' must be an integer.", param, "invalid_type")
        if not 1 <= max_tokens <= MAX_TOKENS_LIMIT:
            raise _bad(
                f"'{param}' must be between 1 and {MAX_TOKENS_LIMIT}, got {max_tokens}.",
                param,
                "invalid_value",
            )
    options = body.get("stream_options")
    include_usage = False
    if options is not None:
        if not isinstance(options, dict):
            raise _bad("'stream_options' must be an object.", "stream_options", "invalid_type")
        include_usage = options.get("include_usage", False)
        if not isinstance(include_usage, bool):
            raise _bad("'stream_options.include_usage' must be a boolean.",
                       "stream_options.include_usage", "invalid_type")
    for name in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise _bad(f"'{name}' must be a number.", name, "invalid_type")
    return ChatRequest(model, messages, stream, max_tokens, include_usage, body)
