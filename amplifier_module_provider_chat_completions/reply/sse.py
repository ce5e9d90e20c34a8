"""Server-sent-events decoding: text lines in, one data payload per event out.

Only the `data` field matters for Chat Completions. Comments (TGI's `: ` keep-alives) and
`event:`/`id:`/`retry:` fields are dropped; an `event: error` still yields its data, and the
assembler recognises the `{"error": ...}` object. Some proxies send bare JSON lines with no
SSE framing at all; those are yielded as they are.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

_LINE_ENDS = (b"\n", b"\r")

__all__ = ["SSEDecoder", "iter_lines", "iter_sse_batches", "iter_sse_data"]


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


class _LineSplitter:
    """Cut a byte stream into lines at CRLF, LF or CR only (the SSE line ends).

    A long line costs linear time: its pieces are joined once, when the line ends.
    """

    __slots__ = ("parts", "trailing_cr")

    def __init__(self) -> None:
        self.parts: list[bytes] = []  # the unfinished line, in pieces
        self.trailing_cr = False  # the last read ended in CR: a LF next completes that CRLF

    def feed(self, data: bytes) -> list[bytes]:
        """The lines this read completes (maybe none)."""
        if self.trailing_cr and data.startswith(b"\n"):
            data = data[1:]
        if not data:
            return []
        self.trailing_cr = data.endswith(b"\r")
        if b"\n" not in data and b"\r" not in data:
            self.parts.append(data)
            return []
        lines = data.splitlines()  # bytes split at \r\n, \n and \r only
        if self.parts:
            self.parts.append(lines[0])
            lines[0] = b"".join(self.parts)
            self.parts = []
        if not data.endswith(_LINE_ENDS):
            self.parts = [lines.pop()]
        return lines

    def tail(self) -> bytes | None:
        """The unterminated last line at end of stream, if any."""
        return b"".join(self.parts) if self.parts else None


async def iter_lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[str]:
    """Split a UTF-8 byte stream into lines at CRLF, LF or CR only (the SSE line ends).

    httpx's `aiter_lines` also splits at U+2028, U+2029 and U+0085, which JSON allows raw
    inside strings: a chunk whose text holds one would be cut in two.
    """
    splitter = _LineSplitter()
    async for data in chunks:
        for line in splitter.feed(data):
            yield line.decode("utf-8", "replace")
    tail = splitter.tail()
    if tail is not None:
        yield tail.decode("utf-8", "replace")


async def iter_sse_batches(chunks: AsyncIterator[bytes]) -> AsyncIterator[list[str]]:
    """`iter_sse_data(iter_lines(chunks))` with one list of payloads per network read.

    The streaming hot path: a read holds anything from one to hundreds of events, and an
    async generator step per line (two generators, two lines per event) cost more CPU than
    parsing the event. Lines split at CRLF, LF or CR only, like `iter_lines`.
    """
    decoder = SSEDecoder()
    feed = decoder.feed_line
    splitter = _LineSplitter()
    async for data in chunks:
        lines = splitter.feed(data)
        if not lines:
            continue
        out: list[str] = []
        # Decoding whole lines is safe: no UTF-8 sequence contains a CR or LF byte. The
        # `data: {...}` + blank line pair is inlined (it is nearly every line); anything
        # else goes through feed_line, which shares the decoder's state.
        for line in lines:
            if not line:
                pending = decoder._data
                if pending and not pending[0].isspace():
                    decoder._data = None
                    out.append(pending)
                    continue
                payload = feed("")
            elif decoder._data is None and line.startswith(b"data: "):
                decoder._data = line[6:].decode("utf-8", "replace")
                continue
            else:
                payload = feed(line.decode("utf-8", "replace"))
            if payload is not None:
                out.append(payload)
        if out:
            yield out
    last = splitter.tail()
    tail = [feed(last.decode("utf-8", "replace"))] if last is not None else []
    tail.append(decoder.flush())
    out = [payload for payload in tail if payload is not None]
    if out:
        yield out
