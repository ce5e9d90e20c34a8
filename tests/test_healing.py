"""Self-healing parameters: diagnose_rejection (pure), then the provider recovering
against replica servers that reject (real local HTTP) and respx for odd cases."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx
from amplifier_core.llm_errors import InvalidRequestError
from amplifier_core.message_models import ChatRequest, Message, ResponseFormatJson, ToolSpec
from replicas.dialects import STRICT_FASTAPI, VLLM_NO_AUTO_TOOLS, Dialect
from replicas.replica import Replica
from wire_helpers import completion

from amplifier_module_provider_chat_completions import ChatCompletionsProvider
from amplifier_module_provider_chat_completions.server.profiles import PROFILES
from amplifier_module_provider_chat_completions.server.rejections import diagnose_rejection

SENT = {
    "model": "m",
    "messages": [{"role": "user", "content": "hi"}],
    "seed": 1,
    "stream": True,
    "stream_options": {"include_usage": True},
    "tools": [{"type": "function", "function": {"name": "f"}}],
    "tool_choice": "auto",
    "parallel_tool_calls": True,
}
WEATHER = ToolSpec(
    name="get_weather",
    description="Weather for a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)


# -- diagnose_rejection ----------------------------------------------------------------------


def _extra(*names: str) -> str:
    return json.dumps(
        {
            "detail": [
                {
                    "type": "extra_forbidden",
                    "loc": ["body", n],
                    "msg": "Extra inputs are not permitted",
                    "input": 1,
                }
                for n in names
            ]
        }
    )


@pytest.mark.parametrize(
    ("status", "text", "dropped"),
    [
        (422, _extra("seed", "stream_options"), ("seed", "stream_options")),
        (422, _extra("stream_options", "include_usage"), ("stream_options",)),
        (400, '{"error":{"message":"Unrecognized request argument supplied: seed"}}', ("seed",)),
        (
            400,
            "Unrecognized request arguments supplied: seed, parallel_tool_calls",
            ("seed", "parallel_tool_calls"),
        ),
        (400, "Unsupported parameter: 'parallel_tool_calls'", ("parallel_tool_calls",)),
        (422, "1 validation error for Request\nseed\n  Extra inputs are not permitted", ("seed",)),
        (422, "body.stream_options: Extra inputs are not permitted", ("stream_options",)),
        (
            422,
            "Failed to deserialize the JSON body: unknown field `seed`, expected one of ...",
            ("seed",),
        ),
    ],
)
def test_named_unknown_fields_are_dropped(status, text, dropped):
    fix = diagnose_rejection(status, text, SENT)
    assert fix is not None and fix.hint is None
    assert fix.drop == dropped


@pytest.mark.parametrize(
    "text",
    [
        "Unrecognized request argument supplied: logit_bias",  # not sent: not ours to drop
        "This model's maximum context length is 4096 tokens",
        "Conversation roles must alternate user/assistant/user/assistant/...",
        "",
        _extra("messages"),  # never dropped
        _extra("model"),
    ],
)
def test_other_rejections_are_not_healed(text):
    assert diagnose_rejection(400, text, SENT) is None


def test_server_errors_and_successes_are_not_healed():
    assert diagnose_rejection(500, _extra("seed"), SENT) is None
    assert diagnose_rejection(200, _extra("seed"), SENT) is None
    assert diagnose_rejection(None, _extra("seed"), SENT) is None


def test_vllm_auto_tool_choice_gives_the_flags_not_a_resend():
    text = (
        '{"error":{"message":"\\"auto\\" tool choice requires --enable-auto-tool-choice and '
        '--tool-call-parser to be set"}}'
    )
    fix = diagnose_rejection(400, text, SENT)
    assert fix is not None and fix.parameter == "tools"
    assert fix.hint is not None and "--enable-auto-tool-choice --tool-call-parser" in fix.hint
    assert not fix.drop and not fix.profile_changes


@pytest.mark.parametrize("text", ["Unsupported param: tools", "tools param requires --jinja flag"])
def test_llamacpp_without_jinja_gives_the_flag(text):
    fix = diagnose_rejection(500, text, SENT, PROFILES["llamacpp"])
    assert fix is not None and fix.hint is not None and "--jinja" in fix.hint


def test_rejected_tools_are_never_dropped():
    fix = diagnose_rejection(422, _extra("tools"), SENT)
    assert fix is not None and fix.hint and not fix.drop


def test_lmstudio_json_object_switches_to_schema_shape():
    sent = {"model": "m", "response_format": {"type": "json_object"}}
    text = "{\"error\": \"'response_format.type' must be 'json_schema' or 'text'\"}"
    fix = diagnose_rejection(400, text, sent)
    assert fix is not None
    assert fix.profile_changes == {"response_format_style": "json_schema_only"}
    assert not fix.lossy


def test_tgi_shapes():
    sent = {"model": "m", "response_format": {"type": "json_object"}}
    text = "response_format: missing field `value`"
    fix = diagnose_rejection(422, text, sent)
    assert fix is not None and fix.profile_changes == {"response_format_style": "tgi"}
    sent_tools = {**sent, "tools": SENT["tools"]}
    fix = diagnose_rejection(
        422, "Input validation error: grammar is not supported with tools", sent_tools
    )
    assert fix is not None and fix.profile_changes == {"response_format_with_tools": False}
    assert fix.lossy


def test_max_tokens_renamed_when_the_server_asks():
    text = (
        "Unsupported parameter: 'max_tokens' is not supported with this model. "
        "Use 'max_completion_tokens' instead."
    )
    fix = diagnose_rejection(400, text, {"model": "m", "max_tokens": 5})
    assert fix is not None and fix.profile_changes == {"max_tokens_field": "max_completion_tokens"}


def test_rejected_named_tool_choice_is_emulated():
    sent = {**SENT, "tool_choice": {"type": "function", "function": {"name": "f"}}}
    fix = diagnose_rejection(422, _extra("tool_choice"), sent)
    assert fix is not None and fix.profile_changes == {"named_tool_choice": "emulate"}


# -- the provider against rejecting replicas -----------------------------------------------


@pytest.fixture
def start() -> Iterator[Any]:
    started: list[Replica] = []

    def _start(dialect: Dialect | str, scenario: str = "text", **kw: Any) -> Replica:
        server = Replica(dialect, scenario, **kw).start()
        started.append(server)
        return server

    yield _start
    for server in started:
        server.stop()


def provider_for(replica: Replica, **config: Any) -> ChatCompletionsProvider:
    return ChatCompletionsProvider(
        config={"base_url": replica.base_url, "max_retries": 0, "timeout": 10, **config}
    )


def user(**kw: Any) -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content="hi")], **kw)


async def test_strict_server_recovers_once_and_remembers(start, caplog):
    caplog.set_level(logging.WARNING)
    server = start(STRICT_FASTAPI, "tool_call")
    provider = provider_for(server, seed=7)
    try:
        first = await provider.complete(user(tools=[WEATHER]))
        second = await provider.complete(user(tools=[WEATHER]))
    finally:
        await provider.close()
    assert first.tool_calls and first.tool_calls[0].name == "get_weather"
    assert second.tool_calls
    bodies = [r.body for r in server.chat_requests]
    assert len(bodies) == 3  # rejected, resent, then right the first time
    assert {"seed", "stream_options", "parallel_tool_calls"} <= set(bodies[0])
    for body in bodies[1:]:
        assert not {"seed", "stream_options", "parallel_tool_calls"} & set(body)
    assert first.degradation is not None
    assert "seed" in first.degradation.requested
    assert second.degradation is not None  # still not honoured: still reported
    warnings = [
        r for r in caplog.records if r.levelno == logging.WARNING and "rejected" in r.getMessage()
    ]
    assert len(warnings) == 1
    assert "seed" in warnings[0].getMessage()


async def test_plain_request_without_extras_is_not_degraded(start):
    server = start(STRICT_FASTAPI)
    provider = provider_for(server, use_streaming=False)
    try:
        response = await provider.complete(user())
    finally:
        await provider.close()
    assert len(server.chat_requests) == 1
    assert response.degradation is None


async def test_lmstudio_json_mode_recovers_when_not_detected(start):
    server = start("lmstudio")
    provider = provider_for(server, server="openai", use_streaming=False)
    try:
        response = await provider.complete(user(response_format=ResponseFormatJson()))
        await provider.complete(user(response_format=ResponseFormatJson()))
    finally:
        await provider.close()
    assert response.content
    bodies = [r.body for r in server.chat_requests]
    assert bodies[0]["response_format"] == {"type": "json_object"}
    assert bodies[1]["response_format"]["type"] == "json_schema"
    assert bodies[2]["response_format"]["type"] == "json_schema"  # remembered
    assert len(bodies) == 3


async def test_lmstudio_detected_needs_no_rejection(start):
    server = start("lmstudio")
    provider = provider_for(server, use_streaming=False)
    try:
        await provider.complete(user(response_format=ResponseFormatJson()))
    finally:
        await provider.close()
    assert len(server.chat_requests) == 1
    assert server.last_body["response_format"]["type"] == "json_schema"


async def test_tgi_json_mode_recovers_when_not_detected(start):
    server = start("tgi")
    provider = provider_for(server, server="openai", use_streaming=False)
    try:
        response = await provider.complete(user(response_format=ResponseFormatJson()))
    finally:
        await provider.close()
    assert response.content
    assert server.last_body["response_format"] == {
        "type": "json_object",
        "value": {"type": "object"},
    }


async def test_vllm_without_tool_parser_tells_the_flags(start):
    server = start(VLLM_NO_AUTO_TOOLS, "tool_call")
    provider = provider_for(server)
    try:
        with pytest.raises(InvalidRequestError) as info:
            await provider.complete(user(tools=[WEATHER]))
        # plain chat still works on that server
        assert (await provider.complete(user())).content
    finally:
        await provider.close()
    assert "--enable-auto-tool-choice --tool-call-parser" in str(info.value)
    assert len(server.chat_requests) == 2  # no resend without tools


# -- respx: loops and non-matches ------------------------------------------------------------

BASE = "http://llm.test/v1"


@respx.mock
async def test_the_same_rejection_twice_is_raised_not_looped():
    respx.get(f"{BASE}/models").mock(return_value=httpx.Response(404))
    chat = respx.post(f"{BASE}/chat/completions").mock(
        return_value=httpx.Response(
            400, json={"error": {"message": "Unrecognized request argument supplied: seed"}}
        )
    )
    provider = ChatCompletionsProvider(
        config={"base_url": BASE, "seed": 3, "max_retries": 0, "use_streaming": False}
    )
    try:
        with pytest.raises(InvalidRequestError, match="seed"):
            await provider.complete(user())
    finally:
        await provider.close()
    assert chat.call_count == 2
    assert "seed" not in json.loads(chat.calls[1].request.content)


@respx.mock
async def test_unrelated_bad_request_is_sent_once():
    respx.get(f"{BASE}/models").mock(return_value=httpx.Response(404))
    chat = respx.post(f"{BASE}/chat/completions").mock(
        return_value=httpx.Response(400, json={"error": {"message": "invalid model name"}})
    )
    provider = ChatCompletionsProvider(config={"base_url": BASE, "max_retries": 2})
    try:
        with pytest.raises(InvalidRequestError):
            await provider.complete(user())
    finally:
        await provider.close()
    assert chat.call_count == 1


@respx.mock
async def test_healed_after_retryable_failure_then_success():
    respx.get(f"{BASE}/models").mock(return_value=httpx.Response(404))
    chat = respx.post(f"{BASE}/chat/completions").mock(
        side_effect=[
            httpx.Response(422, text=_extra("seed")),
            httpx.Response(503, json={"error": {"message": "Loading model"}}),
            httpx.Response(200, json=completion("fine")),
        ]
    )
    provider = ChatCompletionsProvider(
        config={
            "base_url": BASE,
            "seed": 3,
            "use_streaming": False,
            "min_retry_delay": 0.01,
            "max_retry_delay": 0.02,
        }
    )
    try:
        response = await provider.complete(user())
    finally:
        await provider.close()
    assert response.content[0].text == "fine"
    assert chat.call_count == 3
    assert response.degradation is not None and response.degradation.requested == "seed"


async def test_concurrent_rejections_heal_every_request_and_warn_once(start, caplog):
    import asyncio

    caplog.set_level(logging.WARNING)
    server = start(STRICT_FASTAPI)
    provider = provider_for(server, seed=7, use_streaming=False)
    try:
        results = await asyncio.gather(*(provider.complete(user()) for _ in range(20)))
    finally:
        await provider.close()
    assert all(r.content for r in results)
    warnings = [r for r in caplog.records if "rejected" in r.getMessage()]
    assert len(warnings) == 1


@respx.mock
async def test_current_llamacpp_without_jinja_is_not_retried_and_names_the_flag():
    # Real llama-server --no-jinja (captured): HTTP 500 with this body.
    respx.get(f"{BASE}/models").mock(return_value=httpx.Response(404))
    chat = respx.post(f"{BASE}/chat/completions").mock(
        return_value=httpx.Response(
            500,
            json={
                "error": {
                    "code": 500,
                    "message": "tools param requires --jinja flag",
                    "type": "server_error",
                }
            },
        )
    )
    provider = ChatCompletionsProvider(
        config={"base_url": BASE, "max_retries": 2, "use_streaming": False}
    )
    try:
        with pytest.raises(InvalidRequestError, match="--jinja"):
            await provider.complete(user(tools=[WEATHER]))
    finally:
        await provider.close()
    assert chat.call_count == 1


@respx.mock
async def test_a_fix_learned_for_one_model_leaves_other_models_alone():
    # LiteLLM in front of several models: OpenAI's reasoning models reject temperature
    # (the upstream 400 passes through), a local model takes it.
    respx.get(f"{BASE}/models").mock(return_value=httpx.Response(404))

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if body["model"] == "o3-mini" and "temperature" in body:
            message = "Unsupported parameter: 'temperature' is not supported with this model."
            return httpx.Response(400, json={"error": {"message": message, "code": "400"}})
        return httpx.Response(200, json=completion("fine"))

    chat = respx.post(f"{BASE}/chat/completions").mock(side_effect=answer)
    provider = ChatCompletionsProvider(
        config={"base_url": BASE, "server": "litellm", "max_retries": 0, "use_streaming": False}
    )
    try:
        await provider.complete(user(model="o3-mini"))
        await provider.complete(user(model="llama-3.1-8b"))
        await provider.complete(user(model="o3-mini"))
    finally:
        await provider.close()
    sent = [json.loads(call.request.content) for call in chat.calls]
    assert [(b["model"], "temperature" in b) for b in sent] == [
        ("o3-mini", True),  # rejected
        ("o3-mini", False),  # resent without it
        ("llama-3.1-8b", True),  # another model keeps it
        ("o3-mini", False),  # remembered for o3-mini
    ]
