"""The real provider (mount + complete) against every dialect replica, in both modes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from amplifier_core.llm_errors import LLMError
from amplifier_core.message_models import ChatRequest, Message, ToolSpec
from stream_contract import assert_stream_contract, streamed_text

from amplifier_module_provider_chat_completions import mount

from .conftest import ALL_DIALECTS
from .dialects import DIALECTS

WEATHER = ToolSpec(
    name="get_weather",
    description="Weather for a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)
TIME = ToolSpec(
    name="get_time",
    description="Time in a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)
FAST = {"min_retry_delay": 0.01, "max_retry_delay": 0.05}


async def provider_for(coordinator: Any, server: Any, stream: bool, **config: Any) -> Any:
    await mount(
        coordinator,
        {
            "base_url": server.base_url,
            "default_model": server.dialect.model,
            "use_streaming": stream,
            **FAST,
            **config,
        },
    )
    return coordinator.mounted["providers"]["chat-completions"]


def ask(text: str = "hi", tools: list[ToolSpec] | None = None, **extra: Any) -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content=text)], tools=tools, **extra)


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
@pytest.mark.parametrize("key", ALL_DIALECTS)
async def test_text(replica, coordinator, key: str, stream: bool):
    server = replica(key, "text")
    provider = await provider_for(coordinator, server, stream)
    response = await provider.complete(ask())
    assert response.text == "Hello world"
    assert response.finish_reason == "stop"
    assert len(server.chat_requests) == 1
    body = server.last_body
    assert body.get("stream", False) is stream
    if not stream:  # only streaming asks for usage (vLLM 400s otherwise)
        assert "stream_options" not in body
    events = coordinator.hooks.events
    if stream:
        assert_stream_contract(events)
        assert streamed_text(events) == "Hello world"
    else:
        assert not [n for n, _ in events if n.startswith("llm:stream")]
    dialect = server.dialect
    expected_usage = dialect.usage_in_stream(True) if stream else dialect.nonstream_usage
    if expected_usage:
        assert response.usage is not None and response.usage.input_tokens >= 0
    else:
        assert response.usage is None  # never invented


@pytest.mark.parametrize("scenario", ["text", "tool_call", "reasoning"])
async def test_llamacpp_prompt_progress_is_reported_and_leaves_the_reply_alone(
    replica, coordinator, scenario: str
):
    server = replica("llamacpp", scenario)
    provider = await provider_for(coordinator, server, True)
    response = await provider.complete(ask(tools=[WEATHER] if scenario == "tool_call" else None))
    assert server.last_body["return_progress"] is True
    reports = coordinator.hooks.named("provider:prompt_progress")
    assert [(r["processed"], r["total"]) for r in reports] == [(0, 12), (8, 12), (12, 12)]
    assert_stream_contract(coordinator.hooks.events)
    if scenario == "tool_call":
        assert [c.name for c in response.tool_calls or []] == ["get_weather"]
    else:
        assert response.text == "Hello world"
        assert [b.type for b in response.content] == (
            ["thinking", "text"] if scenario == "reasoning" else ["text"]
        )


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
@pytest.mark.parametrize("key", [k for k in ALL_DIALECTS if DIALECTS[k].tools_work])
async def test_tool_call(replica, coordinator, key: str, stream: bool):
    server = replica(key, "tool_call")
    provider = await provider_for(coordinator, server, stream)
    response = await provider.complete(ask("weather in Paris?", tools=[WEATHER]))
    calls = response.tool_calls or []
    assert [(c.name, c.arguments) for c in calls] == [("get_weather", {"city": "Paris"})]
    assert calls[0].id
    assert response.finish_reason == "tool_calls"
    assert [b.type for b in response.content if b.type == "tool_call"] == ["tool_call"]
    if stream:
        assert_stream_contract(coordinator.hooks.events)
        starts = coordinator.hooks.named("llm:stream_block_start")
        assert [s["name"] for s in starts if s["block_type"] == "tool_use"] == ["get_weather"]


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
@pytest.mark.parametrize("key", [k for k in ALL_DIALECTS if not DIALECTS[k].tools_work])
async def test_server_side_tool_failure_is_one_clear_error(
    replica, coordinator, key: str, stream: bool
):
    """Amazon 2.0.4 fails every tool request itself: one request, no retry, the server named."""
    server = replica(key, "tool_failure")
    provider = await provider_for(coordinator, server, stream)
    with pytest.raises(LLMError) as info:
        await provider.complete(ask("weather in Paris?", tools=[WEATHER]))
    assert info.value.retryable is False
    assert len(server.chat_requests) == 1
    assert not coordinator.hooks.named("provider:retry")
    assert "server" in str(info.value).lower()


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
@pytest.mark.parametrize(
    "key", [k for k in ALL_DIALECTS if DIALECTS[k].tools_work and DIALECTS[k].parallel_tools]
)
async def test_parallel_tool_calls_in_index_order_with_unique_ids(
    replica, coordinator, key: str, stream: bool
):
    server = replica(key, "tool_calls_parallel")
    provider = await provider_for(coordinator, server, stream)
    response = await provider.complete(ask("weather and time?", tools=[WEATHER, TIME]))
    calls = response.tool_calls or []
    assert [(c.name, c.arguments) for c in calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {"city": "London"}),
    ]
    assert len({c.id for c in calls}) == 2


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
@pytest.mark.parametrize("key", ALL_DIALECTS)
async def test_reasoning(replica, coordinator, key: str, stream: bool):
    """Every dialect's reasoning style: a field, `<think>` in content (TGI,
    llama-cpp-python), Ampify's inline `[thinking]` line, or dropped by the server (Amazon)."""
    server = replica(key, "reasoning")
    provider = await provider_for(coordinator, server, stream)
    response = await provider.complete(ask())
    dropped = server.dialect.reasoning == "none"
    thinking = [] if dropped else [("thinking", "Let me think.")]
    expected = [*thinking, ("text", "Hello world")]
    assert [
        (b.type, getattr(b, "thinking", None) or getattr(b, "text", None)) for b in response.content
    ] == expected
    assert response.text == "Hello world"
    if stream:
        events = coordinator.hooks.events
        assert_stream_contract(events)
        assert streamed_text(events, "thinking") == ("" if dropped else "Let me think.")
        assert streamed_text(events) == "Hello world"


@pytest.mark.parametrize("key", ALL_DIALECTS)
async def test_truncated_or_failed_stream_is_never_a_success(replica, coordinator, key: str):
    server = replica(key, "truncated")
    provider = await provider_for(coordinator, server, True, max_retries=1)
    with pytest.raises(LLMError):
        await provider.complete(ask())
    assert len(server.chat_requests) == 2  # retried once: truncation is transient
    aborted = coordinator.hooks.named("llm:stream_aborted")
    assert len(aborted) == 2
    assert_stream_contract(coordinator.hooks.events)


@pytest.mark.parametrize("key", ALL_DIALECTS)
async def test_error_midstream_is_a_kernel_error(replica, coordinator, key: str):
    server = replica(key, "error_midstream")
    provider = await provider_for(coordinator, server, True, max_retries=0)
    with pytest.raises(LLMError) as info:
        await provider.complete(ask())
    assert info.value.provider == "chat-completions"
    assert_stream_contract(coordinator.hooks.events)


@pytest.mark.parametrize("key", ALL_DIALECTS)
async def test_overloaded_then_ok_is_retried(replica, coordinator, key: str):
    server = replica(key, "text")
    server.queue("overloaded")
    # LocalAI's 503 carries Retry-After: 2; the wait honours it.
    provider = await provider_for(coordinator, server, True, max_retry_delay=5)
    response = await provider.complete(ask())
    assert response.text == "Hello world"
    assert len(server.chat_requests) == 2
    assert len(coordinator.hooks.named("provider:retry")) == 1


@pytest.mark.parametrize(
    "key", [k for k in ALL_DIALECTS if "context_overflow" in DIALECTS[k].errors]
)
async def test_context_overflow_not_retried(replica, coordinator, key: str):
    from amplifier_core.llm_errors import ContextLengthError

    server = replica(key, "context_overflow")
    provider = await provider_for(coordinator, server, True)
    with pytest.raises(ContextLengthError):
        await provider.complete(ask())
    if key in OVERFLOW_MAY_BE_OUR_LIMIT:
        # Resent once without our default max_tokens, never retried beyond that.
        assert len(server.chat_requests) == 2
        assert "max_tokens" in server.chat_requests[0].body
        assert "max_tokens" not in server.chat_requests[1].body
    else:
        assert len(server.chat_requests) == 1


# Overflow texts that do not say the prompt alone is too long: the default output limit
# may be what did not fit, so the request is resent once without it.
OVERFLOW_MAY_BE_OUR_LIMIT = {
    "tgi": "`inputs` tokens + `max_new_tokens` must be <= 4096. Given: 4000 `inputs` tokens",
    "litellm": "This model's maximum context length is 32768 tokens. (no sizes)",
}


@pytest.mark.parametrize("key", ALL_DIALECTS)
async def test_unauthorized_not_retried(replica, coordinator, key: str):
    from amplifier_core.llm_errors import AuthenticationError

    server = replica(key, "unauthorized")
    provider = await provider_for(coordinator, server, False, api_key="sk-wrong-key-12345")
    with pytest.raises(AuthenticationError) as info:
        await provider.complete(ask())
    assert len(server.chat_requests) == 1
    assert "sk-wrong-key-12345" not in str(info.value)


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
@pytest.mark.parametrize("key", ALL_DIALECTS)
async def test_json_mode_is_sent_in_a_shape_the_server_accepts(
    replica, coordinator, key: str, stream: bool
):
    """The replicas' validators reject the shapes the real servers reject (TGI wants `value`,
    LM Studio json_schema only): the answer must come back in at most one resend."""
    server = replica(key, "text")
    provider = await provider_for(coordinator, server, stream)
    response = await provider.complete(ask(response_format={"type": "json"}))
    assert len(server.chat_requests) <= 2
    if JSON_MODE_DROPPED.get(key):
        # The server ignores response_format: the caller is told, not silently served prose.
        assert "response_format" not in server.last_body
        assert "response_format" in str(response.degradation)
        assert response.text == "Hello world"
    else:
        assert "response_format" in server.last_body
        assert json.loads(response.text) == {"answer": "Hello world"}


# SERVERS.md: Ampify and the Amazon server ignore response_format entirely.
JSON_MODE_DROPPED = {"ampify": True, "amazon": True}


@pytest.mark.parametrize("key", ALL_DIALECTS)
async def test_context_window_is_the_runtime_one_the_server_reports(replica, coordinator, key: str):
    server = replica(key, "text")
    provider = await provider_for(coordinator, server, False)
    models = await provider.list_models()
    assert [m.id for m in models] == [server.dialect.model]
    expected = server.dialect.context_window or 0  # 0: the server does not say
    assert models[0].context_window == expected
