"""What the provider-level e2e tests share: the request they send and how they mount."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from amplifier_core.message_models import ChatRequest, Message, ToolSpec

from amplifier_module_provider_chat_completions import ChatCompletionsProvider, mount

from .servers import ManagedServer, UvicornServer

# Retries stay on (the tests count them) but never slow a run down.
FAST = {"min_retry_delay": 0.01, "max_retry_delay": 0.05}
WEATHER = ToolSpec(
    name="get_weather",
    description="Get the current weather for a city",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
)


# The `make_provider` fixture (conftest.py): `await make_provider(server, stream, **config)`
# mounts a provider for a LlamaServer; its cleanup runs at the test's teardown.
MakeProvider = Callable[..., Awaitable[ChatCompletionsProvider]]


def ask(text: str = "Say hello", **extra: Any) -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content=text)], **extra)


async def mount_provider(
    coordinator: Any, base_url: str, api_key: str, model: str, stream: bool, /, **config: Any
) -> ChatCompletionsProvider:
    """mount() the provider against ``base_url``; ``config`` overrides any default here.

    Positional-only, so that ``config`` may carry its own ``api_key`` (the wrong-key tests).
    """
    cleanup = await mount(
        coordinator,
        {
            "base_url": base_url,
            "api_key": api_key,
            "default_model": model,
            "use_streaming": stream,
            "timeout": 120,
            **FAST,
            **config,
        },
    )
    assert cleanup is not None
    return coordinator.mounted["providers"]["chat-completions"]


def requests_since(server: UvicornServer, before: int, *, expect: int = 1) -> list[str]:
    """Access-log lines of chat requests after the first ``before`` ones.

    uvicorn writes a line when a response is complete, which can trail the client by a
    moment: wait (bounded) for ``expect`` lines, then a little longer for any extra ones.
    """
    deadline = time.monotonic() + 10
    lines = server.chat_requests_logged()[before:]
    while len(lines) < expect and time.monotonic() < deadline:
        time.sleep(0.05)
        lines = server.chat_requests_logged()[before:]
    time.sleep(0.3)
    return server.chat_requests_logged()[before:]


def log_count(server: ManagedServer, needle: str) -> int:
    return server.log_text().count(needle)


def wait_log_count(server: ManagedServer, needle: str, expect: int) -> int:
    """The count of ``needle`` in the server log once it reaches ``expect`` and settles."""
    deadline = time.monotonic() + 10
    while log_count(server, needle) < expect and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # anything extra (a retry) would show up by now
    return log_count(server, needle)


# Shared by the tiny-model and SmolLM2 suites.
MODES = pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
PERSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
OVERFLOW_LOG_LINE = "exceeds the available context size"
