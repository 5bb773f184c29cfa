"""The sync client: a thin layer over AsyncClient running on a private event loop thread.

Like IPython's ``%%script``, the async work runs on an event loop in a daemon thread, so the
sync API also works where a loop is already running in this thread (Jupyter). Deltas cross
threads in batches (everything already received), not one hop per token. ``on_retry``
callbacks run in the calling thread.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from holynb._bridge import Runner as _Runner
from holynb._client import AsyncClient, CompletionResult
from holynb._events import StreamEvent
from holynb._retry import RetryEvent
from holynb._stats import StreamStats
from holynb._stream import AsyncStream

__all__ = ["Client", "Stream"]

T = TypeVar("T")


class Stream:
    """A streamed chat completion for sync code: ``with c.stream(...) as s: for d in s``."""

    def __init__(self, runner: _Runner, astream: AsyncStream, events: queue.SimpleQueue[Any],
                 on_retry: Callable[[RetryEvent], Any] | None) -> None:
        self._runner = runner
        self._astream = astream
        self._events = events
        self._on_retry = on_retry
        self._entered = False

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._runner.run(
            coro, events=self._events, on_event=self._deliver, on_interrupt=self._astream.aclose
        )

    def _deliver(self, event: RetryEvent) -> None:
        if self._on_retry is not None:
            self._on_retry(event)

    def __enter__(self) -> Stream:
        self._run(self._astream.start())
        self._entered = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[str]:
        """Iterate the answer text, delta by delta."""
        return self._iterate(self._astream.next_deltas)

    def events(self) -> Iterator[StreamEvent]:
        """Iterate typed events (content, reasoning, tool-call deltas) in wire order."""
        return self._iterate(self._astream.next_events)

    def _iterate(self, next_batch: Callable[[], Coroutine[Any, Any, list[Any]]]) -> Iterator[Any]:
        owned = not self._entered
        try:
            if owned:
                self.__enter__()
            while True:
                batch = self._run(next_batch())
                if not batch:
                    return
                yield from batch
        finally:
            if owned:
                self.close()

    def close(self) -> None:
        """Stop the stream; if it is still running, the upstream connection is closed now."""
        self._runner.wait(self._astream.aclose())

    @property
    def text(self) -> str:
        """All text received so far."""
        return self._astream.text

    @property
    def reasoning(self) -> str:
        """All thinking text received so far ('' if none)."""
        return self._astream.reasoning

    @property
    def finish_reason(self) -> str | None:
        """``stop``, ``length``, ``tool_calls``... once the server sent it (normalised)."""
        return self._astream.finish_reason

    @property
    def raw_finish_reason(self) -> str | None:
        """The API's own finish value (``end_turn``, ``max_output_tokens``...)."""
        return self._astream.raw_finish_reason

    @property
    def usage(self) -> dict[str, Any] | None:
        """Token usage in chat-completions form, if the server sent it."""
        return self._astream.usage

    @property
    def raw_usage(self) -> dict[str, Any] | None:
        """The usage object as the API sent it."""
        return self._astream.raw_usage

    @property
    def message(self) -> dict[str, Any]:
        """The reply as an assistant message to append to the conversation."""
        return self._astream.message

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        """Tool calls accumulated from the deltas, in OpenAI format."""
        return self._astream.tool_calls

    @property
    def stats(self) -> StreamStats:
        """Timing and size figures (see docs/client.md)."""
        return self._astream.stats

    @property
    def model(self) -> str:
        """The model that answered (or the one requested)."""
        return self._astream.model

    @property
    def api(self) -> str:
        """``"chat"``, ``"responses"`` or ``"messages"``."""
        return self._astream.api

    @property
    def transport(self) -> str:
        """``"sse"`` or ``"ws"``."""
        return self._astream.transport

    @property
    def done(self) -> bool:
        """True once the stream ended normally."""
        return self._astream.done

    def __repr__(self) -> str:
        return repr(self._astream).replace("<AsyncStream", "<Stream", 1)


class Client:
    """Sync twin of :class:`AsyncClient` (same keywords): ``with Client() as c:``."""

    def __init__(self, *args: Any, on_retry: Callable[[RetryEvent], Any] | None = None,
                 **kwargs: Any) -> None:
        self._aclient = AsyncClient(*args, **kwargs)
        self._on_retry = on_retry
        self._runner = _Runner()
        self._finalizer = self._runner.finalizer(self, self._aclient.aclose)

    @property
    def base_url(self) -> str:
        """The API base URL in use."""
        return self._aclient.base_url

    @property
    def model(self) -> str:
        """The default model."""
        return self._aclient.model

    @property
    def transport(self) -> str:
        """The default transport (``"sse"`` or ``"ws"``)."""
        return self._aclient.transport

    @property
    def api(self) -> str:
        """The default API (``"chat"``, ``"responses"`` or ``"messages"``)."""
        return self._aclient.api

    def __repr__(self) -> str:
        return repr(self._aclient).replace("AsyncClient(", "Client(", 1)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close pooled connections (also done when the client is collected or at exit)."""
        self._finalizer.detach()
        self._runner.wait(self._aclient.aclose())

    def stream(
        self,
        messages_or_prompt: str | Sequence[Mapping[str, Any]],
        *,
        on_retry: Callable[[RetryEvent], Any] | None = None,
        **kwargs: Any,
    ) -> Stream:
        """Start a streamed reply (same arguments as ``AsyncClient.stream``)."""
        events: queue.SimpleQueue[Any] = queue.SimpleQueue()
        callback = self._on_retry if on_retry is None else on_retry
        astream = self._aclient.stream(messages_or_prompt, on_retry=events.put, **kwargs)
        return Stream(self._runner, astream, events, callback)

    def complete(
        self,
        messages_or_prompt: str | Sequence[Mapping[str, Any]],
        *,
        on_retry: Callable[[RetryEvent], Any] | None = None,
        **kwargs: Any,
    ) -> CompletionResult:
        """Ask for a whole reply, not streamed (same arguments as ``AsyncClient.complete``)."""
        events: queue.SimpleQueue[Any] = queue.SimpleQueue()
        callback = self._on_retry if on_retry is None else on_retry
        coro = self._aclient.complete(messages_or_prompt, on_retry=events.put, **kwargs)
        return self._runner.run(coro, events=events, on_event=callback)

    def models(self, *, api: str | None = None) -> list[str]:
        """The model ids the server offers (for ``api``, default the client's)."""
        return self._runner.run(self._aclient.models(api=api))
