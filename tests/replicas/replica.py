"""A running replica: the HTTP server (server.py) answering as one dialect (dialects.py)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from typing import Any

from .dialects import (
    DIALECTS,
    ERROR_SCENARIOS,
    SCENARIOS,
    Comment,
    Dialect,
    Done,
    Drop,
    ErrorReply,
    StreamItem,
    Wait,
    json_body,
    stream_events,
)
from .server import Abort, Part, Pause, RecordedRequest, ReplicaServer, Reply, Transfer

CHAT_PATH = "/v1/chat/completions"


def encode_stream(items: Iterable[StreamItem]) -> list[Part]:
    """SSE bytes, one part per event, as the dialect's server writes them."""
    parts: list[Part] = []
    for item in items:
        if isinstance(item, dict):
            parts.append(f"data: {json.dumps(item)}\n\n".encode())
        elif isinstance(item, Comment):
            parts.append(f":{item.text}\n\n".encode())
        elif isinstance(item, Done):
            parts.append(b"data: [DONE]\n\n")
        elif isinstance(item, Wait):
            parts.append(Pause(item.seconds))
        elif isinstance(item, Drop):
            parts.append(Abort())
    return parts


def error_reply(err: ErrorReply, server_headers: list[tuple[str, str]]) -> Reply:
    headers = [*server_headers, *err.headers]
    if isinstance(err.body, str):
        return Reply.text(err.body, status=err.status, headers=headers)
    return Reply.json(err.body, status=err.status, headers=headers)


class Replica:
    """One dialect served on 127.0.0.1. Thread-safe setters; read `.requests` after calls.

    - base_url: "http://127.0.0.1:P/v1"
    - requests: every request seen (RecordedRequest: method, path, headers, body, ...)
    - chat_requests: only POST /v1/chat/completions
    - set_scenario(name): answer for every following chat request
    - queue(*names): one-shot scenarios used first, in order (e.g. "overloaded", "text")
    - chunk_delay / transfer / strict / api_key: see __init__
    """

    def __init__(
        self,
        dialect: Dialect | str,
        scenario: str = "text",
        *,
        api_key: str | None = None,
        strict: bool = True,
        chunk_delay: float = 0.0,
        transfer: Transfer = "chunked",
    ) -> None:
        self.dialect = DIALECTS[dialect] if isinstance(dialect, str) else dialect
        self._check(scenario)
        self.scenario = scenario
        self.api_key = api_key  # when set, requests must authenticate (dialect's 401/403)
        self.strict = strict  # apply the dialect's request validators (real 4xx/5xx)
        self.chunk_delay = chunk_delay  # seconds between streamed events
        self.transfer: Transfer = transfer  # "chunked" or "close" for streams
        self._queue: list[str | Reply] = []
        self._lock = threading.Lock()
        self._serial = 0
        self.server = ReplicaServer(self._handle)

    # ------------------------------------------------------------------ control
    def start(self) -> Replica:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> Replica:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"{self.server.origin}/v1"

    @property
    def origin(self) -> str:
        return self.server.origin

    @property
    def requests(self) -> list[RecordedRequest]:
        return list(self.server.requests)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path == CHAT_PATH]

    @property
    def last_body(self) -> Any:
        reqs = self.chat_requests
        return reqs[-1].body if reqs else None

    @property
    def connections_opened(self) -> int:
        return self.server.connections_opened

    def set_scenario(self, name: str) -> None:
        self._check(name)
        with self._lock:
            self.scenario = name

    def queue(self, *scenarios: str | Reply) -> None:
        """One-shot answers for the next chat requests (a name or a ready Reply)."""
        for s in scenarios:
            if isinstance(s, str):
                self._check(s)
        with self._lock:
            self._queue.extend(scenarios)

    def _check(self, name: str) -> None:
        if name not in SCENARIOS and name not in self.dialect.extra_scenarios:
            raise KeyError(f"unknown scenario {name!r} for {self.dialect.key}")

    # ------------------------------------------------------------------ answering
    @property
    def _server_headers(self) -> list[tuple[str, str]]:
        h = self.dialect.server_header
        return [("server", h)] if h else []

    def _authorized(self, req: RecordedRequest) -> bool:
        if self.api_key is None:
            return True
        schemes = self.dialect.auth_schemes
        if "bearer" in schemes and req.header("authorization") == f"Bearer {self.api_key}":
            return True
        return "x-api-key" in schemes and req.header("x-api-key") == self.api_key

    def _handle(self, req: RecordedRequest) -> Reply:
        d = self.dialect
        if not self._authorized(req):
            return error_reply(d.errors["unauthorized"], self._server_headers)
        route = f"{req.method} {req.path}"
        if route == f"POST {CHAT_PATH}":
            return self._chat(req)
        if route == "GET /v1/models":
            return Reply.json(d.models_body, headers=self._server_headers)
        if route in d.routes:
            value = d.routes[route]
            if isinstance(value, ErrorReply):
                return error_reply(value, self._server_headers)
            if isinstance(value, str):
                return Reply.text(value, headers=self._server_headers)
            return Reply.json(value, headers=self._server_headers)
        return Reply.json({"detail": "Not Found"}, status=404, headers=self._server_headers)

    def _chat(self, req: RecordedRequest) -> Reply:
        d = self.dialect
        body = req.body if isinstance(req.body, dict) else None
        if body is None:
            return Reply.json({"detail": "body is not a JSON object"}, status=422)
        with self._lock:
            self._serial += 1
            serial = self._serial
            choice: str | Reply = self._queue.pop(0) if self._queue else self.scenario
            delay, transfer = self.chunk_delay, self.transfer
        if isinstance(choice, Reply):
            return choice
        scenario = choice
        if self.strict:
            for validate in d.validators:
                err = validate(body)
                if err is not None:
                    return error_reply(err, self._server_headers)
        if scenario in ERROR_SCENARIOS:
            err = d.errors.get(scenario)
            if err is not None:
                return error_reply(err, self._server_headers)
            scenario = "text"  # e.g. Ollama: a context overflow is silently truncated
        if body.get("stream") is True:
            items = stream_events(d, scenario, body, serial)
            return Reply(
                status=200,
                headers=[
                    *self._server_headers,
                    ("content-type", "text/event-stream; charset=utf-8"),
                    ("cache-control", "no-cache"),
                ],
                parts=encode_stream(items),
                transfer=transfer,
                chunk_delay=delay,
            )
        status, headers, payload = json_body(d, scenario, body, serial)
        all_headers = [*self._server_headers, *headers]
        if payload is None:  # the body is cut short: announce more than is sent
            partial = json.dumps(json_body(d, "text", body, serial)[2]).encode()
            half = partial[: len(partial) // 2]
            return Reply(
                status=200,
                headers=[*all_headers, ("content-type", "application/json")],
                parts=[half, Abort()],
                declared_length=len(partial),
            )
        if isinstance(payload, str):
            return Reply.text(payload, status=status, headers=all_headers)
        return Reply.json(payload, status=status, headers=all_headers)
