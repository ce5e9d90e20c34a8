"""A loopback proxy that makes the tiny scripted model call tools in a real host session.

The scripted model calls a tool only under `tool_choice: "required"`, and Amplifier's
orchestrators never send tool_choice. This proxy sits between the provider and a real
llama.cpp server and sets tool_choice "required" on a chat request that offers tools
while the conversation holds fewer than `rounds` tool results since the last user message;
after that, requests pass unchanged and the model answers in text. Everything else (GET
/v1/models, /props, streamed bodies) is relayed as it comes.
"""

from __future__ import annotations

import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

_HOP_HEADERS = frozenset({"connection", "transfer-encoding", "keep-alive", "content-length"})


def force_tools(body: dict[str, Any], rounds: int) -> bool:
    """Set tool_choice "required" on `body` when the next round should call a tool."""
    if not body.get("tools"):
        return False
    messages = body.get("messages") or []
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    results = sum(1 for m in messages[last_user + 1 :] if m.get("role") == "tool")
    if results >= rounds:
        return False
    body["tool_choice"] = "required"
    return True


class ToolForcingProxy:
    """`with ToolForcingProxy(upstream_root, rounds=2) as proxy: proxy.base_url`."""

    def __init__(self, upstream: str, rounds: int = 2) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rounds = rounds
        self.forced = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> ToolForcingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                proxy._relay(self, b"")

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.path.endswith("/chat/completions"):
                    body = json.loads(raw)
                    if force_tools(body, proxy.rounds):
                        proxy.forced += 1
                    raw = json.dumps(body).encode()
                proxy._relay(self, raw)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def _relay(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        conn = http.client.HTTPConnection(*self.upstream, timeout=300)
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP_HEADERS}
        if body:
            headers["Content-Length"] = str(len(body))
        conn.request(handler.command, handler.path, body=body or None, headers=headers)
        response = conn.getresponse()
        handler.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in _HOP_HEADERS:
                handler.send_header(name, value)
        handler.send_header("Connection", "close")
        handler.end_headers()
        while chunk := response.read1(65536):
            handler.wfile.write(chunk)
            handler.wfile.flush()
        conn.close()
        handler.close_connection = True
