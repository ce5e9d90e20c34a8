"""One accumulator for every server dialect, streamed or not.

`ResponseAssembler.feed_chunk` takes each parsed streamed chunk and returns the live
`BlockEvent`s it produced; `feed_body` takes a whole non-streaming response and runs it
through the same code (no events). `result()` gives the ordered blocks, tool calls with
parsed arguments, usage, and a normalized finish_reason.

This is the per-chunk hot path: plain dict `.get` calls, type checks with `type(x) is`,
string fragments collected in lists and joined once, no pydantic. Malformed input is
skipped part by part, never raised as KeyError/TypeError/AttributeError; the only errors
are `InBandError` (the server said so) and `ArgumentsError` from `result()`.

Salvage (issue 4): `content` goes through `ThinkSplitter` (`<think>`, `[thinking]\n`) and,
when the request offered tools, its text pieces through `TextCallScanner` (tool calls the
server did not parse). Held-back text is released once decided, never twice; extracted
calls become tool calls at `close()` (or when a think block starts, or in `feed_body`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Literal

from .arguments import ArgumentsError, canonical_tool_name, parse_arguments
from .textcalls import TextCallScanner, TextToolCall, extract_text_tool_calls
from .thinking import ThinkSplitter, split_thinking

__all__ = [
    "AssembledBlock",
    "AssembledResponse",
    "AssembledToolCall",
    "BlockEvent",
    "InBandError",
    "ResponseAssembler",
    "normalize_finish_reason",
]

BlockType = Literal["text", "thinking", "tool_use"]

# Block kinds; compared by identity on the hot path.
_TEXT: BlockType = "text"
_THINKING: BlockType = "thinking"
_TOOL: BlockType = "tool_use"

_FINISH_ALIASES: dict[str, str] = {
    "stop": "stop",
    "eos": "stop",
    "eos_token": "stop",  # TGI
    "stop_sequence": "stop",  # TGI, Anthropic-backed proxies
    "end_turn": "stop",
    "length": "length",
    "max_tokens": "length",
    "max_length": "length",  # TGI
    "tool_calls": "tool_calls",
    "tool_use": "tool_calls",
    "function_call": "tool_calls",  # legacy functions API
    "content_filter": "content_filter",
}


@dataclass(slots=True)
class BlockEvent:
    """One live streaming event; maps 1:1 onto an `llm:stream_block_*` event."""

    kind: Literal["start", "delta", "end"]
    index: int  # one shared 0-based block_index space across block types
    block_type: BlockType
    text: str = ""  # delta only, never empty
    sequence: int = 0  # delta only, 0-based per block
    name: str | None = None  # tool_use start only


class InBandError(Exception):
    """The server reported an error inside a 200 response (`{"error": ...}`)."""

    def __init__(self, payload: object) -> None:
        self.payload = payload
        super().__init__(_error_text(payload))


@dataclass(slots=True)
class AssembledToolCall:
    id: str
    name: str
    arguments: dict[str, Any]
    raw_arguments: str


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


def normalize_finish_reason(value: object) -> str | None:
    """Map server-specific stop reasons onto the OpenAI vocabulary.

    None for "not finished" (null, "" from old LocalAI, junk types). Unknown strings are
    kept as they are rather than guessed.
    """
    if type(value) is not str or not value:
        return None
    return _FINISH_ALIASES.get(value) or _FINISH_ALIASES.get(value.lower(), value)


class _Block:
    __slots__ = ("index", "kind", "parts", "seq", "slot")

    def __init__(self, index: int, kind: BlockType, slot: _ToolSlot | None) -> None:
        self.index = index
        self.kind = kind
        self.parts: list[str] = []
        self.seq = 0
        self.slot = slot


class _ToolSlot:
    __slots__ = ("error", "frags", "id", "index", "name", "nchars", "obj", "order", "synth_id")

    def __init__(self, index: int | None, order: int) -> None:
        self.index = index
        self.order = order  # creation order: tie-break and order for index-less calls
        self.id = ""
        self.name = ""
        self.frags: list[str] = []
        self.nchars = 0
        self.obj: dict[str, Any] | None = None
        self.synth_id: str | None = None  # fixed once so result() is repeatable
        self.error: ArgumentsError | None = None  # a text call whose arguments were unusable

    def add_arguments(self, args: object) -> None:
        if type(args) is str:
            if not args:
                return
            n = len(args)
            # Some servers repeat the whole arguments on every delta; a repeat is the only
            # way a fragment can equal everything so far and still leave complete JSON.
            if n == self.nchars:
                acc = "".join(self.frags)
                if acc == args and _is_json_object(acc):
                    return
            self.frags.append(args)
            self.nchars += n
        elif type(args) is dict and (args or not self.frags):
            # An object (TGI, Amazon) wins over string fragments; an empty one adds nothing.
            self.obj = args

    def has_content(self) -> bool:
        return bool(self.name or self.frags or self.obj)


class ResponseAssembler:
    """Accumulates one response; see the module docstring."""

    __slots__ = (
        "_blocks",
        "_by_id",
        "_by_index",
        "_cur",
        "_emitted",
        "_finish",
        "_flushed",
        "_last_slot",
        "_model",
        "_offered",
        "_raw",
        "_reasoning_fields",
        "_reasoning_seen",
        "_response_id",
        "_saw_finish",
        "_scanner",
        "_scanner_fed",
        "_slots",
        "_splitter",
        "_text_calls",
        "_usage",
        "_usage_nonzero",
        "_ws",
    )

    def __init__(
        self,
        *,
        reasoning_fields: tuple[str, ...] = ("reasoning_content", "reasoning"),
        offered_tools: Collection[str] = (),
        think_tags: bool = True,
        think_starts_inside: bool = False,
    ) -> None:
        self._reasoning_fields = reasoning_fields
        self._offered: frozenset[str] = frozenset(offered_tools)
        # None when off, so the content path skips them entirely.
        self._splitter = ThinkSplitter(True, think_starts_inside) if think_tags else None
        self._scanner = TextCallScanner(self._offered) if self._offered else None
        self._scanner_fed = False
        self._raw: list[str] = []  # every content fragment, to re-split when reclassified
        self._ws = ""  # whitespace that would open a text block of its own (held)
        self._flushed = False
        self._reasoning_seen = False
        self._text_calls = 0
        self._blocks: list[_Block] = []
        self._cur: _Block | None = None
        self._slots: list[_ToolSlot] = []
        self._by_index: dict[int, _ToolSlot] = {}
        self._by_id: dict[str, _ToolSlot] = {}
        self._last_slot: _ToolSlot | None = None
        self._usage: dict[str, Any] | None = None
        self._usage_nonzero = False
        self._finish: str | None = None
        self._saw_finish = False
        self._emitted = False
        self._model: str | None = None
        self._response_id: str | None = None

    # ----------------------------------------------------------------- public API

    @property
    def saw_finish(self) -> bool:
        return self._saw_finish

    @property
    def emitted_delta(self) -> bool:
        return self._emitted

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
        self._cur = None  # nothing was started live, so close() has nothing to end

    def close(self, *, flush: bool = True) -> list[BlockEvent]:
        """End of stream: release held-back text and text tool calls, end the open block.

        `flush=False` (a failed stream) only ends the open block: text held back as a
        possible tool call is not shown for a reply that did not finish.
        """
        events: list[BlockEvent] = []
        if flush:
            self._flush(events)
        cur = self._cur
        if cur is not None:
            self._cur = None
            events.append(BlockEvent("end", cur.index, cur.kind))
        return events

    def result(self) -> AssembledResponse:
        """Build the final response.

        Raises the first ArgumentsError for unusable arguments, with `.partial` set to the
        response built from everything else (text, thinking, the good calls).
        """
        self._flush(None)
        calls: dict[int, AssembledToolCall] = {}  # keyed by id() of the slot
        kept: list[tuple[_ToolSlot, AssembledToolCall]] = []
        errors: list[ArgumentsError] = []
        seen_ids: set[str] = set()
        ordered = sorted(
            (s for s in self._slots if s.has_content()),
            key=lambda s: (s.index is None, s.index or 0, s.order),
        )
        for slot in ordered:
            try:
                call = self._build_call(slot, seen_ids)
            except ArgumentsError as exc:
                errors.append(exc)
                continue
            if any(c.name == call.name and c.arguments == call.arguments for _, c in kept):
                continue  # LocalAI repeats the same call at several indices
            seen_ids.add(call.id)
            kept.append((slot, call))
            calls[id(slot)] = call

        splitter = self._splitter
        # Text streamed before a stray `</think>` was reasoning: re-split the whole content
        # (not when a reasoning field also spoke: the two could not be ordered).
        resplit = splitter is not None and splitter.reclassified and not self._reasoning_seen
        blocks: list[AssembledBlock] = self._resplit() if resplit else []
        placed: set[int] = set()
        for block in self._blocks:
            slot = block.slot
            if slot is None:
                if not resplit:
                    blocks.append(AssembledBlock(block.kind, "".join(block.parts)))
            else:
                call = calls.get(id(slot))
                if call is not None and id(slot) not in placed:
                    placed.add(id(slot))
                    blocks.append(AssembledBlock("tool_call", "", call))
        # Calls whose name never arrived have no block yet; keep them visible at the end.
        for slot, call in kept:
            if id(slot) not in placed:
                blocks.append(AssembledBlock("tool_call", "", call))
        if self._text_calls:
            # The calls sat on lines of their own: trim what they left (as
            # extract_text_tool_calls does), drop what is now empty.
            blocks = [
                AssembledBlock("text", b.text.strip()) if b.type == "text" else b
                for b in blocks
                if b.type != "text" or b.text.strip()
            ]

        tool_calls = [c for _, c in kept]
        finish = self._finish
        # Servers under-report tool calls (TGI never says so, vLLM's named tool_choice says
        # "stop"); orchestrators key on "tool_calls" whenever calls are present.
        if tool_calls:
            finish = "tool_calls"
        response = AssembledResponse(
            blocks=blocks,
            tool_calls=tool_calls,
            usage=self._usage,
            finish_reason=finish,
            model=self._model,
            response_id=self._response_id,
            saw_finish=self._saw_finish,
        )
        if errors:
            error = errors[0]
            error.partial = response  # the turn's text is not lost with the bad call
            raise error
        return response

    def _resplit(self) -> list[AssembledBlock]:
        out: list[AssembledBlock] = []
        for kind, piece in split_thinking("".join(self._raw)):
            if kind == "text" and self._offered:
                piece = extract_text_tool_calls(piece, self._offered)[0]
            if piece:
                out.append(AssembledBlock(kind, piece))
        return out

    # ----------------------------------------------------------------- ingestion

    def _ingest(self, obj: dict[Any, Any], key: str, events: list[BlockEvent] | None) -> None:
        err = obj.get("error")
        if err is not None:
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
            normalized = normalize_finish_reason(reason)
            if normalized is not None:
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
                self._reasoning_seen = True
                self._fragment(_THINKING, reasoning, events)
                break  # vLLM at times sends the same text under both names
        content = msg.get("content")
        if content:
            if type(content) is str:
                self._content(content, events)
            elif type(content) is list:
                self._content_parts(content, events)
        tool_calls = msg.get("tool_calls")
        if tool_calls:
            self._tool_calls(tool_calls, events, positional)
        else:
            legacy = msg.get("function_call")
            if type(legacy) is dict:
                self._tool_calls([{"index": 0, "function": legacy}], events, False)

    def _content_parts(self, parts: list[Any], events: list[BlockEvent] | None) -> None:
        # Content as a list of typed parts (Mistral-style thinking, some proxies).
        for part in parts:
            if type(part) is str:
                if part:
                    self._content(part, events)
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
                            self._reasoning_seen = True
                            self._fragment(_THINKING, text, events)
                    continue
                text = inner if type(inner) is str else part.get("text")
                if text and type(text) is str:
                    self._reasoning_seen = True
                    self._fragment(_THINKING, text, events)
            elif ptype in ("text", None):
                text = part.get("text")
                if text and type(text) is str:
                    self._content(text, events)

    # ----------------------------------------------------------------- content salvage

    def _content(self, content: str, events: list[BlockEvent] | None) -> None:
        """Message text: think splitting, then text tool-call scanning, then text."""
        splitter = self._splitter
        if splitter is not None:
            self._raw.append(content)
            pieces = splitter.feed(content)
            if len(pieces) != 1 or pieces[0][0] != "text":
                for kind, piece in pieces:
                    if kind == "text":
                        self._text(piece, events)
                    else:
                        self._content_thinking(piece, events)
                return
            content = pieces[0][1]
        cur = self._cur
        if self._scanner is None and cur is not None and cur.kind is _TEXT:
            # Hot path: one more token of the open text block, no further calls.
            cur.parts.append(content)
            if events is not None:
                events.append(BlockEvent("delta", cur.index, _TEXT, content, cur.seq))
            cur.seq += 1
            return
        self._text(content, events)

    def _text(self, text: str, events: list[BlockEvent] | None) -> None:
        scanner = self._scanner
        if scanner is not None:
            self._scanner_fed = True
            text = scanner.feed(text)
            if not text:
                return  # held back: it may be the start of a call
        self._show_text(text, events)

    def _show_text(self, text: str, events: list[BlockEvent] | None) -> None:
        cur = self._cur
        if cur is not None and cur.kind is _TEXT:
            # Hot path: one more token of the open text block.
            cur.parts.append(text)
            if events is not None:
                events.append(BlockEvent("delta", cur.index, _TEXT, text, cur.seq))
            cur.seq += 1
            return
        if self._scanner is not None:
            # Whitespace between extracted calls must not open a text block of its own.
            if text.isspace():
                self._ws += text
                return
            if self._ws:
                text, self._ws = self._ws + text, ""
        self._fragment(_TEXT, text, events)

    def _content_thinking(self, text: str, events: list[BlockEvent] | None) -> None:
        if self._scanner_fed:
            # A call never spans a think block, and the answer after one starts afresh
            # (a bare call object right after `</think>` is at the start of the answer).
            self._finish_scanner(events)
            self._scanner = TextCallScanner(self._offered)
            self._scanner_fed = False
        self._ws = ""  # whitespace before a think block is template noise
        self._fragment(_THINKING, text, events)

    def _finish_scanner(self, events: list[BlockEvent] | None) -> None:
        scanner = self._scanner
        if scanner is None:
            return
        rest, calls = scanner.finish()
        if rest:
            self._show_text(rest, events)
        for call in calls:
            self._text_call(call, events)

    def _text_call(self, call: TextToolCall, events: list[BlockEvent] | None) -> None:
        slot = self._new_slot(None)  # index-less: ordered after native calls, by creation
        slot.name = call.name  # already canonical
        slot.obj = call.arguments
        slot.error = call.error
        self._text_calls += 1
        if call.error is None:  # a bad call gets no block, like a native one it is raised
            self._open(_TOOL, events, call.name, slot)

    def _flush(self, events: list[BlockEvent] | None) -> None:
        """Release everything held back; idempotent."""
        if self._flushed:
            return
        self._flushed = True
        splitter = self._splitter
        if splitter is not None:
            for kind, piece in splitter.finish():
                if kind == "text":
                    self._text(piece, events)
                else:
                    self._content_thinking(piece, events)
        self._finish_scanner(events)
        self._scanner = None
        ws, self._ws = self._ws, ""
        if ws and not self._text_calls:
            self._fragment(_TEXT, ws, events)

    # ----------------------------------------------------------------- blocks

    def _open(
        self,
        kind: BlockType,
        events: list[BlockEvent] | None,
        name: str | None = None,
        slot: _ToolSlot | None = None,
    ) -> _Block:
        block = _Block(len(self._blocks), kind, slot)
        if events is not None:
            cur = self._cur
            if cur is not None:
                events.append(BlockEvent("end", cur.index, cur.kind))
            events.append(BlockEvent("start", block.index, kind, "", 0, name))
        self._blocks.append(block)
        self._cur = block
        return block

    def _fragment(self, kind: BlockType, text: str, events: list[BlockEvent] | None) -> None:
        cur = self._cur
        if cur is None or cur.kind is not kind:
            cur = self._open(kind, events)
        cur.parts.append(text)
        if events is not None:
            events.append(BlockEvent("delta", cur.index, kind, text, cur.seq))
            self._emitted = True
        cur.seq += 1

    # ----------------------------------------------------------------- tool calls

    def _tool_calls(
        self, tool_calls: object, events: list[BlockEvent] | None, positional: bool
    ) -> None:
        if type(tool_calls) is dict:
            tool_calls = [tool_calls]  # a single call not wrapped in a list
        elif type(tool_calls) is not list:
            return
        for pos, tc in enumerate(tool_calls):
            if type(tc) is not dict:
                continue
            fn = tc.get("function")
            if type(fn) is not dict:
                fn = tc  # name/arguments at the top level of the call
            name = fn.get("name")
            if type(name) is not str:
                name = ""
            tid = tc.get("id")
            if type(tid) is not str:
                tid = ""
            if positional:
                index: int | None = pos  # non-streaming: list position is the index
            else:
                raw_index = tc.get("index")
                index = raw_index if type(raw_index) is int else None
            slot = self._find_slot(index, tid, name)
            if tid and not slot.id:
                slot.id = tid
                self._by_id.setdefault(tid, slot)
            # Names come once (vLLM, llama.cpp) or repeated on every delta
            # (llama-cpp-python): append only what is not a repeat.
            args = fn.get("arguments")
            if name and name != slot.name:
                if slot.name:
                    slot.name += name
                else:
                    slot.name = name
                    if args is not None:
                        slot.add_arguments(args)
                        args = None
                    # LocalAI repeats a whole call at another index: show it once.
                    if not self._repeats_earlier_call(slot):
                        self._open(_TOOL, events, self._canonical(name), slot)
            if args is not None:
                slot.add_arguments(args)

    def _repeats_earlier_call(self, slot: _ToolSlot) -> bool:
        if not (slot.frags or slot.obj):
            return False
        mine = slot.obj if slot.obj else "".join(slot.frags)
        for other in self._slots:
            if other is slot or other.name != slot.name:
                continue
            theirs = other.obj if other.obj else "".join(other.frags)
            if theirs == mine:
                return True
        return False

    def _find_slot(self, index: int | None, tid: str, name: str) -> _ToolSlot:
        if index is not None:
            slot = self._by_index.get(index)
            # Same index but a different id and a new name: a new call (servers that
            # number every call 0), not a continuation.
            if slot is None or (tid and slot.id and tid != slot.id and name and slot.name):
                slot = self._new_slot(index)
                self._by_index[index] = slot
        elif tid:
            slot = self._by_id.get(tid)
            # LocalAI gives every call the same id: a different name means a new call.
            if slot is None or (name and slot.name and name != slot.name):
                slot = self._new_slot(None)
                self._by_id[tid] = slot
        elif name or self._last_slot is None:
            slot = self._new_slot(None)  # neither index nor id: a named delta starts a call
        else:
            slot = self._last_slot  # an anonymous fragment continues the last call
        self._last_slot = slot
        return slot

    def _new_slot(self, index: int | None) -> _ToolSlot:
        slot = _ToolSlot(index, len(self._slots))
        self._slots.append(slot)
        return slot

    def _canonical(self, name: str) -> str:
        offered = self._offered
        return canonical_tool_name(name, offered) if offered else name

    def _build_call(self, slot: _ToolSlot, seen_ids: set[str]) -> AssembledToolCall:
        if slot.error is not None:
            raise slot.error
        name = self._canonical(slot.name)
        if slot.obj:
            arguments = slot.obj
            raw = json.dumps(arguments, ensure_ascii=False, default=str)
        elif slot.frags:
            raw = "".join(slot.frags)
            arguments = parse_arguments(raw, name)
        else:
            raw = ""
            arguments = {}
        call_id = slot.id
        # TGI sends "" ids; LocalAI shares one id across calls: ids must be unique.
        if not call_id or call_id in seen_ids:
            if slot.synth_id is None:
                slot.synth_id = "call_" + uuid.uuid4().hex[:24]
            call_id = slot.synth_id
        return AssembledToolCall(call_id, name, arguments, raw)


def _all_zero(usage: dict[Any, Any]) -> bool:
    return not any(type(value) in (int, float) and value for value in usage.values())


def _is_json_object(text: str) -> bool:
    try:
        return type(json.loads(text)) is dict
    except (ValueError, RecursionError):
        return False


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
