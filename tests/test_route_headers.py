"""What a router's response headers say: the route a reply took, rate limits, waits.

The header values are the ones a real LiteLLM proxy (1.106.2, two llama-server
deployments of one model group) sent; tests/e2e/test_litellm_router.py checks them live.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx
from amplifier_core.llm_errors import ProviderUnavailableError, RateLimitError
from amplifier_core.message_models import ChatRequest, Message
from wire_helpers import chunk, completion, sse

from amplifier_module_provider_chat_completions import ChatCompletionsProvider, mount
from amplifier_module_provider_chat_completions.errors import error_from_response
from amplifier_module_provider_chat_completions.reply.headers import (
    duration_seconds,
    header_metadata,
    rate_limit_wait,
)

BASE = "http://router.test/v1"
FAST = {"min_retry_delay": 0.01, "max_retry_delay": 0.05}

# A streamed reply that LiteLLM's router retried once onto another deployment.
LITELLM_HEADERS = {
    "content-type": "text/event-stream",
    "x-litellm-call-id": "419ab44b-36fe-490f-8f0c-385b14327e6a",
    "x-litellm-model-id": "llama-1",
    "x-litellm-model-name": "openai/tiny-llama",
    "x-litellm-model-api-base": "http://127.0.0.1:33059/v1",
    "x-litellm-version": "1.106.2",
    "x-litellm-response-duration-ms": "65.66715240478516",
    "x-litellm-overhead-duration-ms": "55.2902",
    "llm_provider-server": "llama.cpp",
    "x-litellm-model-group": "tiny-llama",
    "x-litellm-attempted-retries": "1",
    "x-litellm-max-retries": "2",
    "x-litellm-attempted-fallbacks": "0",
    "x-ratelimit-remaining-requests": "11998",
    "x-ratelimit-limit-requests": "12000",
}
# LiteLLM's answers when every deployment of the model group is down.
ALL_COOLING_DOWN = {
    "error": {
        "message": "No deployments available for selected model, Try again in 5 seconds. All "
        "deployments for selected model are in cooldown. Passed model=tiny-llama. "
        "pre-call-checks=False, cooldown_list=['llama-0', 'llama-1']",
        "type": "all_deployments_in_cooldown",
        "param": None,
        "code": "429",
    }
}
UPSTREAM_UNREACHABLE = {
    "error": {
        "message": "litellm.InternalServerError: InternalServerError: OpenAIException - "
        "Connection error.\n\nLiteLLM: model group 'tiny-llama' failed with the error above. "
        "No fallback was attempted.",
        "type": "internal_server_error",
        "param": None,
        "code": "500",
    }
}


def user(text: str = "hi") -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content=text)])


async def mounted(coordinator: Any, **config: Any) -> ChatCompletionsProvider:
    settings = {"base_url": BASE, "default_model": "tiny-llama", **FAST, **config}
    cleanup = await mount(coordinator, settings)
    assert cleanup is not None
    return coordinator.mounted["providers"]["chat-completions"]


def stream_reply() -> bytes:
    return sse(
        [
            chunk({"role": "assistant", "content": "Hello"}),
            chunk({"content": " world"}),
            chunk({}, finish_reason="stop"),
        ]
    )


# -- the pure readers -------------------------------------------------------------------


def test_route_and_rate_limits_from_litellm_headers() -> None:
    meta = header_metadata(httpx.Headers(LITELLM_HEADERS), "tiny-llama")
    assert meta["route"] == {
        "model_group": "tiny-llama",
        "deployment": "llama-1",
        "deployment_model": "openai/tiny-llama",
        "api_base": "http://127.0.0.1:33059/v1",
        "attempted_retries": 1,
        "max_retries": 2,
        "attempted_fallbacks": 0,
        "call_id": "419ab44b-36fe-490f-8f0c-385b14327e6a",
        "proxy_overhead_ms": 55.2902,
    }
    assert meta["rate_limit"] == {"limit_requests": 12000, "remaining_requests": 11998}


def test_no_router_headers_no_route() -> None:
    assert header_metadata({"content-type": "application/json", "server": "llama.cpp"}, "m") == {}


def test_route_names_the_model_sent_when_the_group_header_is_missing() -> None:
    meta = header_metadata({"x-litellm-model-id": "d1", "x-litellm-model-group": "None"}, "qwen")
    assert meta["route"] == {"model_group": "qwen", "deployment": "d1"}


def test_route_drops_credentials_in_the_deployment_url_and_junk_numbers() -> None:
    headers = {
        "X-LiteLLM-Model-Api-Base": "https://user:hunter2@gpu-3.internal:8443/v1?key=s3cret",
        "x-litellm-attempted-retries": "lots",
        "x-ratelimit-remaining-tokens": "-5",
        "x-ratelimit-reset-tokens": "6m0s",
    }
    meta = header_metadata(headers, "m")
    assert meta["route"] == {"model_group": "m", "api_base": "https://gpu-3.internal:8443/v1"}
    assert "hunter2" not in json.dumps(meta) and "s3cret" not in json.dumps(meta)
    assert meta["rate_limit"] == {"reset_tokens": 360.0}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("59.639s", 59.639),
        ("20ms", 0.02),
        ("1h2m3s", 3723.0),
        ("1s500ms", 1.5),
        ("2", 2.0),
        ("0.5", 0.5),
        (" 3s ", 3.0),
    ],
)
def test_durations_in_openai_rate_limit_form(text: str, seconds: float) -> None:
    assert duration_seconds(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "-1s", "1x", "s", "nan", "inf", "1m1h"])
def test_unreadable_durations(text: str) -> None:
    assert duration_seconds(text) is None


def test_rate_limit_wait_is_the_reset_of_the_spent_budget() -> None:
    spent_requests = {
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "2s",
        "x-ratelimit-remaining-tokens": "9000",
        "x-ratelimit-reset-tokens": "40s",
    }
    assert rate_limit_wait(spent_requests) == 2.0
    unknown_budget = {"x-ratelimit-reset-requests": "2s", "x-ratelimit-reset-tokens": "40s"}
    assert rate_limit_wait(unknown_budget) == 40.0
    assert rate_limit_wait({"x-ratelimit-remaining-requests": "0"}) is None


def test_429_with_only_a_rate_limit_reset_waits_for_it() -> None:
    headers = {"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "1.5s"}
    err = error_from_response(429, "{}", headers, provider="p", model="m")
    assert isinstance(err, RateLimitError) and err.retry_after == 1.5
    # Retry-After, when given, is the server's word on the wait.
    both = {**headers, "retry-after": "3"}
    assert error_from_response(429, "{}", both, provider="p", model="m").retry_after == 3.0
    # Only a 429 reads a rate-limit reset as a wait.
    assert error_from_response(503, "x", headers, provider="p", model="m").retry_after is None


# -- through the provider (respx at the HTTP boundary) ---------------------------------


@respx.mock
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
async def test_route_in_metadata_and_llm_response(coordinator: Any, stream: bool) -> None:
    route = respx.post(f"{BASE}/chat/completions")
    if stream:
        route.respond(200, content=stream_reply(), headers=LITELLM_HEADERS)
    else:
        headers = {**LITELLM_HEADERS, "content-type": "application/json"}
        route.respond(200, json=completion("Hello world"), headers=headers)
    provider = await mounted(coordinator, use_streaming=stream)
    response = await provider.complete(user())
    assert json.loads(route.calls[0].request.content)["model"] == "tiny-llama"
    assert response.text == "Hello world"
    assert response.metadata["route"]["deployment"] == "llama-1"
    assert response.metadata["route"]["model_group"] == "tiny-llama"
    assert response.metadata["route"]["attempted_retries"] == 1
    assert response.metadata["rate_limit"]["remaining_requests"] == 11998
    (event,) = coordinator.hooks.named("llm:response")
    assert event["route"] == response.metadata["route"]
    assert event["rate_limit"] == response.metadata["rate_limit"]


@respx.mock
async def test_direct_server_reply_has_no_route(coordinator: Any) -> None:
    respx.post(f"{BASE}/chat/completions").respond(
        200, content=stream_reply(), headers={"content-type": "text/event-stream"}
    )
    provider = await mounted(coordinator)
    response = await provider.complete(user())
    assert "route" not in response.metadata
    (event,) = coordinator.hooks.named("llm:response")
    assert "route" not in event


@respx.mock
@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"retry-after-ms": "30"}, 0.03),
        ({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "40ms"}, 0.04),
    ],
    ids=["retry-after-ms", "ratelimit-reset"],
)
async def test_429_wait_from_headers_is_honoured(
    coordinator: Any, headers: dict[str, str], wait: float
) -> None:
    route = respx.post(f"{BASE}/chat/completions")
    route.side_effect = [
        httpx.Response(429, json={"error": {"message": "slow down"}}, headers=headers),
        httpx.Response(200, json=completion("ok")),
    ]
    provider = await mounted(coordinator, use_streaming=False, max_retry_delay=5)
    assert (await provider.complete(user())).text == "ok"
    (retry,) = coordinator.hooks.named("provider:retry")
    assert retry["retry_after"] == pytest.approx(wait)
    assert retry["delay"] >= wait
    (request,) = coordinator.hooks.named("llm:request")
    assert retry["request_id"] == request["request_id"]


@respx.mock
async def test_rate_limit_reset_beyond_max_retry_delay_fails_fast(coordinator: Any) -> None:
    route = respx.post(f"{BASE}/chat/completions").respond(
        429,
        json={"error": {"message": "Rate limit reached for requests"}},
        headers={"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2m"},
    )
    provider = await mounted(coordinator, use_streaming=False, max_retry_delay=30)
    with pytest.raises(RateLimitError, match="retry after 120 s"):
        await provider.complete(user())
    assert route.call_count == 1


@respx.mock
async def test_all_deployments_cooling_down_names_the_proxy(coordinator: Any) -> None:
    route = respx.post(f"{BASE}/chat/completions").respond(
        429, json=ALL_COOLING_DOWN, headers={"retry-after": "5"}
    )
    provider = await mounted(coordinator, max_retry_delay=1)
    with pytest.raises(ProviderUnavailableError) as info:
        await provider.complete(user())
    message = str(info.value)
    assert BASE in message and "tiny-llama" in message
    assert "deployment" in message and "cooling down" in message
    assert info.value.retry_after == 5.0
    # The proxy's own wait is longer than we may wait: one request, then the error.
    assert route.call_count == 1 and "max_retry_delay" in message


@respx.mock
async def test_upstream_unreachable_behind_the_proxy_names_it_and_is_retried(
    coordinator: Any,
) -> None:
    route = respx.post(f"{BASE}/chat/completions")
    route.side_effect = [
        httpx.Response(500, json=UPSTREAM_UNREACHABLE),
        httpx.Response(429, json=ALL_COOLING_DOWN, headers={"retry-after-ms": "20"}),
        httpx.Response(500, json=UPSTREAM_UNREACHABLE),
    ]
    provider = await mounted(coordinator, max_retries=2, max_retry_delay=1)
    with pytest.raises(ProviderUnavailableError) as info:
        await provider.complete(user())
    message = str(info.value)
    assert BASE in message and "could not reach" in message and "tiny-llama" in message
    assert route.call_count == 3
    retries = coordinator.hooks.named("provider:retry")
    assert [r["retry_after"] for r in retries] == [None, 0.02]
