"""SSE decoding: one payload per event, whatever framing the server uses."""

from __future__ import annotations

from collections.abc import AsyncIterator

from amplifier_module_provider_chat_completions.reply.sse import SSEDecoder, iter_sse_data


def decode(lines: list[str]) -> list[str]:
    dec = SSEDecoder()
    out = [d for line in lines if (d := dec.feed_line(line)) is not None]
    tail = dec.flush()
    if tail is not None:
        out.append(tail)
    return out


def test_common_data_blank_pattern() -> None:
    lines = ['data: {"a":1}', "", 'data: {"a":2}', "", "data: [DONE]", ""]
    assert decode(lines) == ['{"a":1}', '{"a":2}', "[DONE]"]


def test_payload_returned_on_the_blank_line_not_before() -> None:
    dec = SSEDecoder()
    assert dec.feed_line('data: {"a":1}') is None
    assert dec.feed_line("") == '{"a":1}'


def test_data_without_space() -> None:
    assert decode(['data:{"a":1}', ""]) == ['{"a":1}']


def test_only_one_space_is_stripped() -> None:
    assert decode(['data:  {"a":1}', ""]) == [' {"a":1}']


def test_tgi_keepalive_comments_skipped() -> None:
    assert decode([": ", ":keep-alive", 'data: {"a":1}', "", ": "]) == ['{"a":1}']


def test_event_id_retry_fields_ignored() -> None:
    lines = ["event: message", "id: 7", "retry: 1000", 'data: {"a":1}', ""]
    assert decode(lines) == ['{"a":1}']


def test_event_error_still_yields_its_data() -> None:
    lines = ["event: error", 'data: {"error":{"message":"boom"}}', ""]
    assert decode(lines) == ['{"error":{"message":"boom"}}']


def test_blank_data_skipped() -> None:
    assert decode(["data:", "", "data: ", "", "data:   ", "", 'data: {"a":1}', ""]) == ['{"a":1}']


def test_multiline_data_joined_with_newline() -> None:
    lines = ['data: {"a":', "data: 1}", ""]
    assert decode(lines) == ['{"a":\n1}']


def test_bare_json_lines_without_sse_framing() -> None:
    assert decode(['{"a":1}', '{"a":2}', "[DONE]"]) == ['{"a":1}', '{"a":2}', "[DONE]"]


def test_missing_blank_line_between_events_splits_them() -> None:
    assert decode(['data: {"a":1}', 'data: {"a":2}', "data: [DONE]"]) == [
        '{"a":1}',
        '{"a":2}',
        "[DONE]",
    ]


def test_flush_returns_event_without_final_blank_line() -> None:
    # Amazon server: no [DONE], and the last event may lack its blank line at EOF.
    dec = SSEDecoder()
    assert dec.feed_line('data: {"a":1}') is None
    assert dec.flush() == '{"a":1}'
    assert dec.flush() is None


def test_stray_text_line_ignored() -> None:
    assert decode(["hello", 'data: {"a":1}', ""]) == ['{"a":1}']


async def _lines(items: list[str]) -> AsyncIterator[str]:
    for item in items:
        yield item


async def test_iter_sse_data_async() -> None:
    lines = [": ", 'data: {"a":1}', "", "event: ping", "", 'data: {"a":2}']
    got = [d async for d in iter_sse_data(_lines(lines))]
    assert got == ['{"a":1}', '{"a":2}']


# -- iter_lines: byte stream -> lines at CR/LF only ------------------------------------


async def _split_bytes(pieces: list[bytes]) -> list[str]:
    from amplifier_module_provider_chat_completions.reply.sse import iter_lines

    async def gen():
        for p in pieces:
            yield p

    return [line async for line in iter_lines(gen())]


async def test_iter_lines_splits_only_at_cr_lf():
    body = "data: a\u2028b\u2029c\x85d\r\n\r\ndata: e\rf\n".encode()
    assert await _split_bytes([body]) == ["data: a\u2028b\u2029c\x85d", "", "data: e", "f"]


async def test_iter_lines_joins_pieces_and_split_crlf():
    text = "data: h\u00e9llo\r\n\r\ndata: x"
    raw = text.encode()
    expected = ["data: h\u00e9llo", "", "data: x"]
    for size in range(1, 6):  # every split, including inside CRLF and inside "é"
        pieces = [raw[i : i + size] for i in range(0, len(raw), size)]
        assert await _split_bytes(pieces) == expected
