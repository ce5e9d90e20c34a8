"""Server-sent-events decoding: text lines in, one data payload per event out.

Only the `data` field matters for Chat Completions. Comments (TGI's `: ` keep-alives) and
`event:`/`id:`/`retry:` fields are dropped; an `event: error` still yields its data, and the
assembler recognises the `{"error": ...}` object. Some proxies send bare JSON lines with no
SSE framing at all; those are yielded as they are.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

__all__ = ["SSEDecoder", "iter_sse_data"]


class SSEDecoder:
    """Incremental SSE decoder fed one line at a time (line terminators already removed).

    `feed_line` returns a complete event's data when the line finishes one, else None;
    `flush` returns the event still pending at end of stream (servers that omit the final
    blank line). At most one payload comes out per call, which keeps the hot path free of
    list allocation.
    """

    __slots__ = ("_data",)

    def __init__(self) -> None:
        # Data of the event being read; None until its first `data` line.
        self._data: str | None = None

    def feed_line(self, line: str) -> str | None:
        if line.startswith("data:"):
            # The spec strips exactly one space after the colon.
            value = line[6:] if line.startswith(" ", 5) else line[5:]
            data = self._data
            if data is None:
                self._data = value
                return None
            if data.endswith("}") and value.startswith(("{", "[DONE]")):
                # No blank line between two events (seen from broken proxies). "}\n{" can
                # never continue a JSON value, because JSON strings cannot hold a raw newline,
                # so this is a new event, not the next line of a multi-line one.
                self._data = value
                return _payload(data)
            self._data = data + "\n" + value
            return None
        if not line:
            data = self._data
            if data is None:
                return None
            self._data = None
            if data and not data[0].isspace():
                return data  # the common case, without a function call
            return _payload(data)
        first = line[0]
        if first == ":":
            return None  # comment / keep-alive
        if self._data is None and (first == "{" or line == "[DONE]"):
            return line  # bare JSON line outside any SSE event
        # event:, id:, retry:, unknown fields and stray text are ignored per the SSE spec.
        return None

    def flush(self) -> str | None:
        data = self._data
        self._data = None
        return None if data is None else _payload(data)


def _payload(data: str) -> str | None:
    """Drop events whose data is empty or whitespace only (nothing to parse)."""
    if not data:
        return None
    if data[0].isspace() and not data.strip():
        return None
    return data


async def iter_sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """Yield the data payload of every event; "[DONE]" is yielded as is for the caller."""
    decoder = SSEDecoder()
    feed = decoder.feed_line
    async for line in lines:
        data = feed(line)
        if data is not None:
            yield data
    data = decoder.flush()
    if data is not None:
        yield data
