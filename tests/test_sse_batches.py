"""iter_sse_batches: the same payloads as iter_sse_data(iter_lines(...)), however split."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from hypothesis import given, settings
from hypothesis import strategies as st

from amplifier_module_provider_chat_completions.reply.sse import (
    iter_lines,
    iter_sse_batches,
    iter_sse_data,
)


async def _pieces(pieces: list[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


def _batched(pieces: list[bytes]) -> list[str]:
    async def run() -> list[str]:
        return [d async for batch in iter_sse_batches(_pieces(pieces)) for d in batch]

    return asyncio.run(run())


def _reference(pieces: list[bytes]) -> list[str]:
    async def run() -> list[str]:
        return [d async for d in iter_sse_data(iter_lines(_pieces(pieces)))]

    return asyncio.run(run())


def _split(raw: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(raw) + 1) for c in cuts})
    return [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]


def test_common_stream_one_batch_per_read() -> None:
    raw = b'data: {"a":1}\n\ndata: {"a":2}\n\ndata: [DONE]\n\n'
    assert _batched([raw]) == ['{"a":1}', '{"a":2}', "[DONE]"]


def test_crlf_cr_comments_multiline_and_missing_final_blank_line() -> None:
    raw = (
        ': keep-alive\r\n\r\nevent: error\rdata: {"error":\r\ndata: 1}\r\rdata:  x\n\n'
        "data: h\u00e9llo\u2028\n\n"
        '{"bare":true}\n'
        "data: tail"
    ).encode()
    expected = _reference([raw])
    assert expected == ['{"error":\n1}', " x", "h\u00e9llo\u2028", '{"bare":true}', "tail"]
    for size in range(1, 8):  # every split, inside CRLF and inside multi-byte characters
        assert _batched([raw[i : i + size] for i in range(0, len(raw), size)]) == expected


def test_blank_and_whitespace_data_skipped() -> None:
    assert _batched([b"data:\n\ndata:  \n\ndata: {}\n\n"]) == ["{}"]


_LINES = st.sampled_from(
    [
        'data: {"a":1}',
        "data: [DONE]",
        "data:",
        "data:  spaced",
        ": comment",
        "event: error",
        "id: 7",
        '{"bare":1}',
        "",
        "data: \u00e9\u2029",
    ]
)


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(_LINES, max_size=12),
    ends=st.lists(st.sampled_from(["\n", "\r\n", "\r"]), min_size=12, max_size=12),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=6),
)
def test_matches_the_line_reader_for_any_framing_and_split(
    lines: list[str], ends: list[str], cuts: list[int]
) -> None:
    raw = "".join(line + end for line, end in zip(lines, ends, strict=False)).encode()
    assert _batched(_split(raw, cuts)) == _reference([raw])
