"""Builders for wire-format bodies used across tests."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


def sse(chunks: Iterable[Any], done: bool = True) -> bytes:
    """Encode chunk dicts as an SSE body the way most servers send it."""
    out = [f"data: {json.dumps(c)}\n\n" for c in chunks]
    if done:
        out.append("data: [DONE]\n\n")
    return "".join(out).encode()


def chunk(
    delta: dict[str, Any] | None = None,
    finish_reason: str | None = None,
    usage: dict[str, Any] | None = None,
    choices: bool = True,
) -> dict[str, Any]:
    body: dict[str, Any] = {"id": "c1", "object": "chat.completion.chunk", "model": "m"}
    body["choices"] = (
        [{"index": 0, "delta": delta or {}, "finish_reason": finish_reason}] if choices else []
    )
    if usage is not None:
        body["usage"] = usage
    return body


def completion(
    content: str | None = "Hello world",
    tool_calls: list[dict[str, Any]] | None = None,
    finish_reason: str = "stop",
    usage: dict[str, Any] | None = None,
    **message_extra: Any,
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content, **message_extra}
    if tool_calls is not None:
        message["tool_calls"] = tool_calls
    return {
        "id": "r1",
        "object": "chat.completion",
        "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": usage
        if usage is not None
        else {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }
