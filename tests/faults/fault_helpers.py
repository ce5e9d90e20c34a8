"""Shared helpers for the tests in tests/faults (kept out of conftest so tests can import them)."""

from __future__ import annotations

import asyncio
from typing import Any

from faulty_server import FaultyServer

from amplifier_module_provider_chat_completions import ChatCompletionsProvider

# Fast retries, no detection probe and no window lookup (each would add a GET /models to
# the request counts).
FAST: dict[str, Any] = {
    "min_retry_delay": 0.01,
    "max_retry_delay": 0.05,
    "server": "openai",
    "context_window": 32768,
    "max_retries": 0,
}


def make_provider(url: str, coordinator: Any = None, **config: Any) -> ChatCompletionsProvider:
    return ChatCompletionsProvider(
        config={"base_url": url, **FAST, **config}, coordinator=coordinator
    )


class LeakCheck:
    """Remembers the tasks alive when created (inside the test); `finish()` closes the
    provider and asserts that no task and no server-side connection outlives it."""

    def __init__(self) -> None:
        self.before = asyncio.all_tasks()

    async def finish(self, provider: ChatCompletionsProvider, server: FaultyServer | None) -> None:
        await provider.close()
        if server is not None:
            assert await server.wait_all_closed(1.0), f"connections left open: {server.conns}"
        for _ in range(3):
            await asyncio.sleep(0)
        current = asyncio.current_task()
        extra = [t for t in asyncio.all_tasks() - self.before if t is not current and not t.done()]
        assert not extra, f"tasks left behind: {extra}"
