"""The provider inside the real Amplifier host (opt-in).

Runs only when CHAT_COMPLETIONS_HOST_PYTHON names a Python whose environment holds
amplifier-core, the orchestrators loop-streaming and loop-basic, context-simple and this
package (installed from this checkout). The host modules are public repositories, not on
PyPI; install them yourself, outside this repository (see the README's "Use it from
Amplifier"). Each run is one real session against a real llama-server: two tool rounds,
then a final answer.

The scripted tiny model calls a tool only under tool_choice "required", which the
orchestrators never send: tests/e2e/tool_forcing_proxy.py adds it for the first two rounds.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .servers import LlamaServer
from .tool_forcing_proxy import ToolForcingProxy

HOST_PYTHON_ENV = "CHAT_COMPLETIONS_HOST_PYTHON"
SCRIPT = Path(__file__).with_name("host_session.py")
REPO = Path(__file__).resolve().parents[2]


def _host_python() -> str:
    python = os.environ.get(HOST_PYTHON_ENV, "").strip()
    if not python:
        pytest.skip(f"{HOST_PYTHON_ENV} is not set (a Python with the real host installed)")
    check = subprocess.run(
        [python, "-c", "import amplifier_module_provider_chat_completions as m; print(m.__file__)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check.returncode != 0 or not check.stdout.strip().startswith(str(REPO)):
        pytest.fail(
            f"{HOST_PYTHON_ENV}={python} must have this checkout installed "
            f"(uv pip install -e {REPO}); it has: {check.stdout.strip() or check.stderr[-300:]}"
        )
    return python


def _session(python: str, orchestrator: str, base_url: str) -> dict[str, Any]:
    prompt = "What is the weather in Paris?"
    result = subprocess.run(
        [python, str(SCRIPT), "--orchestrator", orchestrator, "--base-url", base_url, prompt],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def host_llama(llama_artifacts: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    # One slot with the model's whole 4096-token window: with 2048 (the shared fixture's
    # per-slot size) context-simple's fixed reserves leave ~100 tokens and it compacts the
    # tool results away every turn.
    _host_python()
    log_dir = tmp_path_factory.mktemp("llama-host")
    server = LlamaServer(
        llama_artifacts.server_command, llama_artifacts.model, parallel=1, log_dir=log_dir
    )
    with server:
        yield server


@pytest.mark.parametrize("orchestrator", ["loop-streaming", "loop-basic"])
def test_a_real_session_with_two_tool_rounds(orchestrator: str, host_llama: LlamaServer) -> None:
    python = _host_python()
    with ToolForcingProxy(host_llama.root_url, rounds=2) as proxy:
        report = _session(python, orchestrator, proxy.base_url)
    assert report["error"] is None, report["error"]
    assert report["warnings"] == []
    assert len(report["tool_calls"]) == 2
    events = report["events"]
    requests = [e for e in events if e["event"] == "llm:request"]
    responses = [e for e in events if e["event"] == "llm:response"]
    assert len(requests) == len(responses) == 3  # two tool rounds, then the answer
    assert all(r["status"] == "ok" and r["usage"]["input_tokens"] > 0 for r in responses)
    deltas = {e["request_id"] for e in events if e["event"] == "llm:stream_block_delta"}
    assert deltas == {r["request_id"] for r in requests}  # live deltas on every call
    assert report["answer"]
    # context-simple read the real window synchronously (not its 200,000 fallback).
    assert any("Budget from provider model info" in line for line in report["budget"])
    assert not any("200,000" in line for line in report["budget"])
