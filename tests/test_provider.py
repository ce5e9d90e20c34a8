"""The provider end to end at the HTTP boundary (respx): mount, complete, errors, events."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest
import respx
from amplifier_core.llm_errors import (
    AuthenticationError,
    ConfigurationError,
    ContextLengthError,
    InvalidToolCallError,
    LLMError,
    LLMTimeoutError,
    NetworkError,
    ProviderUnavailableError,
    RateLimitError,
    StreamError,
)
from amplifier_core.message_models import (
    ChatRequest,
    Message,
    TextBlock,
    ToolCallBlock,
    ToolResultBlock,
    ToolSpec,
)
from stream_contract import assert_stream_contract
from wire_helpers import chunk, completion, sse

from amplifier_module_provider_chat_completions import ChatCompletionsProvider, mount

BASE = "http://llm.test/v1"
FAST = {"min_retry_delay": 0.01, "max_retry_delay": 0.05}


def user(text: str = "hi") -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content=text)])


async def mounted(coordinator: Any, **config: Any) -> ChatCompletionsProvider:
    cleanup = await mount(coordinator, {"base_url": BASE, **FAST, **config})
    assert cleanup is not None
    return coordinator.mounted["providers"][config.get("name", "chat-completions")]


def sent_body(route: respx.Route, n: int = -1) -> dict[str, Any]:
    return json.loads(route.calls[n].request.content)


# -- mount ------------------------------------------------------------------------------


async def test_mount_without_base_url_returns_none_and_logs_info(coordinator, caplog):
    caplog.set_level(logging.INFO)
    assert await mount(coordinator, {}) is None
    assert "providers" not in coordinator.mounted
    assert any(
        r.levelno == logging.INFO and "CHAT_COMPLETIONS_BASE_URL" in r.getMessage()
        for r in caplog.records
    )


async def test_mount_treats_empty_string_as_unset_and_uses_env(coordinator, monkeypatch):
    monkeypatch.setenv("CHAT_COMPLETIONS_BASE_URL", "http://env.test/v1")
    cleanup = await mount(coordinator, {"base_url": ""})
    provider = coordinator.mounted["providers"]["chat-completions"]
    assert provider.config.base_url == "http://env.test/v1"
    await cleanup()


async def test_config_wins_over_env(coordinator, monkeypatch):
    monkeypatch.setenv("CHAT_COMPLETIONS_BASE_URL", "http://env.test/v1")
    provider = await mounted(coordinator)
    assert provider.config.base_url == BASE


async def test_mount_under_custom_name_and_cleanup_twice(coordinator):
    cleanup = await mount(coordinator, {"base_url": BASE, "name": "local-llama"})
    provider = coordinator.mounted["providers"]["local-llama"]
    assert provider.name == "local-llama"
    assert "local-llama" in provider.get_info().display_name
    provider._client()  # create the HTTP client
    await cleanup()
    await cleanup()  # safe twice
    assert provider._transport is None


async def test_mount_rejects_invalid_value_naming_key(coordinator):
    with pytest.raises(ConfigurationError, match="temperature"):
        await mount(coordinator, {"base_url": BASE, "temperature": "hot"})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"api_key": "k", "config": {"base_url": BASE}},
        {"base_url": BASE, "api_key": "k", "config": {}},
        {"base_url": BASE, "config": {}},
        {"config": {"base_url": BASE}},
        {},
    ],
)
def test_constructor_forms_the_cli_tries(kwargs):
    provider = ChatCompletionsProvider(**kwargs)
    info = provider.get_info()
    assert info.display_name == "OpenAI-Compatible"
    fields = {f.id: f for f in info.config_fields}
    assert fields["api_key"].field_type == "secret" and not fields["api_key"].required
    assert fields["base_url"].default == "http://localhost:8080/v1"


def test_constructor_validates_like_mount():
    with pytest.raises(ConfigurationError, match="max_tokens"):
        ChatCompletionsProvider(config={"base_url": BASE, "max_tokens": -5})


@respx.mock(assert_all_called=False)
def test_get_info_makes_no_network_call(respx_mock):
    provider = ChatCompletionsProvider(config={"base_url": BASE})
    provider.get_info()
    assert respx_mock.calls.call_count == 0


async def test_complete_without_base_url_is_a_configuration_error():
    provider = ChatCompletionsProvider()
    with pytest.raises(ConfigurationError, match="base_url"):
        await provider.complete(user())


# -- list_models ------------------------------------------------------------------------


@respx.mock
async def test_list_models_context_windows(coordinator):
    respx.get(f"{BASE}/models").respond(
        200,
        json={
            "data": [
                {"id": "qwen", "owned_by": "vllm", "max_model_len": 32768},
                {
                    "id": "tiny",
                    "owned_by": "llamacpp",
                    "meta": {"n_ctx": 4096, "n_ctx_train": 131072},
                },
                {"id": "other"},
            ]
        },
    )
    provider = await mounted(coordinator)
    models = {m.id: m.context_window for m in await provider.list_models()}
    assert models == {"qwen": 32768, "tiny": 4096, "other": 0}


@respx.mock
async def test_list_models_filtered_to_configured_model_when_listed(coordinator):
    respx.get(f"{BASE}/models").respond(200, json={"data": [{"id": "a"}, {"id": "b"}]})
    provider = await mounted(coordinator, default_model="b")
    assert [m.id for m in await provider.list_models()] == ["b"]
    unfiltered = await mounted(coordinator, default_model="b", filtered=False, name="u")
    assert [m.id for m in await unfiltered.list_models()] == ["a", "b"]
    # A configured model the server does not list is never invented.
    missing = await mounted(coordinator, default_model="zzz", name="m")
    assert [m.id for m in await missing.list_models()] == ["a", "b"]


@respx.mock
async def test_list_models_raises_one_line_naming_the_url_when_the_server_is_down(coordinator):
    # `amplifier provider test` shows a failure only when list_models() raises; the setup
    # wizard shows the message and still offers free-text model entry.
    respx.get(f"{BASE}/models").mock(side_effect=httpx.ConnectError("refused"))
    provider = await mounted(coordinator)
    with pytest.raises(NetworkError) as info:
        await provider.list_models()
    assert f"{BASE}/models" in str(info.value)
    assert "\n" not in str(info.value)


@respx.mock
async def test_list_models_raises_on_a_wrong_key(coordinator):
    respx.get(f"{BASE}/models").respond(401, json={"error": {"message": "Invalid API key"}})
    provider = await mounted(coordinator, api_key="sk-wrong-key-123456")
    with pytest.raises(AuthenticationError) as info:
        await provider.list_models()
    assert "sk-wrong-key-123456" not in str(info.value)


@respx.mock
@pytest.mark.parametrize("status", [404, 405, 501])
async def test_list_models_without_a_models_endpoint_is_empty(coordinator, status):
    respx.get(f"{BASE}/models").respond(status, text="no such route")
    provider = await mounted(coordinator)
    assert await provider.list_models() == []


# -- complete: non-streaming ------------------------------------------------------------


@respx.mock
async def test_non_streaming_body_and_response(coordinator):
    route = respx.post(f"{BASE}/chat/completions").respond(
        200, json=completion("Hello world", reasoning_content="thought")
    )
    provider = await mounted(
        coordinator,
        use_streaming="false",
        default_model="my-model",
        temperature="0.2",
        max_tokens="128",
        top_p=0.9,
        stop="a,b",
        seed=7,
        extra_body={"top_k": 20},
        headers={"User-Agent": "waf-friendly/1.0"},
    )
    response = await provider.complete(user())
    body = sent_body(route)
    assert body["model"] == "my-model"
    assert body["temperature"] == 0.2
    assert body["max_tokens"] == 128
    assert body["top_p"] == 0.9
    assert body["stop"] == ["a", "b"]
    assert body["seed"] == 7
    assert body["top_k"] == 20
    assert "stream" not in body and "stream_options" not in body
    assert route.calls[0].request.headers["user-agent"] == "waf-friendly/1.0"
    assert response.text == "Hello world"
    assert [b.type for b in response.content] == ["thinking", "text"]
    assert response.usage.input_tokens == 5 and response.usage.output_tokens == 2
    assert response.finish_reason == "stop"
    assert [type(b).__name__ for b in response.content_blocks] == ["ThinkingContent", "TextContent"]
    assert coordinator.hooks.names("llm:stream") == []


@respx.mock
async def test_request_overrides_config(coordinator):
    route = respx.post(f"{BASE}/chat/completions").respond(200, json=completion())
    provider = await mounted(coordinator, use_streaming=False, temperature=0.7, max_tokens=4096)
    request = ChatRequest(
        messages=[Message(role="user", content="x")],
        model="override",
        temperature=0.1,
        max_output_tokens=33,
    )
    await provider.complete(request)
    body = sent_body(route)
    assert (body["model"], body["temperature"], body["max_tokens"]) == ("override", 0.1, 33)


@respx.mock
async def test_tool_call_round_trip_non_streaming(coordinator):
    route = respx.post(f"{BASE}/chat/completions").respond(
        200,
        json=completion(
            None,
            tool_calls=[
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
            finish_reason="tool_calls",
        ),
    )
    provider = await mounted(coordinator, use_streaming=False)
    request = ChatRequest(
        messages=[Message(role="user", content="weather?")],
        tools=[ToolSpec(name="get_weather", parameters={"type": "object"}, description="w")],
        tool_choice="required",
    )
    response = await provider.complete(request)
    assert response.finish_reason == "tool_calls"
    assert [(c.id, c.name, c.arguments) for c in provider.parse_tool_calls(response)] == [
        ("call_1", "get_weather", {"city": "Paris"})
    ]
    body = sent_body(route)
    assert body["tool_choice"] == "required"
    assert body["parallel_tool_calls"] is True
    assert body["tools"][0]["function"]["name"] == "get_weather"


@respx.mock
async def test_unparseable_tool_arguments_fail_once_without_retry(coordinator):
    route = respx.post(f"{BASE}/chat/completions").respond(
        200,
        json=completion(
            None,
            tool_calls=[
                {
                    "id": "c",
                    "type": "function",
                    "function": {"name": "f", "arguments": "hello there"},
                }
            ],
            finish_reason="tool_calls",
        ),
    )
    provider = await mounted(coordinator, use_streaming=False)
    with pytest.raises(InvalidToolCallError) as info:
        await provider.complete(user())
    assert info.value.tool_name == "f"
    assert route.call_count == 1


# -- complete: streaming ----------------------------------------------------------------


@respx.mock
async def test_streaming_events_and_response(coordinator):
    route = respx.post(f"{BASE}/chat/completions").respond(
        200,
        content=sse(
            [
                chunk({"role": "assistant", "content": None}),
                chunk({"reasoning_content": "Let me think."}),
                chunk({"content": "Hello"}),
                chunk({"content": " world"}),
                chunk({}, finish_reason="stop"),
                chunk(choices=False, usage={"prompt_tokens": 9, "completion_tokens": 3}),
            ]
        ),
        headers={"content-type": "text/event-stream"},
    )
    provider = await mounted(coordinator)
    response = await provider.complete(user())
    body = sent_body(route)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert response.text == "Hello world"
    assert response.usage.input_tokens == 9 and response.usage.output_tokens == 3
    hooks = coordinator.hooks
    names = hooks.names("llm:stream")
    assert names == [
        "llm:stream_block_start",
        "llm:stream_block_delta",
        "llm:stream_block_end",
        "llm:stream_block_start",
        "llm:stream_block_delta",
        "llm:stream_block_delta",
        "llm:stream_block_end",
    ]
    deltas = hooks.named("llm:stream_block_delta")
    assert [(d["block_index"], d["block_type"], d["sequence"], d["text"]) for d in deltas] == [
        (0, "thinking", 0, "Let me think."),
        (1, "text", 0, "Hello"),
        (1, "text", 1, " world"),
    ]
    request_ids = {p["request_id"] for n, p in hooks.events if n.startswith("llm:stream")}
    assert len(request_ids) == 1
    (response_event,) = hooks.named("llm:response")
    assert response_event["status"] == "ok"
    assert response_event["usage"] == {"input_tokens": 9, "output_tokens": 3}
    assert isinstance(response_event["duration_ms"], int)


@respx.mock
async def test_metadata_stream_false_disables_streaming_for_one_call(coordinator):
    route = respx.post(f"{BASE}/chat/completions").respond(200, json=completion())
    provider = await mounted(coordinator)
    request = ChatRequest(messages=[Message(role="user", content="x")], metadata={"stream": False})
    response = await provider.complete(request)
    assert "stream" not in sent_body(route)
    assert response.text == "Hello world"
    assert coordinator.hooks.names("llm:stream") == []
    assert provider.config.use_streaming is True


@respx.mock
async def test_truncated_stream_is_a_retried_stream_error_with_abort(coordinator):
    route = respx.post(f"{BASE}/chat/completions").respond(
        200,
        content=sse([chunk({"content": "partial"})], done=False),
        headers={"content-type": "text/event-stream"},
    )
    provider = await mounted(coordinator, max_retries=1)
    with pytest.raises(StreamError):
        await provider.complete(user())
    assert route.call_count == 2
    aborted = coordinator.hooks.named("llm:stream_aborted")
    assert len(aborted) == 2 and aborted[0]["error"]["type"] == "StreamError"
    # The retry's blocks use new indices: the UI never sees one block twice.
    starts = [p["block_index"] for p in coordinator.hooks.named("llm:stream_block_start")]
    assert starts == [0, 1]


@respx.mock
@pytest.mark.parametrize("kind", ["text", "tool_call"])
async def test_done_without_a_finish_reason_is_a_complete_reply(coordinator, kind):
    # Several hosted servers end a good stream with [DONE] and never send finish_reason.
    if kind == "text":
        deltas = [{"role": "assistant", "content": "Hello "}, {"content": "world"}]
    else:
        call = {"index": 0, "id": "call_1", "type": "function"}
        deltas = [
            {"tool_calls": [{**call, "function": {"name": "f", "arguments": '{"a": '}}]},
            {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]},
        ]
    route = respx.post(f"{BASE}/chat/completions").respond(
        200,
        content=sse([chunk(d) for d in deltas]),
        headers={"content-type": "text/event-stream"},
    )
    provider = await mounted(coordinator, max_retries=1)
    response = await provider.complete(user())
    assert route.call_count == 1
    if kind == "text":
        assert (response.text, response.finish_reason) == ("Hello world", "stop")
    else:
        assert [(c.name, c.arguments) for c in response.tool_calls] == [("f", {"a": 1})]
        assert response.finish_reason == "tool_calls"
    assert coordinator.hooks.named("llm:stream_aborted") == []
    assert_stream_contract(coordinator.hooks.events)


@respx.mock
async def test_server_ignoring_stream_flag_still_works(coordinator):
    respx.post(f"{BASE}/chat/completions").respond(200, json=completion("plain"))
    provider = await mounted(coordinator)
    assert (await provider.complete(user())).text == "plain"


# -- errors and retries -----------------------------------------------------------------


@respx.mock
async def test_401_is_authentication_error_without_retry(coordinator):
    route = respx.post(f"{BASE}/chat/completions").respond(
        401, json={"error": {"message": "Invalid API Key", "type": "authentication_error"}}
    )
    provider = await mounted(coordinator, api_key="sk-canary-0123456789")
    with pytest.raises(AuthenticationError) as info:
        await provider.complete(user())
    assert route.call_count == 1
    assert info.value.status_code == 401 and info.value.provider == "chat-completions"
    assert info.value.__cause__ is not None
    assert "sk-canary-0123456789" not in str(info.value) + repr(info.value)
    (event,) = coordinator.hooks.named("llm:response")
    assert event["status"] == "error"


@respx.mock
async def test_context_overflow_is_not_retried(coordinator):
    route = respx.post(f"{BASE}/chat/completions").respond(
        400,
        json={
            "error": {
                "code": 400,
                "message": "the request exceeds the available context size, try increasing it",
                "type": "exceed_context_size_error",
                "n_prompt_tokens": 5000,
                "n_ctx": 4096,
            }
        },
    )
    provider = await mounted(coordinator)
    with pytest.raises(ContextLengthError):
        await provider.complete(user())
    assert route.call_count == 1


@respx.mock
async def test_429_retries_with_event_then_succeeds(coordinator):
    route = respx.post(f"{BASE}/chat/completions")
    route.side_effect = [
        httpx.Response(429, json={"error": {"message": "slow down"}}, headers={"retry-after": "0"}),
        httpx.Response(200, json=completion("ok")),
    ]
    provider = await mounted(coordinator, use_streaming=False)
    response = await provider.complete(user())
    assert response.text == "ok" and route.call_count == 2
    (retry,) = coordinator.hooks.named("provider:retry")
    assert retry["attempt"] == 1 and retry["error_type"] == "RateLimitError"
    assert set(retry) >= {
        "provider",
        "model",
        "max_retries",
        "delay",
        "retry_after",
        "error_message",
    }


@respx.mock
async def test_retry_after_beyond_max_retry_delay_fails_fast(coordinator):
    route = respx.post(f"{BASE}/chat/completions").respond(
        429, json={"error": {"message": "busy"}}, headers={"retry-after": "120"}
    )
    provider = await mounted(coordinator, use_streaming=False)
    with pytest.raises(RateLimitError, match="120"):
        await provider.complete(user())
    assert route.call_count == 1


@respx.mock
async def test_5xx_retried_max_retries_times(coordinator):
    route = respx.post(f"{BASE}/chat/completions").respond(503, text="Loading model")
    provider = await mounted(coordinator, use_streaming=False, max_retries=2)
    with pytest.raises(ProviderUnavailableError, match="Loading model"):
        await provider.complete(user())
    assert route.call_count == 3
    assert len(coordinator.hooks.named("provider:retry")) == 2


@respx.mock
async def test_connection_error_is_network_error(coordinator):
    respx.post(f"{BASE}/chat/completions").mock(side_effect=httpx.ConnectError("refused"))
    provider = await mounted(coordinator, max_retries=0)
    with pytest.raises(NetworkError):
        await provider.complete(user())


@respx.mock
async def test_read_timeout_is_llm_timeout(coordinator):
    respx.post(f"{BASE}/chat/completions").mock(side_effect=httpx.ReadTimeout("slow"))
    provider = await mounted(coordinator, max_retries=0)
    with pytest.raises(LLMTimeoutError):
        await provider.complete(user())


@respx.mock
async def test_in_band_stream_error_maps_to_kernel_error(coordinator):
    respx.post(f"{BASE}/chat/completions").respond(
        200,
        content=sse(
            [
                chunk({"content": "a"}),
                {
                    "error": {
                        "message": "This model's maximum context length is 4096 tokens. "
                        "However, your prompt contains 5000 tokens.",
                        "code": 400,
                    }
                },
            ]
        ),
        headers={"content-type": "text/event-stream"},
    )
    provider = await mounted(coordinator)
    with pytest.raises(ContextLengthError):
        await provider.complete(user())
    assert len(coordinator.hooks.named("llm:stream_aborted")) == 1


@respx.mock
async def test_request_timeout_is_a_hard_deadline(coordinator):
    import asyncio

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(2)
        return httpx.Response(200, json=completion())

    respx.post(f"{BASE}/chat/completions").mock(side_effect=slow)
    provider = await mounted(coordinator, use_streaming=False)
    request = ChatRequest(messages=[Message(role="user", content="x")], timeout=0.2)
    with pytest.raises(LLMTimeoutError, match=r"0\.2"):
        await provider.complete(request)


# -- repair and raw events --------------------------------------------------------------


def broken_history() -> ChatRequest:
    return ChatRequest(
        messages=[
            Message(role="user", content="go"),
            Message(
                role="assistant",
                content=[ToolCallBlock(id="call_lost", name="f", input={})],
            ),
            Message(role="user", content="and?"),
            Message(
                role="tool",
                content=[ToolResultBlock(tool_call_id="call_orphan", output="x")],
            ),
        ]
    )


@respx.mock
async def test_tool_sequence_repaired_on_every_request(coordinator):
    route = respx.post(f"{BASE}/chat/completions").respond(200, json=completion())
    provider = await mounted(coordinator, use_streaming=False)
    for _ in range(2):  # stateless: the same broken history is repaired twice
        await provider.complete(broken_history())
    for n in range(2):
        messages = sent_body(route, n)["messages"]
        tool_msgs = [m for m in messages if m["role"] == "tool"]
        assert [m["tool_call_id"] for m in tool_msgs] == ["call_lost"]
        assert messages[2]["role"] == "tool"  # right after the assistant message
    events = coordinator.hooks.named("provider:tool_sequence_repaired")
    assert len(events) == 2
    assert "call_lost" in events[0]["repaired_tool_ids"]


@respx.mock
async def test_raw_mode_adds_redacted_payloads(coordinator):
    respx.post(f"{BASE}/chat/completions").respond(200, json=completion())
    provider = await mounted(
        coordinator,
        use_streaming=False,
        raw=True,
        api_key="sk-canary-0123456789",
        extra_body={"api_key": "sk-canary-0123456789"},
    )
    await provider.complete(
        ChatRequest(messages=[Message(role="user", content=[TextBlock(text="hi")])])
    )
    (request_event,) = coordinator.hooks.named("llm:request")
    (response_event,) = coordinator.hooks.named("llm:response")
    assert response_event["raw"]["content"][0]["text"] == "Hello world"
    assert request_event["raw"]["messages"] == [{"role": "user", "content": "hi"}]
    assert "sk-canary-0123456789" not in json.dumps(coordinator.hooks.events, default=str)


@respx.mock
async def test_errors_and_events_are_scrubbed_by_one_rule(coordinator):
    # What a server echoes back: our short header credential, someone's bearer token, a
    # key-shaped string. An error message and a raw event treat it the same way.
    echo = "seen: X-Api-Key hdr-k7z; Authorization: Bearer abcdefghij0123; sk-other-999999"
    secrets = ["hdr-k7z", "abcdefghij0123", "sk-other-999999"]
    respx.post(f"{BASE}/chat/completions").mock(
        side_effect=[
            httpx.Response(200, json=completion(echo)),
            httpx.Response(400, json={"error": {"message": echo}}),
        ]
    )
    provider = await mounted(
        coordinator, use_streaming=False, raw=True, headers={"X-Api-Key": "hdr-k7z"}
    )
    await provider.complete(user())
    with pytest.raises(LLMError) as info:
        await provider.complete(user())
    for secret in secrets:
        assert secret not in str(info.value)
        assert secret not in json.dumps(coordinator.hooks.events, default=str)
    (ok, _) = coordinator.hooks.named("llm:response")
    assert ok["raw"]["content"][0]["text"].startswith("seen: X-Api-Key ***")
