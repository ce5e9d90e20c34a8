"""The real Amazon Chat Completions Server (PyPI ``open-bedrock-server``) for the e2e tests.

Also home of ``ensure_venv``, which the LiteLLM suite shares: it installs a Python tool
into its OWN virtual environment under the e2e cache (beside the llama-server build), keyed
by name, version and Python version, so its pins never touch the project's environment. One
installer at a time (a file lock), a ``.complete`` marker written last, progress on the
terminal with a heartbeat, and a reproducible resolution (``uv pip install --exclude-newer``).
The server processes are ``servers.UvicornServer`` subclasses (start, probe, always stop).

``BedrockServer`` is the Amazon server itself: its console script ``bedrock-chat`` imports
``src.open_bedrock_server`` (the layout of its own repository), so it is run as
``python -m uvicorn src.open_bedrock_server.api.app:app`` with a ``src`` package shim on
``PYTHONPATH`` that points at the installed ``open_bedrock_server``. Model names without a
Bedrock prefix go to its OpenAI upstream (``OPENAI_BASE_URL``): here the real llama-server.

Warm the cache by hand with ``uv run python -m tests.e2e.bedrock``.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ._procs import Progress, ProgressStream, file_lock, run_logged
from .llama_build import cache_dir
from .servers import ServerStartError, UvicornServer, http_ok

OPEN_BEDROCK_SERVER_VERSION = "2.0.4"
# Resolve every install as PyPI looked on this day: the tools' own dependencies are
# unpinned ranges (open-bedrock-server asks for openai>=1.3.0), so without a cut-off a new
# upstream release could break the suite overnight. Bump deliberately.
EXCLUDE_NEWER = "2026-11-22T00:00:00Z"
# Who the Amazon server's clients are (it compares the Bearer token with API_KEY).
BEDROCK_API_KEY = "e2e-bedrock-key"


class InstallError(RuntimeError):
    """Installing a tool into its virtual environment failed."""


def e2e_cache_root() -> Path:
    """The e2e cache root (the llama-server build lives in a versioned folder of it)."""
    return cache_dir().parent


def _uv_output(line: str) -> str | None:
    """What of an installer's output line goes to the terminal."""
    text = line.strip()
    # uv's per-package "+ name==version" lines stay in the log only.
    if text and not text.startswith(("+ ", "- ", "~ ")):
        return text[:160]
    return None


def _run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    log: Path,
    progress: Progress,
    timeout: float,
    env: Mapping[str, str] | None = None,
) -> None:
    """Run ``cmd`` with its output appended to ``log``; echo it; a heartbeat while quiet."""
    run_logged(
        cmd,
        log=log,
        progress=progress,
        error=InstallError,
        echo=_uv_output,
        timeout=timeout,
        heartbeat=20.0,
        env=env,
    )


@dataclass(frozen=True)
class VenvSpec:
    """A tool installed into a virtual environment of its own."""

    name: str  # folder name, includes the pinned version
    requirements: tuple[str, ...]
    # Arguments for the venv's python that must succeed for the venv to count as usable.
    check: tuple[str, ...]
    expected: str = "under a minute"
    timeout: float = 1200.0
    extra_env: Mapping[str, str] = field(default_factory=dict)


def venv_dir(spec: VenvSpec) -> Path:
    py = f"py{sys.version_info.major}{sys.version_info.minor}"
    return e2e_cache_root() / "venvs" / f"{spec.name}-{py}"


def venv_bin(venv: Path, name: str) -> Path:
    return venv / "bin" / name


def _uv() -> str | None:
    # `uv run` exports UV (its own path); otherwise look on PATH.
    found = os.environ.get("UV")
    if found and Path(found).is_file():
        return found
    return shutil.which("uv")


def ensure_venv(spec: VenvSpec, progress_stream: ProgressStream | None = sys.stderr) -> Path:
    """The venv for ``spec``, installed when missing or incomplete; returns its folder."""
    venv = venv_dir(spec)
    marker = venv / ".complete"
    if marker.is_file():
        return venv
    progress = Progress(progress_stream, spec.name)
    lock = venv.with_name(venv.name + ".lock")
    with file_lock(lock, progress, f"another process holds {lock}; waiting for it to finish"):
        if marker.is_file():  # another process finished it while we waited
            return venv
        t0 = time.monotonic()
        logs = e2e_cache_root() / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log = logs / f"{spec.name}.log"
        log.write_text("")
        progress(f"installing {' '.join(spec.requirements)} into {venv} ({spec.expected})")
        shutil.rmtree(venv, ignore_errors=True)  # a half-finished earlier attempt
        python = venv_bin(venv, "python")
        env = {**os.environ, **spec.extra_env}
        # Never inherit the project's environment (uv run exports VIRTUAL_ENV).
        env.pop("VIRTUAL_ENV", None)
        env.pop("PYTHONPATH", None)
        uv = _uv()
        if uv:
            _run(
                [uv, "venv", "--python", sys.executable, venv],
                log=log,
                progress=progress,
                timeout=300,
                env=env,
            )
            _run(
                [
                    uv,
                    "pip",
                    "install",
                    "--python",
                    python,
                    "--exclude-newer",
                    EXCLUDE_NEWER,
                    *spec.requirements,
                ],
                log=log,
                progress=progress,
                timeout=spec.timeout,
                env=env,
            )
        else:  # pragma: no cover - the README's test command runs under uv
            _run(
                [sys.executable, "-m", "venv", venv],
                log=log,
                progress=progress,
                timeout=300,
                env=env,
            )
            _run(
                [python, "-m", "pip", "install", "--disable-pip-version-check", *spec.requirements],
                log=log,
                progress=progress,
                timeout=spec.timeout,
                env=env,
            )
        _run([python, *spec.check], log=log, progress=progress, timeout=300, env=env)
        marker.write_text(" ".join(spec.requirements) + "\n")
        progress(f"ready in {time.monotonic() - t0:.0f}s: {venv}")
    return venv


# -------------------------------------------------------------------- the Amazon server

BEDROCK_VENV = VenvSpec(
    name=f"open-bedrock-server-{OPEN_BEDROCK_SERVER_VERSION}",
    requirements=(f"open-bedrock-server=={OPEN_BEDROCK_SERVER_VERSION}",),
    check=("-c", "import open_bedrock_server"),
    expected="about a minute",
    timeout=900.0,
)


def ensure_bedrock(progress_stream: ProgressStream | None = sys.stderr) -> Path:
    """The venv holding open-bedrock-server, installed when missing."""
    return ensure_venv(BEDROCK_VENV, progress_stream)


def _site_packages(venv: Path) -> Path:
    found = sorted((venv / "lib").glob("python3*/site-packages/open_bedrock_server"))
    if not found:
        raise ServerStartError(f"open_bedrock_server is not installed in {venv}")
    return found[0]


def src_shim(venv: Path) -> Path:
    """A folder for PYTHONPATH where ``src.open_bedrock_server`` is the installed package.

    The wheel installs ``open_bedrock_server`` but its modules import each other as
    ``src.open_bedrock_server...``; a ``src`` package whose only member is a symlink to the
    installed package makes both spellings load (the ``src.`` one is what runs).
    """
    shim = venv / "src-shim"
    link = shim / "src" / "open_bedrock_server"
    if not link.exists():
        (shim / "src").mkdir(parents=True, exist_ok=True)
        (shim / "src" / "__init__.py").write_text("")
        tmp = link.with_name(f".open_bedrock_server.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(_site_packages(venv), target_is_directory=True)
        os.replace(tmp, link)
    return shim


class BedrockServer(UvicornServer):
    """open-bedrock-server in front of an OpenAI-compatible upstream (``upstream_base_url``)."""

    label = "open-bedrock-server"

    def __init__(
        self,
        venv: Path,
        upstream_base_url: str,
        *,
        api_key: str = BEDROCK_API_KEY,
        log_dir: Path,
        startup_timeout: float = 120.0,
    ) -> None:
        super().__init__(log_dir=log_dir, startup_timeout=startup_timeout)
        self.venv = venv
        self.upstream_base_url = upstream_base_url
        self.api_key = api_key

    def command(self, port: int) -> list[str]:
        return [
            str(venv_bin(self.venv, "python")),
            *("-m", "uvicorn", "src.open_bedrock_server.api.app:app"),
            *("--host", self.host, "--port", str(port)),
            *("--log-level", "info", "--no-use-colors"),
        ]

    def environment(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AWS_", "OPENAI_", "VIRTUAL_ENV", "PYTHON"))
        }
        env.update(
            PYTHONPATH=str(src_shim(self.venv)),
            PYTHONUNBUFFERED="1",
            API_KEY=self.api_key,
            OPENAI_API_KEY="sk-upstream-unused",
            OPENAI_BASE_URL=self.upstream_base_url,
            AWS_REGION="us-east-1",
            # Never look for real AWS credentials (no instance metadata probes).
            AWS_ACCESS_KEY_ID="e2e-unused",
            AWS_SECRET_ACCESS_KEY="e2e-unused",
            AWS_EC2_METADATA_DISABLED="true",
        )
        return env

    def probe(self) -> str | None:
        return http_ok(self.root_url + "/health")()


def main() -> int:
    t0 = time.monotonic()
    venv = ensure_bedrock(sys.stderr)
    print(f"ready after {time.monotonic() - t0:.1f}s: {venv}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
