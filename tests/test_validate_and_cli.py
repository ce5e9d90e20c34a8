"""The kernel's own structural check, and the README's main command."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from amplifier_module_provider_chat_completions.cli.main import _parser

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "amplifier_module_provider_chat_completions"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}
    )


def test_amplifier_core_validate_provider_passes():
    exe = shutil.which("amplifier-core", path=str(Path(sys.executable).parent))
    assert exe, "amplifier-core console script missing from the venv"
    result = run(
        exe,
        "validate",
        "provider",
        str(PACKAGE),
        env={"CHAT_COMPLETIONS_BASE_URL": "http://127.0.0.1:9/v1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_chat_without_url_says_how_to_fix():
    result = run(sys.executable, "-m", PACKAGE.name, "chat", "hello")
    assert result.returncode == 2
    assert "CHAT_COMPLETIONS_BASE_URL" in result.stderr and "--local" in result.stderr
    assert result.stderr.count("\n") == 1


def free_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"  # nothing listens there any more


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run(sys.executable, "-m", PACKAGE.name, *args)


@pytest.mark.parametrize("stream", [True, False])
def test_an_unreachable_server_is_exactly_one_line_naming_the_url(stream):
    url = free_port_url()
    result = cli(
        "chat",
        "--base-url",
        url,
        "--max-retries",
        "0",
        "hello",
        *([] if stream else ["--no-stream"]),
    )
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: could not connect to {url}/chat/completions")
    assert result.stderr.count("\n") == 1, repr(result.stderr)
    assert result.stdout == ""


def test_a_bad_url_is_exactly_one_line():
    result = cli("chat", "--base-url", "localhost:8080/v1", "hello")
    assert result.returncode == 2
    assert result.stderr.startswith("error: invalid provider config base_url")
    assert result.stderr.count("\n") == 1, repr(result.stderr)


def test_each_retry_is_one_line_before_the_error():
    url = free_port_url()
    result = cli("chat", "--base-url", url, "--max-retries", "1", "hello")
    assert result.returncode == 1
    retry, error = result.stderr.splitlines()
    assert re.fullmatch(
        rf"retrying in \d+\.\d s, attempt 2 of 2: could not connect to {re.escape(url)}/.+", retry
    )
    assert error.startswith(f"error: could not connect to {url}")


def test_the_usage_line_names_the_installed_command():
    script = shutil.which("amplifier-chat-completions", path=str(Path(sys.executable).parent))
    assert script, "the console script is missing from the venv"
    assert re.match(r"usage: amplifier-chat-completions chat\s", run(script, "chat", "-h").stdout)
    as_module = cli("chat", "--help").stdout
    assert re.match(rf"usage: python -m {PACKAGE.name} chat\s", as_module)


def test_every_option_has_help_text():
    parser = _parser()
    [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(commands.choices) == {"chat", "serve", "doctor"}
    for name, sub in commands.choices.items():
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
