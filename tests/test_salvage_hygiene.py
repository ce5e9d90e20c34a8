"""Message hygiene for strict chat templates: alternation and Mistral tool-call ids."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from amplifier_module_provider_chat_completions.request.strict_templates import (
    enforce_alternation,
    is_alternation_error,
    rewrite_tool_ids_for_mistral,
)
from amplifier_module_provider_chat_completions.request.tool_sequence import repair_tool_sequence


def sys(text: str) -> dict[str, Any]:
    return {"role": "system", "content": text}


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def asst(content: Any, calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = calls
    return message


def call(call_id: str, name: str = "read_file") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": "{}"}}


def tool(call_id: str, content: str = "ok") -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def roles(messages: list[dict[str, Any]]) -> list[str]:
    return [m["role"] for m in messages]


def test_consecutive_users_merged_with_blank_line() -> None:
    assert enforce_alternation([user("a"), user("b"), asst("c")]) == [user("a\n\nb"), asst("c")]


def test_content_part_lists_concatenated() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}
    merged = enforce_alternation([user([image]), user("look")])
    assert merged == [user([image, {"type": "text", "text": "look"}])]


def test_leading_systems_merged_later_system_folded_into_next_user() -> None:
    messages = [sys("s1"), sys("s2"), user("u1"), asst("a1"), sys("late rule"), user("u2")]
    assert enforce_alternation(messages) == [
        sys("s1\n\ns2"),
        user("u1"),
        asst("a1"),
        user("late rule\n\nu2"),
    ]


def test_developer_role_is_a_system_role() -> None:
    messages = [
        {"role": "developer", "content": "d"},
        user("u"),
        asst("a"),
        {"role": "developer", "content": "x"},
    ]
    assert roles(enforce_alternation(messages)) == ["system", "user", "assistant", "user"]


def test_trailing_assistants_merged_into_one() -> None:
    out = enforce_alternation([user("u"), asst("part one"), asst("part two")])
    assert out == [user("u"), asst("part one\n\npart two")]


def test_assistant_merge_keeps_tool_calls_and_none_content() -> None:
    out = enforce_alternation([user("u"), asst(None, [call("1")]), asst(None, [call("2")])])
    assert out == [user("u"), asst(None, [call("1"), call("2")])]


def test_tool_messages_left_alone() -> None:
    messages = [user("u"), asst(None, [call("1"), call("2")]), tool("1"), tool("2"), asst("done")]
    assert enforce_alternation(messages) == messages


def test_input_not_mutated() -> None:
    messages = [user(["x"]), user(["y"]), asst("a", [call("1")]), asst("b", [call("2")])]
    before = copy.deepcopy(messages)
    enforce_alternation(messages)
    assert messages == before


@pytest.mark.parametrize(
    "message",
    [
        "Conversation roles must alternate user/assistant/user/assistant/...",
        "After the optional system message, conversation roles must alternate user/assistant",
        "Input validation error: roles must alternate",
        "jinja2.exceptions.TemplateError: Conversation roles must alternate user/assistant/...",
        "Unexpected role 'user' after role 'user'",
    ],
)
def test_alternation_errors_recognised(message: str) -> None:
    assert is_alternation_error(message)


@pytest.mark.parametrize(
    "message",
    ["This model's maximum context length is 4096 tokens", "Unauthorized", "rate limit exceeded"],
)
def test_other_errors_not_alternation(message: str) -> None:
    assert not is_alternation_error(message)


def test_tool_ids_rewritten_consistently() -> None:
    messages = [
        user("u"),
        asst(None, [call("call_abc123def456"), call("toolu_01XYZ")]),
        tool("call_abc123def456", "r1"),
        tool("toolu_01XYZ", "r2"),
        asst(None, [call("call_abc123def456")]),  # an id repeated later maps the same way
        tool("call_abc123def456", "r3"),
    ]
    before = copy.deepcopy(messages)
    out, back = rewrite_tool_ids_for_mistral(messages)
    assert messages == before
    first, second = (c["id"] for c in out[1]["tool_calls"])
    for new in (first, second):
        assert re.fullmatch(r"[A-Za-z0-9]{9}", new)
    assert first != second
    assert [m["tool_call_id"] for m in out if m["role"] == "tool"] == [first, second, first]
    assert out[4]["tool_calls"][0]["id"] == first
    assert back == {first: "call_abc123def456", second: "toolu_01XYZ"}
    # Deterministic: the same history gives the same ids on the next request.
    assert rewrite_tool_ids_for_mistral(messages) == (out, back)


def test_valid_ids_kept_and_not_in_mapping() -> None:
    messages = [asst(None, [call("abcDEF123")]), tool("abcDEF123")]
    out, back = rewrite_tool_ids_for_mistral(messages)
    assert out == messages
    assert back == {}


def test_rewritten_id_never_collides_with_a_kept_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from amplifier_module_provider_chat_completions.request import strict_templates as hygiene

    real = hygiene._base62
    first_seen: list[str] = []

    def colliding(digest: bytes) -> str:
        # The first hash of every id lands on the id that is already taken.
        if len(first_seen) == 0:
            first_seen.append("x")
            return "abcDEF123"
        return real(digest)

    monkeypatch.setattr(hygiene, "_base62", colliding)
    out, back = rewrite_tool_ids_for_mistral(
        [asst(None, [call("abcDEF123"), call("call_1")]), tool("abcDEF123"), tool("call_1")]
    )
    ids = [c["id"] for c in out[0]["tool_calls"]]
    assert ids[0] == "abcDEF123"
    assert ids[1] != "abcDEF123"
    assert back == {ids[1]: "call_1"}


def test_repeated_call_ids_stay_distinct_and_paired_for_mistral() -> None:
    # LocalAI-style ids repeated in one turn, then Mistral's 9-character rule on top.
    history = [
        user("q"),
        asst("", [call("call_0", "a"), call("call_0", "b")]),
        tool("call_0", "from a"),
        tool("call_0", "from b"),
    ]
    repaired, _, dropped = repair_tool_sequence(history)
    assert dropped == []
    rewritten, mapping = rewrite_tool_ids_for_mistral(repaired)
    ids = [c["id"] for c in rewritten[1]["tool_calls"]]
    assert len(set(ids)) == 2 and all(re.fullmatch(r"[A-Za-z0-9]{9}", i) for i in ids)
    assert [(m["tool_call_id"], m["content"]) for m in rewritten[2:]] == [
        (ids[0], "from a"),
        (ids[1], "from b"),
    ]
    assert mapping[ids[0]] == "call_0"
