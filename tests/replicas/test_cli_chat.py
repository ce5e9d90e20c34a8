"""The README's main command against a local server: the reply streams to stdout, progress
and errors go to stderr, each error as exactly one line."""

from __future__ import annotations

import asyncio
import re
import sys

import pytest


async def run_chat(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    # The replica runs in this process's threads, so the CLI must run concurrently.
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "amplifier_module_provider_chat_completions",
        "chat",
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), timeout=60)
    return proc.returncode or 0, out.decode(), err.decode()


@pytest.mark.parametrize("flags", [[], ["--no-stream"]], ids=["stream", "json"])
async def test_chat_prints_the_reply(replica, flags):
    server = replica("llamacpp", "text")
    code, out, err = await run_chat("--base-url", server.base_url, *flags, "Say hello")
    assert code == 0, err
    assert out == "Hello world\n"
    assert err == ""
    assert server.chat_requests[0].body["messages"] == [{"role": "user", "content": "Say hello"}]


async def test_options_shape_the_request(replica):
    server = replica("llamacpp", "text")
    code, _out, err = await run_chat(
        "--base-url",
        server.base_url,
        "--temperature",
        "0.2",
        "--max-tokens",
        "33",
        "--model",
        "m-1",
        "hi",
    )
    assert code == 0, err
    body = server.chat_requests[0].body
    assert (body["temperature"], body["max_tokens"], body["model"]) == (0.2, 33, "m-1")


async def test_a_dash_reads_the_prompt_from_stdin(replica):
    server = replica("llamacpp", "text")
    code, out, err = await run_chat(
        "--base-url", server.base_url, "-", stdin=b"What is 2+2?\nAnswer briefly.\n"
    )
    assert code == 0, err
    assert out == "Hello world\n"
    [sent] = server.chat_requests[0].body["messages"]
    assert sent == {"role": "user", "content": "What is 2+2?\nAnswer briefly."}


async def test_a_dash_with_nothing_on_stdin_is_one_line(replica):
    server = replica("llamacpp", "text")
    code, out, err = await run_chat("--base-url", server.base_url, "-", stdin=b"  \n")
    assert code == 2
    assert err == "error: no prompt on standard input (`chat -` reads it from there)\n"
    assert out == "" and server.chat_requests == []


async def test_chat_with_wrong_key_prints_one_line(replica):
    server = replica("vllm", "text", api_key="right-key-123")
    wrong = "sk-wrong-0123456789"
    code, out, err = await run_chat("--base-url", server.base_url, "--api-key", wrong, "hi")
    assert code == 1
    assert err.startswith("error: ") and err.count("\n") == 1, repr(err)
    assert "api_key" in err and wrong not in err
    assert out == ""


RETRY = re.compile(r"^retrying in \d+\.\d s, attempt (\d) of (\d): (.+)$")


async def test_retries_are_shown_and_default_to_the_config_default(replica):
    """Two overloaded answers, then the reply: without --max-retries the provider's own
    default (3) applies, and each retry says when, which attempt, and why."""
    server = replica("vllm", "text")
    server.queue("overloaded", "overloaded")
    code, out, err = await run_chat("--base-url", server.base_url, "hi")
    assert code == 0, err
    assert out == "Hello world\n"
    lines = err.splitlines()
    assert len(lines) == 2, err
    found = [RETRY.match(line) for line in lines]
    assert all(found), err
    assert [(m.group(1), m.group(2)) for m in found if m] == [("2", "4"), ("3", "4")]
    assert len(server.chat_requests) == 3
