"""The content pipeline: message text -> think splitting -> text tool-call scanning -> blocks.

`ThinkSplitter` takes reasoning written into the text (`<think>`, `[thinking]\\n`) out of
it; when the request offered tools, `TextCallScanner` holds back text that may be a tool
call the server did not parse and releases it once decided. What is left is text. Held
text is released once, never twice; the calls found are returned by `flush`, the only
place they are decided for good (a call never spans the end of the reply).
"""

from __future__ import annotations

from .blocks import TEXT, THINKING, BlockEvent, BlockSequence
from .textcalls import TextCallScanner, TextToolCall, extract_text_tool_calls
from .thinking import Kind, ThinkSplitter, split_thinking

__all__ = ["ContentPipeline"]


class ContentPipeline:
    """One reply's message text, fed fragment by fragment."""

    __slots__ = ("_blocks", "_offered", "_raw", "_scanner", "_splitter", "_ws")

    def __init__(
        self,
        blocks: BlockSequence,
        offered: frozenset[str],
        *,
        think_tags: bool,
        think_starts_inside: bool,
    ) -> None:
        self._blocks = blocks
        self._offered = offered
        # None when off, so the hot path skips them entirely.
        self._splitter = ThinkSplitter(True, think_starts_inside) if think_tags else None
        self._scanner = TextCallScanner(offered) if offered else None
        self._raw: list[str] = []  # every fragment, to re-split when reclassified
        self._ws = ""  # whitespace that would open a text block of its own (held)

    @property
    def reclassified(self) -> bool:
        """Text streamed before a stray `</think>` was reasoning (see `resplit`)."""
        splitter = self._splitter
        return splitter is not None and splitter.reclassified

    def feed(self, content: str, events: list[BlockEvent] | None) -> None:
        """One fragment of message text (the per-chunk hot path)."""
        splitter = self._splitter
        if splitter is not None:
            self._raw.append(content)
            pieces = splitter.feed(content)
            if len(pieces) != 1 or pieces[0][0] != "text":
                self._pieces(pieces, events)
                return
            content = pieces[0][1]
        if self._scanner is None:
            cur = self._blocks.cur
            if cur is not None and cur.kind is TEXT:
                # The hottest path, inlined: one more token of the open text block.
                cur.parts.append(content)
                if events is not None:
                    events.append(BlockEvent("delta", cur.index, TEXT, content, cur.seq))
                cur.seq += 1
                return
        self._text(content, events)

    def _pieces(self, pieces: list[tuple[Kind, str]], events: list[BlockEvent] | None) -> None:
        for kind, piece in pieces:
            if kind == "text":
                self._text(piece, events)
            else:
                # Only at the start of the reply: before any text, so before any call.
                self._blocks.add(THINKING, piece, events)

    def _text(self, text: str, events: list[BlockEvent] | None) -> None:
        scanner = self._scanner
        if scanner is not None:
            text = scanner.feed(text)
            if not text:
                return  # held back: it may be the start of a call
        self._show(text, events)

    def _show(self, text: str, events: list[BlockEvent] | None) -> None:
        blocks = self._blocks
        cur = blocks.cur
        if cur is not None and cur.kind is TEXT:
            # Hot path: one more token of the open text block.
            cur.parts.append(text)
            if events is not None:
                events.append(BlockEvent("delta", cur.index, TEXT, text, cur.seq))
            cur.seq += 1
            return
        if self._scanner is not None:
            # Whitespace between extracted calls must not open a text block of its own.
            if text.isspace():
                self._ws += text
                return
            if self._ws:
                text, self._ws = self._ws + text, ""
        blocks.add(TEXT, text, events)

    def flush(self, events: list[BlockEvent] | None) -> list[TextToolCall]:
        """Release everything held back; return the calls written in the text. Call once."""
        splitter = self._splitter
        if splitter is not None:
            self._pieces(splitter.finish(), events)
        calls: list[TextToolCall] = []
        scanner = self._scanner
        if scanner is not None:
            rest, calls = scanner.finish()
            if rest:
                self._show(rest, events)
            self._scanner = None
        ws, self._ws = self._ws, ""
        if ws and not calls:
            self._blocks.add(TEXT, ws, events)
        return calls

    def resplit(self) -> list[tuple[Kind, str]]:
        """The whole text split again, for a reply whose start was reasoning after all."""
        out: list[tuple[Kind, str]] = []
        for kind, piece in split_thinking("".join(self._raw)):
            if kind == "text" and self._offered:
                piece = extract_text_tool_calls(piece, self._offered)[0]
            if piece:
                out.append((kind, piece))
        return out
