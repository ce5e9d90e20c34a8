"""The token-streaming contract (AMPLIFIER.md) as one reusable checker."""

from __future__ import annotations

from typing import Any

STREAM_EVENTS = {
    "llm:stream_block_start": {"request_id", "block_index", "block_type"},
    "llm:stream_block_delta": {"request_id", "block_index", "block_type", "sequence", "text"},
    "llm:stream_block_end": {"request_id", "block_index", "block_type"},
    "llm:stream_aborted": {"request_id", "error"},
}
BLOCK_TYPES = {"text", "thinking", "tool_use"}


def stream_events(events: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    return [(n, p) for n, p in events if n.startswith("llm:stream")]


def assert_stream_contract(events: list[tuple[str, dict[str, Any]]]) -> None:
    """Every rule of the streaming contract that can be checked from the event log."""
    stream = stream_events(events)
    assert stream, "no stream events"
    assert len({p["request_id"] for _, p in stream}) == 1, "one request_id per call"
    open_blocks: dict[int, str] = {}
    seen_indices: set[int] = set()
    sequences: dict[int, int] = {}
    for name, payload in stream:
        expected = set(STREAM_EVENTS[name])
        if name == "llm:stream_block_start" and payload["block_type"] == "tool_use":
            expected.add("name")
        assert set(payload) == expected, (name, payload)
        if name == "llm:stream_aborted":
            assert set(payload["error"]) == {"type", "msg"}
            open_blocks.clear()
            continue
        index, block_type = payload["block_index"], payload["block_type"]
        assert block_type in BLOCK_TYPES
        if name == "llm:stream_block_start":
            assert index not in seen_indices, f"block_index {index} reused"
            assert not open_blocks or max(seen_indices) < index
            seen_indices.add(index)
            open_blocks[index] = block_type
            if block_type == "tool_use":
                assert isinstance(payload["name"], str) and payload["name"]
        elif name == "llm:stream_block_delta":
            assert open_blocks.get(index) == block_type, "delta outside its block"
            assert block_type != "tool_use", "tool_use blocks get no deltas"
            assert isinstance(payload["text"], str) and payload["text"], "empty fragment"
            assert payload["sequence"] == sequences.get(index, 0), "per-block sequence"
            sequences[index] = payload["sequence"] + 1
        else:
            assert open_blocks.pop(index, None) == block_type, "end without start"
    assert not open_blocks, f"blocks never ended: {open_blocks}"
    assert sorted(seen_indices) == list(range(len(seen_indices))), "one 0-based index space"


def streamed_text(events: list[tuple[str, dict[str, Any]]], block_type: str = "text") -> str:
    return "".join(
        p["text"]
        for n, p in events
        if n == "llm:stream_block_delta" and p["block_type"] == block_type
    )


def assert_call_lifecycle(events: list[tuple[str, dict[str, Any]]]) -> None:
    """However a call ended: every llm:request has exactly one llm:response, and every
    block a stream started was ended or withdrawn (llm:stream_aborted)."""
    requests = [p["request_id"] for n, p in events if n == "llm:request"]
    responses = [p["request_id"] for n, p in events if n == "llm:response"]
    assert sorted(requests) == sorted(responses), "an llm:request without its llm:response"
    for rid in requests:
        mine = [(n, p) for n, p in events if n.startswith("llm:stream") and p["request_id"] == rid]
        if mine:
            assert_stream_contract(mine)
