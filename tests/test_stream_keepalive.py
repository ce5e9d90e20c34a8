"""After [DONE] the rest of the body is read, so the connection goes back to the pool."""

from __future__ import annotations

import asyncio
import time

from amplifier_core.message_models import ChatRequest, Message
from wire_helpers import chunk, sse

from amplifier_module_provider_chat_completions import ChatCompletionsProvider

BODY = sse([chunk({"content": "hi"}), chunk(finish_reason="stop")])
HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


async def _serve(hang_after_done: bool) -> tuple[asyncio.Server, list[int]]:
    connections = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections[0] += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = [
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ]
                await reader.readexactly(length[0] if length else 0)
                writer.write(HEAD + b"%x\r\n%s\r\n" % (len(BODY), BODY))
                if hang_after_done:
                    await writer.drain()
                    await asyncio.sleep(30)  # [DONE] sent, the body never ends
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, connections


def _provider(server: asyncio.Server) -> ChatCompletionsProvider:
    port = server.sockets[0].getsockname()[1]
    config = {"base_url": f"http://127.0.0.1:{port}/v1", "server": "openai", "max_retries": 0}
    return ChatCompletionsProvider(config=config)


REQUEST = ChatRequest(messages=[Message(role="user", content="hi")])


async def test_consecutive_streams_reuse_one_connection() -> None:
    server, connections = await _serve(hang_after_done=False)
    provider = _provider(server)
    try:
        for _ in range(3):
            response = await provider.complete(REQUEST)
            assert response.content[0].text == "hi"
        assert connections[0] == 1
    finally:
        await provider.close()
        server.close()


async def test_server_that_holds_the_stream_open_after_done_does_not_stall() -> None:
    server, _ = await _serve(hang_after_done=True)
    provider = _provider(server)
    try:
        started = time.monotonic()
        response = await provider.complete(REQUEST)
        assert response.content[0].text == "hi"
        assert time.monotonic() - started < 5
    finally:
        await provider.close()
        server.close()
