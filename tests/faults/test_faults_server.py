"""Fault injection on real sockets: every scenario checks the kernel error (or success), the
requests the server saw, the elapsed time and that no connection or task is left behind."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from amplifier_core.llm_errors import (
    LLMError,
    LLMTimeoutError,
    NetworkError,
    ProviderUnavailableError,
    RateLimitError,
    StreamError,
)
from amplifier_core.message_models import ChatRequest, ChatResponse, Message
from fault_helpers import LeakCheck, make_provider
from faulty_server import Conn, FaultyServer, Request, chunk, completion, free_port, stream_text


def ask(text: str = "hi") -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content=text)])


async def run(
    provider: Any, *, limit: float, request: ChatRequest | None = None
) -> tuple[ChatResponse | LLMError, float]:
    """complete() bounded by `limit` seconds: (response or kernel error, elapsed)."""
    started = time.monotonic()
    async with asyncio.timeout(limit):
        try:
            result: ChatResponse | LLMError = await provider.complete(request or ask())
        except LLMError as err:
            result = err
    return result, time.monotonic() - started


# -- connection faults -----------------------------------------------------------------


async def test_connection_refused_is_network_error_after_retries() -> None:
    leaks = LeakCheck()
    provider = make_provider(f"http://127.0.0.1:{free_port()}/v1", max_retries=2)
    result, elapsed = await run(provider, limit=5)
    assert isinstance(result, NetworkError), result
    assert "could not connect" in str(result)
    assert elapsed < 2.0
    await leaks.finish(provider, None)


async def test_reset_before_headers_is_network_error(serve: Any) -> None:
    async def handler(conn: Conn, req: Request) -> None:
        conn.reset()

    server: FaultyServer = serve(handler)
    leaks = LeakCheck()
    provider = make_provider(server.url, max_retries=1)
    result, elapsed = await run(provider, limit=5)
    assert isinstance(result, NetworkError) and not isinstance(result, StreamError), result
    assert len(server.requests) == 2  # retried once, as configured
    assert elapsed < 2.0
    await leaks.finish(provider, server)


async def test_reset_mid_stream_after_n_chunks_is_stream_error(
    serve: Any, coordinator: Any
) -> None:
    async def handler(conn: Conn, req: Request) -> None:
        await conn.start_stream()
        for i in range(3):
            await conn.send_event(chunk(f"part{i} "))
        await asyncio.sleep(0.05)  # let the client read them before the reset
        conn.reset()

    server: FaultyServer = serve(handler)
    leaks = LeakCheck()
    provider = make_provider(server.url, coordinator, max_retries=1)
    result, elapsed = await run(provider, limit=5)
    assert isinstance(result, StreamError), result
    assert len(server.requests) == 2
    assert elapsed < 2.0
    # Each broken attempt showed deltas, so each one is withdrawn from the UI.
    assert len(coordinator.hooks.named("llm:stream_aborted")) == 2
    await leaks.finish(provider, server)


async def test_accepts_and_never_answers_times_out(serve: Any) -> None:
    async def handler(conn: Conn, req: Request) -> None:
        await conn.wait_client_close(30)

    server: FaultyServer = serve(handler)
    leaks = LeakCheck()
    provider = make_provider(server.url, timeout=1)
    result, elapsed = await run(provider, limit=10)
    assert isinstance(result, LLMTimeoutError), result
    assert len(server.requests) == 1
    assert 1.0 <= elapsed < 2.0
    await leaks.finish(provider, server)


@pytest.mark.parametrize("chunks_first", [0, 2])
async def test_headers_then_silence_times_out_within_a_second(
    serve: Any, chunks_first: int
) -> None:
    async def handler(conn: Conn, req: Request) -> None:
        await conn.start_stream()
        for i in range(chunks_first):
            await conn.send_event(chunk(f"t{i}"))
        await conn.wait_client_close(30)

    server: FaultyServer = serve(handler)
    leaks = LeakCheck()
    provider = make_provider(server.url, timeout=1)
    result, elapsed = await run(provider, limit=10)
    assert isinstance(result, LLMTimeoutError), result
    assert "no data from server" in str(result)
    assert len(server.requests) == 1
    assert 1.0 <= elapsed < 2.0
    await leaks.finish(provider, server)


async def _slow_steady(serve: Any, every: float, total: float, timeout: float) -> None:
    n = round(total / every)

    async def handler(conn: Conn, req: Request) -> None:
        await stream_text(conn, [f"w{i} " for i in range(n)], delay=every)

    server: FaultyServer = serve(handler)
    leaks = LeakCheck()
    provider = make_provider(server.url, timeout=timeout)
    result, elapsed = await run(provider, limit=total + 10)
    assert isinstance(result, ChatResponse), result
    assert result.text == "".join(f"w{i} " for i in range(n))
    assert len(server.requests) == 1
    assert total - every <= elapsed < total + 3
    await leaks.finish(provider, server)


async def test_slow_steady_stream_completes_scaled(serve: Any) -> None:
    # The timeout bounds the gap between chunks, never the whole generation.
    await _slow_steady(serve, every=0.4, total=6.0, timeout=1.0)


@pytest.mark.slow
async def test_slow_steady_stream_completes_full_size(serve: Any) -> None:
    # The numbers: a chunk every 2 s for 30 s with timeout 5.
    await _slow_steady(serve, every=2.0, total=30.0, timeout=5.0)


# -- status faults ------------------------------------------------------------------------


async def test_429_retry_after_is_honoured(serve: Any, coordinator: Any) -> None:
    async def handler(conn: Conn, req: Request) -> None:
        if req.index == 0:
            await conn.respond(
                429, {"error": {"message": "slow down"}}, headers={"Retry-After": "1"}
            )
        else:
            await stream_text(conn, ["ok"])

    server: FaultyServer = serve(handler)
    leaks = LeakCheck()
    provider = make_provider(server.url, coordinator, max_retries=1, max_retry_delay=5)
    result, elapsed = await run(provider, limit=10)
    assert isinstance(result, ChatResponse), result
    assert len(server.requests) == 2
    gap = server.conns[-1].opened_at - server.conns[0].opened_at
    assert gap >= 1.0 or elapsed >= 1.0  # the wait is at least Retry-After
    assert elapsed >= 1.0
    assert elapsed < 3.0
    (retry,) = coordinator.hooks.named("provider:retry")
    assert retry["retry_after"] == 1.0 and retry["delay"] >= 1.0
    await leaks.finish(provider, server)


async def test_retry_after_beyond_max_retry_delay_fails_fast(serve: Any) -> None:
    async def handler(conn: Conn, req: Request) -> None:
        await conn.respond(429, {"error": {"message": "busy"}}, headers={"Retry-After": "120"})

    server: FaultyServer = serve(handler)
    leaks = LeakCheck()
    provider = make_provider(server.url, max_retries=3, max_retry_delay=5)
    result, elapsed = await run(provider, limit=5)
    assert isinstance(result, RateLimitError), result
    assert "120" in str(result) and "max_retry_delay" in str(result)
    assert result.retry_after == 120.0
    assert len(server.requests) == 1
    assert elapsed < 1.0
    await leaks.finish(provider, server)


async def test_503_loading_model_twice_then_success(serve: Any) -> None:
    loading = {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}

    async def handler(conn: Conn, req: Request) -> None:
        if req.index < 2:
            await conn.respond(503, loading)
        else:
            await stream_text(conn, ["ready"])

    server: FaultyServer = serve(handler)
    leaks = LeakCheck()
    provider = make_provider(server.url, max_retries=3)
    result, elapsed = await run(provider, limit=5)
    assert isinstance(result, ChatResponse), result
    assert result.text == "ready"
    assert len(server.requests) == 3
    assert elapsed < 2.0
    await leaks.finish(provider, server)


GATEWAY_PAGE = """<html>
<head><title>{status} {reason}</title><style>body {{ font: 12px sans-serif }}</style></head>
<body>
<center><h1>{status} {reason}</h1></center>
<hr><center>nginx/1.25.3</center>
<script>var x = "<div>noise</div>";</script>
</body>
</html>
"""


@pytest.mark.parametrize(
    ("status", "reason"),
    [(500, "Internal Server Error"), (502, "Bad Gateway"), (504, "Gateway Time-out")],
)
async def test_html_gateway_page_gives_readable_error(serve: Any, status: int, reason: str) -> None:
    async def handler(conn: Conn, req: Request) -> None:
        page = GATEWAY_PAGE.format(status=status, reason=reason)
        await conn.respond(status, page, content_type="text/html")

    server: FaultyServer = serve(handler)
    leaks = LeakCheck()
    provider = make_provider(server.url, max_retries=1)
    result, elapsed = await run(provider, limit=5)
    assert isinstance(result, ProviderUnavailableError), result
    text = str(result)
    assert f"{status} {reason}" in text
    assert "<" not in text and "nginx" not in text and "font" not in text
    assert len(text) < 300
    assert result.status_code == status
    assert len(server.requests) == 2  # 5xx are retried
    assert elapsed < 2.0
    await leaks.finish(provider, server)


@pytest.mark.parametrize("streaming", [False, True])
async def test_200_with_non_json_body(serve: Any, streaming: bool) -> None:
    async def handler(conn: Conn, req: Request) -> None:
        await conn.respond(
            200, "<html><title>Welcome to nginx!</title></html>", content_type="text/html"
        )

    server: FaultyServer = serve(handler)
    leaks = LeakCheck()
    provider = make_provider(server.url, use_streaming=streaming)
    result, elapsed = await run(provider, limit=5)
    assert isinstance(result, LLMError), result
    assert "Welcome to nginx!" in str(result), str(result)
    assert "<" not in str(result)
    assert len(server.requests) == 1
    assert elapsed < 1.0
    await leaks.finish(provider, server)


async def test_invalid_json_chunk_mid_stream(serve: Any, coordinator: Any) -> None:
    async def handler(conn: Conn, req: Request) -> None:
        await conn.start_stream()
        await conn.send_event(chunk("fine "))
        await conn.send_event('{"choices": [{"delta": {"content": "bro')
        await conn.send_event(chunk("never seen", "stop"))
        await conn.end_stream()

    server: FaultyServer = serve(handler)
    leaks = LeakCheck()
    provider = make_provider(server.url, coordinator, max_retries=1)
    result, elapsed = await run(provider, limit=5)
    assert isinstance(result, StreamError), result
    assert "not JSON" in str(result)
    assert len(server.requests) == 2  # a garbled stream is worth one more try
    assert elapsed < 2.0
    assert len(coordinator.hooks.named("llm:stream_aborted")) == 2
    await leaks.finish(provider, server)


# -- size -----------------------------------------------------------------------------------


def _big_stream_body(megabytes: int) -> bytes:
    piece = "x" * 4000 + " "
    n = megabytes * 1_000_000 // len(piece)
    events = [f"data: {json.dumps(chunk(piece))}\n\n" for _ in range(n)]
    events.append(f"data: {json.dumps(chunk(finish='stop'))}\n\ndata: [DONE]\n\n")
    return "".join(events).encode()


async def _time_big(serve: Any, body: bytes, coordinator: Any, streaming: bool) -> float:
    async def handler(conn: Conn, req: Request) -> None:
        if streaming:
            await conn.start_stream()
            step = 256 * 1024  # arbitrary HTTP chunk boundaries, mid-event
            for at in range(0, len(body), step):
                await conn.send_chunk(body[at : at + step])
            await conn.end_stream()
        else:
            await conn.respond(200, body)

    server: FaultyServer = serve(handler)
    leaks = LeakCheck()
    provider = make_provider(server.url, coordinator, use_streaming=streaming, timeout=30)
    result, elapsed = await run(provider, limit=60)
    assert isinstance(result, ChatResponse), result
    assert len(result.text or "") > len(body) * 0.9 if not streaming else True
    await leaks.finish(provider, server)
    return elapsed


async def test_50mb_stream_scales_linearly(serve: Any, coordinator: Any) -> None:
    small = await _time_big(serve, _big_stream_body(5), coordinator, True)
    big = await _time_big(serve, _big_stream_body(50), coordinator, True)
    # Linear is ~10x; a quadratic accumulator would be ~100x.
    print(f"\n5 MB stream: {small:.2f} s, 50 MB stream: {big:.2f} s, ratio {big / small:.1f}")
    assert big / small < 25, (small, big)
    assert big < 30
    deltas = coordinator.hooks.named("llm:stream_block_delta")
    assert deltas and all(d["text"] for d in deltas)


async def test_50mb_single_body_and_single_line(serve: Any, coordinator: Any) -> None:
    text = "y" * 50_000_000
    body = json.dumps(completion(text)).encode()
    elapsed = await _time_big(serve, body, None, False)
    assert elapsed < 30
    # One 50 MB SSE data line, delivered in 256 KB pieces: the line buffer must not be quadratic.
    line = (
        f"data: {json.dumps(chunk(text))}\n\ndata: {json.dumps(chunk(finish='stop'))}\n\n"
    ).encode()
    elapsed = await _time_big(serve, line, None, True)
    assert elapsed < 30


# -- retry after a partial stream ------------------------------------------------------------


async def test_partial_stream_abort_then_retry_forms_new_block_sequence(
    serve: Any, coordinator: Any
) -> None:
    async def handler(conn: Conn, req: Request) -> None:
        if req.index == 0:
            await conn.start_stream()
            await conn.send_event(chunk("Hello "))
            await conn.send_event(chunk("wor"))
            await asyncio.sleep(0.05)
            conn.reset()
        else:
            await stream_text(conn, ["Hello ", "world"])

    server: FaultyServer = serve(handler)
    leaks = LeakCheck()
    provider = make_provider(server.url, coordinator, max_retries=1)
    result, _ = await run(provider, limit=5)
    assert isinstance(result, ChatResponse), result
    assert result.text == "Hello world"
    assert len(server.requests) == 2

    stream = [(n, p) for n, p in coordinator.hooks.events if n.startswith("llm:stream")]
    names = [n for n, _ in stream]
    aborted_at = names.index("llm:stream_aborted")
    before, after = stream[:aborted_at], stream[aborted_at + 1 :]
    (rid,) = {p["request_id"] for _, p in stream}
    assert [p["text"] for n, p in before if n.endswith("delta")] == ["Hello ", "wor"]
    assert [p["text"] for n, p in after if n.endswith("delta")] == ["Hello ", "world"]
    old = {p["block_index"] for _, p in before if "block_index" in p}
    new = {p["block_index"] for _, p in after if "block_index" in p}
    assert old.isdisjoint(new), (old, new)  # the UI never appends the retry to the old block
    first_new = next(p for n, p in after if n.endswith("delta"))
    assert first_new["sequence"] == 0
    assert after[0][0] == "llm:stream_block_start" and after[-1][0] == "llm:stream_block_end"
    assert rid
    await leaks.finish(provider, server)


async def test_raw_unicode_line_separators_inside_json_survive(serve: Any) -> None:
    # JSON allows U+2028, U+2029 and U+0085 unescaped; servers that emit raw UTF-8
    # (ensure_ascii off) send them as is. SSE lines end only at CR or LF.
    text = "a\u2028b\u2029c\x85d\x1ce"

    async def handler(conn: Conn, req: Request) -> None:
        await conn.start_stream()
        payload = json.dumps(chunk(text), ensure_ascii=False)
        await conn.send_chunk(f"data: {payload}\r\n\r\n".encode())
        await conn.send_event(chunk(finish="stop"))
        await conn.send_event("[DONE]")
        await conn.end_stream()

    server: FaultyServer = serve(handler)
    leaks = LeakCheck()
    provider = make_provider(server.url)
    result, _ = await run(provider, limit=5)
    assert isinstance(result, ChatResponse), result
    assert result.text == text
    await leaks.finish(provider, server)


# -- stale keep-alive connections ---------------------------------------------------------


@pytest.mark.parametrize("how", ["close", "reset"])
async def test_reused_connection_closed_by_the_server_is_resent_not_retried(
    serve: Any, coordinator: Any, how: str
) -> None:
    """llama-server's race: it closes a kept-alive connection without `Connection: close`;
    the next request written on it gets no answer. That request is resent at once on a new
    connection, without a retry (no backoff, no provider:retry)."""

    async def handler(conn: Conn, req: Request) -> None:
        if conn.record.requests > 1:  # second request on this connection: drop it unread
            if how == "reset":
                conn.reset()
            else:
                conn.writer.close()
            return
        await conn.respond(200, completion(f"answer {req.index}"))

    server: FaultyServer = serve(handler)
    leaks = LeakCheck()
    provider = make_provider(server.url, coordinator, use_streaming=False, max_retries=0)
    first, _ = await run(provider, limit=5)
    second, elapsed = await run(provider, limit=5)
    assert isinstance(first, ChatResponse) and isinstance(second, ChatResponse), (first, second)
    assert second.text == "answer 2"
    assert len(server.requests) == 3  # 0 answered, 1 dropped on the stale socket, 2 resent
    assert len(server.conns) == 2
    assert not coordinator.hooks.named("provider:retry")
    assert elapsed < 1.0
    await leaks.finish(provider, server)


async def test_fresh_connection_dropped_is_not_resent_by_the_transport(serve: Any) -> None:
    """A new connection closed without an answer is a real fault: the retry policy decides
    (max_retries=0 here: one request, a NetworkError)."""

    async def handler(conn: Conn, req: Request) -> None:
        conn.writer.close()

    server: FaultyServer = serve(handler)
    leaks = LeakCheck()
    provider = make_provider(server.url, use_streaming=False, max_retries=0)
    result, _ = await run(provider, limit=5)
    assert isinstance(result, NetworkError), result
    assert len(server.requests) == 1
    await leaks.finish(provider, server)
