"""Event payloads and emission.

Payload shapes follow the host's contract (see AMPLIFIER.md): the usage keys in
`llm:response` are normative, and raw payloads are redacted before they leave.
"""

from __future__ import annotations

import logging
from typing import Any

from amplifier_core.utils import redact_secrets

from .redaction import Scrubber
from .reply.assemble import BlockEvent

logger = logging.getLogger(__name__)

LLM_REQUEST = "llm:request"
LLM_RESPONSE = "llm:response"
PROVIDER_RETRY = "provider:retry"
TOOL_SEQUENCE_REPAIRED = "provider:tool_sequence_repaired"
PROMPT_PROGRESS = "provider:prompt_progress"
STREAM_BLOCK_START = "llm:stream_block_start"
STREAM_BLOCK_DELTA = "llm:stream_block_delta"
STREAM_BLOCK_END = "llm:stream_block_end"
STREAM_ABORTED = "llm:stream_aborted"


OUR_EVENTS: tuple[str, ...] = (
    LLM_REQUEST,
    LLM_RESPONSE,
    PROVIDER_RETRY,
    TOOL_SEQUENCE_REPAIRED,
    PROMPT_PROGRESS,
    STREAM_BLOCK_START,
    STREAM_BLOCK_DELTA,
    STREAM_BLOCK_END,
    STREAM_ABORTED,
)


def observable_events() -> list[str]:
    """The `observability.events` contribution: the events we emit that the kernel's
    ALL_EVENTS does not already list (hooks-logging registers a handler per name it is
    given, so a name it already knows would be logged twice)."""
    try:
        from amplifier_core.events import ALL_EVENTS
    except ImportError:  # an older kernel: declare everything
        return list(OUR_EVENTS)
    known = set(ALL_EVENTS)
    return [name for name in OUR_EVENTS if name not in known]


class EventSink:
    """Emits events to the coordinator's hooks; a no-op without a coordinator.

    A failing hook must never fail a completion, so emission errors are logged and
    swallowed. Raw payloads go through `redact` before they are emitted.
    """

    __slots__ = ("_emit", "_scrubber")

    def __init__(self, coordinator: Any, scrubber: Scrubber | None = None) -> None:
        hooks = getattr(coordinator, "hooks", None) if coordinator is not None else None
        self._emit = getattr(hooks, "emit", None)
        self._scrubber = scrubber or Scrubber()

    @property
    def active(self) -> bool:
        return self._emit is not None

    async def emit(self, name: str, payload: dict[str, Any]) -> None:
        if self._emit is None:
            return
        try:
            await self._emit(name, payload)
        except Exception:  # a broken hook must not break the turn
            logger.warning("hook for %s failed", name, exc_info=True)

    def redact(self, value: Any) -> Any:
        """Redact secret-named keys (the kernel's rule), then scrub secret values (ours)."""
        return self._scrubber.value(redact_secrets(value))


_PROGRESS_KEYS = ("processed", "total", "cache", "time_ms")


def progress_payload(progress: object) -> dict[str, Any]:
    """The numbers of a llama.cpp prompt_progress object (processed, total, cache, time_ms);
    anything else in it, or of another type, is left out."""
    if type(progress) is not dict:
        return {}
    return {
        key: value for key in _PROGRESS_KEYS if type(value := progress.get(key)) in (int, float)
    }


def usage_payload(usage: Any) -> dict[str, Any]:
    """The normative usage keys for llm:response (never total_tokens)."""
    if usage is None:
        return {}
    out = {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}
    if usage.cache_read_tokens is not None:
        out["cache_read_tokens"] = usage.cache_read_tokens
    if usage.cache_write_tokens is not None:
        out["cache_write_tokens"] = usage.cache_write_tokens
    if usage.cost_usd is not None:
        # A string, as the host's providers give it; the CLI's resume sums this field.
        out["cost_usd"] = str(usage.cost_usd)
    return out


def route_payload(metadata: Any) -> dict[str, Any]:
    """For llm:response: the route a router reported and the rate limits, when told."""
    if not isinstance(metadata, dict):
        return {}
    return {key: metadata[key] for key in ("route", "rate_limit") if key in metadata}


class StreamEmitter:
    """Turns assembler BlockEvents into llm:stream_* events for one complete() call.

    Block indices continue across retry attempts, so a retry after an aborted stream
    forms a new block sequence instead of re-using the indices the UI already showed.
    """

    __slots__ = ("_base", "_next_base", "_request_id", "_sink", "emitted_delta")

    def __init__(self, sink: EventSink, request_id: str) -> None:
        self._sink = sink
        self._request_id = request_id
        self._base = 0
        self._next_base = 0
        self.emitted_delta = False

    def new_attempt(self) -> None:
        self._base = self._next_base
        self.emitted_delta = False

    async def emit(self, events: list[BlockEvent]) -> None:
        sink = self._sink
        rid = self._request_id
        payload: dict[str, Any]
        for ev in events:
            index = self._base + ev.index
            if index >= self._next_base:
                self._next_base = index + 1
            if ev.kind == "delta":
                self.emitted_delta = True
                payload = {
                    "request_id": rid,
                    "block_index": index,
                    "block_type": ev.block_type,
                    "sequence": ev.sequence,
                    "text": ev.text,
                }
                # Once per streamed token: call the hook itself, one coroutine fewer than
                # sink.emit, with the same guarantee that a failing hook is only logged.
                hook = sink._emit
                if hook is not None:
                    try:
                        await hook(STREAM_BLOCK_DELTA, payload)
                    except Exception:
                        logger.warning("hook for %s failed", STREAM_BLOCK_DELTA, exc_info=True)
            elif ev.kind == "start":
                payload = {
                    "request_id": rid,
                    "block_index": index,
                    "block_type": ev.block_type,
                }
                if ev.block_type == "tool_use":
                    payload["name"] = ev.name or ""
                await sink.emit(STREAM_BLOCK_START, payload)
            else:
                await sink.emit(
                    STREAM_BLOCK_END,
                    {"request_id": rid, "block_index": index, "block_type": ev.block_type},
                )

    async def abandon(self, error: BaseException, closing: list[BlockEvent]) -> None:
        """The attempt failed (or was cancelled): after a delta the UI discards what it
        showed (llm:stream_aborted); before one, the blocks that started are ended."""
        if not self.emitted_delta:
            await self.emit(closing)
            return
        self.emitted_delta = False
        await self._sink.emit(
            STREAM_ABORTED,
            {
                "request_id": self._request_id,
                "error": {"type": type(error).__name__, "msg": str(error) or type(error).__name__},
            },
        )
