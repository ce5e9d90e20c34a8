"""Tool calls written into the text: the corpus, streaming equals non-streaming."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from salvage_corpus import OFFERED, TEXT_CASES, TextCase

from amplifier_module_provider_chat_completions.reply.textcalls import (
    TextCallScanner,
    TextToolCall,
    extract_text_tool_calls,
)


def stream(
    text: str, fragments: list[int], offered: tuple[str, ...] = OFFERED
) -> tuple[list[str], str, list[TextToolCall]]:
    """Feed `text` cut at the given sizes; return what each feed showed, the rest, calls."""
    scanner = TextCallScanner(offered)
    shown: list[str] = []
    i = 0
    for size in fragments:
        shown.append(scanner.feed(text[i : i + size]))
        i += size
    assert i >= len(text)
    rest, calls = scanner.finish()
    return shown, rest, calls


def random_sizes(length: int, seed: int) -> list[int]:
    rnd = random.Random(seed)
    sizes: list[int] = []
    while sum(sizes) < length:
        sizes.append(rnd.randint(1, 9))
    return sizes


def as_expected(calls: list[TextToolCall]) -> tuple[tuple[str, object], ...]:
    return tuple((c.name, None if c.error else c.arguments) for c in calls)


@pytest.mark.parametrize("case", TEXT_CASES, ids=lambda c: c.id)
def test_corpus_non_streaming(case: TextCase) -> None:
    text, calls = extract_text_tool_calls(case.raw, OFFERED)
    assert text == case.text
    assert as_expected(calls) == case.calls
    for call in calls:
        if call.error is not None:
            assert call.arguments == {}
            assert call.name in str(call.error)


@pytest.mark.parametrize("case", TEXT_CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("seed", range(8))
def test_corpus_streaming_random_fragments(case: TextCase, seed: int) -> None:
    shown, rest, calls = stream(case.raw, random_sizes(len(case.raw), seed))
    full = "".join(shown) + rest
    assert as_expected(calls) == case.calls
    if calls:
        assert full.strip() == case.text
    else:
        # Nothing taken: every character shown exactly once, in order.
        assert full == case.raw


@pytest.mark.parametrize("case", TEXT_CASES, ids=lambda c: c.id)
def test_corpus_streaming_one_char_at_a_time(case: TextCase) -> None:
    shown, rest, calls = stream(case.raw, [1] * len(case.raw))
    assert as_expected(calls) == case.calls
    full = "".join(shown) + rest
    assert (full.strip() if calls else full) == case.text


def test_text_before_a_call_is_shown_before_the_call_completes() -> None:
    scanner = TextCallScanner(OFFERED)
    assert scanner.feed("Let me look. <tool_") == "Let me look. "
    assert scanner.feed('call>{"name": "read_file", ') == ""
    assert scanner.feed('"arguments": {"path": "a"}}</tool_call> Done') == " Done"
    rest, calls = scanner.finish()
    assert rest == ""
    assert calls == [TextToolCall("read_file", {"path": "a"})]


def test_held_back_prefix_is_released_when_it_is_not_a_marker() -> None:
    scanner = TextCallScanner(OFFERED)
    assert scanner.feed("a < b and x <tool") == "a < b and x "
    assert scanner.feed("box> y") == "<toolbox> y"
    assert scanner.finish() == ("", [])


def test_hot_path_returns_fragment_unchanged() -> None:
    scanner = TextCallScanner(OFFERED)
    assert scanner.feed("Hello") == "Hello"
    assert scanner.feed(", world. ") == ", world. "
    assert scanner.finish() == ("", [])


def test_message_starting_with_brace_is_held_until_decided() -> None:
    scanner = TextCallScanner(OFFERED)
    assert scanner.feed('{"name": "Bob",') == ""
    assert scanner.feed(' "age": 3}') == ""
    assert scanner.feed(" is the record.") == '{"name": "Bob", "age": 3} is the record.'
    assert scanner.finish() == ("", [])


def test_inactive_without_offered_tools() -> None:
    raw = '<tool_call>{"name": "read_file", "arguments": {}}</tool_call>'
    scanner = TextCallScanner(())
    assert scanner.feed(raw) == raw
    assert scanner.finish() == ("", [])
    assert extract_text_tool_calls(raw, ()) == (raw, [])


def test_only_offered_tools_are_taken() -> None:
    raw = '<tool_call>{"name": "read_file", "arguments": {"path": "a"}}</tool_call>'
    assert extract_text_tool_calls(raw, ["bash"]) == (raw, [])
    assert extract_text_tool_calls(raw, ["Read_File"])[1] == [
        TextToolCall("Read_File", {"path": "a"})
    ]


def test_text_without_calls_is_returned_unchanged() -> None:
    raw = "  Some answer with trailing space.\n"
    assert extract_text_tool_calls(raw, OFFERED) == (raw, [])


_PIECES = st.sampled_from(
    [
        "<tool_call>",
        "</tool_call>",
        "```json\n",
        "```",
        "[TOOL_CALLS]",
        "<|python_tag|>",
        "<function=bash>",
        "</function>",
        '{"name": "bash", "arguments": {"command": "ls"}}',
        '{"name": "Bob"}',
        "{",
        "}",
        "[",
        "]",
        ";",
        "<",
        "hello ",
        "\n",
        " ",
        "bash",
        '"',
    ]
)


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(_PIECES, max_size=12), seed=st.integers(0, 1000))
def test_streaming_matches_non_streaming_for_any_text(pieces: list[str], seed: int) -> None:
    raw = "".join(pieces)
    text, calls = extract_text_tool_calls(raw, OFFERED)
    shown, rest, streamed_calls = stream(raw, random_sizes(len(raw), seed))
    full = "".join(shown) + rest
    assert streamed_calls == calls
    assert (full.strip() if calls else full) == text
    if not calls:
        assert full == raw


def test_fenced_call_is_held_until_the_reply_ends() -> None:
    # Only a reply that is nothing but the fenced call is a call: text after it decides.
    scanner = TextCallScanner(OFFERED)
    fenced = '```json\n{"name": "bash", "arguments": {"command": "ls"}}\n```'
    assert scanner.feed(fenced) == ""
    assert scanner.feed("\n") == ""
    assert scanner.finish() == ("", [TextToolCall("bash", {"command": "ls"})])
    scanner = TextCallScanner(OFFERED)
    assert scanner.feed(fenced) == ""
    assert scanner.feed(" Run it.") == fenced + " Run it."
    assert scanner.finish() == ("", [])


def test_code_fence_of_another_language_is_released_at_once() -> None:
    scanner = TextCallScanner(OFFERED)
    assert scanner.feed("``") == ""
    assert scanner.feed("`js") == ""  # may still become ```json
    assert scanner.feed("x\nlet a") == "```jsx\nlet a"
    assert scanner.feed(" = {}") == " = {}"
    assert scanner.finish() == ("", [])
    scanner = TextCallScanner(OFFERED)
    assert scanner.feed("```python\n{") == "```python\n{"
