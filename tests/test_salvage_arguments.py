"""Tool-call argument repair: the corpus, the guards against inventing answers, names."""

from __future__ import annotations

import json_repair
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from salvage_corpus import ARGUMENT_CASES, OFFERED, ArgumentCase

from amplifier_module_provider_chat_completions.reply import arguments
from amplifier_module_provider_chat_completions.reply.arguments import (
    ArgumentsError,
    canonical_tool_name,
    load_lenient,
    load_object,
    parse_arguments,
)


@pytest.mark.parametrize("case", ARGUMENT_CASES, ids=lambda c: c.id)
def test_corpus(case: ArgumentCase) -> None:
    if case.expected is None:
        with pytest.raises(ArgumentsError):
            parse_arguments(case.raw, case.tool)
    else:
        assert parse_arguments(case.raw, case.tool) == case.expected


def test_corpus_is_large_enough() -> None:
    from salvage_corpus import TEXT_CASES

    assert len(ARGUMENT_CASES) + len(TEXT_CASES) >= 40
    assert any(c.expected is None for c in ARGUMENT_CASES)


def test_valid_json_never_reaches_the_repair_library(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_args: object, **_kwargs: object) -> object:
        raise AssertionError("repair called on valid JSON")

    monkeypatch.setattr(json_repair, "loads", boom)
    assert parse_arguments('{"a": [1, 2], "b": {"c": null}}', "t") == {
        "a": [1, 2],
        "b": {"c": None},
    }


def test_error_names_tool_and_quotes_the_start() -> None:
    raw = "this is not json " * 20
    with pytest.raises(ArgumentsError) as info:
        parse_arguments(raw, "read_file")
    message = str(info.value)
    assert "'read_file'" in message
    assert "this is not json" in message
    assert message.endswith("...'")
    assert info.value.tool_name == "read_file"
    assert info.value.raw == raw


def test_dict_and_none_pass_through() -> None:
    assert parse_arguments({"x": 1}, "t") == {"x": 1}
    assert parse_arguments(None, "t") == {}


def test_non_string_is_an_error() -> None:
    with pytest.raises(ArgumentsError, match="expected a JSON string, got list"):
        parse_arguments([1, 2], "t")


@pytest.mark.parametrize(
    "raw",
    ["hello there", "{hello there}", "OK", "null", "true", "[]", "```\nnot json\n```", "{x", "{ok"],
)
def test_not_json_is_not_invented(raw: str) -> None:
    with pytest.raises(ArgumentsError):
        parse_arguments(raw, "t")


def test_load_object_and_lenient() -> None:
    assert load_object("{'a': 1,}") == {"a": 1}
    assert load_lenient("[{'a': 1},]") == [{"a": 1}]
    with pytest.raises(arguments.UnrepairableJSON):
        load_object("[1]")
    with pytest.raises(arguments.UnrepairableJSON):
        load_lenient("plain words")


def test_balanced_end() -> None:
    text = '{"a": "}", "b": [1, {"c": "\\"]"}]} tail'
    assert text[: arguments.balanced_end(text, 0)] == text[: -len(" tail")]
    assert arguments.balanced_end('{"a": [1, 2', 0) is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("read_file", "read_file"),
        ("Read_File", "read_file"),
        ("READ_FILE", "read_file"),
        ("functions.read_file", "read_file"),
        ("Functions.Read_File", "read_file"),
        ("function.bash", "bash"),
        ("tools.grep", "grep"),
        (" bash ", "bash"),
        ("delete_everything", "delete_everything"),
        ("functions.delete_everything", "functions.delete_everything"),
        ("files.read_file", "files.read_file"),
    ],
)
def test_canonical_tool_name(name: str, expected: str) -> None:
    assert canonical_tool_name(name, OFFERED) == expected


def test_canonical_tool_name_ambiguous_case_is_left_alone() -> None:
    assert canonical_tool_name("TOOL", {"tool", "Tool"}) == "TOOL"
    assert canonical_tool_name("Tool", {"tool", "Tool"}) == "Tool"


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet='{}[]"\\ab ', max_size=30).map(lambda s: "{" + s),
    step=st.integers(1, 5),
)
def test_bracket_matcher_resumes_exactly(text: str, step: int) -> None:
    matcher = arguments.BracketMatcher(0)
    result = None
    for end in range(step, len(text) + step, step):
        result = matcher.advance(text[:end])
        if result is not None:
            break
    assert result == reference_balanced_end(text)
    assert arguments.balanced_end(text, 0) == result


def reference_balanced_end(text: str) -> int | None:
    depth, in_string, escaped = 0, False, False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


def test_bracket_matcher_escape_split_at_the_boundary() -> None:
    text = '{"a": "x\\"}"}'
    matcher = arguments.BracketMatcher(0)
    assert matcher.advance(text[:9]) is None  # ends on the backslash
    assert matcher.advance(text[:10]) is None  # the escaped quote does not close the string
    assert matcher.advance(text) == len(text)
