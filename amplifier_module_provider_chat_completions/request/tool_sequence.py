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


class _Turn:
    """One assistant message with tool calls and what has answered it so far."""

    __slots__ = ("answered", "assistant", "calls", "results", "trailer")

    def __init__(self, assistant: dict[str, Any], calls: list[str]) -> None:
        self.assistant = assistant
        self.calls = dict.fromkeys(calls)  # ordered and de-duplicated (LocalAI reuses ids)
        self.answered: set[str] = set()
        self.results: list[dict[str, Any]] = []
        # Non-tool messages seen before the turn ends; results that arrive after them are
        # moved up, because a tool message must directly follow its assistant message.
        self.trailer: list[dict[str, Any]] = []

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
    - a tool message answering no call of the current turn (orphan, or a duplicate of an
      already answered id) is dropped.

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
            if (
                turn is not None
                and isinstance(call_id, str)
                and call_id in turn.calls
                and call_id not in turn.answered
            ):
                turn.answered.add(call_id)
                turn.results.append(message)
            else:
                dropped.append(call_id if isinstance(call_id, str) else "")
            continue
        if role == "assistant":
            if turn is not None:
                turn.flush(out, repaired)
                turn = None
            calls = _call_ids(message)
            if calls:
                turn = _Turn(message, calls)
                continue
            out.append(message)
            continue
        if turn is not None:
            turn.trailer.append(message)
        else:
            out.append(message)
    if turn is not None:
        turn.flush(out, repaired)
    return out, repaired, dropped
