"""AssembledResponse -> amplifier_core ChatResponse (pure).

Besides the kernel fields, the orchestrators read two extra attributes: `content_blocks`
(content_models dataclasses they render) and `text`. ChatResponse allows extra fields, so
they are passed as keyword arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from amplifier_core.content_models import (
    ContentBlock,
    TextContent,
    ThinkingContent,
    ToolCallContent,
)
from amplifier_core.message_models import (
    ChatResponse,
    TextBlock,
    ThinkingBlock,
    ToolCall,
    ToolCallBlock,
    Usage,
)

from ..config import Pricing
from .assemble import AssembledResponse
from .cost import response_cost

__all__ = ["to_chat_response", "usage_from_wire"]

# Separates text blocks that a tool call or thinking split apart.
_TEXT_JOIN = "\n\n"


def to_chat_response(
    asm: AssembledResponse,
    *,
    provider_name: str,
    model: str | None,
    headers: Mapping[str, str] | None = None,
    pricing: Pricing | None = None,
) -> ChatResponse:
    """The kernel's ChatResponse; usage carries cost_usd when the server or pricing tells."""
    content: list[Any] = []
    content_blocks: list[ContentBlock] = []
    texts: list[str] = []
    for block in asm.blocks:
        if block.type == "text":
            content.append(TextBlock(text=block.text))
            content_blocks.append(TextContent(text=block.text))
            texts.append(block.text)
        elif block.type == "thinking":
            content.append(ThinkingBlock(thinking=block.text))
            content_blocks.append(ThinkingContent(text=block.text))
        elif block.tool_call is not None:
            call = block.tool_call
            content.append(ToolCallBlock(id=call.id, name=call.name, input=call.arguments))
            content_blocks.append(
                ToolCallContent(id=call.id, name=call.name, arguments=call.arguments)
            )
    tool_calls = [
        ToolCall(id=call.id, name=call.name, arguments=call.arguments) for call in asm.tool_calls
    ]
    if not content:
        # An empty reply is one empty text block, not []: loop-basic (execute) takes an
        # empty content list with no tool calls as "no answer yet" and asks again, forever.
        content.append(TextBlock(text=""))
    usage = usage_from_wire(asm.usage)
    if usage is not None:
        usage.cost_usd = response_cost(usage, asm.usage, headers or {}, pricing)
    return ChatResponse(
        content=content,
        tool_calls=tool_calls or None,
        usage=usage,
        finish_reason=asm.finish_reason,
        metadata=_metadata(asm, provider_name, model),
        content_blocks=content_blocks,
        text=_TEXT_JOIN.join(texts),
    )


def _metadata(asm: AssembledResponse, provider_name: str, model: str | None) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "provider": provider_name,
        "model": asm.model or model,  # the served model when the server names it
        "response_id": asm.response_id,
    }
    if asm.truncated_calls:
        # The calls a reply cut by the output limit did not hand over (its text names them
        # too, with the arguments so far).
        metadata["truncated_tool_calls"] = [
            {"id": call.id, "name": call.name} for call in asm.truncated_calls
        ]
    return metadata


def usage_from_wire(usage: object) -> Usage | None:
    """Wire usage object -> Usage; None unless the server gave both token counts.

    Cache counts come from OpenAI's `prompt_tokens_details` (`cached_tokens`; writes as
    `cache_write_tokens` from OpenRouter, `cache_creation_tokens` from LiteLLM), else from
    Anthropic's names at the top level (`cache_read_input_tokens`,
    `cache_creation_input_tokens`, as Anthropic-backed proxies send them), else DeepSeek's
    `prompt_cache_hit_tokens`. Numbers are never invented: junk types count as missing.
    """
    if type(usage) is not dict:
        return None
    prompt = _count(usage.get("prompt_tokens"))
    completion = _count(usage.get("completion_tokens"))
    if prompt is None or completion is None:
        return None
    total = _count(usage.get("total_tokens"))
    if total is None:
        total = prompt + completion
    reasoning = _count(_nested(usage, "completion_tokens_details", "reasoning_tokens"))
    details = usage.get("prompt_tokens_details")
    if type(details) is not dict:
        details = {}
    cache_read = _first_count(
        details.get("cached_tokens"),
        usage.get("cache_read_input_tokens"),
        usage.get("prompt_cache_hit_tokens"),
    )
    cache_write = _first_count(
        details.get("cache_write_tokens"),
        details.get("cache_creation_tokens"),
        usage.get("cache_creation_input_tokens"),
    )
    return Usage(
        input_tokens=prompt,
        output_tokens=completion,
        total_tokens=total,
        reasoning_tokens=reasoning,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


def _first_count(*values: object) -> int | None:
    for value in values:
        count = _count(value)
        if count is not None:
            return count
    return None


def _nested(obj: dict[Any, Any], outer: str, inner: str) -> object:
    sub = obj.get(outer)
    return sub.get(inner) if type(sub) is dict else None


def _count(value: object) -> int | None:
    # bool is an int subclass, and a negative count is junk.
    if type(value) is int and value >= 0:
        return value
    return None
