"""The real provider against the real LiteLLM proxy (pinned ``litellm[proxy]``).

LiteLLM routes ``openai/tiny-llama`` to the real llama-server, with retries and cooldowns
off, so each provider request is one proxy request and one llama-server request. Requests
are counted in the proxy's uvicorn access log.

Set ``CHAT_COMPLETIONS_SKIP_LITELLM=1`` to skip this file (it installs a large venv once).
"""

from __future__ import annotations

from typing import Any

import pytest
from amplifier_core.llm_errors import AuthenticationError, LLMError
from amplifier_core.message_models import (
    ChatRequest,
    Message,
    ToolCallBlock,
    ToolResultBlock,
)
from stream_contract import assert_stream_contract, stream_events, streamed_text

from amplifier_module_provider_chat_completions import ChatCompletionsProvider

from .helpers import WEATHER, ask, mount_provider, requests_since
from .litellm_proxy import LITELLM_MASTER_KEY, LITELLM_MODEL, LiteLLMProxy

pytestmark = pytest.mark.e2e


async def provider_for(
    coordinator: Any, proxy: LiteLLMProxy, stream: bool, **config: Any
) -> ChatCompletionsProvider:
    return await mount_provider(
        coordinator, proxy.base_url, LITELLM_MASTER_KEY, LITELLM_MODEL, stream, **config
    )


async def test_detected_as_litellm(coordinator: Any, litellm_proxy: LiteLLMProxy) -> None:
    provider = await provider_for(coordinator, litellm_proxy, True)
    profile = await provider.server_profile()
    assert profile.key == "litellm"
    models = await provider.list_models()
    assert [m.id for m in models] == [LITELLM_MODEL]


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
async def test_text_with_usage(coordinator: Any, litellm_proxy: LiteLLMProxy, stream: bool) -> None:
    before = len(litellm_proxy.chat_requests_logged())
    provider = await provider_for(coordinator, litellm_proxy, stream)
    response = await provider.complete(ask())
    assert response.text == "Hello world"
    assert response.finish_reason == "stop"
    # Streaming: from LiteLLM's usage chunk (choices: [{"index": 0, "delta": {}}]).
    assert response.usage is not None
    # llama-server's own count: "Hello", " world" and the end-of-turn token.
    assert response.usage.output_tokens == 3
    assert response.usage.input_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + 3
    lines = requests_since(litellm_proxy, before)
    assert len(lines) == 1 and lines[0].endswith("200 OK"), lines
    events = coordinator.hooks.events
    if stream:
        assert_stream_contract(events)
        assert streamed_text(events) == "Hello world"
    else:
        assert not stream_events(events)
    [done] = coordinator.hooks.named("llm:response")
    assert done["status"] == "ok"
    assert done["usage"]


def _tool_request() -> ChatRequest:
    return ask("What is the weather in Paris?", tools=[WEATHER], tool_choice="required")


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
async def test_tool_call_and_round_trip(
    coordinator: Any, litellm_proxy: LiteLLMProxy, stream: bool
) -> None:
    provider = await provider_for(coordinator, litellm_proxy, stream)
    request = _tool_request()
    response = await provider.complete(request)
    assert response.finish_reason == "tool_calls"
    calls = response.tool_calls or []
    assert len(calls) == 1, calls
    call = calls[0]
    assert call.name == "get_weather"
    assert call.id
    # llama-server's grammar enforces the schema: a string city.
    assert set(call.arguments) == {"city"} and isinstance(call.arguments["city"], str)
    if stream:
        assert_stream_contract(coordinator.hooks.events)
        starts = coordinator.hooks.named("llm:stream_block_start")
        assert [s["name"] for s in starts if s["block_type"] == "tool_use"] == ["get_weather"]
    assert response.usage is not None and response.usage.output_tokens > 0

    # The round trip: the call and its result go back; the model answers in text.
    follow_up = ChatRequest(
        messages=[
            *request.messages,
            Message(
                role="assistant",
                content=[ToolCallBlock(id=call.id, name=call.name, input=call.arguments)],
            ),
            Message(
                role="tool",
                content=[ToolResultBlock(tool_call_id=call.id, output="Sunny, 21 C")],
            ),
        ],
        tools=[WEATHER],
    )
    answer = await provider.complete(follow_up)
    assert answer.finish_reason == "stop"
    assert answer.text == "Hello world"
    assert not answer.tool_calls


async def test_wrong_key_fails_once(coordinator: Any, litellm_proxy: LiteLLMProxy) -> None:
    # With a master key but no database, LiteLLM cannot look keys up: it answers a wrong
    # key with 400 {"error": {"message": "No connected db.", "type": "no_db_connection",
    # "code": "400"}}, not 401. It is still a key problem: AuthenticationError, once.
    before = len(litellm_proxy.chat_requests_logged())
    provider = await provider_for(coordinator, litellm_proxy, True, api_key="sk-wrong-key-123")
    with pytest.raises(LLMError) as info:
        await provider.complete(ask())
    assert isinstance(info.value, AuthenticationError)
    assert info.value.status_code == 400
    assert "No connected db" in str(info.value) and "master key" in str(info.value)
    assert "sk-wrong-key-123" not in str(info.value)
    lines = requests_since(litellm_proxy, before)
    assert len(lines) == 1, lines
    assert not coordinator.hooks.named("provider:retry")
