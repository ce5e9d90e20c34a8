"""Just-in-time repair of the tool-call sequence in wire messages (pure, stateless).

Servers reject a history in which an assistant tool call has no `tool` answer, or a
`tool` message answers nothing (vLLM/llama.cpp 400, templates raise). Histories break
that way when a session is interrupted mid-tool or compacted. Repair happens on the
wire copy just before sending; the stored conversation is never touched, and because
nothing is remembered between calls the same history always gets the same repair.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["MISSING_RESULT_TEXT", "repair_tool_sequence"]

MISSING_RESULT_TEXT = "Tool result missing: the call was interrupted before it returned a result."


def _call_ids(message: dict[str, Any]) -> list[str]:
    ids: list[str] = []
    calls = message.get("tool_calls")
    if not isinstance(calls, list):
        return ids
    for call in calls:
        call_id = call.get("id") if isinstance(call, dict) else None
        if isinstance(call_id, str) and call_id:
            ids.append(call_id)
    return ids


def _later_ids(ids: list[str], distinct: dict[str, None]) -> dict[str, list[str]]:
    """For each id the turn repeats: fresh ids for its later calls, in call order, named
    `<id>_<n>` and never an id the turn already uses."""
    taken = set(distinct)
    seen: set[str] = set()
    later: dict[str, list[str]] = {}
    for call_id in ids:
        if call_id in seen:
            n = 2
            while f"{call_id}_{n}" in taken:
                n += 1
            taken.add(f"{call_id}_{n}")
            later.setdefault(call_id, []).append(f"{call_id}_{n}")
        seen.add(call_id)
    return later


def _with_ids(
    message: dict[str, Any], later: dict[str, list[str]]
) -> tuple[dict[str, Any], list[str]]:
    """A copy of the assistant message whose repeated call ids are replaced by `later`,
    and its call ids in order."""
    fresh = {call_id: iter(ids) for call_id, ids in later.items()}
    seen: set[str] = set()
    calls: list[Any] = []
    ids: list[str] = []
    for call in message["tool_calls"]:
        call_id = call.get("id") if isinstance(call, dict) else None
        if isinstance(call_id, str) and call_id:
            if call_id in seen:
                call = {**call, "id": next(fresh[call_id])}
            seen.add(call_id)
            ids.append(call["id"])
        calls.append(call)
    return {**message, "tool_calls": calls}, ids


class _Turn:
    """One assistant message with tool calls and what has answered it so far.

    Calls sharing an id (LocalAI gives every call of a response the same one) get distinct
    ids, and results with that id answer them in order: each call keeps its own result.
    """

    __slots__ = ("answered", "assistant", "calls", "later", "results", "trailer", "wire_ids")

    def __init__(self, assistant: dict[str, Any], calls: list[str]) -> None:
        self.calls = dict.fromkeys(calls)  # the ids results name
        if len(self.calls) == len(calls):
            self.assistant = assistant
            self.wire_ids: Iterable[str] = self.calls
            self.later: dict[str, list[str]] | None = None
        else:
            # For a repeated id: the fresh ids of its later calls not answered yet.
            self.later = _later_ids(calls, self.calls)
            self.assistant, self.wire_ids = _with_ids(assistant, self.later)
        self.answered: set[str] = set()  # wire ids
        self.results: list[dict[str, Any]] = []
        # Non-tool messages seen before the turn ends; results that arrive after them are
        # moved up, because a tool message must directly follow its assistant message.
        self.trailer: list[dict[str, Any]] = []

    def answer_again(self, message: dict[str, Any], call_id: str) -> bool:
        """Take a result for an answered id as the result of its next call with that id."""
        later = self.later.get(call_id) if self.later else None
        if not later:
            return False
        wire_id = later.pop(0)
        self.answered.add(wire_id)
        self.results.append({**message, "tool_call_id": wire_id})
        return True

    def flush(self, out: list[dict[str, Any]], repaired: list[str]) -> None:
        out.append(self.assistant)
        out.extend(self.results)
        for call_id in self.wire_ids:
            if call_id not in self.answered:
                out.append(
                    {"role": "tool", "tool_call_id": call_id, "content": MISSING_RESULT_TEXT}
                )
                repaired.append(call_id)
        out.extend(self.trailer)


def repair_tool_sequence(
    wire_messages: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """Return (messages, repaired_ids, dropped_ids).

    - every assistant tool call without a result before the next assistant message gets a
      synthetic result, placed after that turn's real results;
    - calls of one turn that share an id get distinct ids, their results paired in order;
    - a tool message answering no call of the current turn (orphan, or one result more
      than the turn has calls with that id) is dropped.

    Linear time. The input list and its dicts are not mutated; unchanged messages are the
    same dict objects in the output.
    """
    out: list[dict[str, Any]] = []
    repaired: list[str] = []
    dropped: list[str] = []
    turn: _Turn | None = None
    for message in wire_messages:
        role = message.get("role")
        if role == "tool":
            call_id = message.get("tool_call_id")
            if turn is None or not isinstance(call_id, str) or call_id not in turn.calls:
                dropped.append(call_id if isinstance(call_id, str) else "")
            elif call_id not in turn.answered:
                turn.answered.add(call_id)
                turn.results.append(message)
            elif not turn.answer_again(message, call_id):
                dropped.append(call_id)
        elif role == "assistant":
            if turn is not None:
                turn.flush(out, repaired)
            calls = _call_ids(message)
            turn = _Turn(message, calls) if calls else None
            if turn is None:
                out.append(message)
        elif turn is not None:
            turn.trailer.append(message)
        else:
            out.append(message)
    if turn is not None:
        turn.flush(out, repaired)
    return out, repaired, dropped
