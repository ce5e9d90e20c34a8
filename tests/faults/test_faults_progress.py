"""A long prompt on slow hardware: llama-server reads it for longer than `timeout` before
the first token. Asked for progress, it streams a chunk per prompt batch, so the stream is
never silent for long, and each chunk is reported as provider:prompt_progress."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from amplifier_core.llm_errors import LLMTimeoutError
from amplifier_core.message_models import ChatRequest, Message
from fault_helpers import LeakCheck, make_provider
from faulty_server import Conn, FaultyServer, Request, chunk, stream_text
from stream_contract import assert_call_lifecycle

TOTAL = 2048
BATCHES = 6
BATCH_SECONDS = 0.3  # each longer than a third of the silence limit, all of them twice it


def progress_chunk(processed: int, time_ms: int) -> dict[str, Any]:
    # llama.cpp tools/server/server-task.cpp: a progress result is a chat.completion.chunk
    # whose delta is {role, content: null}, with prompt_progress {total, cache, processed,
    # time_ms}; the first report has processed == cache, the last processed == total.
    out = chunk()
    out["choices"][0]["delta"] = {"role": "assistant", "content": None}
    out["prompt_progress"] = {
        "total": TOTAL,
        "cache": 0,
        "processed": processed,
        "time_ms": time_ms,
    }
    return out


async def slow_prompt_server(conn: Conn, req: Request) -> None:
    asked = req.json().get("return_progress") is True
    await conn.start_stream()
    for n in range(BATCHES + 1):
        if asked:
            processed = TOTAL * n // BATCHES
            await conn.send_event(progress_chunk(processed, int(n * BATCH_SECONDS * 1000)))
        if n < BATCHES:
            await asyncio.sleep(BATCH_SECONDS)
    await stream_text(conn, ["Read ", "it all"], started=True)


async def test_prompt_progress_keeps_a_slow_prompt_alive_and_is_reported(
    serve: Any, coordinator: Any
) -> None:
    server: FaultyServer = serve(slow_prompt_server)
    leaks = LeakCheck()
    provider = make_provider(server.url, coordinator, server="llamacpp", timeout=1)
    response = await provider.complete(ChatRequest(messages=[Message(role="user", content="x")]))
    assert response.text == "Read it all"
    assert response.finish_reason == "stop"
    assert server.requests[0].json()["return_progress"] is True
    reports = coordinator.hooks.named("provider:prompt_progress")
    assert [r["processed"] for r in reports] == [TOTAL * n // BATCHES for n in range(7)]
    (request,) = coordinator.hooks.named("llm:request")
    for report in reports:
        assert report["request_id"] == request["request_id"]
        assert (report["provider"], report["model"]) == (provider.name, "default")
        assert (report["total"], report["cache"]) == (TOTAL, 0)
    assert_call_lifecycle(coordinator.hooks.events)
    await leaks.finish(provider, server)


async def test_a_server_not_asked_for_progress_still_times_out(serve: Any) -> None:
    # `timeout` stays the longest silence accepted: only the server's own chunks keep a
    # stream alive.
    server: FaultyServer = serve(slow_prompt_server)
    leaks = LeakCheck()
    provider = make_provider(server.url, server="vllm", timeout=1)
    with pytest.raises(LLMTimeoutError, match="no data from server"):
        await provider.complete(ChatRequest(messages=[Message(role="user", content="x")]))
    assert "return_progress" not in server.requests[0].json()
    await leaks.finish(provider, server)
