"""Our httpx client: timeouts, pool limits, TLS, and a resend on dead keep-alive sockets.

transport.py imports this when the first Transport is built, so httpx loads with the first
request, not with the package.
"""

from __future__ import annotations

import os
import ssl
from typing import Any

import httpx

from .config import ProviderConfig


def build_http_client(cfg: ProviderConfig) -> httpx.AsyncClient:
    # `timeout` bounds every wait for the server (connect, first byte, and the gap
    # between stream chunks), never the length of a live generation.
    timeout = httpx.Timeout(cfg.timeout)
    limits = httpx.Limits(
        max_connections=cfg.max_connections,
        max_keepalive_connections=min(cfg.max_connections, 20),
    )
    verify = _verify(cfg.verify)
    inner = httpx.AsyncHTTPTransport(verify=verify, limits=limits)
    # verify and limits also go to the client: httpx builds the transports for proxies
    # from the environment (HTTPS_PROXY, ...) with them.
    return httpx.AsyncClient(
        timeout=timeout, verify=verify, limits=limits, transport=StaleConnectionResend(inner)
    )


# Failures that mean "the pooled connection was already dead", when nothing came back.
_STALE_ERRORS = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


class StaleConnectionResend(httpx.AsyncBaseTransport):
    """Resend once, at once, when a reused keep-alive connection turns out to be closed.

    llama-server closes the connection after each streamed response without saying
    `Connection: close`; a request written on that pooled socket before the close is seen
    fails with "Server disconnected without sending a response". The server never read it,
    so sending it again on a fresh connection is safe and is not a retry (no backoff, no
    provider:retry). Only a reused connection qualifies (httpcore's trace tells us no new
    connection was opened); a fresh connection failing is a real fault for the retry policy.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        opened: list[bool] = []
        outer_trace = request.extensions.get("trace")

        async def trace(event: str, info: dict[str, Any]) -> None:
            if event.startswith("connection.connect_tcp.started"):
                opened.append(True)
            if outer_trace is not None:
                await outer_trace(event, info)

        request.extensions = {**request.extensions, "trace": trace}
        try:
            return await self._inner.handle_async_request(request)
        except _STALE_ERRORS:
            if opened or not isinstance(request.stream, httpx.ByteStream):
                raise
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def _verify(verify: bool | str) -> bool | ssl.SSLContext:
    """A CA bundle path becomes an SSLContext (httpx deprecates `verify=<str>`)."""
    if isinstance(verify, bool):
        return verify
    if os.path.isdir(verify):
        return ssl.create_default_context(capath=verify)
    return ssl.create_default_context(cafile=verify)
