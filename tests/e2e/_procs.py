"""Helpers the one-time installers share (llama_build.py, _venvs.py, pypi_llama.py).

``cache_root`` is where everything they install lives, ``Progress`` writes timestamped lines
to the terminal, ``file_lock`` lets one installer work at a time, and ``run_logged`` runs a
command with its output appended to a log file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol

CACHE_ENV = "CHAT_COMPLETIONS_E2E_CACHE"


def cache_root() -> Path:
    """``$CHAT_COMPLETIONS_E2E_CACHE``, else ``~/.cache/amplifier-chat-completions-e2e``.

    Outside the repository, so a fresh clone reuses what an earlier run installed.
    """
    base = os.environ.get(CACHE_ENV)
    if base:
        return Path(base).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "amplifier-chat-completions-e2e"


class ProgressStream(Protocol):
    """Where progress lines go (a text stream; only write/flush are used)."""

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


class Progress:
    """``progress(msg)`` writes ``[tag  12.3s] msg``; a broken stream never fails a build."""

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
def file_lock(path: Path, progress: Progress, waiting: str) -> Iterator[None]:
    """Hold an exclusive flock on ``path``; say ``waiting`` when another process has it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(waiting)
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def run_logged(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    log: Path,
    progress: Progress,
    error: type[Exception],
    echo: Callable[[str], str | None] | None = None,
    timeout: float | None = None,
    heartbeat: float | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> None:
    """Run ``cmd`` with its output appended to ``log``; raise ``error`` with the tail on failure.

    ``echo`` picks what of each output line goes to ``progress`` (None: nothing); with
    ``heartbeat``, a quiet command still shows it is alive; ``timeout`` bounds the run.
    """
    argv = [str(c) for c in cmd]
    progress("$ " + " ".join(argv))
    tail: list[str] = []
    last_output = time.monotonic()
    with open(log, "a") as logf:
        logf.write("$ " + " ".join(argv) + "\n")
        logf.flush()
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
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
                shown = echo(line) if echo is not None else None
                if shown:
                    progress(shown)

        # Read in a thread so the timeout and the heartbeat work while the command is quiet.
        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while reader.is_alive():
                reader.join(timeout=1.0)
                now = time.monotonic()
                if deadline is not None and now > deadline:
                    raise error(
                        f"timed out after {timeout:.0f}s: {' '.join(argv)}\nfull log: {log}"
                    )
                if heartbeat is not None and now - last_output > heartbeat:
                    progress("... still working")
                    last_output = now
            rc = proc.wait(
                timeout=None if deadline is None else max(1.0, deadline - time.monotonic())
            )
        except BaseException:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            raise
    if rc != 0:
        raise error(
            f"command failed with exit code {rc}: {' '.join(argv)}\n"
            f"full log: {log}\n--- last lines ---\n" + "\n".join(tail)
        )
