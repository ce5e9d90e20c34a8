"""HTTP I/O: the openai SDK over our own httpx client, raw bytes in and out.

The SDK gives us auth, default headers and status-code errors; we skip its typed
request/response models, which cost ~20x the CPU of reading the JSON ourselves
(measured with openai 3.54: 84 vs 4 microseconds per streamed chunk, 137 vs 17 ms
to send a 2 MB history).
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
import openai
from openai._constants import RAW_RESPONSE_HEADER

from .config import NO_API_KEY, ProviderConfig

# Ask the SDK for the unread httpx.Response instead of a parsed model.
_RAW = {RAW_RESPONSE_HEADER: "stream", "Content-Type": "application/json"}


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


class Transport:
    """One HTTP client per provider instance, shared by concurrent calls."""

    def __init__(self, cfg: ProviderConfig) -> None:
        self._http = build_http_client(cfg)
        self._sdk = openai.AsyncOpenAI(
            base_url=cfg.base_url,
            api_key=cfg.api_key or NO_API_KEY,
            max_retries=0,  # retries belong to amplifier-core's retry_with_backoff
            timeout=httpx.Timeout(cfg.timeout),
            default_headers=dict(cfg.headers) or None,
            http_client=self._http,
        )
        self.closed = False

    @asynccontextmanager
    async def post_stream(self, path: str, content: bytes) -> AsyncIterator[httpx.Response]:
        """POST and yield the response with its body unread; always closes it."""
        response: httpx.Response = await self._sdk.post(
            path, cast_to=httpx.Response, content=content, options={"headers": _RAW}
        )
        try:
            yield response
        finally:
            await response.aclose()

    async def get(self, path: str, *, timeout: float | None = None) -> httpx.Response:
        """GET a path under base_url (or an absolute URL) with the body read.

        Non-2xx statuses raise the SDK's APIStatusError, like POST.
        """
        options: dict[str, Any] = {"headers": {RAW_RESPONSE_HEADER: "stream"}}
        if timeout is not None:
            options["timeout"] = httpx.Timeout(timeout)
        response: httpx.Response = await self._sdk.get(
            path, cast_to=httpx.Response, options=options
        )
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    def url(self, path: str) -> str:
        return str(self._sdk.base_url).rstrip("/") + "/" + path.lstrip("/")

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        await self._http.aclose()


def insecure_key_host(cfg: ProviderConfig) -> str | None:
    """The host name when the api_key would cross the network in clear text, else None.

    Plain http is fine on loopback (127.0.0.0/8, ::1, localhost): the key never leaves
    the machine. Anywhere else anyone on the path can read the Authorization header.
    """
    if not cfg.has_api_key or not cfg.base_url:
        return None
    try:
        parts = urlsplit(cfg.base_url)
        host = (parts.hostname or "").lower()
    except ValueError:
        return None
    if parts.scheme != "http" or host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass  # a DNS name: only "localhost" is known to stay local
    return host


def server_root(base_url: str) -> str:
    """The server's root URL: base_url without a trailing /v1 (for /health, /props)."""
    root = base_url.rstrip("/")
    return root[:-3] if root.endswith("/v1") else root


def response_headers(response: Any) -> dict[str, str]:
    try:
        return {k.lower(): v for k, v in response.headers.items()}
    except Exception:
        return {}
