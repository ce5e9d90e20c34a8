"""HTTP I/O: the openai SDK over our own httpx client, raw bytes in and out.

The SDK gives us auth, default headers and status-code errors; we skip its typed
request/response models, which cost ~20x the CPU of reading the JSON ourselves
(measured with openai 3.54: 84 vs 4 microseconds per streamed chunk, 137 vs 17 ms
to send a 2 MB history).
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .config import NO_API_KEY, ProviderConfig

if TYPE_CHECKING:
    import httpx


class Transport:
    """One HTTP client per provider instance, shared by concurrent calls."""

    def __init__(self, cfg: ProviderConfig) -> None:
        # The SDK and httpx load here, with the first request, not with the package: they
        # are most of its import time, and a mounted provider may never send.
        import httpx
        import openai
        from openai._constants import RAW_RESPONSE_HEADER

        from .http_client import build_http_client

        self._http = build_http_client(cfg)
        self._sdk = openai.AsyncOpenAI(
            base_url=cfg.base_url,
            api_key=cfg.api_key or NO_API_KEY,
            max_retries=0,  # retries belong to amplifier-core's retry_with_backoff
            timeout=httpx.Timeout(cfg.timeout),
            default_headers=dict(cfg.headers) or None,
            http_client=self._http,
        )
        # Ask the SDK for the unread httpx.Response instead of a parsed model.
        self._raw = {RAW_RESPONSE_HEADER: "stream"}
        self._raw_json = {**self._raw, "Content-Type": "application/json"}
        self.closed = False

    @asynccontextmanager
    async def post_stream(self, path: str, content: bytes) -> AsyncIterator[httpx.Response]:
        """POST and yield the response with its body unread; always closes it."""
        import httpx

        response: httpx.Response = await self._sdk.post(
            path, cast_to=httpx.Response, content=content, options={"headers": self._raw_json}
        )
        try:
            yield response
        finally:
            await response.aclose()

    async def get(self, path: str, *, timeout: float | None = None) -> httpx.Response:
        """GET a path under base_url (or an absolute URL) with the body read.

        Non-2xx statuses raise the SDK's APIStatusError, like POST.
        """
        import httpx

        options: dict[str, Any] = {"headers": self._raw}
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
