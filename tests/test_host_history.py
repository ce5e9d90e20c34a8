"""Every history shape the real host hands to complete(), as data, and what goes on the wire.

The shapes were read from the host's own code (not from our idea of it). Each entry names
the module and function that builds the message dict; the orchestrators then turn every
dict into `Message(**msg)` (Message allows extra fields, so `tool_calls`, `thinking_block`
and `metadata` ride along as extras) and put them in a ChatRequest.

Sources (public repositories, read at these commits):
- microsoft/amplifier-module-loop-streaming e5438b4, amplifier_module_loop_streaming/__init__.py
- microsoft/amplifier-module-loop-basic 937a53f, amplifier_module_loop_basic/__init__.py
- colombod/amplifier-module-context-simple 54ca117, amplifier_module_context_simple/__init__.py
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx
from amplifier_core.message_models import ChatRequest, ChatResponse, Message, ToolSpec
from wire_helpers import chunk, sse

from amplifier_module_provider_chat_completions import ChatCompletionsProvider
from amplifier_module_provider_chat_completions.request.convert import messages_to_wire
from amplifier_module_provider_chat_completions.request.tool_sequence import repair_tool_sequence

BASE = "http://llm.test/v1"

# ToolCallBlock.model_dump() / TextBlock.model_dump() / ThinkingBlock.model_dump() as the
# orchestrators store them (amplifier_core.message_models; every field, None included).
TEXT_BLOCK = {"type": "text", "text": "Let me check.", "visibility": None}
THINKING_BLOCK = {
    "type": "thinking",
    "thinking": "The user wants the weather.",
    "signature": None,
    "visibility": None,
    "content": None,
}
CALL_BLOCK = {
    "type": "tool_call",
    "id": "call_1",
    "name": "get_weather",
    "input": {"city": "Paris"},
    "visibility": None,
}
CALL_BLOCK_2 = {**CALL_BLOCK, "id": "call_2", "input": {"city": "Rome"}}

# The tool_calls entries both orchestrators write beside the blocks: the name is under
# "tool", the arguments a dict.
CALL_ENTRY = {"id": "call_1", "tool": "get_weather", "arguments": {"city": "Paris"}}
CALL_ENTRY_2 = {"id": "call_2", "tool": "get_weather", "arguments": {"city": "Rome"}}

WIRE_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
}
WIRE_CALL_2 = {
    "id": "call_2",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
}
CANCELLED = (
    '{"error": "Tool execution was cancelled by user", "cancelled": true, "tool": "get_weather"}'
)
CANCEL_CLOSE = (
    "The previous operation was cancelled. Results from completed tools have been preserved."
)

# (id, message dicts as the host stores them, wire messages we must send)
SHAPES: list[tuple[str, list[dict[str, Any]], list[dict[str, Any]]]] = [
    (
        # loop-streaming LoopStreamingOrchestrator._execute_stream and loop-basic
        # LoopBasicOrchestrator.execute: the prompt, as given.
        "user_prompt",
        [{"role": "user", "content": "Weather in Paris?"}],
        [{"role": "user", "content": "Weather in Paris?"}],
    ),
    (
        # loop-streaming _execute_stream (non-stream branch, provider without `stream`),
        # tool turn with response.content: blocks dumped AND tool_calls with "tool";
        # thinking_block is the first ThinkingBlock dumped again; metadata is
        # response.metadata passed through.
        "loop_streaming_tool_turn_with_thinking",
        [
            {
                "role": "assistant",
                "content": [THINKING_BLOCK, TEXT_BLOCK, CALL_BLOCK],
                "tool_calls": [CALL_ENTRY],
                "thinking_block": THINKING_BLOCK,
                "metadata": {"provider": "chat-completions", "model": "m", "response_id": "r"},
            },
            {
                "role": "tool",
                "name": "get_weather",
                "tool_call_id": "call_1",
                "content": "Sunny, 21 C",
            },
        ],
        [
            {"role": "assistant", "content": "Let me check.", "tool_calls": [WIRE_CALL]},
            {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 C"},
        ],
    ),
    (
        # loop-streaming _execute_stream: parallel calls, results added in call order.
        "loop_streaming_parallel_calls",
        [
            {
                "role": "assistant",
                "content": [CALL_BLOCK, CALL_BLOCK_2],
                "tool_calls": [CALL_ENTRY, CALL_ENTRY_2],
            },
            {"role": "tool", "name": "get_weather", "tool_call_id": "call_1", "content": "a"},
            {"role": "tool", "name": "get_weather", "tool_call_id": "call_2", "content": "b"},
        ],
        [
            {"role": "assistant", "content": "", "tool_calls": [WIRE_CALL, WIRE_CALL_2]},
            {"role": "tool", "tool_call_id": "call_1", "content": "a"},
            {"role": "tool", "tool_call_id": "call_2", "content": "b"},
        ],
    ),
    (
        # loop-streaming _execute_stream and loop-basic execute when response.content is
        # empty: content is the response text (a string, possibly ""), calls only in
        # tool_calls.
        "tool_calls_without_blocks",
        [
            {"role": "assistant", "content": "", "tool_calls": [CALL_ENTRY]},
            {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
        ],
        [
            {"role": "assistant", "content": "", "tool_calls": [WIRE_CALL]},
            {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
        ],
    ),
    (
        # loop-basic execute: tool turn (blocks + tool_calls, no thinking_block) and its
        # result without "name".
        "loop_basic_tool_turn",
        [
            {
                "role": "assistant",
                "content": [TEXT_BLOCK, CALL_BLOCK],
                "tool_calls": [CALL_ENTRY],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
        ],
        [
            {"role": "assistant", "content": "Let me check.", "tool_calls": [WIRE_CALL]},
            {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
        ],
    ),
    (
        # loop-streaming _execute_stream / loop-basic execute: the final answer, blocks.
        "final_answer_blocks",
        [{"role": "assistant", "content": [THINKING_BLOCK, {**TEXT_BLOCK, "text": "Sunny."}]}],
        [{"role": "assistant", "content": "Sunny."}],
    ),
    (
        # loop-streaming _execute_stream: the final answer when response.content is empty.
        "final_answer_string",
        [{"role": "assistant", "content": "Sunny."}],
        [{"role": "assistant", "content": "Sunny."}],
    ),
    (
        # loop-streaming _execute_stream on cancellation during tools: a cancelled result
        # per call (JSON text) and a synthetic assistant message closing the turn.
        "cancelled_tools",
        [
            {"role": "assistant", "content": [CALL_BLOCK], "tool_calls": [CALL_ENTRY]},
            {
                "role": "tool",
                "name": "get_weather",
                "tool_call_id": "call_1",
                "content": CANCELLED,
            },
            {"role": "assistant", "content": CANCEL_CLOSE},
        ],
        [
            {"role": "assistant", "content": "", "tool_calls": [WIRE_CALL]},
            {"role": "tool", "tool_call_id": "call_1", "content": CANCELLED},
            {"role": "assistant", "content": CANCEL_CLOSE},
        ],
    ),
    (
        # loop-basic execute: a hook's ephemeral injection appended to the last tool
        # result ("append_to_last_tool_result"), or as a new message in the hook's
        # context_injection_role (here "system", after the tool result).
        "ephemeral_injection_after_tool",
        [
            {"role": "assistant", "content": [CALL_BLOCK], "tool_calls": [CALL_ENTRY]},
            {"role": "tool", "tool_call_id": "call_1", "content": "Sunny\n\n<reminder>x"},
            {"role": "system", "content": "<system-reminder>todo</system-reminder>"},
        ],
        [
            {"role": "assistant", "content": "", "tool_calls": [WIRE_CALL]},
            {"role": "tool", "tool_call_id": "call_1", "content": "Sunny\n\n<reminder>x"},
            {"role": "system", "content": "<system-reminder>todo</system-reminder>"},
        ],
    ),
    (
        # loop-streaming _execute_stream after max_iterations: a user reminder appended
        # to the request (not stored).
        "max_iterations_reminder",
        [
            {
                "role": "user",
                "content": '<system-reminder source="orchestrator-loop-limit">\nwrap up',
            }
        ],
        [
            {
                "role": "user",
                "content": '<system-reminder source="orchestrator-loop-limit">\nwrap up',
            }
        ],
    ),
]


# Shapes the send path also reorders (convert, then the just-in-time tool-sequence repair).
REPAIRED_SHAPES: list[tuple[str, list[dict[str, Any]], list[dict[str, Any]]]] = [
    (
        # amplifier_core 2.0.2 coordinator.process_hook_result, called inside each tool task
        # by loop-streaming _execute_tool_only: a persistent tool:post injection is stored
        # with context.add_message BETWEEN the assistant tool-call message and its results.
        "persistent_hook_injection_inside_a_tool_turn",
        [
            {"role": "assistant", "content": [CALL_BLOCK], "tool_calls": [CALL_ENTRY]},
            {
                "role": "system",
                "content": "LINT: persistent note",
                "metadata": {"source": "hook", "hook_name": "lint", "event": "tool:post"},
            },
            {"role": "tool", "name": "get_weather", "tool_call_id": "call_1", "content": "a"},
        ],
        [
            {"role": "assistant", "content": "", "tool_calls": [WIRE_CALL]},
            {"role": "tool", "tool_call_id": "call_1", "content": "a"},
            {"role": "system", "content": "LINT: persistent note"},
        ],
    ),
    (
        # colombod context-simple _compact_*: removing an assistant and its results together
        # can leave a result whose call was removed (here: the call survived, its result
        # did not, as after an interrupted session).
        "call_without_result_after_compaction",
        [
            {"role": "assistant", "content": [CALL_BLOCK], "tool_calls": [CALL_ENTRY]},
            {"role": "user", "content": "go on"},
        ],
        [
            {"role": "assistant", "content": "", "tool_calls": [WIRE_CALL]},
            {
                "role": "tool",
                "tool_call_id": "call_1",
                "content": "Tool result missing: the call was interrupted before it returned "
                "a result.",
            },
            {"role": "user", "content": "go on"},
        ],
    ),
]

SHAPES += [
    (
        # amplifier-app-cli SessionStore._save_transcript + foundation sanitize_message, read
        # back by `amplifier continue` (session_runner: json.loads, context.set_messages):
        # thinking_block and every None value are gone (visibility too), system dropped.
        "resumed_session_transcript",
        [
            {"role": "user", "content": "Weather in Paris?", "metadata": {"timestamp": "t"}},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "I think"},
                    {"type": "text", "text": "Calling"},
                    {"type": "tool_call", "id": "call_1", "name": "get_weather", "input": {}},
                ],
                "tool_calls": [{"id": "call_1", "tool": "get_weather", "arguments": {}}],
                "metadata": {"timestamp": "t"},
            },
            {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "ok"},
        ],
        [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": "Calling",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
        ],
    ),
    (
        # foundation session/diagnosis.repair_transcript (amplifier-app-cli
        # _repair_transcript_if_needed before a resumed turn): a synthetic result and a
        # closing assistant message for calls that never returned.
        "cli_repaired_transcript",
        [
            {"role": "assistant", "content": [CALL_BLOCK], "tool_calls": [CALL_ENTRY]},
            {
                "role": "tool",
                "tool_call_id": "call_1",
                "name": "get_weather",
                "content": '{"error": "unknown_error", "message": "Tool execution was '
                'interrupted and no result was captured."}',
            },
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "text",
                        "text": "The previous tool calls were interrupted. This response "
                        "was automatically repaired.",
                    }
                ],
            },
        ],
        [
            {"role": "assistant", "content": "", "tool_calls": [WIRE_CALL]},
            {
                "role": "tool",
                "tool_call_id": "call_1",
                "content": '{"error": "unknown_error", "message": "Tool execution was '
                'interrupted and no result was captured."}',
            },
            {
                "role": "assistant",
                "content": "The previous tool calls were interrupted. This response was "
                "automatically repaired.",
            },
        ],
    ),
    (
        # colombod context-simple: a truncated tool result and a stubbed user message carry
        # top-level bookkeeping (_truncated, _original_tokens, _stubbed, _original_length);
        # user messages are never removed, so two can follow each other; the compaction
        # notice is a system message with metadata. context-persistent adds a top-level
        # "timestamp". None of it may reach the wire.
        "compacted_context_bookkeeping",
        [
            {"role": "system", "content": "You are helpful."},
            {
                "role": "system",
                "content": '<system-reminder source="context-compaction">\nContext has been '
                "compacted</system-reminder>",
                "metadata": {"source": "context-compaction", "ephemeral": True},
            },
            {
                "role": "user",
                "content": '[User message compacted - original: "Weather in Paris?"...]',
                "_stubbed": True,
                "_original_length": 400,
                "timestamp": "2026-12-01T15:48:02",
            },
            {"role": "user", "content": "and Rome?", "metadata": {"timestamp": "t"}},
            {"role": "assistant", "content": [CALL_BLOCK], "tool_calls": [CALL_ENTRY]},
            {
                "role": "tool",
                "tool_call_id": "call_1",
                "content": "[truncated: ~900 tokens - call tool again if needed] Sunny...",
                "_truncated": True,
                "_original_tokens": 900,
            },
        ],
        [
            {"role": "system", "content": "You are helpful."},
            {
                "role": "system",
                "content": '<system-reminder source="context-compaction">\nContext has been '
                "compacted</system-reminder>",
            },
            {
                "role": "user",
                "content": '[User message compacted - original: "Weather in Paris?"...]',
            },
            {"role": "user", "content": "and Rome?"},
            {"role": "assistant", "content": "", "tool_calls": [WIRE_CALL]},
            {
                "role": "tool",
                "tool_call_id": "call_1",
                "content": "[truncated: ~900 tokens - call tool again if needed] Sunny...",
            },
        ],
    ),
    (
        # loop-basic execute under amplifier_core 2.0.2: the tool result content is the
        # Python repr of the output (an opaque string either way).
        "loop_basic_repr_result",
        [
            {"role": "assistant", "content": [CALL_BLOCK], "tool_calls": [CALL_ENTRY]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{'echo': {'x': 1}, 'n': None}"},
        ],
        [
            {"role": "assistant", "content": "", "tool_calls": [WIRE_CALL]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{'echo': {'x': 1}, 'n': None}"},
        ],
    ),
]


def _sent(dicts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    messages, _, _ = repair_tool_sequence(_wire(dicts))
    return messages


@pytest.mark.parametrize(
    ("dicts", "expected"), [s[1:] for s in REPAIRED_SHAPES], ids=[s[0] for s in REPAIRED_SHAPES]
)
def test_host_shape_is_sent_in_a_valid_order(
    dicts: list[dict[str, Any]], expected: list[dict[str, Any]]
) -> None:
    assert _sent(dicts) == expected


def _wire(dicts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # What the orchestrators do with the context's dicts before calling complete().
    return messages_to_wire([Message(**d) for d in dicts])


@pytest.mark.parametrize(("dicts", "expected"), [s[1:] for s in SHAPES], ids=[s[0] for s in SHAPES])
def test_host_shape_converts(dicts: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert _wire(dicts) == expected


@pytest.mark.parametrize("shape", SHAPES, ids=[s[0] for s in SHAPES])
def test_host_shape_survives_a_json_round_trip(shape: Any) -> None:
    # Saved sessions are JSON lines; a resumed session carries the same dicts back.
    _, dicts, expected = shape
    assert _wire(json.loads(json.dumps(dicts))) == expected


def test_a_call_in_blocks_is_never_rejected_for_a_malformed_duplicate() -> None:
    # Only the block is complete; the duplicate entry lacks a name altogether.
    message = {
        "role": "assistant",
        "content": [CALL_BLOCK],
        "tool_calls": [{"id": "call_1", "arguments": {}}],
    }
    assert _wire([message])[0]["tool_calls"] == [WIRE_CALL]


def test_a_call_only_in_tool_calls_keeps_its_name_from_tool() -> None:
    message = {"role": "assistant", "content": [TEXT_BLOCK], "tool_calls": [CALL_ENTRY_2]}
    assert _wire([message])[0]["tool_calls"] == [WIRE_CALL_2]


# ---------------------------------------------------------------------------------------
# A 3-round tool conversation replayed through the provider, history built as
# loop-streaming builds it.


def loop_streaming_assistant(response: ChatResponse) -> dict[str, Any]:
    """The assistant dict loop-streaming's _execute_stream stores for `response`."""
    calls = response.tool_calls or []
    message: dict[str, Any] = {
        "role": "assistant",
        "content": [block.model_dump() for block in response.content],
    }
    if calls:
        message["tool_calls"] = [
            {"id": tc.id, "tool": tc.name, "arguments": tc.arguments} for tc in calls
        ]
    thinking = [b for b in response.content if b.type == "thinking"]
    if thinking:
        message["thinking_block"] = thinking[0].model_dump()
    if response.metadata:
        message["metadata"] = response.metadata
    return message


def _call_chunks(calls: list[tuple[str, str, str]], text: str = "") -> bytes:
    chunks = [chunk({"role": "assistant", "content": text})] if text else []
    for n, (call_id, name, arguments) in enumerate(calls):
        head = {"index": n, "id": call_id, "type": "function", "function": {"name": name}}
        chunks.append(chunk({"tool_calls": [{**head, "function": {"name": name}}]}))
        half = len(arguments) // 2
        for part in (arguments[:half], arguments[half:]):
            chunks.append(chunk({"tool_calls": [{"index": n, "function": {"arguments": part}}]}))
    chunks.append(chunk(finish_reason="tool_calls"))
    chunks.append(chunk(choices=False, usage={"prompt_tokens": 9, "completion_tokens": 4}))
    return sse(chunks)


ROUNDS = [
    _call_chunks([("call_a", "get_weather", '{"city": "Paris"}')], text="Checking."),
    _call_chunks(
        [("call_b", "get_weather", '{"city": "Rome"}'), ("call_c", "get_time", '{"tz": "CET"}')]
    ),
    _call_chunks([("call_d", "get_time", '{"tz": "UTC"}')]),
    sse(
        [
            chunk({"role": "assistant", "content": "All done."}),
            chunk(finish_reason="stop"),
            chunk(choices=False, usage={"prompt_tokens": 20, "completion_tokens": 3}),
        ]
    ),
]
TOOLS = [
    ToolSpec(name="get_weather", parameters={"type": "object", "properties": {}}),
    ToolSpec(name="get_time", parameters={"type": "object", "properties": {}}),
]


@respx.mock
async def test_three_tool_rounds_built_like_loop_streaming(coordinator: Any) -> None:
    replies = iter(ROUNDS)
    route = respx.post(f"{BASE}/chat/completions").mock(
        side_effect=lambda request: httpx.Response(
            200, content=next(replies), headers={"content-type": "text/event-stream"}
        )
    )
    respx.get(f"{BASE}/models").mock(return_value=httpx.Response(404))
    provider = ChatCompletionsProvider(config={"base_url": BASE}, coordinator=coordinator)
    history: list[dict[str, Any]] = [{"role": "user", "content": "Weather and time?"}]
    for _ in ROUNDS:
        request = ChatRequest(messages=[Message(**m) for m in history], tools=TOOLS)
        response = await provider.complete(request)
        history.append(loop_streaming_assistant(response))
        for call in response.tool_calls or []:
            # loop-streaming: {"role": "tool", "name", "tool_call_id", "content"} per call
            history.append(
                {
                    "role": "tool",
                    "name": call.name,
                    "tool_call_id": call.id,
                    "content": f"result of {call.id}",
                }
            )
    await provider.close()

    assert response.text == "All done."
    sent = [json.loads(call.request.content)["messages"] for call in route.calls]
    assert len(sent) == 4
    last = sent[-1]
    assert [m["role"] for m in last] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "tool",
        "assistant",
        "tool",
    ]
    assert last[1]["content"] == "Checking."
    names = [
        [
            (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
            for c in m["tool_calls"]
        ]
        for m in last
        if m["role"] == "assistant"
    ]
    assert names == [
        [("call_a", "get_weather", {"city": "Paris"})],
        [("call_b", "get_weather", {"city": "Rome"}), ("call_c", "get_time", {"tz": "CET"})],
        [("call_d", "get_time", {"tz": "UTC"})],
    ]
    results = [(m["tool_call_id"], m["content"]) for m in last if m["role"] == "tool"]
    assert results == [(i, f"result of {i}") for i in ("call_a", "call_b", "call_c", "call_d")]
    # Nothing needed repairing: the history was whole.
    assert not coordinator.hooks.named("provider:tool_sequence_repaired")


@respx.mock
async def test_an_empty_reply_is_one_empty_text_block(coordinator: Any) -> None:
    # loop-basic execute: content [] with no tool calls logs "Provider returned neither
    # content nor tool calls" and calls the provider again, with no limit by default.
    respx.get(f"{BASE}/models").respond(404)
    respx.post(f"{BASE}/chat/completions").respond(
        200,
        content=sse([chunk({"role": "assistant"}), chunk(finish_reason="stop")]),
        headers={"content-type": "text/event-stream"},
    )
    provider = ChatCompletionsProvider(config={"base_url": BASE}, coordinator=coordinator)
    response = await provider.complete(ChatRequest(messages=[Message(role="user", content="hi")]))
    await provider.close()
    assert [block.model_dump() for block in response.content] == [
        {"type": "text", "text": "", "visibility": None}
    ]
    assert not response.tool_calls


@respx.mock
async def test_goal_loop_call_passes_model_and_routing_keys_as_kwargs(coordinator: Any) -> None:
    # loop-streaming goal evaluator: provider.complete(request, **role_config, model=...,
    # extended_thinking=False) with metadata={"stream": False} and max_output_tokens=512.
    respx.get(f"{BASE}/models").respond(404)
    route = respx.post(f"{BASE}/chat/completions").respond(
        200,
        json={
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "done"},
                    "finish_reason": "stop",
                }
            ]
        },
    )
    provider = ChatCompletionsProvider(config={"base_url": BASE}, coordinator=coordinator)
    request = ChatRequest(
        messages=[Message(role="system", content="judge"), Message(role="user", content="x")],
        metadata={"stream": False},
        max_output_tokens=512,
    )
    await provider.complete(
        request, reasoning_effort="high", model="judge-model", extended_thinking=False
    )
    await provider.close()
    body = json.loads(route.calls[0].request.content)
    assert (body["model"], body["reasoning_effort"], body["max_tokens"]) == (
        "judge-model",
        "high",
        512,
    )
    assert "stream" not in body
    assert not coordinator.hooks.names("llm:stream")
