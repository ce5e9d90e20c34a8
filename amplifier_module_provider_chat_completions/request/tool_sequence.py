"""Just-in-time repair of the tool-call sequence in wire messages (pure, stateless).

Servers reject a history in which an assistant tool call has no `tool` answer, or a
`tool` message answers nothing (vLLM/llama.cpp 400, templates raise). Histories break
that way when a session is interrupted mid-tool or compacted. Repair happens on the
wire copy just before sending; the stored conversation is never touched, and because
nothing is remembered between calls the same history always gets the same repair.
"""

from __future__ import annotations

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


def _distinct(ids: list[str]) -> list[str]:
    """`ids` with each repeat renamed `<id>_<n>`, never to an id the turn already uses."""
    if len(set(ids)) == len(ids):
        return ids
    taken = set(ids)
    seen: set[str] = set()
    result: list[str] = []
    for call_id in ids:
        if call_id in seen:
            n = 2
            while f"{call_id}_{n}" in taken:
                n += 1
            call_id = f"{call_id}_{n}"
            taken.add(call_id)
        seen.add(call_id)
        result.append(call_id)
    return result


def _with_ids(message: dict[str, Any], ids: list[str]) -> dict[str, Any]:
    """A copy of the assistant message whose calls (those with an id) carry `ids`."""
    remaining = iter(ids)
    calls = []
    for call in message["tool_calls"]:
        call_id = call.get("id") if isinstance(call, dict) else None
        if isinstance(call_id, str) and call_id:
            new = next(remaining)
            call = call if new == call_id else {**call, "id": new}
        calls.append(call)
    return {**message, "tool_calls": calls}


class _Turn:
    """One assistant message with tool calls and what has answered it so far.

    Calls sharing an id (LocalAI gives every call of a response the same one) get distinct
    ids, and results with that id answer them in order: each call keeps its own result.
    """

    __slots__ = ("answered", "assistant", "calls", "open", "results", "trailer")

    def __init__(self, assistant: dict[str, Any], calls: list[str]) -> None:
        self.calls = _distinct(calls)
        self.assistant = assistant if self.calls is calls else _with_ids(assistant, self.calls)
        # original id -> the wire ids it still has to answer, in call order
        self.open: dict[str, list[str]] = {}
        for original, wire_id in zip(calls, self.calls, strict=True):
            self.open.setdefault(original, []).append(wire_id)
        self.answered: set[str] = set()
        self.results: list[dict[str, Any]] = []
        # Non-tool messages seen before the turn ends; results that arrive after them are
        # moved up, because a tool message must directly follow its assistant message.
        self.trailer: list[dict[str, Any]] = []

    def answer(self, message: dict[str, Any]) -> bool:
        """Take a tool message as the result of the next open call with its id."""
        call_id = message.get("tool_call_id")
        waiting = self.open.get(call_id) if isinstance(call_id, str) else None
        if not waiting:
            return False
        wire_id = waiting.pop(0)
        self.answered.add(wire_id)
        self.results.append(message if wire_id == call_id else {**message, "tool_call_id": wire_id})
        return True

    def flush(self, out: list[dict[str, Any]], repaired: list[str]) -> None:
        out.append(self.assistant)
        out.extend(self.results)
        for call_id in self.calls:
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
            if turn is None or not turn.answer(message):
                call_id = message.get("tool_call_id")
                dropped.append(call_id if isinstance(call_id, str) else "")
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
