"""A tiny HTTP/1.1 server on real sockets that replays what a chat server sends.

The server runs its own asyncio loop in a background thread, so it works with any client
(sync httpx, or an async client on pytest-asyncio's function-scoped loop) and never shares
a loop with the code under test. It is deliberately small: request line, headers, a body
by Content-Length (or chunked), keep-alive, and replies that are either a fixed body or a
list of parts written one by one (SSE streaming) with optional pauses and an abrupt close.

What to answer is decided by a `handler(request) -> Reply` callable; see conftest.py for
the dialect-driven handler the tests use.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

Transfer = Literal["chunked", "close", "length"]

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass(frozen=True)
class Pause:
    """A part that makes the server wait before writing the next part."""

    seconds: float


@dataclass(frozen=True)
class Abort:
    """A part that closes the connection at once, without finishing the HTTP message."""


Part = bytes | Pause | Abort


@dataclass
class Reply:
    """One HTTP response.

    `parts` are written in order; bytes parts are flushed one by one (each becomes one
    HTTP chunk with transfer "chunked"). transfer:
      - "length": Content-Length framing (a normal JSON response),
      - "chunked": Transfer-Encoding: chunked (uvicorn, hyper, Go net/http streaming),
      - "close": no length, the body ends when the server closes the connection.
    `chunk_delay` is slept before every bytes part after the first.
    `declared_length` overrides Content-Length (to announce more bytes than are sent).
    """

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    parts: list[Part] = field(default_factory=list)
    transfer: Transfer = "length"
    chunk_delay: float = 0.0
    declared_length: int | None = None

    @classmethod
    def json(cls, body: Any, status: int = 200, headers: Sequence[tuple[str, str]] = ()) -> Reply:
        data = json.dumps(body).encode()
        return cls(
            status=status,
            headers=[("content-type", "application/json"), *headers],
            parts=[data],
        )

    @classmethod
    def text(
        cls,
        body: str,
        status: int = 200,
        headers: Sequence[tuple[str, str]] = (),
        content_type: str = "text/plain; charset=utf-8",
    ) -> Reply:
        return cls(
            status=status, headers=[("content-type", content_type), *headers], parts=[body.encode()]
        )

    @property
    def body_bytes(self) -> bytes:
        return b"".join(p for p in self.parts if isinstance(p, bytes))


@dataclass
class RecordedRequest:
    """What the server saw: one entry per HTTP request, in arrival order."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    raw_body: bytes
    body: Any  # parsed JSON, or None when the body is empty or not JSON
    connection: int  # serial number of the TCP connection that carried it

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


Handler = Callable[[RecordedRequest], Reply]


class _BadRequest(Exception):
    pass


class ReplicaServer:
    """HTTP server on 127.0.0.1 (free port) in a thread with its own asyncio loop."""

    def __init__(self, handler: Handler, host: str = "127.0.0.1") -> None:
        self._handler = handler
        self._host = host
        self.port = 0
        self.requests: list[RecordedRequest] = []
        self.connections_opened = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()
        self._stop_event: asyncio.Event | None = None
        self._startup_error: BaseException | None = None

    # ----------------------------------------------------------------- lifecycle
    @property
    def origin(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> ReplicaServer:
        if self._thread is not None:
            raise RuntimeError("server already started")
        self._thread = threading.Thread(target=self._run, name="replica-server", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._startup_error is not None:
            raise RuntimeError("replica server failed to start") from self._startup_error
        if not self._ready.is_set():
            raise RuntimeError("replica server did not start in time")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if thread.is_alive() and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop closed in between
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout)
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError("replica server thread did not stop")

    def __enter__(self) -> ReplicaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._stop_event = asyncio.Event()
        try:
            self._server = loop.run_until_complete(
                asyncio.start_server(self._serve_connection, self._host, 0, limit=2**20)
            )
            self.port = self._server.sockets[0].getsockname()[1]
        except BaseException as exc:
            self._startup_error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_until_complete(self._stop_event.wait())
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        assert self._stop_event is not None
        self._stop_event.set()

    # ----------------------------------------------------------------- serving
    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        with self._lock:
            self.connections_opened += 1
            conn_no = self.connections_opened
        try:
            while True:
                try:
                    request = await self._read_request(reader, conn_no)
                except _BadRequest:
                    await self._write_reply(writer, Reply.text("bad request", status=400), False)
                    break
                if request is None:
                    break
                with self._lock:
                    self.requests.append(request)
                try:
                    reply = self._handler(request)
                except Exception as exc:  # a bug in a handler: make it visible to the client
                    reply = Reply.text(f"replica handler error: {exc!r}", status=500)
                wants_close = request.header("connection") == "close"
                keep = await self._write_reply(writer, reply, not wants_close)
                if not keep:
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._tasks.discard(task)

    async def _read_request(
        self, reader: asyncio.StreamReader, conn_no: int
    ) -> RecordedRequest | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                raise _BadRequest from exc
            return None  # client closed an idle keep-alive connection
        except asyncio.LimitOverrunError as exc:
            raise _BadRequest from exc
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, _version = lines[0].split(" ", 2)
        except ValueError as exc:
            raise _BadRequest from exc
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            raw = await self._read_chunked(reader)
        else:
            length = int(headers.get("content-length", "0") or 0)
            raw = await reader.readexactly(length) if length else b""
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        split = urlsplit(target)
        return RecordedRequest(
            method=method.upper(),
            path=split.path,
            query=parse_qs(split.query),
            headers=headers,
            raw_body=raw,
            body=body,
            connection=conn_no,
        )

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
        out = bytearray()
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                # trailers, up to the blank line
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return bytes(out)
            out += await reader.readexactly(size)
            await reader.readexactly(2)

    async def _write_reply(self, writer: asyncio.StreamWriter, reply: Reply, keep: bool) -> bool:
        """Write one response; return whether the connection may carry another."""
        transfer = reply.transfer
        keep = keep and transfer != "close"
        head = [f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Status')}"]
        names = {n.lower() for n, _ in reply.headers}
        head += [f"{n}: {v}" for n, v in reply.headers]
        if "date" not in names:
            head.append("date: Thu, 01 Jan 2026 00:00:00 GMT")
        if transfer == "length":
            length = reply.declared_length
            head.append(f"content-length: {len(reply.body_bytes) if length is None else length}")
        elif transfer == "chunked":
            head.append("transfer-encoding: chunked")
        head.append("connection: keep-alive" if keep else "connection: close")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        await writer.drain()

        sent_any = False
        for part in reply.parts:
            if isinstance(part, Pause):
                await asyncio.sleep(part.seconds)
                continue
            if isinstance(part, Abort):
                await writer.drain()
                writer.close()  # FIN after the bytes already written; no chunk terminator
                return False
            if not part:
                continue
            if sent_any and reply.chunk_delay:
                await asyncio.sleep(reply.chunk_delay)
            sent_any = True
            if transfer == "chunked":
                writer.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            else:
                writer.write(part)
            await writer.drain()
        if transfer == "chunked":
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        if reply.declared_length is not None and reply.declared_length != len(reply.body_bytes):
            return False  # the body is short of what was announced: the connection must go
        return keep


def sse_data(payload: Any) -> bytes:
    """One SSE event carrying JSON (or a raw string such as "[DONE]")."""
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return f"data: {text}\n\n".encode()
