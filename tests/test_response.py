"""AssembledResponse -> ChatResponse, including the extra fields orchestrators read."""

from __future__ import annotations

from typing import Any

import pytest
from amplifier_core.content_models import TextContent, ThinkingContent, ToolCallContent
from amplifier_core.message_models import (
    ChatResponse,
    TextBlock,
    ThinkingBlock,
    ToolCall,
    ToolCallBlock,
)

from amplifier_module_provider_chat_completions.reply.assemble import (
    AssembledBlock,
    AssembledResponse,
    AssembledToolCall,
    ResponseAssembler,
)
from amplifier_module_provider_chat_completions.reply.response import (
    to_chat_response,
    usage_from_wire,
)


def make(usage: dict[str, Any] | None = None) -> AssembledResponse:
    call = AssembledToolCall("call_1", "get_weather", {"city": "Paris"}, '{"city": "Paris"}')
    return AssembledResponse(
        blocks=[
            AssembledBlock("thinking", "hmm"),
            AssembledBlock("text", "Checking."),
            AssembledBlock("tool_call", "", call),
            AssembledBlock("text", "More."),
        ],
        tool_calls=[call],
        usage=usage,
        finish_reason="tool_calls",
        model="served-model",
        response_id="chatcmpl-1",
        saw_finish=True,
    )


def test_content_in_block_order() -> None:
    resp = to_chat_response(make(), provider_name="chat-completions", model="requested")
    assert isinstance(resp, ChatResponse)
    assert resp.content == [
        ThinkingBlock(thinking="hmm"),
        TextBlock(text="Checking."),
        ToolCallBlock(id="call_1", name="get_weather", input={"city": "Paris"}),
        TextBlock(text="More."),
    ]


def test_tool_calls_and_finish_reason() -> None:
    resp = to_chat_response(make(), provider_name="p", model=None)
    assert resp.tool_calls == [
        ToolCall(id="call_1", name="get_weather", arguments={"city": "Paris"})
    ]
    assert resp.finish_reason == "tool_calls"


def test_no_tool_calls_is_none() -> None:
    asm = AssembledResponse(blocks=[AssembledBlock("text", "hi")], finish_reason="stop")
    resp = to_chat_response(asm, provider_name="p", model="m")
    assert resp.tool_calls is None
    assert resp.usage is None
    assert resp.finish_reason == "stop"


def test_content_blocks_and_text_extra_fields_survive() -> None:
    resp = to_chat_response(make(), provider_name="p", model=None)
    assert resp.content_blocks == [  # type: ignore[attr-defined]
        ThinkingContent(text="hmm"),
        TextContent(text="Checking."),
        ToolCallContent(id="call_1", name="get_weather", arguments={"city": "Paris"}),
        TextContent(text="More."),
    ]
    assert resp.text == "Checking.\n\nMore."  # type: ignore[attr-defined]
    dumped = resp.model_dump()
    assert dumped["text"] == "Checking.\n\nMore."


def test_metadata_served_model_wins_over_requested() -> None:
    resp = to_chat_response(make(), provider_name="p", model="requested")
    assert resp.metadata == {"provider": "p", "model": "served-model", "response_id": "chatcmpl-1"}
    asm = AssembledResponse(blocks=[AssembledBlock("text", "x")])
    resp = to_chat_response(asm, provider_name="p", model="requested")
    assert resp.metadata == {"provider": "p", "model": "requested", "response_id": None}


def test_usage_full() -> None:
    usage = {
        "prompt_tokens": 100,
        "completion_tokens": 20,
        "total_tokens": 125,
        "completion_tokens_details": {"reasoning_tokens": 7},
        "prompt_tokens_details": {"cached_tokens": 64},
    }
    resp = to_chat_response(make(usage), provider_name="p", model=None)
    u = resp.usage
    assert u is not None
    assert (u.input_tokens, u.output_tokens, u.total_tokens) == (100, 20, 125)
    assert (u.reasoning_tokens, u.cache_read_tokens) == (7, 64)


def test_usage_total_defaults_to_sum_and_details_optional() -> None:
    u = usage_from_wire({"prompt_tokens": 3, "completion_tokens": 4})
    assert u is not None
    assert u.total_tokens == 7
    assert u.reasoning_tokens is None and u.cache_read_tokens is None


def test_usage_zero_is_still_usage() -> None:
    u = usage_from_wire({"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0})
    assert u is not None and (u.input_tokens, u.output_tokens, u.total_tokens) == (0, 0, 0)


@pytest.mark.parametrize(
    "usage",
    [
        None,
        "lots",
        {},
        {"prompt_tokens": 3},
        {"completion_tokens": 3},
        {"prompt_tokens": "3", "completion_tokens": 4},
        {"prompt_tokens": True, "completion_tokens": 4},
        {"prompt_tokens": 3.5, "completion_tokens": 4},
        {"prompt_tokens": None, "completion_tokens": None, "total_tokens": 9},
    ],
)
def test_usage_missing_or_junk_is_none(usage: Any) -> None:
    assert usage_from_wire(usage) is None


def test_usage_junk_details_and_total_ignored() -> None:
    u = usage_from_wire(
        {
            "prompt_tokens": 1,
            "completion_tokens": 2,
            "total_tokens": "x",
            "completion_tokens_details": None,
            "prompt_tokens_details": {"cached_tokens": "many"},
        }
    )
    assert u is not None
    assert (u.total_tokens, u.reasoning_tokens, u.cache_read_tokens) == (3, None, None)


def test_end_to_end_from_assembler() -> None:
    asm = ResponseAssembler()
    asm.feed_body(
        {
            "model": "qwen",
            "id": "r1",
            "choices": [
                {
                    "message": {
                        "reasoning_content": "r",
                        "content": "c",
                        "tool_calls": [{"id": "t", "function": {"name": "f", "arguments": "{}"}}],
                    },
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 2, "completion_tokens": 1},
        }
    )
    resp = to_chat_response(asm.result(), provider_name="p", model="asked")
    assert [b.type for b in resp.content] == ["thinking", "text", "tool_call"]
    assert resp.finish_reason == "tool_calls"
    assert resp.usage is not None and resp.usage.total_tokens == 3
    assert resp.metadata == {"provider": "p", "model": "qwen", "response_id": "r1"}
    assert resp.text == "c"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("usage", "read", "write"),
    [
        # Anthropic-backed proxies (LiteLLM, the Amazon server) put Anthropic's counts at the
        # top level of usage.
        (
            {"cache_creation_input_tokens": 300, "cache_read_input_tokens": 40},
            40,
            300,
        ),
        # LiteLLM also copies the write count into prompt_tokens_details.
        ({"prompt_tokens_details": {"cached_tokens": 7, "cache_creation_tokens": 50}}, 7, 50),
        # OpenRouter's normalized usage.
        ({"prompt_tokens_details": {"cached_tokens": 8, "cache_write_tokens": 60}}, 8, 60),
        ({"prompt_tokens_details": {"cached_tokens": 8}}, 8, None),
        ({"cache_creation_input_tokens": "lots"}, None, None),
    ],
)
def test_usage_cache_reads_and_writes(usage: dict[str, Any], read: Any, write: Any) -> None:
    u = usage_from_wire({"prompt_tokens": 500, "completion_tokens": 5, **usage})
    assert u is not None
    assert (u.cache_read_tokens, u.cache_write_tokens) == (read, write)


def test_truncated_calls_listed_in_metadata() -> None:
    asm = ResponseAssembler()
    asm.feed_body(
        {
            "choices": [
                {
                    "message": {
                        "tool_calls": [
                            {"id": "t1", "function": {"name": "write_file", "arguments": '{"pa'}}
                        ]
                    },
                    "finish_reason": "length",
                }
            ]
        }
    )
    resp = to_chat_response(asm.result(), provider_name="p", model="m")
    assert resp.tool_calls is None and resp.finish_reason == "length"
    assert resp.metadata is not None
    assert resp.metadata["truncated_tool_calls"] == [{"id": "t1", "name": "write_file"}]
    assert "write_file" in resp.text  # type: ignore[attr-defined]
