"""One fresh interpreter's import cost, for run.py's `import` figure (run as a child).

    python -m benchmarks.importcost floor|provider PORT

Only the standard library is loaded before the clock starts, and the event loop is already
running (the host's is). floor: amplifier_core and the kernel modules every host loads,
then, timed apart, the openai SDK and httpx. provider: the same kernel modules, then this
package and mount() with a minimal coordinator; then two complete() calls against the
benchmark server, each timed, so the first request's extra cost shows. Prints one JSON
object.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
import time
from typing import Any

KERNEL = (
    "amplifier_core",
    "amplifier_core.llm_errors",
    "amplifier_core.message_models",
    "amplifier_core.models",
)
HTTP_STACK = ("openai", "httpx")


class NullHooks:
    async def emit(self, name: str, payload: dict[str, Any]) -> None:
        return None


class Coordinator:
    """What mount() uses of the host's coordinator."""

    def __init__(self) -> None:
        self.hooks = NullHooks()
        self.providers: dict[str | None, Any] = {}

    async def mount(self, mount_point: str, module: Any, name: str | None = None) -> None:
        self.providers[name] = module

    def register_contributor(self, channel: str, name: str, callback: Any) -> None:
        return None


def load(names: tuple[str, ...]) -> float:
    start = time.perf_counter()
    for name in names:
        importlib.import_module(name)
    return time.perf_counter() - start


async def floor() -> dict[str, Any]:
    return {"startup": load(KERNEL), "http_stack": load(HTTP_STACK)}


async def provider(port: int) -> dict[str, Any]:
    start = time.perf_counter()
    load(KERNEL)
    package = importlib.import_module("amplifier_module_provider_chat_completions")
    coordinator = Coordinator()
    config = {"base_url": f"http://127.0.0.1:{port}/text-100/v1", "default_model": "bench"}
    close = await package.mount(coordinator, config)
    startup = time.perf_counter() - start
    at_mount = [name for name in HTTP_STACK if name in sys.modules]

    from amplifier_core.message_models import ChatRequest, Message

    (mounted,) = coordinator.providers.values()
    request = ChatRequest(messages=[Message(role="user", content="Say something.")])
    requests = []
    for _ in range(2):
        start = time.perf_counter()
        await mounted.complete(request)
        requests.append(time.perf_counter() - start)
    await close()
    return {"startup": startup, "requests": requests, "loaded_at_mount": at_mount}


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    result = asyncio.run(floor() if kind == "floor" else provider(port))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
