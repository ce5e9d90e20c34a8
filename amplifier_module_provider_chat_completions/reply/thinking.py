"""Reasoning written into the message text: split it from the answer.

Forms handled, all only where servers put them: at the start of the reply (leading
whitespace allowed). A tag written later, inside the answer (prose about tags, a regex, an
HTML or XML sample), is part of the answer.
- `<think>...</think>` (TGI, vLLM/llama.cpp without a reasoning parser, LM Studio); a tag
  split across stream chunks is held back until decided.
- A response that starts inside an unclosed think block (Qwen3 and DeepSeek-R1 distills
  when the chat template already opened it): the text has `</think>` with no opener.
  `split_thinking` detects this exactly. A streaming splitter cannot know it until the
  `</think>` arrives, so it needs `starts_inside=True` (set by the provider when it knows
  the template opens the block); without it the text before the stray `</think>` is
  streamed as text, the tag is dropped, and `reclassified` is set so the caller can
  re-split the full content with `split_thinking` for the final response. Only a closer
  before any `<think>` counts: after one, the answer is talking about the tags.
- Ampify's inline form: content that starts with `[thinking]\\n`. Ampify's closing marker is
  not documented; ASSUMPTION: the thinking ends at the first of a `[/thinking]` line, an
  `[answer]` line, or a blank line ("\\n\\n"), whichever comes first, and the marker is
  dropped. (Thinking with paragraphs therefore ends at its first blank line.)

Leading whitespace of each thinking block and of the text right after a block is dropped:
templates put newlines there that are not part of either.
"""

from __future__ import annotations

from typing import Final, Literal

Kind = Literal["thinking", "text"]
Piece = tuple[Kind, str]

OPEN: Final = "<think>"
CLOSE: Final = "</think>"
AMPIFY_PREFIX: Final = "[thinking]\n"
# Ends of an Ampify thinking section (the newline after a marker line is dropped with the
# whitespace that follows every block).
_AMPIFY_ENDS: Final = ("\n[/thinking]", "\n[answer]", "\n\n")

_TEXT: Final = "text"  # answer text in which a stray `</think>` may still end reasoning
_PLAIN: Final = "plain"  # answer text with the reasoning settled: passed through untouched
_THINK: Final = "think"
_AMPIFY: Final = "ampify"
_START: Final = "start"


class ThinkSplitter:
    """Streaming splitter: `feed` content fragments, get ordered (kind, text) pieces."""

    def __init__(self, enabled: bool = True, starts_inside: bool = False) -> None:
        self.enabled = enabled
        self._mode = _THINK if starts_inside else _START
        self._buf = ""
        self._lstrip = starts_inside  # drop whitespace before the next visible character
        self._emitted_text = False
        self.reclassified = False
        """True when a `</think>` without opener showed that streamed text was thinking."""

    def feed(self, fragment: str) -> list[Piece]:
        if not self.enabled:
            return [("text", fragment)] if fragment else []
        if not self._buf and not self._lstrip:
            # Fast path: nothing held and nothing in the fragment that could start a tag.
            mode = self._mode
            if mode == _TEXT and "<" not in fragment:
                self._emitted_text = self._emitted_text or bool(fragment)
                return [("text", fragment)] if fragment else []
            if mode == _PLAIN:
                return [("text", fragment)] if fragment else []
            if mode == _THINK and "<" not in fragment:
                return [("thinking", fragment)] if fragment else []
        self._buf += fragment
        return self._drain(final=False)

    def finish(self) -> list[Piece]:
        if not self.enabled:
            return []
        return self._drain(final=True)

    def _drain(self, *, final: bool) -> list[Piece]:
        out: list[Piece] = []
        while self._buf:
            if self._lstrip:
                self._buf = self._buf.lstrip()
                if not self._buf:
                    break
                self._lstrip = False
            if self._mode == _START:
                if not self._decide_start(final=final):
                    break
            elif self._mode == _TEXT:
                if not self._scan_text(out, final=final):
                    break
            elif self._mode == _PLAIN:
                self._emit(out, "text", self._buf)
                self._buf = ""
            elif self._mode == _THINK:
                if not self._scan_until(out, (CLOSE,), "thinking", final=final):
                    break
            elif not self._scan_until(out, _AMPIFY_ENDS, "thinking", final=final):
                break
        return _merge(out)

    def _decide_start(self, *, final: bool) -> bool:
        """Choose the mode from the first visible characters; False to wait for more."""
        head = self._buf.lstrip()
        if not head and not final:
            return False
        for prefix in (AMPIFY_PREFIX, OPEN):
            if head.startswith(prefix):
                self._buf = head[len(prefix) :]
                self._mode = _AMPIFY if prefix == AMPIFY_PREFIX else _THINK
                self._lstrip = True
                return True
            if prefix.startswith(head) and not final:
                return False
        self._mode = _TEXT
        return True

    def _scan_text(self, out: list[Piece], *, final: bool) -> bool:
        buf = self._buf
        open_at = buf.find(OPEN)
        close_at = buf.find(CLOSE)
        if close_at >= 0 and (open_at < 0 or close_at < open_at):
            # A closer with no opener: everything before it was reasoning.
            self._emit(out, "text", buf[:close_at])
            self.reclassified = self.reclassified or self._emitted_text
            self._buf = buf[close_at + len(CLOSE) :]
            self._mode = _PLAIN
            self._lstrip = True
            return True
        if open_at >= 0:
            # An opener inside the answer: the answer is about the tags, and no closer
            # after it can be a stray one.
            self._mode = _PLAIN
            return True
        hold = 0 if final else _partial_len(buf, (OPEN, CLOSE))
        self._emit(out, "text", buf[: len(buf) - hold])
        self._buf = buf[len(buf) - hold :]
        return False

    def _scan_until(
        self, out: list[Piece], ends: tuple[str, ...], kind: Kind, *, final: bool
    ) -> bool:
        buf = self._buf
        best, found = len(buf), ""
        for end in ends:
            i = buf.find(end)
            if 0 <= i < best:
                best, found = i, end
        if found:
            self._emit(out, kind, buf[:best])
            self._buf = buf[best + len(found) :]
            self._mode = _PLAIN
            self._lstrip = True
            return True
        hold = 0 if final else _partial_len(buf, ends)
        self._emit(out, kind, buf[: len(buf) - hold])
        self._buf = buf[len(buf) - hold :]
        return False

    def _emit(self, out: list[Piece], kind: Kind, piece: str) -> None:
        if piece:
            out.append((kind, piece))
            if kind == "text":
                self._emitted_text = True


def _partial_len(buf: str, tags: tuple[str, ...]) -> int:
    """Length of the longest suffix of `buf` that could still grow into one of `tags`."""
    longest = max(len(tag) for tag in tags) - 1
    for size in range(min(longest, len(buf)), 0, -1):
        tail = buf[-size:]
        if any(tag.startswith(tail) for tag in tags):
            return size
    return 0


def _merge(pieces: list[Piece]) -> list[Piece]:
    merged: list[Piece] = []
    for kind, text in pieces:
        if merged and merged[-1][0] == kind:
            merged[-1] = (kind, merged[-1][1] + text)
        else:
            merged.append((kind, text))
    return merged


def split_thinking(text: str, *, enabled: bool = True) -> list[Piece]:
    """Non-streaming split of a whole message, including the unclosed-block case."""
    if not enabled:
        return [("text", text)] if text else []
    open_at = text.find(OPEN)
    close_at = text.find(CLOSE)
    # `</think>` before any `<think>`: the template opened the block before the response.
    starts_inside = close_at >= 0 and (open_at < 0 or close_at < open_at)
    if starts_inside and text.lstrip().startswith(AMPIFY_PREFIX):
        starts_inside = False
    splitter = ThinkSplitter(starts_inside=starts_inside)
    return _merge(splitter.feed(text) + splitter.finish())
