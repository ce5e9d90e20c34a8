"""Several real llama-servers behind LiteLLM's router, as one model group.

``router_config`` is the proxy config of the README's "More than one server" recipe: every
llama-server is a deployment of the model group ``tiny-llama``, picked at random per request
(simple-shuffle). A deployment that fails once sits out ``COOLDOWN_TIME`` seconds, and the
router resends a request that failed before any answer to a deployment picked again, at once
(up to ``ROUTER_RETRIES`` times). Each deployment declares an ``rpm`` budget, so the proxy
also reports the group's remaining requests (``x-ratelimit-*`` headers).

Requests are counted where they are served: each llama-server logs one ``launch_slot_`` line
per generation it starts and one ``stop processing`` line per generation it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from .litellm_proxy import LITELLM_MASTER_KEY, LITELLM_MODEL, LiteLLMProxy
from .servers import LlamaServer

ROUTER_RETRIES = 2
COOLDOWN_TIME = 1  # seconds; also the Retry-After of "all deployments are cooling down"
DEPLOYMENT_RPM = 6000
STARTED = "launch_slot_"
FINISHED = "stop processing"


def deployment_id(index: int) -> str:
    return f"llama-{index}"


def router_config(
    api_bases: Sequence[str], *, master_key: str = LITELLM_MASTER_KEY
) -> dict[str, Any]:
    """One model group, one deployment per api_base, with retries and cooldowns on."""
    return {
        "model_list": [
            {
                "model_name": LITELLM_MODEL,
                "litellm_params": {
                    "model": f"openai/{LITELLM_MODEL}",
                    "api_base": api_base,
                    "api_key": "sk-upstream-unused",
                    "rpm": DEPLOYMENT_RPM,
                },
                "model_info": {"id": deployment_id(index)},
            }
            for index, api_base in enumerate(api_bases)
        ],
        "router_settings": {
            "routing_strategy": "simple-shuffle",
            "num_retries": ROUTER_RETRIES,
            "allowed_fails": 0,
            "cooldown_time": COOLDOWN_TIME,
            "timeout": 60,
        },
        # llama-server closes the connection after each streamed reply; LiteLLM's default
        # aiohttp transport sometimes reuses such a connection, fails, and benches a healthy
        # deployment. The httpx transport checks a pooled connection before reusing it.
        "litellm_settings": {"disable_aiohttp_transport": True},
        "general_settings": {"master_key": master_key},
    }


class LiteLLMRouter(LiteLLMProxy):
    """The LiteLLM proxy with ``router_config`` over the given llama-servers."""

    label = "litellm-router"

    def __init__(self, venv: Path, api_bases: Sequence[str], *, log_dir: Path) -> None:
        super().__init__(venv, api_bases[0], log_dir=log_dir)
        self.api_bases = tuple(api_bases)

    def config(self) -> dict[str, Any]:
        return router_config(self.api_bases, master_key=self.master_key)


def start_together(servers: Sequence[LlamaServer]) -> None:
    """Start the servers in parallel; if one fails, stop them all and raise its error."""
    with ThreadPoolExecutor(max_workers=len(servers)) as pool:
        futures = [pool.submit(server.start) for server in servers]
        errors = [f.exception() for f in futures]
    failed = next((e for e in errors if e is not None), None)
    if failed is not None:
        for server in servers:
            server.stop()
        raise failed


def restart_on_same_port(server: LlamaServer) -> None:
    """Start a stopped server where the proxy's config expects it."""
    if server.running:
        return
    assert server.port is not None
    port = server.port
    with contextlib.suppress(Exception):
        server.stop()
    server._start_on(port)


def generations(server: LlamaServer) -> tuple[int, int]:
    """(started, finished) generations in the server's own log."""
    text = server.log_text()
    return text.count(STARTED), text.count(FINISHED)


async def wait_until_generating(server: LlamaServer, limit: float) -> bool:
    """Whether one of the server's slots is generating, waiting up to ``limit`` seconds."""
    deadline = time.monotonic() + limit
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                slots = (await client.get(server.root_url + "/slots")).json()
                if any(slot.get("is_processing") for slot in slots):
                    return True
            await asyncio.sleep(0.005)
    return False
