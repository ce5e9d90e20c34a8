"""Importing and mounting the package loads no HTTP stack: the host pays for it only when
the provider first talks to its server. Checked in a fresh interpreter, whose sys.modules
says exactly what was loaded."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

# The openai SDK, the HTTP clients it and we use, and the JSON repair library.
HEAVY = ("openai", "httpx", "httpx2", "json_repair")

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, socket, sys

    HEAVY = {heavy!r}


    def loaded():
        return sorted(name for name in HEAVY if name in sys.modules)


    import amplifier_module_provider_chat_completions as package
    from amplifier_core.message_models import ChatRequest, Message

    seen = {{"import": loaded()}}


    class Coordinator:
        hooks = None

        def __init__(self):
            self.providers = {{}}

        async def mount(self, mount_point, provider, name=None):
            self.providers[name] = provider


    def closed_port():
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]


    async def main():
        coordinator = Coordinator()
        config = {{"base_url": f"http://127.0.0.1:{{closed_port()}}/v1", "max_retries": 0}}
        close = await package.mount(coordinator, config)
        seen["mount"] = loaded()
        (provider,) = coordinator.providers.values()
        request = ChatRequest(messages=[Message(role="user", content="hi")])
        try:
            await provider.complete(request)
        except Exception as exc:
            seen["error"] = type(exc).__name__
        seen["request"] = loaded()
        await close()


    asyncio.run(main())
    print(json.dumps(seen))
    """
).format(heavy=HEAVY)


def test_import_and_mount_load_no_http_stack_the_first_request_does() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["import"] == [], f"importing the package loaded {seen['import']}"
    assert seen["mount"] == [], f"mounting the provider loaded {seen['mount']}"
    # The first request loads the SDK, and its failure is still classified (errors.py
    # finds the HTTP libraries' exception types once they are loaded).
    assert {"openai", "httpx"} <= set(seen["request"]), seen
    assert seen["error"] == "NetworkError", seen
