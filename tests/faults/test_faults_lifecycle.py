"""However a call ends (request timeout, cancellation, error) after its stream started,
the UI is told: started blocks are ended or the stream is withdrawn, and every llm:request
gets its llm:response before the call returns or raises."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from amplifier_core.llm_errors import (
    ConfigurationError,
    LLMTimeoutError,
    ProviderUnavailableError,
)
from amplifier_core.message_models import ChatRequest, Message, ToolSpec
from fault_helpers import LeakCheck, make_provider
from faulty_server import Conn, FaultyServer, Request, chunk, stream_text
from stream_contract import assert_call_lifecycle

TOOL_HEAD = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "echo"}}


def ask(timeout: float | None = None, tools: bool = False) -> ChatRequest:
    return ChatRequest(
        messages=[Message(role="user", content="hi")],
        tools=[ToolSpec(name="echo", parameters={"type": "object"})] if tools else None,
        timeout=timeout,
    )


def handler_for(first: str) -> Any:
    """A stream that sends one text delta or one tool-call head, then stays silent."""

    async def handler(conn: Conn, req: Request) -> None:
        await conn.start_stream()
        if first == "text":
            await conn.send_event(chunk("partial "))
        else:
            await conn.send_event(chunk(tool=TOOL_HEAD))
        await conn.wait_client_close(30)

    return handler


async def wait_for_event(coordinator: Any, name: str) -> None:
    async with asyncio.timeout(5):
        while not coordinator.hooks.named(name):
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("first", ["text", "tool"])
async def test_request_timeout_mid_stream_closes_the_stream_and_the_call(
    serve: Any, coordinator: Any, first: str
) -> None:
    server: FaultyServer = serve(handler_for(first))
    leaks = LeakCheck()
    provider = make_provider(server.url, coordinator, timeout=30)
    with pytest.raises(LLMTimeoutError, match=r"0\.5"):
        async with asyncio.timeout(5):
            await provider.complete(ask(timeout=0.5, tools=first == "tool"))
    events = coordinator.hooks.events
    assert_call_lifecycle(events)
    (response,) = coordinator.hooks.named("llm:response")
    assert response["status"] == "error"
    assert response["error"]["type"] == "LLMTimeoutError"
    if first == "text":
        (aborted,) = coordinator.hooks.named("llm:stream_aborted")
        assert aborted["error"]["type"] == "LLMTimeoutError"
    else:  # no delta shown: the started tool block is ended instead
        assert [p["block_type"] for p in coordinator.hooks.named("llm:stream_block_end")] == [
            "tool_use"
        ]
    await leaks.finish(provider, server)


@pytest.mark.parametrize("first", ["text", "tool", "nothing"])
async def test_cancellation_closes_the_stream_and_reports_cancelled(
    serve: Any, coordinator: Any, first: str
) -> None:
    if first == "nothing":

        async def handler(conn: Conn, req: Request) -> None:
            await conn.wait_client_close(30)

    else:
        handler = handler_for(first)
    server: FaultyServer = serve(handler)
    leaks = LeakCheck()
    provider = make_provider(server.url, coordinator, timeout=30)
    task = asyncio.create_task(provider.complete(ask(tools=first == "tool")))
    if first == "nothing":
        async with asyncio.timeout(5):
            while not server.requests:
                await asyncio.sleep(0.01)
    else:
        await wait_for_event(coordinator, "llm:stream_block_start")
    task.cancel()
    async with asyncio.timeout(2):
        with pytest.raises(asyncio.CancelledError):
            await task
    assert_call_lifecycle(coordinator.hooks.events)
    (response,) = coordinator.hooks.named("llm:response")
    assert response["status"] == "cancelled"
    assert response["provider"] == provider.name and "duration_ms" in response
    aborted = coordinator.hooks.named("llm:stream_aborted")
    assert len(aborted) == (1 if first == "text" else 0)
    assert len(server.requests) == 1
    await leaks.finish(provider, server)


async def test_error_after_a_tool_block_started_ends_it(serve: Any, coordinator: Any) -> None:
    async def handler(conn: Conn, req: Request) -> None:
        await conn.start_stream()
        await conn.send_event(chunk(tool=TOOL_HEAD))
        await conn.send_event({"error": {"message": "backend crashed", "code": 500}})
        await conn.end_stream()

    server: FaultyServer = serve(handler)
    leaks = LeakCheck()
    provider = make_provider(server.url, coordinator)
    with pytest.raises(ProviderUnavailableError, match="backend crashed"):
        await provider.complete(ask(tools=True))
    assert_call_lifecycle(coordinator.hooks.events)
    assert coordinator.hooks.named("llm:response")[0]["status"] == "error"
    await leaks.finish(provider, server)


async def test_a_closed_provider_says_so_instead_of_opening_a_new_client(serve: Any) -> None:
    async def handler(conn: Conn, req: Request) -> None:
        if req.path.endswith("/models"):
            await conn.respond(200, {"object": "list", "data": [{"id": "m"}]})
        else:
            await stream_text(conn, ["fine"])

    server: FaultyServer = serve(handler)
    leaks = LeakCheck()
    # What amplifier-app-cli does for `provider test` and the model picker.
    provider = make_provider(server.url)
    assert [m.id for m in await provider.list_models()] == ["m"]
    assert (await provider.complete(ask())).text == "fine"
    await provider.close()
    seen = len(server.requests)
    with pytest.raises(ConfigurationError, match="closed"):
        await provider.complete(ask())
    with pytest.raises(ConfigurationError, match="closed"):
        await provider.list_models()
    await provider.close()  # still safe twice
    assert len(server.requests) == seen
    await leaks.finish(provider, server)
