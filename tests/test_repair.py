"""Just-in-time tool-sequence repair."""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import respx
from amplifier_core.message_models import ChatRequest, Message
from wire_helpers import completion

from amplifier_module_provider_chat_completions import ChatCompletionsProvider
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


def named_asst(*calls: tuple[str, str]) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"id": i, "type": "function", "function": {"name": n, "arguments": "{}"}}
            for i, n in calls
        ],
    }


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


def test_duplicated_call_id_within_one_turn_keeps_every_result() -> None:
    # LocalAI gives every call in a response the same id: on the wire the duplicates get
    # distinct ids, paired with the results in order, so no result is lost.
    history = [
        user("q"),
        named_asst(("call_0", "f"), ("call_0", "g")),
        tool("call_0", "from f"),
        tool("call_0", "from g"),
        user("next"),
    ]
    snapshot = copy.deepcopy(history)
    messages, repaired, dropped = repair_tool_sequence(history)
    assert (repaired, dropped) == ([], [])
    ids = [call["id"] for call in messages[1]["tool_calls"]]
    assert ids[0] == "call_0" and ids[1] != "call_0"
    assert [c["function"]["name"] for c in messages[1]["tool_calls"]] == ["f", "g"]
    assert messages[2:] == [
        tool(ids[0], "from f"),
        tool(ids[1], "from g"),
        user("next"),
    ]
    assert history == snapshot  # the stored conversation is never touched
    assert repair_tool_sequence(history) == (messages, [], [])  # same ids every time


def test_duplicated_call_ids_never_collide_with_other_ids_of_the_turn() -> None:
    history = [asst("a", "a_2", "a", "a"), tool("a"), tool("a_2"), tool("a"), tool("a")]
    messages, repaired, dropped = repair_tool_sequence(history)
    ids = [call["id"] for call in messages[0]["tool_calls"]]
    assert len(set(ids)) == 4 and ids[:2] == ["a", "a_2"]
    assert [m["tool_call_id"] for m in messages[1:]] == ids
    assert (repaired, dropped) == ([], [])


def test_duplicated_call_id_with_one_result_gets_a_synthetic_for_the_other() -> None:
    messages, repaired, dropped = repair_tool_sequence([asst("same", "same"), tool("same")])
    second = messages[0]["tool_calls"][1]["id"]
    assert second != "same"
    assert messages[1:] == [tool("same"), synthetic(second)]
    assert (repaired, dropped) == ([second], [])
    # a third result for two calls answers nothing
    _, _, dropped = repair_tool_sequence([asst("x", "x"), tool("x"), tool("x"), tool("x")])
    assert dropped == ["x"]


@respx.mock
async def test_localai_duplicated_ids_reach_the_server_with_both_results(coordinator: Any) -> None:
    base = "http://localai.test/v1"
    respx.get(f"{base}/models").respond(404)
    route = respx.post(f"{base}/chat/completions").respond(json=completion("done"))
    calls = [
        {"type": "tool_call", "id": "call_0", "name": "get_weather", "input": {"city": c}}
        for c in ("Paris", "Rome")
    ]
    # Stored as the orchestrators store a tool turn: blocks plus tool_calls entries.
    entries = [{"id": "call_0", "tool": "get_weather", "arguments": b["input"]} for b in calls]
    history = [
        Message(role="user", content="Weather in Paris and Rome?"),
        Message(role="assistant", content=calls, tool_calls=entries),
        Message(role="tool", tool_call_id="call_0", content="Paris: sunny"),
        Message(role="tool", tool_call_id="call_0", content="Rome: rain"),
    ]
    stored = [m.model_dump() for m in history]
    provider = ChatCompletionsProvider(
        config={"base_url": base, "use_streaming": False}, coordinator=coordinator
    )
    await provider.complete(ChatRequest(messages=history))
    await provider.close()

    sent = json.loads(route.calls.last.request.content)["messages"]
    wire_calls = sent[1]["tool_calls"]
    cities = [json.loads(c["function"]["arguments"])["city"] for c in wire_calls]
    assert cities == ["Paris", "Rome"]
    ids = [c["id"] for c in wire_calls]
    assert len(set(ids)) == 2
    assert [(m["role"], m.get("tool_call_id"), m["content"]) for m in sent[2:]] == [
        ("tool", ids[0], "Paris: sunny"),
        ("tool", ids[1], "Rome: rain"),
    ]
    assert [m.model_dump() for m in history] == stored
    assert not coordinator.hooks.named("provider:tool_sequence_repaired")


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
