"""One accumulator for every server dialect, streamed or not.

Contract:
- `feed_chunk(chunk)` takes each parsed streamed chunk and returns the live `BlockEvent`s
  it produced; `feed_body(body)` takes a whole non-streaming response through the same
  code (no events).
- `close(flush=True, complete=False)` ends the stream: it releases held-back text, the
  calls written in the text and the notice for withheld calls, and ends the open block.
  `flush=False` (a failed stream) only ends the open block. `complete=True` says the
  stream ended properly (`[DONE]`) although no chunk carried a finish_reason: the reply
  then finishes as "stop", or "tool_calls" when it has calls. `saw_finish` stays what the
  server said.
- `result()` gives the ordered blocks, the calls to run with parsed arguments, the calls
  withheld from a reply cut by the output limit, usage, and a normalized finish_reason.

Errors: `InBandError` from a feed when the server reports an error inside a 200 response
(an `error` object, or a finish_reason that means the generation failed);
`ArgumentsError` from `result()` for unusable arguments. Malformed input is otherwise
skipped part by part, never raised as KeyError/TypeError/AttributeError.

The parts: blocks.py sequences the blocks and their events, content.py runs message text
through think splitting and text tool-call scanning, toolcalls.py accumulates calls and
holds the merge and finish-reason policies. This module reads the wire shapes.

This is the per-chunk hot path: plain dict `.get` calls, type checks with `type(x) is`,
string fragments collected in lists and joined once, no pydantic.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Literal

from .arguments import ArgumentsError
from .blocks import TEXT, THINKING, Block, BlockEvent, BlockSequence
from .content import ContentPipeline
from .toolcalls import (
    CUT_OFF,
    AssembledToolCall,
    ToolCalls,
    ToolSlot,
    TruncatedToolCall,
    cut_off_notice,
    failed_generation,
    final_finish_reason,
    normalize_finish_reason,
)

__all__ = [
    "AssembledBlock",
    "AssembledResponse",
    "AssembledToolCall",
    "BlockEvent",
    "InBandError",
    "ResponseAssembler",
    "TruncatedToolCall",
    "normalize_finish_reason",
]


class InBandError(Exception):
    """The server reported an error inside a 200 response (`{"error": ...}`)."""

    def __init__(self, payload: object) -> None:
        self.payload = payload
        super().__init__(_error_text(payload))


@dataclass(slots=True)
class AssembledBlock:
    type: Literal["text", "thinking", "tool_call"]
    text: str = ""
    tool_call: AssembledToolCall | None = None


@dataclass(slots=True)
class AssembledResponse:
    blocks: list[AssembledBlock] = field(default_factory=list)
    tool_calls: list[AssembledToolCall] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    finish_reason: str | None = None
    model: str | None = None
    response_id: str | None = None
    saw_finish: bool = False
    # Calls of a reply cut by the output limit: not in tool_calls, shown as a text block.
    truncated_calls: list[TruncatedToolCall] = field(default_factory=list)


class ResponseAssembler:
    """Accumulates one response; see the module docstring."""

    __slots__ = (
        "_blocks",
        "_calls",
        "_content",
        "_finish",
        "_flushed",
        "_model",
        "_notice",
        "_reasoning_fields",
        "_reasoning_seen",
        "_response_id",
        "_saw_finish",
        "_usage",
        "_usage_nonzero",
    )

    def __init__(
        self,
        *,
        reasoning_fields: tuple[str, ...] = ("reasoning_content", "reasoning"),
        offered_tools: Collection[str] = (),
        think_tags: bool = True,
        think_starts_inside: bool = False,
    ) -> None:
        offered = frozenset(offered_tools)
        self._reasoning_fields = reasoning_fields
        self._blocks = BlockSequence()
        self._content = ContentPipeline(
            self._blocks,
            offered,
            think_tags=think_tags,
            think_starts_inside=think_starts_inside,
        )
        self._calls = ToolCalls(offered, self._blocks)
        self._reasoning_seen = False
        self._flushed = False
        self._notice: Block | None = None  # the text block standing in for withheld calls
        self._usage: dict[str, Any] | None = None
        self._usage_nonzero = False
        self._finish: str | None = None
        self._saw_finish = False
        self._model: str | None = None
        self._response_id: str | None = None

    # ----------------------------------------------------------------- public API

    @property
    def saw_finish(self) -> bool:
        """A chunk carried a finish_reason."""
        return self._saw_finish

    @property
    def emitted_delta(self) -> bool:
        return self._blocks.emitted

    def feed_chunk(self, chunk: object) -> list[BlockEvent]:
        """Consume one streamed chunk; return the events it produced (usually one delta)."""
        events: list[BlockEvent] = []
        if type(chunk) is dict:
            self._ingest(chunk, "delta", events)
        return events

    def feed_body(self, body: object) -> None:
        """Consume a whole non-streaming response; produces no events."""
        if type(body) is dict:
            self._ingest(body, "message", None)
        self._flush(None)
        self._blocks.cur = None  # nothing was started live, so close() has nothing to end

    def close(self, *, flush: bool = True, complete: bool = False) -> list[BlockEvent]:
        """End of stream; see the module docstring for `flush` and `complete`."""
        events: list[BlockEvent] = []
        if complete and self._finish is None:
            self._finish = "stop"  # result() makes it "tool_calls" when calls were made
        if flush:
            self._flush(events)
        self._blocks.end(events)
        return events

    def result(self) -> AssembledResponse:
        """Build the final response.

        Raises the first ArgumentsError for unusable arguments, with `.partial` set to the
        response built from everything else (text, thinking, the good calls).
        """
        self._flush(None)
        kept: list[tuple[ToolSlot, AssembledToolCall]] = []
        errors: list[ArgumentsError] = []
        truncated: list[TruncatedToolCall] = []
        if self._finish == CUT_OFF:
            truncated = self._calls.withhold()
        else:
            kept, errors = self._calls.build()
        tool_calls = [call for _, call in kept]
        response = AssembledResponse(
            blocks=self._final_blocks(kept),
            tool_calls=tool_calls,
            usage=self._usage,
            finish_reason=final_finish_reason(self._finish, bool(tool_calls)),
            model=self._model,
            response_id=self._response_id,
            saw_finish=self._saw_finish,
            truncated_calls=truncated,
        )
        if errors:
            error = errors[0]
            error.partial = response  # the turn's text is not lost with the bad call
            raise error
        return response

    # ----------------------------------------------------------------- final blocks

    def _final_blocks(self, kept: list[tuple[ToolSlot, AssembledToolCall]]) -> list[AssembledBlock]:
        content = self._content
        # Text streamed before a stray `</think>` was reasoning: re-split the whole content
        # (not when a reasoning field also spoke: the two could not be ordered).
        resplit = content.reclassified and not self._reasoning_seen
        blocks = [AssembledBlock(kind, text) for kind, text in content.resplit()] if resplit else []
        calls = {id(slot): call for slot, call in kept}
        placed: set[int] = set()
        for block in self._blocks.blocks:
            slot = block.slot
            if slot is None:
                if not resplit or block is self._notice:
                    blocks.append(AssembledBlock(block.kind, "".join(block.parts)))
            elif id(slot) in calls and id(slot) not in placed:
                placed.add(id(slot))
                blocks.append(AssembledBlock("tool_call", "", calls[id(slot)]))
        # Calls whose name never arrived have no block yet; keep them visible at the end.
        blocks += [AssembledBlock("tool_call", "", c) for s, c in kept if id(s) not in placed]
        if self._calls.written:
            # The calls sat on lines of their own: trim what they left (as
            # extract_text_tool_calls does), drop what is now empty.
            blocks = [
                AssembledBlock("text", b.text.strip()) if b.type == "text" else b
                for b in blocks
                if b.type != "text" or b.text.strip()
            ]
        return blocks

    # ----------------------------------------------------------------- ingestion

    def _ingest(self, obj: dict[Any, Any], key: str, events: list[BlockEvent] | None) -> None:
        if obj.get("error") is not None:
            raise InBandError(obj)
        if self._model is None:
            model = obj.get("model")
            if type(model) is str and model:
                self._model = model
        if self._response_id is None:
            rid = obj.get("id")
            if type(rid) is str and rid:  # TGI sends ""
                self._response_id = rid
        usage = obj.get("usage")
        if usage is not None:
            self._take_usage(usage)
        choices = obj.get("choices")
        # Usage trailers, LocalAI mcp_tool_result and SGLang sglext carry no choices.
        if type(choices) is not list or not choices:
            if choices is None and obj.get("object") == "error":
                raise InBandError(obj)  # SGLang / old vLLM error shape
            if usage is None:
                self._groq_usage(obj)
            return
        choice = choices[0]
        if type(choice) is not dict:
            return
        msg = choice.get(key)
        if msg is None:
            # A server that mixes up the two shapes still gets read.
            msg = choice.get("message" if key == "delta" else "delta")
        if type(msg) is dict and msg:
            self._apply_message(msg, events, key == "message")
        reason = choice.get("finish_reason")
        if reason:
            self._take_finish(reason)
            if usage is None:
                self._groq_usage(obj)

    def _groq_usage(self, obj: dict[Any, Any]) -> None:
        # Groq reports usage only in its own field, on the chunk that finishes the reply.
        groq = obj.get("x_groq")
        if type(groq) is dict:
            usage = groq.get("usage")
            if usage is not None:
                self._take_usage(usage)

    def _take_finish(self, reason: object) -> None:
        normalized = normalize_finish_reason(reason)
        if normalized is None:
            return
        failure = failed_generation(normalized, str(reason))
        if failure is not None:
            raise InBandError(failure)
        self._finish = normalized
        self._saw_finish = True

    def _take_usage(self, usage: object) -> None:
        if type(usage) is not dict:
            return
        nonzero = not _all_zero(usage)
        # Old LocalAI sends zero usage on every chunk: zeros never replace real numbers,
        # but zeros alone are still what the server said.
        if nonzero or not self._usage_nonzero:
            self._usage = usage
            self._usage_nonzero = nonzero

    def _apply_message(
        self, msg: dict[Any, Any], events: list[BlockEvent] | None, positional: bool
    ) -> None:
        for name in self._reasoning_fields:
            reasoning = msg.get(name)
            if reasoning and type(reasoning) is str:
                self._thinking(reasoning, events)
                break  # vLLM at times sends the same text under both names
        content = msg.get("content")
        if content:
            if type(content) is str:
                self._content.feed(content, events)
            elif type(content) is list:
                self._content_parts(content, events)
        tool_calls = msg.get("tool_calls")
        if tool_calls:
            self._calls.feed(tool_calls, positional, events)
        else:
            legacy = msg.get("function_call")
            if type(legacy) is dict:
                self._calls.feed([{"index": 0, "function": legacy}], False, events)

    def _thinking(self, text: str, events: list[BlockEvent] | None) -> None:
        self._reasoning_seen = True
        self._blocks.add(THINKING, text, events)

    def _content_parts(self, parts: list[Any], events: list[BlockEvent] | None) -> None:
        # Content as a list of typed parts (Mistral-style thinking, some proxies).
        for part in parts:
            if type(part) is str:
                if part:
                    self._content.feed(part, events)
                continue
            if type(part) is not dict:
                continue
            ptype = part.get("type")
            if ptype in ("thinking", "reasoning"):
                inner = part.get(ptype)
                if type(inner) is list:
                    for sub in inner:
                        text = sub.get("text") if type(sub) is dict else None
                        if text and type(text) is str:
                            self._thinking(text, events)
                    continue
                text = inner if type(inner) is str else part.get("text")
                if text and type(text) is str:
                    self._thinking(text, events)
            elif ptype in ("text", None):
                text = part.get("text")
                if text and type(text) is str:
                    self._content.feed(text, events)

    def _flush(self, events: list[BlockEvent] | None) -> None:
        """Release everything held back, decide the written calls; idempotent."""
        if self._flushed:
            return
        self._flushed = True
        written = self._content.flush(events)
        cut = self._finish == CUT_OFF
        for call in written:
            self._calls.add_written(call, events, show=not cut)
        if cut:
            withheld = self._calls.withhold()
            if withheld:
                self._notice = self._blocks.open(TEXT, events)
                self._blocks.add(TEXT, cut_off_notice(withheld), events)


def _all_zero(usage: dict[Any, Any]) -> bool:
    return not any(type(value) in (int, float) and value for value in usage.values())


def _error_text(payload: object) -> str:
    if type(payload) is dict:
        err = payload.get("error", payload)
        if type(err) is dict:
            msg = err.get("message")
            if type(msg) is str and msg:
                return msg
        elif type(err) is str and err:
            return err
        msg = payload.get("message")
        if type(msg) is str and msg:
            return msg
    return "in-band error from server: " + repr(payload)[:200]
