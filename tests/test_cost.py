"""Cost as the kernel defines it: Usage.cost_usd (Decimal, None = unknown), the session total
on the `session.cost` channel, and cost_usd as a string in llm:response.

Host facts: amplifier_core.message_models.Usage.cost_usd ("None = rate data unavailable (not
zero)"); contributors return {"cost_usd": "<str>"} (microsoft/amplifier-module-provider-openai
mount(); amplifier-app-cli cost_history.restore_session_cost, which on resume sums
`data.usage.cost_usd` of every llm:response line hooks-logging wrote).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx
from amplifier_core.llm_errors import ConfigurationError
from amplifier_core.message_models import ChatRequest, Message
from wire_helpers import chunk, completion, sse

from amplifier_module_provider_chat_completions import mount
from amplifier_module_provider_chat_completions.config import parse_config

BASE = "http://llm.test/v1"
USAGE = {"prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200}


def ask() -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content="hi")])


async def provider_with(coordinator: Any, **config: Any) -> Any:
    respx.get(f"{BASE}/models").respond(404)
    await mount(coordinator, {"base_url": BASE, "use_streaming": False, **config})
    return coordinator.mounted["providers"]["chat-completions"]


@respx.mock
async def test_openrouter_usage_cost_is_the_cost(coordinator: Any) -> None:
    respx.post(f"{BASE}/chat/completions").respond(
        200, json=completion(usage={**USAGE, "cost": 0.00123})
    )
    provider = await provider_with(coordinator)
    response = await provider.complete(ask())
    assert response.usage.cost_usd == Decimal("0.00123")
    assert coordinator.hooks.named("llm:response")[0]["usage"]["cost_usd"] == "0.00123"


@respx.mock
async def test_litellm_cost_header_is_the_cost_when_streaming(coordinator: Any) -> None:
    body = sse([chunk({"content": "hi"}), chunk(finish_reason="stop"), chunk(usage=USAGE)])
    respx.post(f"{BASE}/chat/completions").respond(
        200,
        content=body,
        headers={"content-type": "text/event-stream", "x-litellm-response-cost": "2.5e-05"},
    )
    provider = await provider_with(coordinator, use_streaming=True)
    response = await provider.complete(ask())
    assert response.usage.cost_usd == Decimal("0.000025")


@respx.mock
async def test_pricing_config_prices_tokens_when_the_server_states_nothing(
    coordinator: Any,
) -> None:
    usage = {**USAGE, "prompt_tokens_details": {"cached_tokens": 400}}
    respx.post(f"{BASE}/chat/completions").respond(200, json=completion(usage=usage))
    pricing = {"input": 0.5, "output": 2, "cached_input": 0.25}
    provider = await provider_with(coordinator, pricing=pricing)
    response = await provider.complete(ask())
    # 600 fresh input * 0.5 + 400 cached * 0.25 + 200 output * 2, per million
    assert response.usage.cost_usd == Decimal("0.0008")


@respx.mock
async def test_server_figure_wins_over_pricing(coordinator: Any) -> None:
    respx.post(f"{BASE}/chat/completions").respond(
        200, json=completion(usage={**USAGE, "cost": "0.01"})
    )
    provider = await provider_with(coordinator, pricing={"input": 100, "output": 100})
    assert (await provider.complete(ask())).usage.cost_usd == Decimal("0.01")


@respx.mock
async def test_unknown_cost_is_none_never_zero(coordinator: Any) -> None:
    respx.post(f"{BASE}/chat/completions").respond(200, json=completion(usage=USAGE))
    provider = await provider_with(coordinator)
    response = await provider.complete(ask())
    assert response.usage.cost_usd is None
    assert "cost_usd" not in coordinator.hooks.named("llm:response")[0]["usage"]
    assert await coordinator.collect_contributions("session.cost") == []


@respx.mock
async def test_session_total_on_the_session_cost_channel(coordinator: Any) -> None:
    respx.post(f"{BASE}/chat/completions").mock(
        side_effect=[
            httpx.Response(200, json=completion(usage={**USAGE, "cost": 0.25})),
            httpx.Response(200, json=completion(usage={**USAGE, "cost": 0.5})),
            httpx.Response(200, json=completion(usage=USAGE)),
        ]
    )
    provider = await provider_with(coordinator)
    assert await coordinator.collect_contributions("session.cost") == []
    for _ in range(3):
        await provider.complete(ask())
    contributions = await coordinator.collect_contributions("session.cost")
    assert contributions == [{"cost_usd": "0.75", "unpriced_calls": 1}]
    assert Decimal(contributions[0]["cost_usd"]) == Decimal("0.75")


@pytest.mark.parametrize(
    "pricing",
    [{"input": 1}, {"input": -1, "output": 1}, {"input": 1, "output": 1, "cache": 1}, "cheap"],
)
def test_bad_pricing_names_the_key(pricing: Any) -> None:
    with pytest.raises(ConfigurationError, match="pricing"):
        parse_config({"base_url": BASE, "pricing": pricing})


def test_pricing_from_a_json_string() -> None:
    cfg = parse_config({"base_url": BASE, "pricing": '{"input": "0.15", "output": 0.6}'})
    assert cfg.pricing is not None
    assert (cfg.pricing.input, cfg.pricing.output) == (Decimal("0.15"), Decimal("0.6"))


async def test_stream_events_are_declared_for_hooks_logging(coordinator: Any) -> None:
    # anokye-labs/amplifier-module-hooks-logging on_session_ready: registers a handler for
    # every name in ALL_EVENTS plus every observability.events contribution (lists of
    # names), without de-duplication.
    from amplifier_core.events import ALL_EVENTS

    await mount(coordinator, {"base_url": BASE})
    declared = [
        n for c in await coordinator.collect_contributions("observability.events") for n in c
    ]
    assert {"llm:stream_block_start", "llm:stream_block_delta", "llm:stream_block_end"} <= set(
        declared
    )
    assert "llm:stream_aborted" in declared
    assert "provider:prompt_progress" in declared
    assert not set(declared) & set(ALL_EVENTS)  # nothing logged twice
    await coordinator.mounted["providers"]["chat-completions"].close()


def test_default_headers_is_an_alias_of_headers() -> None:
    cfg = parse_config({"base_url": BASE, "default_headers": {"X-Team": "a"}})
    assert cfg.headers == {"X-Team": "a"}
    both = parse_config({"base_url": BASE, "headers": {"X": "1"}, "default_headers": {"X": "2"}})
    assert both.headers == {"X": "1"}
