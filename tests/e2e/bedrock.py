"""The real Amazon Chat Completions Server (PyPI ``open-bedrock-server``) for the e2e tests.

It is installed into its own virtual environment under the e2e cache (``_venvs.ensure_venv``:
file lock, marker, progress, ``--exclude-newer``). The server processes are
``servers.UvicornServer`` subclasses (start, probe, always stop).

``BedrockServer`` is the Amazon server itself: its console script ``bedrock-chat`` imports
``src.open_bedrock_server`` (the layout of its own repository), so it is run as
``python -m uvicorn src.open_bedrock_server.api.app:app`` with a ``src`` package shim on
``PYTHONPATH`` that points at the installed ``open_bedrock_server``. Model names without a
Bedrock prefix go to its OpenAI upstream (``OPENAI_BASE_URL``): here the real llama-server.

Warm the cache by hand with ``uv run python -m tests.e2e.bedrock``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from ._procs import ProgressStream
from ._venvs import VenvSpec, ensure_venv, venv_bin
from .servers import ServerStartError, UvicornServer, http_ok

OPEN_BEDROCK_SERVER_VERSION = "2.0.4"
# Who the Amazon server's clients are (it compares the Bearer token with API_KEY).
BEDROCK_API_KEY = "e2e-bedrock-key"

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
