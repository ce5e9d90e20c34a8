"""Start and stop real servers for the end-to-end tests.

``ManagedServer`` runs a server process on a free loopback port, waits (bounded) until its
readiness probe answers, and always stops it: on ``stop()``/context exit, when startup
fails, and at interpreter exit (atexit) as a last resort. Subclasses say how to start and
probe: ``LlamaServer`` here (llama.cpp's llama-server: the built binary, or the xllamacpp
launcher, see llama_build.py), ``BedrockServer`` (bedrock.py) and ``LiteLLMProxy``
(litellm_proxy.py)::

    with LlamaServer(arts.server_command, model, api_key="k") as srv:
        httpx.get(srv.root_url + "/health")
        client = OpenAI(base_url=srv.base_url, api_key="k")
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self


class ServerStartError(RuntimeError):
    """The server did not become healthy; the message carries the tail of its log."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def log_tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def http_ok(
    url: str, headers: Mapping[str, str] | None = None, *, timeout: float = 3.0
) -> Callable[[], str | None]:
    """A readiness probe: None when ``url`` answers 200, else what it answered."""

    def probe() -> str | None:
        req = urllib.request.Request(url, headers=dict(headers or {}))
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return None if resp.status == 200 else f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:  # e.g. 503 while a model loads
            return f"HTTP {exc.code}"
        except (OSError, urllib.error.URLError) as exc:
            return repr(exc)

    return probe


class ManagedServer:
    """A server process on 127.0.0.1:<free port>; subclasses say how to start and probe it."""

    host = "127.0.0.1"
    label = "server"
    # Startup errors that mean "the port was taken after we picked it": worth a new port.
    port_clash_words: tuple[str, ...] = ("address already in use",)
    poll_interval = 0.25
    # Signal the whole process group (servers that start workers) or only the process.
    kill_group = True
    terminate_timeout = 15.0

    def __init__(self, *, log_dir: Path, startup_timeout: float = 120.0) -> None:
        self.log_dir = log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.log_dir / f"{self.label}.log"
        self.startup_timeout = startup_timeout
        self.port: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        # Set when the process is found already dead at stop(): it crashed or exited by itself.
        self.died_with: int | None = None

    # -- for subclasses ------------------------------------------------------------------
    def command(self, port: int) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str] | None:
        """The process environment; None inherits ours."""
        return dict(os.environ)

    def workdir(self) -> Path | None:
        """Where the process runs (stray files land in the log folder); None keeps ours."""
        return self.log_dir

    def probe(self) -> str | None:
        """None once the server is ready, else a short description of what it answered."""
        raise NotImplementedError

    def preflight(self) -> None:
        """Raise ServerStartError before launching when the server cannot possibly start."""

    # -- addresses -----------------------------------------------------------------------
    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:PORT`` (where health endpoints live)."""
        if self.port is None:
            raise RuntimeError(f"{self.label} not started")
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL, ``http://127.0.0.1:PORT/v1``."""
        return self.root_url + "/v1"

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> Self:
        if self.proc is not None:
            raise RuntimeError(f"{self.label} already started")
        self.preflight()
        atexit.register(self.stop)
        last_error: ServerStartError | None = None
        for _attempt in range(3):  # the free port can be taken before we bind it
            try:
                self._start_on(free_port(self.host))
                return self
            except ServerStartError as exc:
                last_error = exc
                self._terminate()
                if not any(word in str(exc).lower() for word in self.port_clash_words):
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
                cwd=self.workdir(),
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
            time.sleep(self.poll_interval)
        raise ServerStartError(
            f"{self.label} not ready after {self.startup_timeout:.0f}s (last: {last}); "
            f"log {self.log_path}:\n" + log_tail(self.log_path)
        )

    def _signal(self, proc: subprocess.Popen[bytes], sig: int) -> None:
        if not self.kill_group:
            proc.send_signal(sig)
            return
        # The whole process group: uvicorn/litellm may have started workers.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)

    def _terminate(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is not None:
            self.died_with = proc.returncode
            return
        self._signal(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=self.terminate_timeout)
        except subprocess.TimeoutExpired:
            self._signal(proc, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)

    def stop(self) -> None:
        """Stop the process (TERM, then KILL). Safe to call more than once."""
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


class UvicornServer(ManagedServer):
    """A server that writes uvicorn's access log (the Amazon server, the LiteLLM proxy)."""

    def chat_requests_logged(self) -> list[str]:
        """uvicorn's access-log lines for POST /v1/chat/completions, oldest first."""
        return [
            line for line in self.log_text().splitlines() if '"POST /v1/chat/completions ' in line
        ]


class LlamaServer(ManagedServer):
    """A llama-server process serving one model on 127.0.0.1.

    ``server`` is the llama-server binary, or a command that takes its flags
    (``LlamaArtifacts.server_command``: the binary, or python + the xllamacpp launcher).
    """

    label = "llama-server"
    # llama-server words a taken port as a failed bind.
    port_clash_words = ("bind", "address")
    poll_interval = 0.1
    # One process, no workers: signal it alone.
    kill_group = False
    terminate_timeout = 10.0

    def __init__(
        self,
        server: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        model: str | os.PathLike[str],
        *,
        api_key: str | None = None,
        ctx_size: int = 4096,
        threads: int = 2,
        parallel: int = 2,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 60.0,
        log_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(
            log_dir=Path(log_dir or tempfile.mkdtemp(prefix="llama-server-e2e-")),
            startup_timeout=startup_timeout,
        )
        parts = [server] if isinstance(server, str | os.PathLike) else list(server)
        self.server_command = tuple(str(part) for part in parts)
        self.model = Path(model)
        self.api_key = api_key
        self.ctx_size = ctx_size
        self.threads = threads
        self.parallel = parallel
        self.extra_args = tuple(extra_args)

    def command(self, port: int) -> list[str]:
        cmd = [
            *self.server_command,
            *("-m", str(self.model)),
            "--jinja",
            *("--host", self.host, "--port", str(port)),
            *("-c", str(self.ctx_size), "-t", str(self.threads), "-np", str(self.parallel)),
        ]
        if self.api_key is not None:
            cmd += ["--api-key", self.api_key]
        cmd += list(self.extra_args)
        return cmd

    def environment(self) -> dict[str, str]:
        # The launcher's python runs its own venv: nothing of the project's may leak in.
        drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
        return {k: v for k, v in os.environ.items() if k not in drop}

    def workdir(self) -> None:
        return None

    def preflight(self) -> None:
        for part in self.server_command:  # the binary, or python and the launcher script
            if not Path(part).is_file():
                raise ServerStartError(f"llama-server command: {part} not found")
        if not self.model.is_file():
            raise ServerStartError(f"model not found: {self.model}")

    def probe(self) -> str | None:
        return http_ok(self.root_url + "/health", timeout=2)()

    def __repr__(self) -> str:
        state = f"port={self.port}" if self.running else "stopped"
        return f"<LlamaServer {state} key={'yes' if self.api_key else 'no'}>"
