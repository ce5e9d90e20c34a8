"""Context window and output limit: what the host reads without await, and what we send.

context-simple (colombod/amplifier-module-context-simple 54ca117, SimpleContextManager.
_calculate_budget) calls `provider.get_model_info()` WITHOUT await and reads
`context_window` and `max_output_tokens`; failing that, `get_info().defaults` with the same
two keys. Its budget is context_window - 0.5 * max_output_tokens - 1000.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from typing import Any

import httpx
import pytest
import respx
from amplifier_core.llm_errors import InvalidRequestError
from amplifier_core.message_models import ChatRequest, Message
from wire_helpers import completion

from amplifier_module_provider_chat_completions import ChatCompletionsProvider, mount
from amplifier_module_provider_chat_completions.errors import prompt_overflows

BASE = "http://llm.test/v1"
WINDOW = 2048
# vLLM's listing states the runtime window (max_model_len) of each model.
MODELS = {"object": "list", "data": [{"id": "m", "object": "model", "max_model_len": WINDOW}]}


def ask(max_output_tokens: int | None = None) -> ChatRequest:
    return ChatRequest(
        messages=[Message(role="user", content="hi")], max_output_tokens=max_output_tokens
    )


async def mounted(coordinator: Any, **config: Any) -> tuple[ChatCompletionsProvider, Any]:
    cleanup = await mount(
        coordinator, {"base_url": BASE, "default_model": "m", "use_streaming": False, **config}
    )
    return coordinator.mounted["providers"]["chat-completions"], cleanup


def test_get_model_info_is_not_a_coroutine_function() -> None:
    assert not inspect.iscoroutinefunction(ChatCompletionsProvider.get_model_info)


@respx.mock
async def test_window_is_discovered_at_mount_in_the_background(coordinator: Any) -> None:
    gate = asyncio.Event()

    async def models(request: httpx.Request) -> httpx.Response:
        await gate.wait()
        return httpx.Response(200, json=MODELS)

    route = respx.get(f"{BASE}/models").mock(side_effect=models)
    provider, cleanup = await mounted(coordinator)
    # mount() returned while the probe waits on the server
    assert provider.get_model_info() is None
    assert "context_window" not in provider.get_info().defaults
    gate.set()
    for _ in range(100):
        if provider.get_model_info() is not None:
            break
        await asyncio.sleep(0.01)
    calls = route.call_count
    info = provider.get_model_info()  # no await, and no request of its own
    assert route.call_count == calls
    assert info is not None
    assert (info.context_window, info.max_output_tokens) == (WINDOW, WINDOW // 2)
    defaults = provider.get_info().defaults
    assert (defaults["context_window"], defaults["max_output_tokens"]) == (WINDOW, WINDOW // 2)
    await cleanup()


@respx.mock
async def test_cleanup_cancels_a_probe_that_has_not_finished(coordinator: Any) -> None:
    started = asyncio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        started.set()
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    respx.get(f"{BASE}/models").mock(side_effect=hang)
    provider, cleanup = await mounted(coordinator)
    await asyncio.wait_for(started.wait(), 2)
    await asyncio.wait_for(cleanup(), 2)
    pending = [t for t in asyncio.all_tasks() if "discovery" in t.get_name()]
    assert pending == []
    assert provider.get_model_info() is None


@respx.mock
async def test_config_window_is_known_at_once_without_the_server(coordinator: Any) -> None:
    respx.get(f"{BASE}/models").mock(side_effect=httpx.ConnectError("refused"))
    provider, cleanup = await mounted(coordinator, context_window=8192, max_tokens=1000)
    info = provider.get_model_info()
    assert info is not None and (info.context_window, info.max_output_tokens) == (8192, 1000)
    await cleanup()


@respx.mock
async def test_default_output_limit_is_capped_by_a_small_window(coordinator: Any) -> None:
    respx.get(f"{BASE}/models").respond(200, json=MODELS)
    chat = respx.post(f"{BASE}/chat/completions").respond(200, json=completion())
    provider, cleanup = await mounted(coordinator)  # max_tokens default 4096
    await provider.complete(ask())
    assert json.loads(chat.calls[0].request.content)["max_tokens"] == WINDOW // 2
    models = await provider.list_models()
    assert [(m.context_window, m.max_output_tokens) for m in models] == [(WINDOW, WINDOW // 2)]
    await cleanup()


@respx.mock
async def test_explicit_output_limit_that_fits_is_sent_as_asked(coordinator: Any) -> None:
    respx.get(f"{BASE}/models").respond(200, json=MODELS)
    chat = respx.post(f"{BASE}/chat/completions").respond(200, json=completion())
    provider, cleanup = await mounted(coordinator)
    await provider.complete(ask(max_output_tokens=1500))
    assert json.loads(chat.calls[0].request.content)["max_tokens"] == 1500
    await cleanup()


@respx.mock
async def test_explicit_output_limit_beyond_the_window_names_max_output_tokens(
    coordinator: Any,
) -> None:
    respx.get(f"{BASE}/models").respond(200, json=MODELS)
    chat = respx.post(f"{BASE}/chat/completions").respond(200, json=completion())
    provider, cleanup = await mounted(coordinator)
    with pytest.raises(InvalidRequestError, match=r"max_output_tokens=4096.*2048"):
        await provider.complete(ask(max_output_tokens=4096))
    assert chat.call_count == 0
    await cleanup()


VLLM_OUTPUT_OVERFLOW = (
    "This model's maximum context length is 2048 tokens. However, you requested 2500 "
    "tokens (1476 in the messages, 1024 in the completion). Please reduce the length of "
    "the messages or completion."
)


@respx.mock
async def test_overflow_caused_by_our_default_limit_is_resent_without_it(
    coordinator: Any,
) -> None:
    respx.get(f"{BASE}/models").respond(200, json=MODELS)
    chat = respx.post(f"{BASE}/chat/completions").mock(
        side_effect=[
            httpx.Response(400, json={"object": "error", "message": VLLM_OUTPUT_OVERFLOW}),
            httpx.Response(200, json=completion("fits")),
        ]
    )
    provider, cleanup = await mounted(coordinator)
    response = await provider.complete(ask())
    assert response.text == "fits"
    bodies = [json.loads(call.request.content) for call in chat.calls]
    assert bodies[0]["max_tokens"] == WINDOW // 2 and "max_tokens" not in bodies[1]
    assert coordinator.hooks.named("provider:retry") == []
    await cleanup()


@respx.mock
async def test_an_explicit_limit_is_never_dropped_on_overflow(coordinator: Any) -> None:
    from amplifier_core.llm_errors import ContextLengthError

    respx.get(f"{BASE}/models").respond(200, json=MODELS)
    chat = respx.post(f"{BASE}/chat/completions").respond(
        400, json={"object": "error", "message": VLLM_OUTPUT_OVERFLOW}
    )
    provider, cleanup = await mounted(coordinator)
    with pytest.raises(ContextLengthError):
        await provider.complete(ask(max_output_tokens=1024))
    assert chat.call_count == 1
    await cleanup()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (VLLM_OUTPUT_OVERFLOW, False),
        (
            "This model's maximum context length is 32768 tokens. However, your prompt "
            "contains 40000 input tokens.",
            True,
        ),
        (
            "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. "
            "Given: 4000 `inputs` tokens and 1000 `max_new_tokens`",
            False,
        ),
        ("the request exceeds the available context size, try increasing it", True),
        ("prompt too long; exceeded max context length by 12 tokens", True),
        ("The input (40000 tokens) is longer than the model's context length (32768 tokens)", True),
        ("This model's maximum context length is 32768 tokens.", None),
    ],
)
def test_prompt_overflows_reads_each_wording(text: str, expected: bool | None) -> None:
    assert prompt_overflows(text) is expected


def test_base_url_field_declares_no_shared_env_var() -> None:
    # amplifier-app-cli stores a field with env_var under that ONE variable name: a second
    # instance would repoint the first. Only the secret api_key gets a per-instance one.
    fields = {f.id: f for f in ChatCompletionsProvider().get_info().config_fields}
    assert fields["base_url"].env_var is None
    assert fields["api_key"].field_type == "secret"


def test_the_configured_model_is_an_attribute_the_cli_reads() -> None:
    provider = ChatCompletionsProvider(config={"base_url": BASE, "default_model": "qwen"})
    assert provider.default_model == "qwen"
