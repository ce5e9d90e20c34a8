"""Just-in-time tool-sequence repair."""

from __future__ import annotations

import copy
import time
from typing import Any

from amplifier_module_provider_chat_completions.request.tool_sequence import (
    MISSING_RESULT_TEXT,
    repair_tool_sequence,
)


def asst(*ids: str, content: str = "") -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if ids:
        message["tool_calls"] = [
            {"id": i, "type": "function", "function": {"name": "f", "arguments": "{}"}} for i in ids
        ]
    return message


def tool(call_id: str, content: str = "ok") -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def synthetic(call_id: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": MISSING_RESULT_TEXT}


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def test_valid_history_is_unchanged() -> None:
    history = [user("q"), asst("a", "b"), tool("a"), tool("b"), asst(content="done"), user("more")]
    assert repair_tool_sequence(history) == (history, [], [])


def test_results_out_of_order_are_left_alone() -> None:
    history = [asst("a", "b"), tool("b"), tool("a"), user("next")]
    assert repair_tool_sequence(history) == (history, [], [])


def test_missing_result_gets_synthetic_after_real_results() -> None:
    history = [user("q"), asst("a", "b", "c"), tool("b"), user("interrupt"), asst(content="x")]
    messages, repaired, dropped = repair_tool_sequence(history)
    assert messages == [
        user("q"),
        asst("a", "b", "c"),
        tool("b"),
        synthetic("a"),
        synthetic("c"),
        user("interrupt"),
        asst(content="x"),
    ]
    assert repaired == ["a", "c"]
    assert dropped == []


def test_missing_results_at_end_of_history() -> None:
    history = [user("q"), asst("a")]
    assert repair_tool_sequence(history) == ([user("q"), asst("a"), synthetic("a")], ["a"], [])


def test_missing_before_next_assistant_with_calls() -> None:
    history = [asst("a"), asst("b"), tool("b")]
    assert repair_tool_sequence(history) == (
        [asst("a"), synthetic("a"), asst("b"), tool("b")],
        ["a"],
        [],
    )


def test_orphan_results_dropped() -> None:
    history = [
        tool("ghost"),
        user("q"),
        asst(content="plain"),
        tool("ghost2"),
        asst("a"),
        tool("a"),
        tool("zzz"),
    ]
    messages, repaired, dropped = repair_tool_sequence(history)
    assert messages == [user("q"), asst(content="plain"), asst("a"), tool("a")]
    assert repaired == []
    assert dropped == ["ghost", "ghost2", "zzz"]


def test_result_for_an_earlier_turn_is_dropped_after_synthetic() -> None:
    # The late real result comes after the next assistant message: the turn was already
    # closed with a synthetic result, so the late one would be a duplicate.
    history = [asst("a"), asst(content="went on"), tool("a", "late")]
    messages, repaired, dropped = repair_tool_sequence(history)
    assert messages == [asst("a"), synthetic("a"), asst(content="went on")]
    assert repaired == ["a"]
    assert dropped == ["a"]


def test_duplicate_results_keep_the_first() -> None:
    history = [asst("a"), tool("a", "first"), tool("a", "second"), user("u")]
    messages, repaired, dropped = repair_tool_sequence(history)
    assert messages == [asst("a"), tool("a", "first"), user("u")]
    assert (repaired, dropped) == ([], ["a"])


def test_result_after_interleaved_user_message_is_moved_up() -> None:
    history = [asst("a"), user("meanwhile"), tool("a")]
    assert repair_tool_sequence(history) == ([asst("a"), tool("a"), user("meanwhile")], [], [])


def test_tool_message_without_id_is_dropped() -> None:
    history = [asst("a"), {"role": "tool", "content": "x"}, tool("a")]
    assert repair_tool_sequence(history) == ([asst("a"), tool("a")], [], [""])


def test_repeated_call_id_within_one_turn_needs_one_result() -> None:
    # LocalAI gives every call in a response the same id.
    history = [asst("same", "same"), tool("same")]
    assert repair_tool_sequence(history) == (history, [], [])
    messages, repaired, _ = repair_tool_sequence([asst("same", "same")])
    assert messages == [asst("same", "same"), synthetic("same")]
    assert repaired == ["same"]


def test_same_id_reused_in_a_later_turn_is_accepted() -> None:
    history = [asst("x"), tool("x"), asst("x"), tool("x", "again")]
    assert repair_tool_sequence(history) == (history, [], [])


def test_calls_without_ids_are_ignored() -> None:
    odd = {"role": "assistant", "content": "", "tool_calls": [{"type": "function"}, "junk"]}
    assert repair_tool_sequence([odd, user("u")]) == ([odd, user("u")], [], [])


def test_input_not_mutated() -> None:
    history = [asst("a", "b"), tool("b"), tool("orphan"), user("u")]
    snapshot = copy.deepcopy(history)
    ids = [id(m) for m in history]
    repair_tool_sequence(history)
    assert history == snapshot
    assert [id(m) for m in history] == ids


def test_repair_twice_gives_the_same_result_stateless() -> None:
    history = [user("q"), asst("a", "b"), tool("a"), tool("nope"), user("x"), asst("c")]
    first = repair_tool_sequence(history)
    second = repair_tool_sequence(history)
    assert first == second
    assert first[1] == ["b", "c"]
    assert first[2] == ["nope"]
    # and the repaired output is a fixed point
    assert repair_tool_sequence(first[0]) == (first[0], [], [])


def test_empty_history() -> None:
    assert repair_tool_sequence([]) == ([], [], [])


def test_ten_thousand_messages_linear() -> None:
    history: list[dict[str, Any]] = []
    for i in range(2500):
        history.append(user(f"u{i}"))
        history.append(asst(f"c{i}", f"d{i}"))
        history.append(tool(f"c{i}"))  # d{i} always missing
        history.append(tool(f"orphan{i}"))
    assert len(history) == 10_000
    start = time.perf_counter()
    messages, repaired, dropped = repair_tool_sequence(history)
    elapsed = time.perf_counter() - start
    assert len(repaired) == 2500 and len(dropped) == 2500
    assert len(messages) == 10_000
    assert messages[3] == synthetic("d0")
    assert elapsed < 2.0  # generous: it takes a few ms
