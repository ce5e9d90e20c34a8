"""The README's main command against a local server: the reply streams to stdout."""

from __future__ import annotations

import asyncio
import sys

import pytest


async def run_chat(*args: str) -> tuple[int, str, str]:
    # The replica runs in this process's threads, so the CLI must run concurrently.
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "amplifier_module_provider_chat_completions",
        "chat",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode or 0, out.decode(), err.decode()


@pytest.mark.parametrize("flags", [[], ["--no-stream"]], ids=["stream", "json"])
async def test_chat_prints_the_reply(replica, flags):
    server = replica("llamacpp", "text")
    code, out, err = await run_chat("--base-url", server.base_url, *flags, "Say hello")
    assert code == 0, err
    assert out.strip() == "Hello world"
    assert server.chat_requests[0].body["messages"] == [{"role": "user", "content": "Say hello"}]


async def test_chat_with_wrong_key_prints_one_line(replica):
    server = replica("vllm", "text", api_key="right-key-123")
    code, _out, err = await run_chat("--base-url", server.base_url, "--api-key", "wrong", "hi")
    assert code == 1
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert "Traceback" not in err
