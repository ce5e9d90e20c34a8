"""The real Amazon Chat Completions Server (PyPI ``open-bedrock-server``) for the e2e tests.

Also home of the two helpers the LiteLLM suite shares with it:

* ``ensure_venv`` installs a Python tool into its OWN virtual environment under the e2e
  cache (beside the llama-server build), keyed by name, version and Python version, so its
  pins never touch the project's environment. One installer at a time (a file lock), a
  ``.complete`` marker written last, progress on the terminal with a heartbeat, and a
  reproducible resolution (``uv pip install --exclude-newer``).
* ``ManagedServer`` runs a server process on a free loopback port, waits (bounded) until a
  health URL answers, and always stops it: on ``stop()``/context exit, when startup fails,
  and at interpreter exit.

``BedrockServer`` is the Amazon server itself: its console script ``bedrock-chat`` imports
``src.open_bedrock_server`` (the layout of its own repository), so it is run as
``python -m uvicorn src.open_bedrock_server.api.app:app`` with a ``src`` package shim on
``PYTHONPATH`` that points at the installed ``open_bedrock_server``. Model names without a
Bedrock prefix go to its OpenAI upstream (``OPENAI_BASE_URL``): here the real llama-server.

Warm the cache by hand with ``uv run python -m tests.e2e.bedrock``.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from .llama_build import ProgressStream, cache_dir
from .servers import ServerStartError, free_port, log_tail

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


class _Progress:
    def __init__(self, stream: ProgressStream | None, tag: str) -> None:
        self.stream = stream
        self.tag = tag
        self.t0 = time.monotonic()

    def __call__(self, message: str) -> None:
        if self.stream is None:
            return
        elapsed = time.monotonic() - self.t0
        with contextlib.suppress(Exception):
            self.stream.write(f"[{self.tag} {elapsed:6.1f}s] {message}\n")
            self.stream.flush()


@contextlib.contextmanager
def _file_lock(path: Path, progress: _Progress) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(f"another process holds {path}; waiting for it to finish")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    log: Path,
    progress: _Progress,
    timeout: float,
    heartbeat: float = 20.0,
    env: Mapping[str, str] | None = None,
) -> None:
    """Run ``cmd`` with its output appended to ``log``; echo it; a heartbeat while quiet."""
    argv = [str(c) for c in cmd]
    progress("$ " + " ".join(argv))
    tail: list[str] = []
    last_output = time.monotonic()
    with open(log, "a") as logf:
        logf.write("$ " + " ".join(argv) + "\n")
        logf.flush()
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            env=dict(env) if env is not None else None,
        )
        assert proc.stdout is not None
        stdout = proc.stdout

        def pump() -> None:
            nonlocal last_output
            for line in stdout:
                logf.write(line)
                logf.flush()
                tail.append(line.rstrip("\n"))
                del tail[:-40]
                last_output = time.monotonic()
                text = line.strip()
                # uv's per-package "+ name==version" lines stay in the log only.
                if text and not text.startswith(("+ ", "- ", "~ ")):
                    progress(text[:160])

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        deadline = time.monotonic() + timeout
        try:
            while reader.is_alive():
                reader.join(timeout=1.0)
                now = time.monotonic()
                if now > deadline:
                    raise InstallError(
                        f"timed out after {timeout:.0f}s: {' '.join(argv)}\nfull log: {log}"
                    )
                if now - last_output > heartbeat:
                    progress("... still working")
                    last_output = now
            rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except BaseException:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            raise
    if rc != 0:
        raise InstallError(
            f"command failed with exit code {rc}: {' '.join(argv)}\n"
            f"full log: {log}\n--- last lines ---\n" + "\n".join(tail)
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
    progress = _Progress(progress_stream, spec.name)
    with _file_lock(venv.with_name(venv.name + ".lock"), progress):
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


# ----------------------------------------------------------------------- server processes


def http_ok(url: str, headers: Mapping[str, str] | None = None) -> Callable[[], str | None]:
    """A readiness probe: None when ``url`` answers 200, else what it answered."""

    def probe() -> str | None:
        req = urllib.request.Request(url, headers=dict(headers or {}))
        try:
            with urllib.request.urlopen(req, timeout=3) as resp:
                return None if resp.status == 200 else f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}"
        except (OSError, urllib.error.URLError) as exc:
            return repr(exc)

    return probe


class ManagedServer:
    """A server process on 127.0.0.1:<free port>; subclasses say how to start and probe it."""

    host = "127.0.0.1"
    label = "server"

    def __init__(self, *, log_dir: Path, startup_timeout: float = 120.0) -> None:
        self.log_dir = log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.log_dir / f"{self.label}.log"
        self.startup_timeout = startup_timeout
        self.port: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    # -- for subclasses ------------------------------------------------------------------
    def command(self, port: int) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def probe(self) -> str | None:
        """None once the server is ready, else a short description of what it answered."""
        raise NotImplementedError

    # -- addresses -----------------------------------------------------------------------
    @property
    def root_url(self) -> str:
        if self.port is None:
            raise RuntimeError(f"{self.label} not started")
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.root_url + "/v1"

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> Self:
        if self.proc is not None:
            raise RuntimeError(f"{self.label} already started")
        atexit.register(self.stop)
        last_error: ServerStartError | None = None
        for _attempt in range(3):  # the free port can be taken before we bind it
            try:
                self._start_on(free_port(self.host))
                return self
            except ServerStartError as exc:
                last_error = exc
                self._terminate()
                if "address already in use" not in str(exc).lower():
                    break
        self.stop()
        assert last_error is not None
        raise last_error

    def _start_on(self, port: int) -> None:
        self.port = port
        cmd = self.command(port)
        with open(self.log_path, "ab") as logf:
            logf.write(("$ " + " ".join(cmd) + "\n").encode())
            logf.flush()
            self.proc = subprocess.Popen(
                cmd,
                stdout=logf,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.log_dir,
                env=self.environment(),
                start_new_session=True,  # a Ctrl-C in the terminal is for pytest
            )
        deadline = time.monotonic() + self.startup_timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                raise ServerStartError(
                    f"{self.label} exited with code {rc} during startup ({self.log_path}):\n"
                    + log_tail(self.log_path)
                )
            answer = self.probe()
            if answer is None:
                return
            last = answer
            time.sleep(0.25)
        raise ServerStartError(
            f"{self.label} not ready after {self.startup_timeout:.0f}s (last: {last}); "
            f"log {self.log_path}:\n" + log_tail(self.log_path)
        )

    def _terminate(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        # The whole process group: uvicorn/litellm may have started workers.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, 9)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)

    def stop(self) -> None:
        """Stop the process group (TERM, then KILL). Safe to call more than once."""
        self._terminate()
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"port={self.port}" if self.running else "stopped"
        return f"<{type(self).__name__} {state}>"


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


class BedrockServer(ManagedServer):
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

    def chat_requests_logged(self) -> list[str]:
        """uvicorn's access-log lines for POST /v1/chat/completions, oldest first."""
        return [
            line for line in self.log_text().splitlines() if '"POST /v1/chat/completions ' in line
        ]


def main() -> int:
    t0 = time.monotonic()
    venv = ensure_bedrock(sys.stderr)
    print(f"ready after {time.monotonic() - t0:.1f}s: {venv}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
