"""The real provider (mount + complete) against a real llama.cpp llama-server.

The server runs the tiny scripted model (see llama_build.py): a plain chat answers
"Hello world" (3 completion tokens: "Hello", " world", end of turn); with tools and
``tool_choice: "required"`` llama-server's grammar makes it emit one ``get_weather`` call
whose ``city`` string is arbitrary; with a JSON schema the grammar forces a matching object.
Wire facts: tests/e2e/captures/llama_server_11434.md.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from amplifier_core.llm_errors import AuthenticationError, ContextLengthError
from amplifier_core.message_models import (
    ChatRequest,
    ChatResponse,
    Message,
    ResponseFormatJsonSchema,
    TextBlock,
    ToolCallBlock,
    ToolResultBlock,
)
from stream_contract import assert_stream_contract, stream_events, streamed_text

from .conftest import E2E_API_KEY
from .helpers import (
    MODES,
    OVERFLOW_LOG_LINE,
    PERSON_SCHEMA,
    WEATHER,
    MakeProvider,
    ask,
    log_count,
    wait_log_count,
)
from .servers import LlamaServer

pytestmark = pytest.mark.e2e


def names(coordinator: Any, prefix: str) -> list[str]:
    return coordinator.hooks.names(prefix)


def assert_no_retry(coordinator: Any) -> None:
    """No retries at all. llama-server closes a kept-alive connection after each streamed
    response without `Connection: close` (see the captures file); the transport resends a
    request that hit such a stale socket at once, so the retry policy never sees it."""
    assert not coordinator.hooks.named("provider:retry")


# -- plain text and usage ---------------------------------------------------------------


@MODES
async def test_text_and_usage(
    coordinator: Any, llama_server: LlamaServer, make_provider: MakeProvider, stream: bool
) -> None:
    provider = await make_provider(llama_server, stream)
    response = await provider.complete(ask())

    assert response.text == "Hello world"
    assert response.finish_reason == "stop"
    assert not response.tool_calls
    usage = response.usage
    assert usage is not None
    assert usage.output_tokens == 3  # "Hello", " world" and the end-of-turn token
    assert usage.input_tokens > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens

    events = coordinator.hooks.events
    if stream:
        assert_stream_contract(events)
        assert streamed_text(events) == "Hello world"
    else:
        assert not stream_events(events)
    [done] = coordinator.hooks.named("llm:response")
    assert done["status"] == "ok"
    assert done["usage"]["input_tokens"] == usage.input_tokens
    assert done["usage"]["output_tokens"] == 3
    assert not names(coordinator, "provider:retry")


async def test_live_stream_events_arrive_before_the_response(
    coordinator: Any, llama_server: LlamaServer, make_provider: MakeProvider
) -> None:
    provider = await make_provider(llama_server, True)
    await provider.complete(ask())
    order = [name for name, _ in coordinator.hooks.events]
    assert order[0] == "llm:request"
    assert order[-1] == "llm:response"
    deltas = coordinator.hooks.named("llm:stream_block_delta")
    # One delta per token as llama-server streams them, in sequence.
    assert [d["text"] for d in deltas] == ["Hello", " world"]
    assert [d["sequence"] for d in deltas] == [0, 1]
    [start] = coordinator.hooks.named("llm:stream_block_start")
    assert start["block_type"] == "text" and start["block_index"] == 0
    [request] = coordinator.hooks.named("llm:request")
    assert {d["request_id"] for d in deltas} == {request["request_id"]}


async def test_prompt_progress_is_reported_while_the_prompt_is_read(
    coordinator: Any, llama_server: LlamaServer, make_provider: MakeProvider
) -> None:
    provider = await make_provider(llama_server, True)
    response = await provider.complete(ask("a prompt that is not in the cache yet"))
    assert response.text == "Hello world"
    reports = coordinator.hooks.named("provider:prompt_progress")
    assert reports, "llama-server sent no prompt_progress chunk"
    assert reports[-1]["processed"] == reports[-1]["total"] > 0
    assert [r["processed"] for r in reports] == sorted(r["processed"] for r in reports)
    assert_stream_contract(coordinator.hooks.events)


# -- tool calls ---------------------------------------------------------------------------


def _only_weather_call(response: ChatResponse) -> ToolCallBlock:
    assert response.finish_reason == "tool_calls"
    calls = response.tool_calls or []
    assert [c.name for c in calls] == ["get_weather"]
    call = calls[0]
    assert call.id
    assert set(call.arguments) == {"city"}  # the grammar follows the schema
    assert isinstance(call.arguments["city"], str)
    return ToolCallBlock(id=call.id, name=call.name, input=call.arguments)


@MODES
async def test_tool_call_required_and_round_trip(
    coordinator: Any, llama_server: LlamaServer, make_provider: MakeProvider, stream: bool
) -> None:
    provider = await make_provider(llama_server, stream)
    question = Message(role="user", content="What is the weather in Paris?")
    first = await provider.complete(
        ChatRequest(messages=[question], tools=[WEATHER], tool_choice="required")
    )
    call = _only_weather_call(first)
    if stream:
        events = coordinator.hooks.events
        assert_stream_contract(events)
        starts = coordinator.hooks.named("llm:stream_block_start")
        assert [s["name"] for s in starts if s["block_type"] == "tool_use"] == ["get_weather"]

    # The full round trip: the call and its result go back; the model answers in text.
    assistant_blocks: list[Any] = [TextBlock(text=first.text)] if first.text else []
    second = await provider.complete(
        ChatRequest(
            messages=[
                question,
                Message(role="assistant", content=[*assistant_blocks, call]),
                Message(
                    role="tool",
                    content=[ToolResultBlock(tool_call_id=call.id, output="Sunny, 21 C")],
                ),
            ],
            tools=[WEATHER],
        )
    )
    assert second.text == "Hello world"
    assert second.finish_reason == "stop"
    assert not second.tool_calls
    assert not names(coordinator, "provider:tool_sequence_repaired")
    assert_no_retry(coordinator)
    assert [e["status"] for e in coordinator.hooks.named("llm:response")] == ["ok", "ok"]


# -- JSON schema ---------------------------------------------------------------------------


@MODES
async def test_json_schema(
    llama_server: LlamaServer, make_provider: MakeProvider, stream: bool
) -> None:
    provider = await make_provider(llama_server, stream)
    response = await provider.complete(
        ask(
            "Give me a person as JSON",
            response_format=ResponseFormatJsonSchema(json_schema=PERSON_SCHEMA, strict=True),
        )
    )
    data = json.loads(response.text)
    assert set(data) == {"name", "age"}
    assert isinstance(data["name"], str)
    assert isinstance(data["age"], int)
    assert response.degradation is None  # the server got the schema as asked


# -- models and context window --------------------------------------------------------------


async def test_list_models_and_context_window(
    llama_server: LlamaServer, make_provider: MakeProvider
) -> None:
    provider = await make_provider(llama_server, True)
    models = await provider.list_models()
    assert len(models) == 1
    [model] = models
    # llama-server names the model by its file path; -c 4096 over -np 2 slots gives each
    # request 2048 tokens, which /v1/models states as meta.n_ctx.
    assert model.id.endswith(".gguf")
    assert model.context_window == 2048
    info = await provider.fetch_model_info()
    assert info is not None
    assert info.context_window == 2048
    assert (await provider.server_profile()).key == "llamacpp"


# -- errors ---------------------------------------------------------------------------------


@MODES
async def test_over_context_prompt_is_context_length_error_without_retry(
    coordinator: Any, llama_server: LlamaServer, make_provider: MakeProvider, stream: bool
) -> None:
    provider = await make_provider(llama_server, stream, max_retries=3)
    await provider.server_profile()  # detection GETs happen before counting
    before = log_count(llama_server, OVERFLOW_LOG_LINE)
    with pytest.raises(ContextLengthError) as info:
        await provider.complete(ask("hello " * 6000))
    assert info.value.status_code == 400
    assert info.value.retryable is False
    # Exactly one request reached the server: no retry, no self-healing resend.
    assert wait_log_count(llama_server, OVERFLOW_LOG_LINE, before + 1) == before + 1
    assert not names(coordinator, "provider:retry")
    [done] = coordinator.hooks.named("llm:response")
    assert done["status"] == "error"
    assert done["error"]["type"] == "ContextLengthError"


@MODES
async def test_wrong_api_key_is_authentication_error_without_retry(
    coordinator: Any,
    llama_server_with_key: LlamaServer,
    make_provider: MakeProvider,
    stream: bool,
) -> None:
    wrong = "sk-wrong-e2e-key-0123456789"
    provider = await make_provider(llama_server_with_key, stream, api_key=wrong, max_retries=3)
    with pytest.raises(AuthenticationError) as info:
        await provider.complete(ask())
    assert info.value.status_code == 401
    assert info.value.retryable is False
    assert wrong not in str(info.value)
    assert not names(coordinator, "provider:retry")
    [done] = coordinator.hooks.named("llm:response")
    assert done["status"] == "error"


@MODES
async def test_right_api_key_works(
    llama_server_with_key: LlamaServer, make_provider: MakeProvider, stream: bool
) -> None:
    provider = await make_provider(llama_server_with_key, stream, api_key=E2E_API_KEY)
    response = await provider.complete(ask())
    assert response.text == "Hello world"


# -- the doctor -----------------------------------------------------------------------------


async def test_doctor_report(llama_server: LlamaServer) -> None:
    from amplifier_module_provider_chat_completions.cli.doctor import render, run_doctor

    report = await run_doctor(llama_server.base_url, timeout=60)
    assert report.error is None
    assert report.chat_works
    assert report.server == "llamacpp"
    assert report.version == "b0-unknown"  # /props build_info of a build without git
    assert report.context_window == 2048
    assert report.model is not None and report.model.endswith(".gguf")
    status = {c.feature: c.status for c in report.checks}
    for feature in ("plain chat", "streaming", "streamed usage", "JSON schema"):
        assert status.get(feature) == "ok", (feature, report.checks)
    # The tiny model calls tools only when tool_choice is "required": the doctor forces the
    # call once and reports "the server handles tools, the model does not call them unforced".
    assert status["tool calls"] == status["tool calls (streamed)"] == "warn"
    tools = next(c for c in report.checks if c.feature == "tool calls")
    assert "get_weather" in tools.detail and "required" in tools.detail and tools.fix
    assert status["parallel tool calls"] == "warn"
    text = render(report)
    assert "llama.cpp llama-server" in text
