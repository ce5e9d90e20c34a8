"""The real provider against the real Amazon Chat Completions Server (open-bedrock-server 2.0.4).

The Amazon server runs in front of the real llama-server (its OpenAI upstream), so every
answer here was produced by the tiny scripted model and passed through the Amazon server's
own (de)serialization. Requests are counted in the Amazon server's uvicorn access log.

What the real server does (seen here, matching /work/shared/SERVERS.md unless noted):
text works in both modes; streams end without ``[DONE]`` and without usage (the JSON answer
keeps the upstream's usage); a wrong key is 403; ``/v1/models`` lists only upstream models
whose id contains "gpt", so with llama-server behind it the list is EMPTY (not in
SERVERS.md); tool calls fail inside the server (pydantic rejects the openai SDK's tool-call
objects): HTTP 500 without streaming, an in-band ``{"error": ...}`` after the role chunk
with streaming.
"""

from __future__ import annotations

from typing import Any

import pytest
from amplifier_core.llm_errors import (
    AccessDeniedError,
    AuthenticationError,
    LLMError,
    ProviderUnavailableError,
)
from amplifier_core.message_models import ChatRequest
from stream_contract import assert_stream_contract, stream_events, streamed_text

from amplifier_module_provider_chat_completions import ChatCompletionsProvider
from amplifier_module_provider_chat_completions.server.profiles import PROFILES

from .bedrock import BEDROCK_API_KEY, BedrockServer
from .helpers import WEATHER, ask, mount_provider, requests_since

pytestmark = pytest.mark.e2e

# Any name without a Bedrock prefix goes to the OpenAI upstream; llama-server ignores it.
MODEL = "tiny-llama"


async def provider_for(
    coordinator: Any, bedrock: BedrockServer, stream: bool, **config: Any
) -> ChatCompletionsProvider:
    return await mount_provider(
        coordinator, bedrock.base_url, BEDROCK_API_KEY, MODEL, stream, **config
    )


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
async def test_text(coordinator: Any, bedrock_server: BedrockServer, stream: bool) -> None:
    before = len(bedrock_server.chat_requests_logged())
    provider = await provider_for(coordinator, bedrock_server, stream)
    response = await provider.complete(ask())
    assert response.text == "Hello world"
    assert response.finish_reason == "stop"
    lines = requests_since(bedrock_server, before)
    assert len(lines) == 1 and lines[0].endswith("200 OK"), lines
    events = coordinator.hooks.events
    if stream:
        # No [DONE] and no usage chunk: EOF after the finish chunk is the normal end.
        assert_stream_contract(events)
        assert streamed_text(events) == "Hello world"
        assert response.usage is None  # never invented
    else:
        assert not stream_events(events)
        assert response.usage is not None
        # llama-server's own count: "Hello", " world" and the end-of-turn token.
        assert response.usage.output_tokens == 3
        assert response.usage.input_tokens > 0
    [done] = coordinator.hooks.named("llm:response")
    assert done["status"] == "ok"


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
async def test_wrong_key_is_access_denied_without_retry(
    coordinator: Any, bedrock_server: BedrockServer, stream: bool
) -> None:
    before = len(bedrock_server.chat_requests_logged())
    provider = await provider_for(coordinator, bedrock_server, stream, api_key="sk-wrong-key-123")
    with pytest.raises(AccessDeniedError) as info:
        await provider.complete(ask())
    assert isinstance(info.value, AuthenticationError)
    assert info.value.status_code == 403
    assert "Invalid API key" in str(info.value)
    assert "sk-wrong-key-123" not in str(info.value)
    lines = requests_since(bedrock_server, before)
    assert len(lines) == 1 and " 403 " in lines[0], lines
    assert not coordinator.hooks.named("provider:retry")


async def test_models_list_is_empty_behind_llama_server(
    coordinator: Any, bedrock_server: BedrockServer
) -> None:
    # The server lists only upstream models whose id contains "gpt" (owned_by "openai"):
    # nothing here (so /v1/models cannot fingerprint it), yet completions work.
    provider = await provider_for(coordinator, bedrock_server, True)
    assert await provider.list_models() == []
    response = await provider.complete(ask())
    assert response.text == "Hello world"


def _tool_request() -> ChatRequest:
    return ask("What is the weather in Paris?", tools=[WEATHER], tool_choice="required")


async def _failed_tool_call(
    coordinator: Any, bedrock: BedrockServer, stream: bool, **config: Any
) -> tuple[LLMError, list[str]]:
    before = len(bedrock.chat_requests_logged())
    provider = await provider_for(coordinator, bedrock, stream, **config)
    with pytest.raises(LLMError) as info:
        await provider.complete(_tool_request())
    return info.value, requests_since(bedrock, before)


@pytest.mark.parametrize(
    "stream",
    [
        pytest.param(True, id="stream"),
        pytest.param(False, id="json"),
    ],
)
async def test_tool_call_fails_once_without_retry(
    coordinator: Any, bedrock_server: BedrockServer, stream: bool
) -> None:
    err, lines = await _failed_tool_call(coordinator, bedrock_server, stream)
    assert len(lines) == 1, lines
    assert not coordinator.hooks.named("provider:retry")
    assert isinstance(err, ProviderUnavailableError)
    assert err.retryable is False
    # The server's own words: its validation of the tool call failed.
    assert "Unexpected error communicating with OpenAI" in str(err)
    assert "tool_calls" in str(err)
    if stream:
        assert "in-stream error" in str(err)
        assert_stream_contract(coordinator.hooks.events)
    else:
        assert err.status_code == 500
    [done] = coordinator.hooks.named("llm:response")
    assert done["status"] == "error"


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
async def test_tool_call_failure_names_the_server_with_amazon_profile(
    coordinator: Any, bedrock_server: BedrockServer, stream: bool
) -> None:
    err, lines = await _failed_tool_call(coordinator, bedrock_server, stream, server="amazon")
    assert len(lines) == 1, lines
    assert err.retryable is False
    hint = PROFILES["amazon"].tools_hint
    assert hint and hint in str(err)
