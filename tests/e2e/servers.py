"""Start and stop real servers for the end-to-end tests.

``LlamaServer`` runs llama.cpp's llama-server on a free loopback port::

    with LlamaServer(binary, model, api_key="k") as srv:
        httpx.get(srv.root_url + "/health")
        client = OpenAI(base_url=srv.base_url, api_key="k")

The process is always stopped: on ``stop()``/context exit, when startup fails, and at
interpreter exit (atexit) as a last resort.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
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


class LlamaServer:
    """A llama-server process serving one model on 127.0.0.1."""

    host = "127.0.0.1"

    def __init__(
        self,
        binary: str | os.PathLike[str],
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
        self.binary = Path(binary)
        self.model = Path(model)
        self.api_key = api_key
        self.ctx_size = ctx_size
        self.threads = threads
        self.parallel = parallel
        self.extra_args = tuple(extra_args)
        self.startup_timeout = startup_timeout
        self.log_dir = Path(log_dir or tempfile.mkdtemp(prefix="llama-server-e2e-"))
        self.log_path = self.log_dir / "llama-server.log"
        self.port: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        # Set when the process is found already dead at stop(): it crashed or exited by itself.
        self.died_with: int | None = None

    # -- addresses -------------------------------------------------------------------------
    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:PORT`` (where /health, /props, /metrics live)."""
        if self.port is None:
            raise RuntimeError("server not started")
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL, ``http://127.0.0.1:PORT/v1``."""
        return self.root_url + "/v1"

    def command(self, port: int) -> list[str]:
        cmd = [
            str(self.binary),
            *("-m", str(self.model)),
            "--jinja",
            *("--host", self.host, "--port", str(port)),
            *("-c", str(self.ctx_size), "-t", str(self.threads), "-np", str(self.parallel)),
        ]
        if self.api_key is not None:
            cmd += ["--api-key", self.api_key]
        cmd += list(self.extra_args)
        return cmd

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Self:
        if self.proc is not None:
            raise RuntimeError("server already started")
        if not self.binary.is_file():
            raise ServerStartError(f"llama-server binary not found: {self.binary}")
        if not self.model.is_file():
            raise ServerStartError(f"model not found: {self.model}")
        atexit.register(self.stop)
        last_error: ServerStartError | None = None
        # The free port can be taken between probing and binding: retry a couple of times.
        for _attempt in range(3):
            port = free_port(self.host)
            try:
                self._start_on(port)
                return self
            except ServerStartError as exc:
                last_error = exc
                self._terminate()
                if "bind" not in str(exc).lower() and "address" not in str(exc).lower():
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
                start_new_session=True,  # a Ctrl-C in the terminal is for pytest, not for us
            )
        deadline = time.monotonic() + self.startup_timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                raise ServerStartError(
                    f"llama-server exited with code {rc} during startup ({self.log_path}):\n"
                    + log_tail(self.log_path)
                )
            try:
                with urllib.request.urlopen(self.root_url + "/health", timeout=2) as resp:
                    if resp.status == 200:
                        return
                    last = f"HTTP {resp.status}"
            except urllib.error.HTTPError as exc:  # 503 while the model loads
                last = f"HTTP {exc.code}"
            except (OSError, urllib.error.URLError) as exc:
                last = repr(exc)
            time.sleep(0.1)
        raise ServerStartError(
            f"llama-server not healthy after {self.startup_timeout:.0f}s (last: {last}); "
            f"log {self.log_path}:\n" + log_tail(self.log_path)
        )

    def _terminate(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is not None:
            self.died_with = proc.returncode
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)

    def stop(self) -> None:
        """Stop the process (terminate, then kill). Safe to call more than once."""
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
        return f"<LlamaServer {state} key={'yes' if self.api_key else 'no'}>"
