"""The local mode's server: llama_child.py in a process of its own, stopped when done.

A child process, so a crash inside llama.cpp cannot take the CLI down and stopping it is
certain: closing its standard input ends it, and so does this process dying, however it
dies. The child runs in a session of its own, so a Ctrl-C in the terminal reaches only the
CLI, which then stops the server itself. llama.cpp's log goes to a file that is kept only
when the server failed (the error names it).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .local_model import LocalModeError

__all__ = ["EXTRA_HINT", "LocalServer", "default_threads", "require_xllamacpp", "running"]

# Run as a script, not `-m`: importing it through the package would import the whole
# provider (and the openai SDK) first, which the server does not use. -P keeps this folder
# off sys.path.
CHILD = Path(__file__).resolve().with_name("llama_child.py")
EXTRA_HINT = (
    "pip install 'amplifier-module-provider-chat-completions[local]' "
    "(in a clone of this repository: uv sync)"
)
# llama.cpp log lines: "0.00.009.307 E gguf_init_from_reader: invalid magic characters ..."
_ERROR_LINE = re.compile(r"^[\d.]+ E (.+)$", re.M)


@dataclass(frozen=True)
class LocalServer:
    base_url: str  # http://127.0.0.1:PORT/v1
    model: str  # the model id the server reports
    pid: int
    started_in: float  # seconds from spawning to serving
    log: Path
    process: subprocess.Popen[bytes]


def default_threads() -> int:
    """Half the usable cores, at most 4. llama.cpp's threads wait for each other at every
    token, so one core busy with something else stalls them all: a thread per core is much
    slower than fewer threads on a busy or small machine."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 2
    return max(1, min(4, cores // 2))


def require_xllamacpp() -> None:
    if importlib.util.find_spec("xllamacpp") is None:
        raise LocalModeError(
            f"the local mode needs xllamacpp (llama.cpp's server), not installed here: {EXTRA_HINT}"
        )


@contextlib.contextmanager
def running(
    model_file: Path,
    alias: str,
    *,
    log_dir: Path,
    port: int = 0,
    ctx_size: int = 8192,
    threads: int | None = None,
    timeout: float = 300.0,
) -> Iterator[LocalServer]:
    """llama.cpp's server for `model_file` on 127.0.0.1, ready; stopped on leaving."""
    require_xllamacpp()
    if not model_file.is_file():
        raise LocalModeError(f"no model file at {model_file}: --model-file takes a GGUF file")
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"local-server-{os.getpid()}.log"
    command = [sys.executable, "-P", str(CHILD), str(model_file), "--alias", alias]
    command += [
        "--port",
        str(port),
        "--ctx-size",
        str(ctx_size),
        "--threads",
        str(threads or default_threads()),
    ]
    started = time.monotonic()
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log_file,
            start_new_session=True,
        )
    try:
        address = _wait_ready(process, model_file, log, timeout)
        elapsed = time.monotonic() - started
        yield LocalServer(address + "/v1", alias, process.pid, elapsed, log, process)
    finally:
        if _stop(process) == 0:
            log.unlink(missing_ok=True)


def _wait_ready(
    process: subprocess.Popen[bytes], model_file: Path, log: Path, timeout: float
) -> str:
    """The server's address once it serves; a one-line LocalModeError when it cannot."""
    assert process.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True).start()
    try:
        line = lines.get(timeout=timeout)
    except queue.Empty:
        raise LocalModeError(
            f"the local server did not start within {timeout:.0f} s (log: {log})"
        ) from None
    if line is not None and line.startswith("READY "):
        return line.removeprefix("READY ").strip().rstrip("/")
    reason = _first_error(log) or (line or "").removeprefix("ERROR ").strip() or "it exited"
    raise LocalModeError(
        f"the local server could not start with {model_file.name}: {reason} (log: {log})"
    )


def _pump(stream: IO[bytes], lines: queue.Queue[str | None]) -> None:
    for raw in stream:
        lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
    lines.put(None)


def _first_error(log: Path) -> str | None:
    """llama.cpp's first error line: the cause (later ones are its consequences)."""
    try:
        text = log.read_text("utf-8", "replace")
    except OSError:
        return None
    found = _ERROR_LINE.search(text)
    return " ".join(found.group(1).split()) if found else None


def _stop(process: subprocess.Popen[bytes]) -> int:
    """End the server (close its stdin; kill it if it lingers) and return its exit code."""
    if process.stdin is not None:
        with contextlib.suppress(OSError):
            process.stdin.close()
    try:
        code = process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        code = process.wait()
    if process.stdout is not None:
        process.stdout.close()
    return code
