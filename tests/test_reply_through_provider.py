"""The reply policies through the real provider at the HTTP boundary (respx).

What a cut-off reply may run, identical parallel calls, a failed generation, the real
answers of a small coder model, and usage a server reports outside `usage`.
"""

from __future__ import annotations

from typing import Any

import pytest
import respx
from amplifier_core.llm_errors import ProviderUnavailableError
from amplifier_core.message_models import ChatRequest, Message, ToolSpec
from stream_contract import assert_stream_contract, streamed_text
from wire_helpers import chunk, completion, sse

from amplifier_module_provider_chat_completions import mount

BASE = "http://llm.test/v1"
CHAT = f"{BASE}/chat/completions"
SSE_HEADERS = {"content-type": "text/event-stream"}
MODES = pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])


async def provider_for(coordinator: Any, stream: bool, **config: Any) -> Any:
    settings = {"base_url": BASE, "use_streaming": stream, "max_retries": 0, **config}
    await mount(coordinator, settings)
    return coordinator.mounted["providers"]["chat-completions"]


def ask(*tools: str) -> ChatRequest:
    specs = [ToolSpec(name=n, description=n, parameters={"type": "object"}) for n in tools]
    return ChatRequest(messages=[Message(role="user", content="go")], tools=specs or None)


def wire_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def respond_calls(
    calls: list[dict[str, Any]], stream: bool, finish: str, content: str | None = None
) -> respx.Route:
    """vLLM-style: each call's first delta names it, its arguments follow in pieces."""
    route = respx.post(CHAT)
    if not stream:
        body = completion(content, tool_calls=calls, finish_reason=finish)
        return route.respond(200, json=body)
    chunks = [chunk({"role": "assistant", "content": content or ""})]
    for index, c in enumerate(calls):
        head = {"index": index, "id": c["id"], "type": "function"}
        head["function"] = {"name": c["function"]["name"], "arguments": ""}
        chunks.append(chunk({"tool_calls": [head]}))
        args = c["function"]["arguments"]
        for i in range(0, len(args), 5):
            piece = {"index": index, "function": {"arguments": args[i : i + 5]}}
            chunks.append(chunk({"tool_calls": [piece]}))
    chunks.append(chunk({}, finish_reason=finish))
    return route.respond(200, content=sse(chunks), headers=SSE_HEADERS)


def respond_text(text: str, stream: bool, size: int, finish: str) -> respx.Route:
    route = respx.post(CHAT)
    if not stream:
        return route.respond(200, json=completion(text, finish_reason=finish))
    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk({"content": text[i : i + size]}) for i in range(0, len(text), size)]
    chunks.append(chunk({}, finish_reason=finish))
    return route.respond(200, content=sse(chunks), headers=SSE_HEADERS)


# ------------------------------------------------------------------ a reply cut by the limit


@MODES
@respx.mock
async def test_write_file_cut_by_the_output_limit_is_not_run(coordinator, stream: bool):
    cut = '{"path": "report.md", "content": "# Report\\n\\nThe first hal'
    respond_calls([wire_call("call_w", "write_file", cut)], stream, "length", "Saving.")
    provider = await provider_for(coordinator, stream)
    response = await provider.complete(ask("write_file"))
    assert response.tool_calls is None  # the orchestrator runs nothing
    assert provider.parse_tool_calls(response) == []
    assert response.finish_reason == "length"
    assert response.metadata["truncated_tool_calls"] == [{"id": "call_w", "name": "write_file"}]
    assert response.text.startswith("Saving.")
    assert "write_file" in response.text and cut in response.text
    assert [b.type for b in response.content] == ["text", "text"]
    if stream:
        events = coordinator.hooks.events
        assert_stream_contract(events)
        assert streamed_text(events) == "Saving." + response.content[1].text


@MODES
@respx.mock
async def test_complete_calls_of_a_cut_reply_are_not_run_either(coordinator, stream: bool):
    calls = [
        wire_call("a", "write_file", '{"path": "a.py", "content": "x = 1\\n"}'),
        wire_call("b", "bash", '{"command": "python a.p'),
    ]
    respond_calls(calls, stream, "length")
    provider = await provider_for(coordinator, stream)
    response = await provider.complete(ask("write_file", "bash"))
    assert response.tool_calls is None and response.finish_reason == "length"
    assert [c["name"] for c in response.metadata["truncated_tool_calls"]] == ["write_file", "bash"]


# ------------------------------------------------------------------ a failed generation


@MODES
@pytest.mark.parametrize("reason", ["abort", "error"])
@respx.mock
async def test_failed_generation_is_a_retryable_server_error(coordinator, stream, reason):
    route = respond_text("The answer is", stream, 4, reason)
    provider = await provider_for(coordinator, stream)
    with pytest.raises(ProviderUnavailableError) as info:
        await provider.complete(ask())
    assert info.value.retryable
    assert reason in str(info.value)
    assert route.call_count == 1
    if stream:
        events = coordinator.hooks.events
        assert_stream_contract(events)
        assert coordinator.hooks.named("llm:stream_aborted")


@respx.mock
async def test_failed_generation_is_retried(coordinator):
    route = respx.post(CHAT)
    route.side_effect = [
        respx.MockResponse(200, json=completion("Half", finish_reason="abort")),
        respx.MockResponse(200, json=completion("Whole answer.")),
    ]
    provider = await provider_for(
        coordinator, False, max_retries=1, min_retry_delay=0.01, max_retry_delay=0.02
    )
    response = await provider.complete(ask())
    assert response.text == "Whole answer." and route.call_count == 2


# ------------------------------------------------------------------ identical parallel calls


@MODES
@respx.mock
async def test_three_identical_dice_rolls_are_three_calls(coordinator, stream: bool):
    calls = [wire_call(f"call_{i}", "dice_roll", "{}") for i in range(3)]
    respond_calls(calls, stream, "tool_calls")
    provider = await provider_for(coordinator, stream)
    response = await provider.complete(ask("dice_roll"))
    assert [(c.id, c.name) for c in response.tool_calls] == [
        ("call_0", "dice_roll"),
        ("call_1", "dice_roll"),
        ("call_2", "dice_roll"),
    ]
    assert [b.id for b in response.content if b.type == "tool_call"] == [
        "call_0",
        "call_1",
        "call_2",
    ]


# ------------------------------------------------------------------ a small coder model's answers

FENCED = '```json\n{\n  "name": "get_weather",\n  "arguments": {\n    "city": "Paris"\n  }\n}\n```'
PREFIXED = 'Here is the response:\n\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n{'


@pytest.mark.parametrize(("stream", "size"), [(True, 1), (True, 2), (True, 5), (False, 0)])
@respx.mock
async def test_fenced_call_only_reply_is_the_call(coordinator, stream: bool, size: int):
    respond_text(FENCED, stream, size, "stop")
    provider = await provider_for(coordinator, stream)
    response = await provider.complete(ask("get_weather"))
    assert [(c.name, c.arguments) for c in response.tool_calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    assert response.finish_reason == "tool_calls" and response.text == ""
    if stream:
        events = coordinator.hooks.events
        assert_stream_contract(events)
        assert streamed_text(events) == ""  # the fence was never shown as text


@pytest.mark.parametrize("finish", ["length", "stop"])
@pytest.mark.parametrize(("stream", "size"), [(True, 1), (True, 3), (False, 0)])
@respx.mock
async def test_call_after_prose_stays_text(coordinator, stream: bool, size: int, finish: str):
    # A JSON call inside an explanation is an example; this one was also cut by the limit.
    respond_text(PREFIXED, stream, size, finish)
    provider = await provider_for(coordinator, stream)
    response = await provider.complete(ask("get_weather"))
    assert response.tool_calls is None
    assert response.text == PREFIXED and response.finish_reason == finish
    if stream:
        assert streamed_text(coordinator.hooks.events) == PREFIXED


# ------------------------------------------------------------------ usage outside `usage`


@respx.mock
async def test_groq_usage_from_x_groq(coordinator):
    usage = {"prompt_tokens": 21, "completion_tokens": 2, "total_tokens": 23, "queue_time": 0.1}
    last = chunk({}, finish_reason="stop") | {"x_groq": {"id": "req_01", "usage": usage}}
    body = sse([chunk({"role": "assistant", "content": "Hi"}), last])
    respx.post(CHAT).respond(200, content=body, headers=SSE_HEADERS)
    provider = await provider_for(coordinator, True)
    response = await provider.complete(ask())
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (21, 2)


@MODES
@respx.mock
async def test_anthropic_proxy_cache_writes(coordinator, stream: bool):
    usage = {
        "prompt_tokens": 1200,
        "completion_tokens": 9,
        "total_tokens": 1209,
        "cache_creation_input_tokens": 1000,
        "cache_read_input_tokens": 0,
    }
    if stream:
        body = sse([chunk({"content": "Hi"}), chunk({}, "stop"), chunk(choices=False, usage=usage)])
        respx.post(CHAT).respond(200, content=body, headers=SSE_HEADERS)
    else:
        respx.post(CHAT).respond(200, json=completion("Hi", usage=usage))
    provider = await provider_for(coordinator, stream)
    response = await provider.complete(ask())
    assert response.usage is not None
    assert (response.usage.cache_write_tokens, response.usage.cache_read_tokens) == (1000, 0)
