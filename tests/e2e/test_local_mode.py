"""The local mode for real: `chat --local` and `serve --local` as a user runs them.

The CLI runs as a subprocess in the project's environment (the dev group has the `local`
extra, so xllamacpp is there), with `--model-file` pointing at the SmolLM2-135M-Instruct
GGUF the e2e fixtures already cache: nothing is downloaded twice. The model's download path
is tested at the HTTP boundary in tests/test_local_model.py.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from amplifier_core.message_models import ChatRequest, Message

from amplifier_module_provider_chat_completions import mount

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
STARTED = re.compile(r"local server: (\S+) at (http://127\.0\.0\.1:\d+/v1) \(pid (\d+), ready in")
SERVING = re.compile(r"llama\.cpp server running (\S+) \(pid (\d+), ready in")
WAIT = 120.0  # generous bounds only: the machine may be busy with other work


def _default_sigint() -> None:
    # A process started in the background by a non-interactive shell (a CI runner, `cmd &`)
    # inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler: the
    # CLI under test must get Ctrl-C as a terminal would deliver it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


async def start_cli(*args: str, cache: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "amplifier_module_provider_chat_completions",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "XDG_CACHE_HOME": str(cache)},
        preexec_fn=_default_sigint,
    )


async def read_chunks(stream: asyncio.StreamReader) -> list[bytes]:
    """Everything on `stream`, as the separate reads it arrived in."""
    chunks: list[bytes] = []
    while chunk := await stream.read(4096):
        chunks.append(chunk)
    return chunks


async def read_line_matching(stream: asyncio.StreamReader, pattern: re.Pattern[str]) -> Any:
    seen: list[str] = []
    while line := (await asyncio.wait_for(stream.readline(), WAIT)).decode():
        seen.append(line)
        if found := pattern.search(line):
            return found
    pytest.fail(f"no line matching {pattern.pattern!r} in: {''.join(seen)!r}")


def assert_gone(pid: int, base_url: str) -> None:
    """The server process has exited and nothing answers on its port any more."""
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(httpx.ConnectError):
        httpx.get(base_url + "/models", timeout=5)


def server_logs(cache: Path) -> list[Path]:
    return sorted((cache / "amplifier-chat-completions" / "logs").glob("*.log"))


async def test_chat_local_streams_an_answer_then_stops_the_server(
    smollm2_model: Path, tmp_path: Path
) -> None:
    proc = await start_cli(
        "chat",
        "--local",
        "--model-file",
        str(smollm2_model),
        "--max-tokens",
        "48",
        "What is 2+2?",
        cache=tmp_path,
    )
    assert proc.stdout is not None and proc.stderr is not None
    chunks, err = await asyncio.wait_for(
        asyncio.gather(read_chunks(proc.stdout), proc.stderr.read()), WAIT
    )
    assert await proc.wait() == 0, err.decode()
    answer = b"".join(chunks).decode()
    assert re.search(r"\w", answer), answer
    assert len(chunks) > 1, "the reply arrived in one piece, not streamed"
    started = STARTED.search(err.decode())
    assert started, err.decode()
    assert started.group(1) == smollm2_model.stem
    assert_gone(int(started.group(3)), started.group(2))
    assert server_logs(tmp_path) == []  # a clean stop keeps no log


async def test_the_cached_packaged_model_runs_without_downloading(
    smollm2_model: Path, tmp_path: Path
) -> None:
    """With the packaged model already in the cache, `chat --local` needs no network."""
    cached = tmp_path / "amplifier-chat-completions" / "models" / smollm2_model.name
    cached.parent.mkdir(parents=True)
    cached.symlink_to(smollm2_model)
    proc = await start_cli("chat", "--local", "--max-tokens", "24", "What is 2+2?", cache=tmp_path)
    out, err = await asyncio.wait_for(proc.communicate(), WAIT)
    assert proc.returncode == 0, err.decode()
    assert re.search(r"\w", out.decode())
    started = STARTED.search(err.decode())
    assert started and started.group(1) == "SmolLM2-135M-Instruct", err.decode()
    assert "downloading" not in err.decode()


async def test_ctrl_c_during_chat_local_stops_the_server(
    smollm2_model: Path, tmp_path: Path
) -> None:
    proc = await start_cli(
        "chat",
        "--local",
        "--model-file",
        str(smollm2_model),
        "--max-tokens",
        "2000",
        "Write a very long story about a dragon who learns to bake bread.",
        cache=tmp_path,
    )
    assert proc.stdout is not None and proc.stderr is not None
    started = await read_line_matching(proc.stderr, STARTED)
    assert await asyncio.wait_for(proc.stdout.read(1), WAIT)  # the answer is streaming
    proc.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(proc.wait(), 30) == 130
    assert_gone(int(started.group(3)), started.group(2))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def read_banner(stream: asyncio.StreamReader) -> str:
    lines: list[str] = []
    while line := (await asyncio.wait_for(stream.readline(), WAIT)).decode():
        lines.append(line)
        if line.startswith("Ctrl-C stops the server."):
            break
    return "".join(lines)


def settings_in(banner: str) -> dict[str, Any]:
    yaml_text = banner.split("settings.yaml:\n", 1)[1].split("\n\nCtrl-C", 1)[0]
    return yaml.safe_load(yaml_text)


async def chat_through(config: dict[str, Any], coordinator: Any) -> str:
    cleanup = await mount(coordinator, config)
    assert cleanup is not None
    try:
        provider = coordinator.mounted["providers"]["chat-completions"]
        request = ChatRequest(
            messages=[Message(role="user", content="Say hello.")], max_output_tokens=16
        )
        return (await provider.complete(request)).text
    finally:
        await cleanup()


@pytest.mark.parametrize(
    ("fixed_port", "stop"),
    [(False, signal.SIGINT), (True, signal.SIGTERM)],
    ids=["free-port-ctrl-c", "given-port-sigterm"],
)
async def test_serve_local_prints_working_settings_and_stops_on_a_signal(
    smollm2_model: Path, tmp_path: Path, coordinator: Any, fixed_port: bool, stop: int
) -> None:
    port = free_port() if fixed_port else 0
    args = ["--port", str(port)] if fixed_port else []
    proc = await start_cli(
        "serve", "--local", "--model-file", str(smollm2_model), *args, cache=tmp_path
    )
    assert proc.stdout is not None and proc.stderr is not None
    banner = await read_banner(proc.stdout)
    serving = SERVING.search(banner)
    assert serving, banner
    base_url = re.search(r"^base_url: (\S+)$", banner, re.M).group(1)  # type: ignore[union-attr]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", base_url)
    assert (f"127.0.0.1:{port}/" in base_url) is fixed_port
    assert ("--port N keeps the same base_url" in banner) is not fixed_port

    [entry] = settings_in(banner)["providers"]
    assert entry == {
        "module": "provider-chat-completions",
        "source": f"git+{ROOT.as_uri()}",
        "config": {"base_url": base_url, "default_model": smollm2_model.stem},
    }
    # The printed config is what a session would mount: it answers.
    assert (await chat_through(entry["config"], coordinator)).strip()

    proc.send_signal(stop)
    assert await asyncio.wait_for(proc.wait(), 30) == 0
    err = (await proc.stderr.read()).decode()
    assert err == "stopping the local server\n"
    assert_gone(int(serving.group(2)), base_url)
