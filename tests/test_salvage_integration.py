"""Salvage through the real provider at the HTTP boundary (respx), streaming and not.

The corpus (salvage_corpus.py) is sent as the server's `content` (text tool calls) or as a
native call's `arguments`; streaming splits it into small fragments across SSE chunks, so
tags and markers arrive split. Every streaming case is checked against the stream contract.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import replace
from typing import Any

import httpx
import pytest
import respx
from amplifier_core.llm_errors import InvalidRequestError, InvalidToolCallError
from amplifier_core.message_models import (
    ChatRequest,
    ChatResponse,
    Message,
    TextBlock,
    ToolCallBlock,
    ToolResultBlock,
    ToolSpec,
)
from salvage_corpus import ARGUMENT_CASES, OFFERED, TEXT_CASES, ArgumentCase, TextCase
from stream_contract import assert_stream_contract, streamed_text
from wire_helpers import chunk, completion, sse

from amplifier_module_provider_chat_completions import mount
from amplifier_module_provider_chat_completions.reply.assemble import BlockEvent, ResponseAssembler
from amplifier_module_provider_chat_completions.server.profiles import GENERIC, apply_profile
from amplifier_module_provider_chat_completions.server.rejections import diagnose_alternation

BASE = "http://llm.test/v1"
CHAT = f"{BASE}/chat/completions"
FAST = {"min_retry_delay": 0.01, "max_retry_delay": 0.05}
SSE_HEADERS = {"content-type": "text/event-stream"}
TOOLS = [ToolSpec(name=n, description=n, parameters={"type": "object"}) for n in OFFERED]
MODES = pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])


async def provider_for(coordinator: Any, stream: bool, **config: Any) -> Any:
    await mount(coordinator, {"base_url": BASE, "use_streaming": stream, **FAST, **config})
    return coordinator.mounted["providers"]["chat-completions"]


def ask(tools: list[ToolSpec] | None = TOOLS, model: str | None = None) -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content="go")], tools=tools, model=model)


def pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def content_stream(content: str, size: int = 3, finish: str = "stop") -> bytes:
    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk({"content": p}) for p in pieces(content, size)]
    chunks.append(chunk({}, finish_reason=finish))
    return sse(chunks)


def respond_content(content: str, stream: bool, size: int = 3) -> respx.Route:
    route = respx.post(CHAT)
    if stream:
        return route.respond(200, content=content_stream(content, size), headers=SSE_HEADERS)
    return route.respond(200, json=completion(content))


def blocks(response: ChatResponse) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for block in response.content:
        if block.type == "thinking":
            out.append(("thinking", block.thinking))
        elif block.type == "text":
            out.append(("text", block.text))
        else:
            out.append((block.type, getattr(block, "name", "")))
    return out


def tool_starts(coordinator: Any) -> list[str]:
    starts = coordinator.hooks.named("llm:stream_block_start")
    return [s["name"] for s in starts if s["block_type"] == "tool_use"]


# -- tool calls written in the text ----------------------------------------------------


@pytest.mark.parametrize(
    ("stream", "size"), [(True, 3), (True, 7), (False, 0)], ids=["stream3", "stream7", "json"]
)
@pytest.mark.parametrize("case", TEXT_CASES, ids=lambda c: c.id)
@respx.mock
async def test_text_corpus_through_provider(coordinator, case: TextCase, size: int, stream: bool):
    route = respond_content(case.raw, stream, size)
    provider = await provider_for(coordinator, stream)
    events = coordinator.hooks.events
    if any(args is None for _, args in case.calls):
        with pytest.raises(InvalidToolCallError) as info:
            await provider.complete(ask())
        err = info.value
        assert err.retryable is False
        assert err.tool_name == next(name for name, args in case.calls if args is None)
        assert route.call_count == 1  # a bad call costs exactly one request
        partial = err.partial_response
        assert isinstance(partial, ChatResponse)
        assert partial.text == case.text
        good = [(n, a) for n, a in case.calls if a is not None]
        assert [(c.name, c.arguments) for c in partial.tool_calls or []] == good
        if stream and case.text:
            assert_stream_contract(events)
            assert streamed_text(events).strip() == case.text
        return
    response = await provider.complete(ask())
    assert route.call_count == 1
    assert [(c.name, c.arguments) for c in response.tool_calls or []] == list(case.calls)
    assert response.text == case.text
    assert response.finish_reason == ("tool_calls" if case.calls else "stop")
    ids = [c.id for c in response.tool_calls or []]
    assert all(re.fullmatch(r"call_[0-9a-f]{24}", i) for i in ids) and len(set(ids)) == len(ids)
    if stream:
        assert_stream_contract(events)
        shown = streamed_text(events)
        # Prose and JSON answers stream exactly as sent; held text is never shown twice.
        assert shown == case.raw if not case.calls else shown.strip() == case.text
        assert tool_starts(coordinator) == [name for name, _ in case.calls]
    else:
        assert not [n for n, _ in events if n.startswith("llm:stream")]


@MODES
@respx.mock
async def test_text_calls_ignored_when_no_tools_offered(coordinator, stream: bool):
    raw = '<tool_call>{"name": "read_file", "arguments": {"path": "a"}}</tool_call>'
    respond_content(raw, stream)
    provider = await provider_for(coordinator, stream)
    response = await provider.complete(ask(tools=None))
    assert response.tool_calls is None
    assert response.text == raw


# -- native tool calls: argument repair, names -----------------------------------------


def native_call_stream(name: str, arguments: str, size: int = 4) -> bytes:
    frags = pieces(arguments, size)
    chunks = [
        chunk({"role": "assistant", "content": "Calling."}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_n1",
                        "type": "function",
                        "function": {"name": name, "arguments": frags[0]},
                    }
                ]
            }
        ),
    ]
    chunks += [
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": f}}]}) for f in frags[1:]
    ]
    chunks.append(chunk({}, finish_reason="tool_calls"))
    return sse(chunks)


def respond_native(name: str, arguments: str, stream: bool) -> respx.Route:
    route = respx.post(CHAT)
    if stream:
        return route.respond(200, content=native_call_stream(name, arguments), headers=SSE_HEADERS)
    call = {"id": "call_n1", "type": "function", "function": {"name": name, "arguments": arguments}}
    return route.respond(
        200, json=completion("Calling.", tool_calls=[call], finish_reason="tool_calls")
    )


@MODES
@pytest.mark.parametrize("case", ARGUMENT_CASES, ids=lambda c: c.id)
@respx.mock
async def test_argument_corpus_through_provider(coordinator, case: ArgumentCase, stream: bool):
    route = respond_native(case.tool, case.raw, stream)
    provider = await provider_for(coordinator, stream)
    if case.expected is None:
        with pytest.raises(InvalidToolCallError) as info:
            await provider.complete(ask())
        err = info.value
        assert err.tool_name == case.tool and not err.retryable
        assert case.tool in str(err) and case.raw.strip()[:20] in str(err)  # quotes the start
        assert route.call_count == 1
        assert err.partial_response.text == "Calling."
        assert err.partial_response.tool_calls is None
    else:
        response = await provider.complete(ask())
        assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == [
            ("call_n1", case.tool, case.expected)
        ]
    if stream:
        assert_stream_contract(coordinator.hooks.events)
        assert streamed_text(coordinator.hooks.events) == "Calling."


@MODES
@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        ("functions.read_file", "read_file"),
        ("Read_File", "read_file"),
        ("tools.GREP", "grep"),
        ("launch_rocket", "launch_rocket"),  # unknown: returned for the orchestrator to report
    ],
)
@respx.mock
async def test_native_names_canonicalized(coordinator, sent: str, expected: str, stream: bool):
    respond_native(sent, '{"path": "a"}', stream)
    provider = await provider_for(coordinator, stream)
    response = await provider.complete(ask())
    assert [c.name for c in response.tool_calls] == [expected]
    assert [b.name for b in response.content if b.type == "tool_call"] == [expected]
    if stream:
        assert tool_starts(coordinator) == [expected]


@MODES
@respx.mock
async def test_bad_call_keeps_text_thinking_and_good_calls(coordinator, stream: bool):
    good = '<tool_call>{"name": "grep", "arguments": {"pattern": "x"}}</tool_call>'
    bad = '<tool_call>{"name": "read_file", "arguments": "path is README"}</tool_call>'
    raw = f"<think>Plan it.</think>Searching first.\n{good}\n{bad}"
    route = respond_content(raw, stream, size=5)
    provider = await provider_for(coordinator, stream)
    with pytest.raises(InvalidToolCallError) as info:
        await provider.complete(ask())
    assert route.call_count == 1
    err = info.value
    assert err.tool_name == "read_file" and "path is README" in str(err)
    partial = err.partial_response
    assert blocks(partial) == [
        ("thinking", "Plan it."),
        ("text", "Searching first."),
        ("tool_call", "grep"),
    ]
    assert [(c.name, c.arguments) for c in partial.tool_calls] == [("grep", {"pattern": "x"})]
    if stream:
        events = coordinator.hooks.events
        assert_stream_contract(events)
        # The text was shown live before the failure was reported.
        assert streamed_text(events).strip() == "Searching first."
        assert streamed_text(events, "thinking") == "Plan it."
        assert coordinator.hooks.named("llm:stream_aborted")


# -- reasoning written in the text -----------------------------------------------------


THINK_CASES = [
    ("think-tags", "<think>Let me think.</think>\n\nHello world", "Let me think."),
    ("think-leading-ws", "\n<think>\nLet me think.\n</think>\n\nHello world", "Let me think.\n"),
    ("unclosed-start", "Let me think.</think>\n\nHello world", "Let me think."),
    ("ampify", "[thinking]\nLet me think.\n\nHello world", "Let me think."),
]


@MODES
@pytest.mark.parametrize("size", [1, 4])
@pytest.mark.parametrize(
    ("raw", "thinking"), [c[1:] for c in THINK_CASES], ids=[c[0] for c in THINK_CASES]
)
@respx.mock
async def test_thinking_in_content(coordinator, raw: str, thinking: str, size: int, stream: bool):
    respond_content(raw, stream, size)
    provider = await provider_for(coordinator, stream)
    response = await provider.complete(ask(tools=None))
    assert blocks(response) == [("thinking", thinking), ("text", "Hello world")]
    assert response.text == "Hello world"
    if stream:
        events = coordinator.hooks.events
        assert_stream_contract(events)
        if raw.startswith("Let me think.</think>"):
            # Known only at `</think>`: streamed as text, re-split for the final response.
            assert streamed_text(events) == "Let me think.Hello world"
        else:
            assert streamed_text(events, "thinking") == thinking
            assert streamed_text(events) == "Hello world"


@MODES
@respx.mock
async def test_think_then_text_tool_call_qwen3_style(coordinator, stream: bool):
    raw = (
        "<think>\nI need the file.\n</think>\n\n"
        '<tool_call>\n{"name": "read_file", "arguments": {"path": "a.py"}}\n</tool_call>'
    )
    respond_content(raw, stream, size=2)
    provider = await provider_for(coordinator, stream)
    response = await provider.complete(ask())
    assert blocks(response) == [("thinking", "I need the file.\n"), ("tool_call", "read_file")]
    assert response.finish_reason == "tool_calls"
    if stream:
        assert_stream_contract(coordinator.hooks.events)
        assert streamed_text(coordinator.hooks.events) == ""


@MODES
@respx.mock
async def test_think_tags_false_leaves_text_alone(coordinator, stream: bool):
    raw = "<think>Let me think.</think>\n\nHello world"
    respond_content(raw, stream)
    provider = await provider_for(coordinator, stream, think_tags="false")
    assert provider.config.think_tags is False
    response = await provider.complete(ask(tools=None))
    assert blocks(response) == [("text", raw)]
    if stream:
        assert streamed_text(coordinator.hooks.events) == raw


# -- message hygiene -------------------------------------------------------------------


ALTERNATE = "Conversation roles must alternate user/assistant/user/assistant/..."
REJECTIONS = [
    (400, {"object": "error", "message": ALTERNATE, "type": "BadRequestError", "code": 400}),
    (422, {"error": f"Template error: {ALTERNATE}", "error_type": "template_error"}),
    (500, {"error": {"code": 500, "message": ALTERNATE, "type": "server_error"}}),
]


def unalternating() -> ChatRequest:
    return ChatRequest(
        messages=[
            Message(role="system", content="Be brief."),
            Message(role="user", content="one"),
            Message(role="user", content="two"),
            Message(role="system", content="Also be kind."),
            Message(role="assistant", content="ok"),
            Message(role="assistant", content="and more"),
            Message(role="user", content="three"),
        ]
    )


def roles(body: dict[str, Any]) -> list[str]:
    return [m["role"] for m in body["messages"]]


@pytest.mark.parametrize(("status", "error"), REJECTIONS, ids=["vllm", "tgi", "llamacpp"])
@respx.mock
async def test_alternation_error_retried_once_with_alternating_roles(
    coordinator, caplog, status: int, error: dict[str, Any]
):
    route = respx.post(CHAT)
    route.side_effect = [
        httpx.Response(status, json=error),
        httpx.Response(200, json=completion("fine")),
        httpx.Response(200, json=completion("again")),
    ]
    provider = await provider_for(coordinator, False)
    caplog.set_level(logging.WARNING)
    response = await provider.complete(unalternating())
    assert response.text == "fine"
    assert route.call_count == 2
    first, second = (json.loads(c.request.content) for c in route.calls)
    assert roles(first) == ["system", "user", "user", "system", "assistant", "assistant", "user"]
    assert roles(second) == ["system", "user", "assistant", "user"]
    assert "one" in second["messages"][1]["content"]
    assert "Also be kind." in second["messages"][1]["content"]
    assert second["messages"][2]["content"] == "ok\n\nand more"
    # Reported like every self-healing resend; later requests are not degraded (only merged).
    assert response.degradation is not None and response.degradation.requested == "messages"
    # Remembered: the next request alternates from the start, without another warning.
    again = await provider.complete(unalternating())
    assert again.text == "again" and again.degradation is None
    assert route.call_count == 3
    assert roles(json.loads(route.calls[2].request.content)) == roles(second)
    warnings = [r for r in caplog.records if "alternat" in r.getMessage()]
    assert len(warnings) == 1


@respx.mock
async def test_alternation_error_after_alternating_is_not_retried_again(coordinator):
    route = respx.post(CHAT).respond(400, json=REJECTIONS[0][1])
    provider = await provider_for(coordinator, False)
    with pytest.raises(InvalidRequestError):
        await provider.complete(unalternating())
    assert route.call_count == 2  # the original and one alternating resend


def tool_history(model: str) -> ChatRequest:
    return ChatRequest(
        model=model,
        messages=[
            Message(role="user", content="weather?"),
            Message(
                role="assistant",
                content=[
                    TextBlock(text="Checking."),
                    ToolCallBlock(id="call_0a1b2c3d4e5f6a7b8c9d0e1f", name="get_weather", input={}),
                    ToolCallBlock(id="abcDEF123", name="get_weather", input={"city": "Oslo"}),
                ],
            ),
            Message(
                role="tool",
                content=[
                    ToolResultBlock(tool_call_id="call_0a1b2c3d4e5f6a7b8c9d0e1f", output="sun")
                ],
            ),
            Message(
                role="tool", content=[ToolResultBlock(tool_call_id="abcDEF123", output="rain")]
            ),
        ],
        tools=[TOOLS[4]],
    )


def wire_ids(body: dict[str, Any]) -> tuple[list[str], list[str]]:
    calls = [c["id"] for m in body["messages"] for c in m.get("tool_calls") or []]
    results = [m["tool_call_id"] for m in body["messages"] if m["role"] == "tool"]
    return calls, results


@pytest.mark.parametrize(
    "model",
    ["mistralai/Mistral-Small-3.1-24B-Instruct-2503", "devstral-small-2505", "Ministral-8B"],
)
@respx.mock
async def test_mistral_family_tool_ids_rewritten_on_the_wire(coordinator, model: str):
    server_call = {
        "id": "Xy12Ab34C",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
    }
    route = respx.post(CHAT).respond(
        200, json=completion(None, tool_calls=[server_call], finish_reason="tool_calls")
    )
    provider = await provider_for(coordinator, False)
    request = tool_history(model)
    response = await provider.complete(request)
    calls, results = wire_ids(json.loads(route.calls[0].request.content))
    assert all(re.fullmatch(r"[A-Za-z0-9]{9}", i) for i in calls + results)
    assert calls == results  # calls and results rewritten alike
    assert calls[1] == "abcDEF123"  # already valid: kept
    # Amplifier's history keeps its ids; the response carries the server's.
    assert request.messages[1].content[1].id == "call_0a1b2c3d4e5f6a7b8c9d0e1f"
    assert [c.id for c in response.tool_calls] == ["Xy12Ab34C"]
    # Same history, same wire ids (prompt caches keep working).
    await provider.complete(tool_history(model))
    assert wire_ids(json.loads(route.calls[1].request.content)) == (calls, results)


@respx.mock
async def test_other_models_keep_tool_ids(coordinator):
    route = respx.post(CHAT).respond(200, json=completion("ok"))
    provider = await provider_for(coordinator, False)
    await provider.complete(tool_history("qwen2.5-coder:7b"))
    calls, results = wire_ids(json.loads(route.calls[0].request.content))
    assert calls == results == ["call_0a1b2c3d4e5f6a7b8c9d0e1f", "abcDEF123"]


# -- the assembler's held-back text ----------------------------------------------------


def feed_content(asm: ResponseAssembler, text: str, size: int = 2) -> list[BlockEvent]:
    events: list[BlockEvent] = []
    for part in pieces(text, size):
        events += asm.feed_chunk(chunk({"content": part}))
    return events


def test_whitespace_between_text_calls_opens_no_text_block():
    asm = ResponseAssembler(offered_tools=OFFERED)
    events = feed_content(asm, TEXT_CASES[1].raw)  # two calls separated by "\n"
    events += asm.close()
    assert {e.block_type for e in events} == {"tool_use"}
    assert [e.kind for e in events] == ["start", "end", "start", "end"]
    assert [b.type for b in asm.result().blocks] == ["tool_call", "tool_call"]


def test_failed_stream_does_not_release_held_text():
    asm = ResponseAssembler(offered_tools=OFFERED)
    events = feed_content(asm, 'Reading.\n<tool_call>{"name": "read_file", "argu')
    events += asm.close(flush=False)
    assert "".join(e.text for e in events if e.kind == "delta") == "Reading.\n"
    assert [e.kind for e in events if e.kind != "delta"] == ["start", "end"]


def test_result_is_repeatable_with_text_calls():
    asm = ResponseAssembler(offered_tools=OFFERED)
    feed_content(asm, TEXT_CASES[0].raw)
    asm.close()
    first, second = asm.result(), asm.result()
    assert [c.id for c in first.tool_calls] == [c.id for c in second.tool_calls]
    assert first.blocks == second.blocks


def test_alternation_is_a_profile_flag_applied_by_apply_profile():
    body = {"model": "m", "messages": [{"role": "user", "content": "a"}] * 2}
    assert apply_profile(body, GENERIC)["messages"] == body["messages"]
    strict = replace(GENERIC, needs_role_alternation=True)
    assert apply_profile(body, strict)["messages"] == [{"role": "user", "content": "a\n\na"}]
    assert body["messages"] == [{"role": "user", "content": "a"}] * 2  # not mutated
    fix = diagnose_alternation(ALTERNATE, GENERIC)
    assert fix is not None and dict(fix.profile_changes) == {"needs_role_alternation": True}
    assert diagnose_alternation(ALTERNATE, strict) is None  # once only
    assert diagnose_alternation("Extra inputs are not permitted", GENERIC) is None
