"""Reasoning in the text: <think> tags, unclosed blocks, Ampify's [thinking] prefix."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amplifier_module_provider_chat_completions.reply.thinking import (
    Piece,
    ThinkSplitter,
    split_thinking,
)


def run(chunks: list[str], **kwargs: bool) -> list[Piece]:
    splitter = ThinkSplitter(**kwargs)
    pieces: list[Piece] = []
    for chunk in chunks:
        pieces += splitter.feed(chunk)
    pieces += splitter.finish()
    return merge(pieces)


def merge(pieces: list[Piece]) -> list[Piece]:
    out: list[Piece] = []
    for kind, text in pieces:
        assert text, "empty pieces are never emitted"
        if out and out[-1][0] == kind:
            out[-1] = (kind, out[-1][1] + text)
        else:
            out.append((kind, text))
    return out


def every_split(text: str) -> list[list[str]]:
    return [[text[:i], text[i:]] for i in range(len(text) + 1)] + [list(text)]


CASES: list[tuple[str, list[Piece]]] = [
    (
        "<think>Check the units.</think>\n\nIt is 5 km.",
        [
            ("thinking", "Check the units."),
            ("text", "It is 5 km."),
        ],
    ),
    ("<think>\n\n</think>\n\nHi!", [("text", "Hi!")]),  # Qwen3 with thinking switched off
    ("No reasoning here.", [("text", "No reasoning here.")]),
    # Servers put the block at the start of the reply only: a tag inside the answer
    # (prose, code, a regex) is part of the answer.
    ("Intro <think>hidden</think> outro", [("text", "Intro <think>hidden</think> outro")]),
    (
        "<think>a</think>b<think>c</think>d",
        [
            ("thinking", "a"),
            ("text", "b<think>c</think>d"),
        ],
    ),
    (
        "Use re.sub(r'<think>.*?</think>', '', s) to drop it.",
        [("text", "Use re.sub(r'<think>.*?</think>', '', s) to drop it.")],
    ),
    ("```xml\n<think>x</think>\n```", [("text", "```xml\n<think>x</think>\n```")]),
    (" \n<think>plan</think>answer", [("thinking", "plan"), ("text", "answer")]),
    ("[thinking]\nhm\n\nsee [thinking]\nx", [("thinking", "hm"), ("text", "see [thinking]\nx")]),
    ("<think>cut off by max_tokens", [("thinking", "cut off by max_tokens")]),
    (
        "[thinking]\nThe user wants a haiku.\n\nLeaves fall",
        [
            ("thinking", "The user wants a haiku."),
            ("text", "Leaves fall"),
        ],
    ),
    (
        "[thinking]\nStep one.\n[/thinking]\nAnswer.",
        [
            ("thinking", "Step one."),
            ("text", "Answer."),
        ],
    ),
    (
        "[thinking]\nStep one.\n[answer]\nAnswer.",
        [
            ("thinking", "Step one."),
            ("text", "Answer."),
        ],
    ),
    ("Not [thinking]\nat the start", [("text", "Not [thinking]\nat the start")]),
    ("a < b and <thinker> too", [("text", "a < b and <thinker> too")]),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_non_streaming(text: str, expected: list[Piece]) -> None:
    assert split_thinking(text) == expected


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_streaming_any_split_point(text: str, expected: list[Piece]) -> None:
    for chunks in every_split(text):
        assert run(chunks) == expected, chunks


def test_tag_split_across_chunks_is_not_shown() -> None:
    splitter = ThinkSplitter()
    assert splitter.feed("<th") == []
    assert splitter.feed("ink>plan") == [("thinking", "plan")]
    assert splitter.feed("ning</th") == [("thinking", "ning")]
    assert splitter.feed("ink>Done") == [("text", "Done")]
    assert splitter.finish() == []


def test_unclosed_block_non_streaming() -> None:
    text = "The user asks for 2+2. That is 4.\n</think>\n\nThe answer is 4."
    assert split_thinking(text) == [
        ("thinking", "The user asks for 2+2. That is 4.\n"),
        ("text", "The answer is 4."),
    ]


def test_unclosed_block_streaming_with_starts_inside() -> None:
    text = "Okay, let me think.\n</think>\n\nHello!"
    for chunks in every_split(text):
        assert run(chunks, starts_inside=True) == [
            ("thinking", "Okay, let me think.\n"),
            ("text", "Hello!"),
        ]


def test_starts_inside_with_no_closer_is_all_thinking() -> None:
    assert run(["still thinking"], starts_inside=True) == [("thinking", "still thinking")]


def test_unclosed_block_streaming_without_flag_is_text_and_flags_reclassified() -> None:
    splitter = ThinkSplitter()
    pieces = splitter.feed("Let me reason.") + splitter.feed("\n</think>\n\nHello!")
    pieces += splitter.finish()
    assert merge(pieces) == [("text", "Let me reason.\nHello!")]
    assert splitter.reclassified
    # The caller re-splits the full content for the final response.
    assert split_thinking("Let me reason.\n</think>\n\nHello!")[0][0] == "thinking"


def test_stray_closer_after_a_real_block_is_text() -> None:
    assert split_thinking("<think>x</think>a</think>b") == [
        ("thinking", "x"),
        ("text", "a</think>b"),
    ]
    splitter = ThinkSplitter()
    splitter.feed("<think>x</think>a</think>b")
    assert not splitter.reclassified


def test_disabled_passes_everything_as_text() -> None:
    splitter = ThinkSplitter(enabled=False)
    assert splitter.feed("<think>x</think>") == [("text", "<think>x</think>")]
    assert splitter.feed("") == []
    assert splitter.finish() == []
    assert split_thinking("<think>x</think>y", enabled=False) == [("text", "<think>x</think>y")]


def test_fast_path_emits_fragments_directly() -> None:
    splitter = ThinkSplitter()
    assert splitter.feed("Hello") == [("text", "Hello")]
    assert splitter.feed(" world") == [("text", " world")]


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(
        st.sampled_from(["<think>", "</think>", "<", "a", " ", "\n", "[thinking]\n", "x\n\n"]),
        max_size=10,
    ),
    cut=st.integers(0, 200),
)
def test_streaming_matches_non_streaming(pieces: list[str], cut: int) -> None:
    text = "".join(pieces)
    inside = split_thinking(text)
    starts_inside = (
        text.find("</think>") >= 0
        and (text.find("<think>") < 0 or text.find("</think>") < text.find("<think>"))
        and not text.lstrip().startswith("[thinking]\n")
    )
    cut = min(cut, len(text))
    assert run([text[:cut], text[cut:]], starts_inside=starts_inside) == inside
