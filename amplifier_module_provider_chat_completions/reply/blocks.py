"""Block sequencing: the reply's blocks in arrival order and their live events.

Text, thinking and tool-use blocks share one 0-based index space. A block opens when the
first piece of a new kind arrives, which ends the block before it; `close` ends the last
one. With `events=None` (a non-streaming body, the final flush) blocks are built the same
way and no events are produced.

Per-chunk hot path: kinds are compared by identity, fragments are collected in lists and
joined once by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from .toolcalls import ToolSlot

__all__ = ["TEXT", "THINKING", "TOOL", "Block", "BlockEvent", "BlockSequence", "BlockType"]

BlockType = Literal["text", "thinking", "tool_use"]

TEXT: BlockType = "text"
THINKING: BlockType = "thinking"
TOOL: BlockType = "tool_use"


@dataclass(slots=True)
class BlockEvent:
    """One live streaming event; maps 1:1 onto an `llm:stream_block_*` event."""

    kind: Literal["start", "delta", "end"]
    index: int  # one shared 0-based block_index space across block types
    block_type: BlockType
    text: str = ""  # delta only, never empty
    sequence: int = 0  # delta only, 0-based per block
    name: str | None = None  # tool_use start only


class Block:
    """One block: its text fragments, or the tool call it shows."""

    __slots__ = ("index", "kind", "parts", "seq", "slot")

    def __init__(self, index: int, kind: BlockType, slot: ToolSlot | None) -> None:
        self.index = index
        self.kind = kind
        self.parts: list[str] = []
        self.seq = 0  # the next delta's sequence number
        self.slot = slot


class BlockSequence:
    """The blocks of one reply; `cur` is the open one (None before the first and after end)."""

    __slots__ = ("blocks", "cur", "emitted")

    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.cur: Block | None = None
        self.emitted = False  # a delta event was produced

    def open(
        self,
        kind: BlockType,
        events: list[BlockEvent] | None,
        name: str | None = None,
        slot: ToolSlot | None = None,
    ) -> Block:
        """Start a new block, ending the open one."""
        block = Block(len(self.blocks), kind, slot)
        if events is not None:
            cur = self.cur
            if cur is not None:
                events.append(BlockEvent("end", cur.index, cur.kind))
            events.append(BlockEvent("start", block.index, kind, "", 0, name))
        self.blocks.append(block)
        self.cur = block
        return block

    def add(self, kind: BlockType, text: str, events: list[BlockEvent] | None) -> None:
        """Append `text` to the open block of `kind`, opening one when the kind changes."""
        cur = self.cur
        if cur is None or cur.kind is not kind:
            cur = self.open(kind, events)
        cur.parts.append(text)
        if events is not None:
            events.append(BlockEvent("delta", cur.index, kind, text, cur.seq))
            self.emitted = True
        cur.seq += 1

    def end(self, events: list[BlockEvent] | None) -> None:
        """End the open block (idempotent)."""
        cur = self.cur
        if cur is not None:
            self.cur = None
            if events is not None:
                events.append(BlockEvent("end", cur.index, cur.kind))
