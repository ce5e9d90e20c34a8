"""The kernel's own structural check, and the README's main command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.parametrize("stream", [True, False])
def test_chat_against_unreachable_server_prints_one_clear_line(stream):
    args = [sys.executable, "-m", PACKAGE.name, "chat", "--base-url", "http://127.0.0.1:9/v1"]
    if not stream:
        args.append("--no-stream")
    result = run(*args, "--max-retries", "0", "hello")
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:") and "Traceback" not in result.stderr


def test_chat_without_url_says_how_to_fix():
    result = run(sys.executable, "-m", PACKAGE.name, "chat", "hello")
    assert result.returncode == 2
    assert "CHAT_COMPLETIONS_BASE_URL" in result.stderr
