"""A deliberately faulty HTTP/1.1 server on a real 127.0.0.1 socket, for fault-injection tests.

It runs in its own thread and event loop, so the test's loop holds only the provider's
tasks (which makes leak checks exact) and a busy client cannot starve the server.
HTTP is hand-written: every byte, reset and silence is under the test's control.

A test passes `handler(conn, request)`; the handler answers through `Conn`. The server
records every request and every connection, including when the client closed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

Handler = Callable[["Conn", "Request"], Awaitable[None]]

REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass
class Request:
    index: int  # 0-based, across all connections
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class ConnRecord:
    """What the test may inspect about one connection (written by the server thread)."""

    opened_at: float
    requests: int = 0
    closed_at: float | None = None
    closed_by: str | None = None  # "client" (EOF/reset seen) or "server"


class Conn:
    """One accepted connection. Reads are pumped into a buffer by a background task, so
    the server notices the client closing even while a handler is busy writing."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self.writer = writer
        self.record = ConnRecord(opened_at=time.monotonic())
        self._buf = bytearray()
        self._more = asyncio.Event()
        self.client_gone = asyncio.Event()
        self._pump = asyncio.ensure_future(self._read_forever())

    async def _read_forever(self) -> None:
        try:
            while True:
                data = await self._reader.read(65536)
                if not data:
                    break
                self._buf += data
                self._more.set()
        except (ConnectionError, OSError):
            pass
        self._mark_closed("client")
        self.client_gone.set()
        self._more.set()

    def _mark_closed(self, by: str) -> None:
        if self.record.closed_at is None:
            self.record.closed_at = time.monotonic()
            self.record.closed_by = by

    async def _read_until(self, sep: bytes) -> bytes | None:
        while True:
            pos = self._buf.find(sep)
            if pos >= 0:
                out = bytes(self._buf[: pos + len(sep)])
                del self._buf[: pos + len(sep)]
                return out
            if self.client_gone.is_set():
                return None
            self._more.clear()
            await self._more.wait()

    async def _read_exactly(self, n: int) -> bytes | None:
        while len(self._buf) < n:
            if self.client_gone.is_set():
                return None
            self._more.clear()
            await self._more.wait()
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    async def read_request(self, index: Callable[[], int]) -> Request | None:
        head = await self._read_until(b"\r\n\r\n")
        if head is None:
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        body = await self._read_exactly(int(headers.get("content-length", "0")))
        if body is None:
            return None
        self.record.requests += 1
        return Request(index(), method, path, headers, body)

    # -- answering ------------------------------------------------------------------

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def respond(
        self,
        status: int,
        body: bytes | str | dict[str, Any] = b"",
        headers: dict[str, str] | None = None,
        content_type: str | None = None,
    ) -> None:
        if isinstance(body, dict):
            body, content_type = json.dumps(body).encode(), content_type or "application/json"
        elif isinstance(body, str):
            body = body.encode()
        head = {"Content-Type": content_type or "application/json"}
        head.update(headers or {})
        head["Content-Length"] = str(len(body))
        await self.send(self._head(status, head) + body)

    async def start_stream(
        self, status: int = 200, content_type: str = "text/event-stream"
    ) -> None:
        head = {"Content-Type": content_type, "Transfer-Encoding": "chunked"}
        await self.send(self._head(status, head))

    async def send_chunk(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode()
        if data:
            await self.send(b"%x\r\n%s\r\n" % (len(data), data))

    async def send_event(self, obj: Any) -> None:
        """One SSE event in its own HTTP chunk; `obj` is a dict (JSON-encoded) or raw text."""
        text = obj if isinstance(obj, str) else json.dumps(obj)
        await self.send_chunk(f"data: {text}\n\n")

    async def end_stream(self) -> None:
        await self.send(b"0\r\n\r\n")

    def reset(self) -> None:
        """Abort with a TCP RST (SO_LINGER 0), like a crashed server process."""
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()
        self._mark_closed("server")

    async def wait_client_close(self, timeout: float = 60.0) -> bool:
        """Stay silent until the client hangs up (the "never answers" fault)."""
        try:
            async with asyncio.timeout(timeout):
                await self.client_gone.wait()
        except TimeoutError:
            return False
        return True

    @staticmethod
    def _head(status: int, headers: dict[str, str]) -> bytes:
        lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass
class FaultyServer:
    handler: Handler
    ssl_context: Any = None
    requests: list[Request] = field(default_factory=list)
    conns: list[ConnRecord] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._count = 0
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}/v1"

    def start(self) -> FaultyServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(5)
        return self

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]

    def _next_index(self) -> int:
        with self._lock:
            n, self._count = self._count, self._count + 1
            return n

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = Conn(reader, writer)
        self.conns.append(conn.record)
        try:
            while not writer.transport.is_closing():
                request = await conn.read_request(self._next_index)
                if request is None:
                    break
                self.requests.append(request)
                await self.handler(conn, request)
            await conn.client_gone.wait()  # keep-alive: wait for the client to close
        except (ConnectionError, OSError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # a broken handler must fail the test, not hang it
            self.errors.append(exc)
        finally:
            conn._mark_closed("server")
            conn._pump.cancel()
            writer.transport.abort()
            self._tasks.discard(task)

    def stop(self) -> None:
        async def _stop() -> None:
            if self._server is not None:
                self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.sleep(0)

        try:
            asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(5)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._loop.close()

    # -- what the test checks ------------------------------------------------------------

    async def wait_all_closed(self, within: float = 1.0) -> bool:
        """True once every connection is closed (polled from the test's loop)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if all(c.closed_at is not None for c in self.conns):
                return True
            await asyncio.sleep(0.01)
        return all(c.closed_at is not None for c in self.conns)

    async def wait_client_closed(self, within: float = 1.0) -> float | None:
        """The time the client closed its last connection, or None if it did not."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            done = [c for c in self.conns if c.closed_by == "client"]
            if self.conns and len(done) == len(self.conns):
                return max(c.closed_at or 0.0 for c in done)
            await asyncio.sleep(0.01)
        return None


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- wire builders ------------------------------------------------------------------------


def chunk(
    content: str | None = None,
    finish: str | None = None,
    *,
    tool: dict[str, Any] | None = None,
    usage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    delta: dict[str, Any] = {}
    if content is not None:
        delta["content"] = content
    if tool is not None:
        delta["tool_calls"] = [tool]
    out: dict[str, Any] = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage is not None:
        out["usage"] = usage
    return out


def completion(content: str = "ok") -> dict[str, Any]:
    return {
        "id": "r1",
        "object": "chat.completion",
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }


async def stream_text(
    conn: Conn, parts: Iterable[str], delay: float = 0.0, *, started: bool = False
) -> None:
    """A complete, well-formed SSE answer (`started`: its head is already sent)."""
    if not started:
        await conn.start_stream()
    for part in parts:
        await conn.send_event(chunk(part))
        if delay:
            await asyncio.sleep(delay)
    await conn.send_event(chunk(finish="stop"))
    await conn.send_event(chunk(usage={"prompt_tokens": 3, "completion_tokens": 2}))
    await conn.send_event("[DONE]")
    await conn.end_stream()
