"""Cancellation and concurrency on real sockets."""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections import defaultdict
from typing import Any

import pytest
from amplifier_core.llm_errors import ProviderUnavailableError, StreamError
from amplifier_core.message_models import ChatRequest, ChatResponse, Message, ToolSpec
from fault_helpers import LeakCheck, make_provider
from faulty_server import Conn, FaultyServer, Request, chunk, stream_text


def ask(text: str = "hi", tools: bool = False) -> ChatRequest:
    specs = [ToolSpec(name="echo", parameters={"type": "object"})] if tools else None
    return ChatRequest(messages=[Message(role="user", content=text)], tools=specs)


@pytest.mark.parametrize("when", ["mid-stream", "before-headers"])
async def test_cancel_closes_connection_is_not_retried_and_propagates(
    serve: Any, coordinator: Any, when: str
) -> None:
    async def handler(conn: Conn, req: Request) -> None:
        if when == "before-headers":
            await conn.wait_client_close(30)
            return
        await conn.start_stream()
        for i in range(600):  # ~30 s of tokens unless the client hangs up
            if conn.client_gone.is_set():
                return
            await conn.send_event(chunk(f"t{i} "))
            await asyncio.sleep(0.05)

    server: FaultyServer = serve(handler)
    leaks = LeakCheck()
    provider = make_provider(server.url, coordinator, max_retries=3, timeout=30)
    task = asyncio.create_task(provider.complete(ask()))
    async with asyncio.timeout(5):
        if when == "mid-stream":
            while len(coordinator.hooks.named("llm:stream_block_delta")) < 3:
                await asyncio.sleep(0.01)
        else:
            while not server.requests:
                await asyncio.sleep(0.01)
    cancelled_at = time.monotonic()
    task.cancel()
    async with asyncio.timeout(2):
        with pytest.raises(asyncio.CancelledError):
            await task
    closed_at = await server.wait_client_closed(within=2.0)
    assert closed_at is not None, "the server never saw the client hang up"
    assert closed_at - cancelled_at < 1.0
    await asyncio.sleep(0.2)  # room for a wrongful retry to show up
    assert len(server.requests) == 1
    assert coordinator.hooks.named("provider:retry") == []
    await leaks.finish(provider, server)


# -- 200 concurrent calls -------------------------------------------------------------------

N_CALLERS = 200
MARK = re.compile(r"caller-\d+")


def _kind(n: int) -> str:
    return ("text", "tool", "http500", "reset")[n % 4]


async def _mixed_handler(conn: Conn, req: Request) -> None:
    body = req.json()
    marker = MARK.search(body["messages"][-1]["content"]).group(0)  # type: ignore[union-attr]
    n = int(marker.split("-")[1])
    kind = _kind(n)
    pause = random.uniform(0, 0.01)  # interleave the callers' chunks
    if kind == "text":
        await stream_text(conn, [marker, " says", " hi"], delay=pause)
    elif kind == "tool":
        await conn.start_stream()
        head = {"index": 0, "id": f"call_{n}", "type": "function", "function": {"name": "echo"}}
        await conn.send_event(chunk(tool=head))
        await asyncio.sleep(pause)
        await conn.send_event(chunk(tool={"index": 0, "function": {"arguments": '{"who": '}}))
        await asyncio.sleep(pause)
        arg = {"index": 0, "function": {"arguments": json.dumps(marker) + "}"}}
        await conn.send_event(chunk(tool=arg))
        await conn.send_event(chunk(finish="tool_calls"))
        await conn.send_event("[DONE]")
        await conn.end_stream()
    elif kind == "http500":
        await conn.respond(500, {"error": {"message": f"boom for {marker}"}})
    else:
        await conn.start_stream()
        await conn.send_event(chunk(f"{marker} partial"))
        await asyncio.sleep(0.02 + pause)
        conn.reset()


async def test_200_concurrent_calls_get_their_own_results_and_events(
    serve: Any, coordinator: Any
) -> None:
    server: FaultyServer = serve(_mixed_handler)
    leaks = LeakCheck()
    provider = make_provider(server.url, coordinator, max_retries=1, raw=True, timeout=20)

    async def call(n: int) -> ChatResponse | BaseException:
        try:
            return await provider.complete(ask(f"I am caller-{n}", tools=True))
        except Exception as exc:
            return exc

    started = time.monotonic()
    async with asyncio.timeout(30):
        results = await asyncio.gather(*(call(n) for n in range(N_CALLERS)))
    assert time.monotonic() - started < 20

    for n, result in enumerate(results):
        marker, kind = f"caller-{n}", _kind(n)
        if kind == "text":
            assert isinstance(result, ChatResponse), (n, result)
            assert result.text == f"{marker} says hi"
        elif kind == "tool":
            assert isinstance(result, ChatResponse), (n, result)
            (tc,) = result.tool_calls or []
            assert (tc.id, tc.name, tc.arguments) == (f"call_{n}", "echo", {"who": marker})
        elif kind == "http500":
            assert isinstance(result, ProviderUnavailableError), (n, result)
            assert MARK.findall(str(result)) == [marker]
        else:
            assert isinstance(result, StreamError), (n, result)

    # One request per success, two (a retry) per failure.
    assert len(server.requests) == N_CALLERS // 2 + 2 * (N_CALLERS // 2)

    # Events: map each request_id to its caller through the raw request, then check that
    # every event under that id belongs to that caller alone.
    owner: dict[str, int] = {}
    for payload in coordinator.hooks.named("llm:request"):
        (marker,) = set(MARK.findall(json.dumps(payload["raw"])))
        owner[payload["request_id"]] = int(marker.split("-")[1])
    assert sorted(owner.values()) == list(range(N_CALLERS))

    by_id: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for name, payload in coordinator.hooks.events:
        if "request_id" in payload:
            by_id[payload["request_id"]].append((name, payload))
    assert set(by_id) == set(owner)
    for rid, events in by_id.items():
        n = owner[rid]
        marker, kind = f"caller-{n}", _kind(n)
        names = [name for name, _ in events]
        seen = set(MARK.findall(json.dumps([p for _, p in events], default=str)))
        assert seen == {marker}, (n, seen)
        (response,) = [p for name, p in events if name == "llm:response"]
        assert response["status"] == ("ok" if kind in ("text", "tool") else "error")
        deltas = [p["text"] for name, p in events if name == "llm:stream_block_delta"]
        if kind == "text":
            assert "".join(deltas) == f"{marker} says hi"
        elif kind == "tool":
            assert "llm:stream_block_start" in names and deltas == []
        elif kind == "reset":
            assert names.count("llm:stream_aborted") == 2
    await leaks.finish(provider, server)
