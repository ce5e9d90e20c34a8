"""A minimal, fast HTTP/1.1 Chat Completions server for the benchmarks.

Run as a subprocess (`python -m benchmarks.server`) so its CPU time never counts as the
client's; it prints its port on stdout and serves until killed. Routes, by the first path
segment (the scenario is part of the client's base_url):

  POST /text-N/v1/chat/completions       N text chunks, as fast as possible
  POST /tools-N/v1/chat/completions      about N tool-call chunks
  POST /big-BYTES/v1/chat/completions    a text stream of about BYTES bytes
  POST /paced-N-MS/v1/chat/completions   N text chunks MS ms apart; each chunk's text is
                                         the server's time.time_ns() when it was sent
  POST /reply/v1/chat/completions        a tiny non-streaming JSON answer
  GET  /.../models                       one model

Streams use chunked transfer encoding like real servers (uvicorn, llama.cpp); pre-built
events are written in ~16 KB batches so the server is never the bottleneck.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time

from benchmarks import payloads

_BATCH = 16 * 1024
_SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
    b"transfer-encoding: chunked\r\ncache-control: no-cache\r\n\r\n"
)
_MODELS = b'{"object":"list","data":[{"id":"bench","object":"model","owned_by":"bench"}]}'

# scenario -> pre-framed batches (built on first use, then reused for every request)
_cache: dict[str, list[bytes]] = {}


def _frame(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _batches(scenario: str) -> list[bytes]:
    batches = _cache.get(scenario)
    if batches is None:
        batches, pending, size = [], [], 0
        for event in payloads.stream_events(scenario):
            pending.append(event)
            size += len(event)
            if size >= _BATCH:
                batches.append(_frame(b"".join(pending)))
                pending, size = [], 0
        if pending:
            batches.append(_frame(b"".join(pending)))
        batches.append(b"0\r\n\r\n")
        _cache[scenario] = batches
    return batches


def _plain(status: str, body: bytes) -> bytes:
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _paced(writer: asyncio.StreamWriter, n: int, gap_ms: int) -> None:
    writer.write(_SSE_HEAD)
    for _ in range(n):
        await asyncio.sleep(gap_ms / 1000)
        # Stamped at the last moment: the latency measured starts at this send.
        writer.write(_frame(payloads.text_chunk(f" {time.time_ns()}")))
        await writer.drain()
    writer.write(b"".join(_frame(e) for e in payloads.text_events(0)) + b"0\r\n\r\n")
    await writer.drain()


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:  # keep-alive: one request after another on this connection
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            scenario = path.strip("/").split("/", 1)[0]
            if method == "GET" or path.endswith("/models"):
                writer.write(_plain("200 OK", _MODELS))
            elif scenario == "reply":
                writer.write(_plain("200 OK", payloads.reply_body()))
            elif scenario.startswith("paced-"):
                _, n, gap = scenario.split("-")
                await _paced(writer, int(n), int(gap))
            else:
                try:
                    batches = _batches(scenario)
                except (KeyError, ValueError):
                    writer.write(_plain("404 Not Found", b'{"error":"unknown scenario"}'))
                else:
                    writer.write(_SSE_HEAD)
                    for batch in batches:
                        writer.write(batch)
                        await writer.drain()
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def _serve() -> None:
    server = await asyncio.start_server(_handle, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve())
    sys.exit(0)
