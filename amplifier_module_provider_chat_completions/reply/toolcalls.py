"""Tool calls: streamed deltas accumulated into calls, and the policies that decide them.

Accumulation: each delta is matched to its call by `index`, else by `id`, else it
continues the last call (SERVERS.md: vLLM, llama.cpp and SGLang send an index; TGI repeats
index 0 with new ids; llama-cpp-python repeats id and name on every delta; Ollama, LocalAI
and Ampify send each call whole). Arguments arrive as string fragments or as an object.

Merge policy: a call is one call. Identical name and arguments under different ids are
different calls (servers answer "roll three dice" with three `dice_roll {}` calls); only a
repeat under the same id, or without an id, is merged (LocalAI gives every call of a
response one id and may send the same call at several indices). Calls written in the text
are never merged: the model wrote each one.

Finish-reason policy:
- a failed generation ("abort" from vLLM and SGLang, "error" from vLLM's engine and
  OpenRouter) is an error, not an answer: `failed_generation` gives the in-band error
  payload;
- a reply cut by the output limit ("length") runs none of its calls: every call's
  arguments may be cut (a server may even close the cut JSON itself), and part of a batch
  is not what the model planned. `withhold` lists them for a visible notice;
- any other reply with calls finishes as "tool_calls" (TGI never says so, vLLM's named
  tool_choice says "stop", and orchestrators key on it).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any, Final

from .arguments import ArgumentsError, canonical_tool_name, parse_arguments
from .blocks import TOOL, BlockEvent, BlockSequence
from .textcalls import TextToolCall

__all__ = [
    "CUT_OFF",
    "AssembledToolCall",
    "ToolCalls",
    "ToolSlot",
    "TruncatedToolCall",
    "cut_off_notice",
    "failed_generation",
    "final_finish_reason",
    "normalize_finish_reason",
]

_FINISH_ALIASES: Final[dict[str, str]] = {
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
    "abort": "abort",  # vLLM, SGLang: the request was aborted on the server
    "error": "error",  # vLLM engine errors, OpenRouter: the generation failed
}
_FAILED: Final = frozenset({"abort", "error"})
CUT_OFF: Final = "length"


def normalize_finish_reason(value: object) -> str | None:
    """Map server-specific stop reasons onto the OpenAI vocabulary.

    None for "not finished" (null, "" from old LocalAI, junk types). Unknown strings are
    kept as they are rather than guessed.
    """
    if type(value) is not str or not value:
        return None
    return _FINISH_ALIASES.get(value) or _FINISH_ALIASES.get(value.lower(), value)


def failed_generation(normalized: str, raw: str) -> dict[str, Any] | None:
    """The in-band error payload for a finish reason that reports a failed generation.

    The message avoids the words errors.py reads as "the request is at fault", so the
    error classifies as a retryable server-side failure.
    """
    if normalized not in _FAILED:
        return None
    message = (
        f"the server ended the reply with finish_reason {raw!r}: the generation failed "
        "or was cancelled on the server before the reply was complete"
    )
    return {"error": {"message": message, "type": "generation_failed", "finish_reason": raw}}


def final_finish_reason(finish: str | None, has_calls: bool) -> str | None:
    """A reply that hands over calls finishes as "tool_calls" (a cut one hands over none)."""
    return "tool_calls" if has_calls else finish


@dataclass(slots=True)
class AssembledToolCall:
    id: str
    name: str
    arguments: dict[str, Any]
    raw_arguments: str


@dataclass(slots=True)
class TruncatedToolCall:
    """A call in a reply cut by the output limit: shown, never run."""

    id: str
    name: str
    raw_arguments: str  # as far as the model got


def cut_off_notice(calls: list[TruncatedToolCall]) -> str:
    """The text that stands in for withheld calls, so nothing is dropped silently."""
    return "\n".join(
        f"[{c.name} call not run: the output limit cut it off] {c.raw_arguments}".rstrip()
        for c in calls
    )


class ToolSlot:
    """One call being accumulated."""

    __slots__ = (
        "error",
        "frags",
        "id",
        "index",
        "name",
        "nchars",
        "obj",
        "order",
        "synth_id",
        "written",
    )

    def __init__(self, index: int | None, order: int) -> None:
        self.index = index
        self.order = order  # creation order: tie-break and order for index-less calls
        self.id = ""
        self.name = ""
        self.frags: list[str] = []
        self.nchars = 0
        self.obj: dict[str, Any] | None = None
        self.synth_id: str | None = None  # fixed once so result() is repeatable
        self.written = False  # a call written in the text, not a native one
        self.error: ArgumentsError | None = None  # a written call's unusable arguments

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

    def raw(self) -> str:
        """The arguments as sent: the object as JSON, or the joined fragments."""
        if self.obj:
            return json.dumps(self.obj, ensure_ascii=False, default=str)
        if self.error is not None:
            return self.error.raw
        return "".join(self.frags)

    def call_id(self, taken: set[str]) -> str:
        # TGI sends "" ids; LocalAI shares one id across calls: ids must be unique.
        if self.id and self.id not in taken:
            return self.id
        if self.synth_id is None:
            self.synth_id = "call_" + uuid.uuid4().hex[:24]
        return self.synth_id


class ToolCalls:
    """The calls of one reply, in creation order; `build` and `withhold` apply the policies."""

    __slots__ = ("_blocks", "_by_id", "_by_index", "_last", "_offered", "slots", "written")

    def __init__(self, offered: frozenset[str], blocks: BlockSequence) -> None:
        self._offered = offered
        self._blocks = blocks  # where a call's tool-use block opens once its name arrives
        self.slots: list[ToolSlot] = []
        self._by_index: dict[int, ToolSlot] = {}
        self._by_id: dict[str, ToolSlot] = {}
        self._last: ToolSlot | None = None
        self.written = 0  # calls taken from the text

    def feed(self, tool_calls: object, positional: bool, events: list[BlockEvent] | None) -> None:
        """One message's `tool_calls` (a delta, or a whole body when `positional`)."""
        if type(tool_calls) is dict:
            tool_calls = [tool_calls]  # a single call not wrapped in a list
        elif type(tool_calls) is not list:
            return
        for pos, tc in enumerate(tool_calls):
            if type(tc) is dict:
                self._delta(tc, pos if positional else None, events)

    def _delta(
        self, tc: dict[Any, Any], position: int | None, events: list[BlockEvent] | None
    ) -> None:
        fn = tc.get("function")
        if type(fn) is not dict:
            fn = tc  # name/arguments at the top level of the call
        name = fn.get("name")
        if type(name) is not str:
            name = ""
        tid = tc.get("id")
        if type(tid) is not str:
            tid = ""
        if position is None:
            raw_index = tc.get("index")
            index = raw_index if type(raw_index) is int else None
        else:
            index = position  # non-streaming: list position is the index
        slot = self._find(index, tid, name)
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
                if not self._repeats_earlier(slot):  # a repeat is shown once
                    self._blocks.open(TOOL, events, self.canonical(name), slot)
        if args is not None:
            slot.add_arguments(args)

    def _find(self, index: int | None, tid: str, name: str) -> ToolSlot:
        if index is not None:
            slot = self._by_index.get(index)
            # Same index but a different id and a new name: a new call (servers that
            # number every call 0), not a continuation.
            if slot is None or (tid and slot.id and tid != slot.id and name and slot.name):
                slot = self._new(index)
                self._by_index[index] = slot
        elif tid:
            slot = self._by_id.get(tid)
            # LocalAI gives every call the same id: a different name means a new call.
            if slot is None or (name and slot.name and name != slot.name):
                slot = self._new(None)
                self._by_id[tid] = slot
        elif name or self._last is None:
            slot = self._new(None)  # neither index nor id: a named delta starts a call
        else:
            slot = self._last  # an anonymous fragment continues the last call
        self._last = slot
        return slot

    def _new(self, index: int | None) -> ToolSlot:
        slot = ToolSlot(index, len(self.slots))
        self.slots.append(slot)
        return slot

    def _repeats_earlier(self, slot: ToolSlot) -> bool:
        if not (slot.frags or slot.obj):
            return False
        mine = slot.raw()
        return any(
            other is not slot and _may_repeat(other, slot) and other.raw() == mine
            for other in self.slots
        )

    def add_written(
        self, call: TextToolCall, events: list[BlockEvent] | None, *, show: bool
    ) -> None:
        """A call found in the text; `show` opens its tool block."""
        slot = self._new(None)  # index-less: ordered after native calls, by creation
        slot.name = call.name  # already canonical
        slot.obj = call.arguments
        slot.error = call.error
        slot.written = True
        self.written += 1
        if show and call.error is None:  # a bad call gets no block: it is raised
            self._blocks.open(TOOL, events, call.name, slot)

    def canonical(self, name: str) -> str:
        offered = self._offered
        return canonical_tool_name(name, offered) if offered else name

    def _ordered(self) -> list[ToolSlot]:
        return sorted(
            (s for s in self.slots if s.has_content()),
            key=lambda s: (s.index is None, s.index or 0, s.order),
        )

    def build(self) -> tuple[list[tuple[ToolSlot, AssembledToolCall]], list[ArgumentsError]]:
        """The calls to run, in index order, merged by the merge policy; and the bad ones."""
        kept: list[tuple[ToolSlot, AssembledToolCall]] = []
        errors: list[ArgumentsError] = []
        taken: set[str] = set()
        for slot in self._ordered():
            try:
                call = self._build(slot, taken)
            except ArgumentsError as exc:
                errors.append(exc)
                continue
            if any(
                _may_repeat(s, slot) and c.name == call.name and c.arguments == call.arguments
                for s, c in kept
            ):
                continue
            taken.add(call.id)
            kept.append((slot, call))
        return kept, errors

    def _build(self, slot: ToolSlot, taken: set[str]) -> AssembledToolCall:
        if slot.error is not None:
            raise slot.error
        name = self.canonical(slot.name)
        if slot.obj:
            arguments = slot.obj
            raw = slot.raw()
        elif slot.frags:
            raw = "".join(slot.frags)
            arguments = parse_arguments(raw, name)
        else:
            raw = ""
            arguments = {}
        return AssembledToolCall(slot.call_id(taken), name, arguments, raw)

    def withhold(self) -> list[TruncatedToolCall]:
        """Every call of a reply cut by the output limit, unparsed (repeats once)."""
        out: list[TruncatedToolCall] = []
        seen: list[ToolSlot] = []
        taken: set[str] = set()
        for slot in self._ordered():
            raw = slot.raw()
            if any(_may_repeat(s, slot) and s.raw() == raw for s in seen):
                continue
            seen.append(slot)
            call_id = slot.call_id(taken)
            taken.add(call_id)
            out.append(TruncatedToolCall(call_id, self.canonical(slot.name), raw))
        return out


def _may_repeat(a: ToolSlot, b: ToolSlot) -> bool:
    """Whether `b` may repeat `a` (same name; same id or one of them has none)."""
    if a.written or b.written or a.name != b.name:
        return False
    return a.id == b.id or not a.id or not b.id


def _is_json_object(text: str) -> bool:
    try:
        return type(json.loads(text)) is dict
    except (ValueError, RecursionError):
        return False
