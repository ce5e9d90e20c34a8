"""The real LiteLLM proxy (PyPI ``litellm[proxy]``, pinned) for the e2e tests.

``litellm[proxy]`` is large (about 2.5 minutes to install cold), so it goes into its own
virtual environment under the e2e cache (see ``_venvs.ensure_venv``: file lock, marker,
progress, ``--exclude-newer``). ``LiteLLMProxy`` writes a config that routes
``openai/<model>`` to one OpenAI-compatible upstream (the real llama-server), with
cooldowns and retries off so that every client request is exactly one upstream request,
and runs ``litellm --config cfg.yaml --host 127.0.0.1 --port P``.

LiteLLM needs no network at run time here: ``LITELLM_LOCAL_MODEL_COST_MAP`` keeps it from
fetching its model price list, and no database is configured.

Warm the cache by hand with ``uv run python -m tests.e2e.litellm_proxy``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ._procs import ProgressStream
from ._venvs import VenvSpec, ensure_venv, venv_bin
from .servers import UvicornServer, http_ok

LITELLM_VERSION = "1.106.2"
SKIP_LITELLM_ENV = "CHAT_COMPLETIONS_SKIP_LITELLM"
# LiteLLM's master key must start with "sk-".
LITELLM_MASTER_KEY = "sk-e2e-litellm-master"
# What clients ask the proxy for; LiteLLM sends the part after "openai/" upstream.
LITELLM_MODEL = "tiny-llama"

# Offline: use the model cost map bundled in the wheel, no telemetry.
_OFFLINE_ENV: dict[str, str] = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_TELEMETRY": "False",
    "LITELLM_LOG": "INFO",
}

LITELLM_VENV = VenvSpec(
    name=f"litellm-{LITELLM_VERSION}",
    requirements=(f"litellm[proxy]=={LITELLM_VERSION}",),
    check=("-c", "import litellm.proxy.proxy_server"),
    expected="about 2.5 minutes cold, large",
    timeout=1800.0,
    extra_env=_OFFLINE_ENV,
)


def litellm_skipped() -> bool:
    return os.environ.get(SKIP_LITELLM_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def ensure_litellm(progress_stream: ProgressStream | None = sys.stderr) -> Path:
    """The venv holding litellm[proxy], installed when missing."""
    return ensure_venv(LITELLM_VENV, progress_stream)


def proxy_config(upstream_base_url: str, *, master_key: str = LITELLM_MASTER_KEY) -> dict[str, Any]:
    """A LiteLLM proxy config with one model routed to ``upstream_base_url``."""
    return {
        "model_list": [
            {
                "model_name": LITELLM_MODEL,
                "litellm_params": {
                    "model": f"openai/{LITELLM_MODEL}",
                    "api_base": upstream_base_url,
                    "api_key": "sk-upstream-unused",
                },
            }
        ],
        # One client request = one upstream request; a failure never benches the model.
        "router_settings": {"disable_cooldowns": True, "num_retries": 0},
        "litellm_settings": {"num_retries": 0, "request_timeout": 120},
        "general_settings": {"master_key": master_key},
    }


class LiteLLMProxy(UvicornServer):
    """``litellm --config`` on a free loopback port, in front of one upstream."""

    label = "litellm-proxy"

    def __init__(
        self,
        venv: Path,
        upstream_base_url: str,
        *,
        master_key: str = LITELLM_MASTER_KEY,
        log_dir: Path,
        startup_timeout: float = 240.0,
    ) -> None:
        super().__init__(log_dir=log_dir, startup_timeout=startup_timeout)
        self.venv = venv
        self.upstream_base_url = upstream_base_url
        self.master_key = master_key
        self.config_path = self.log_dir / "litellm-config.yaml"

    def config(self) -> dict[str, Any]:
        """The proxy's config file, as a mapping (subclasses route differently)."""
        return proxy_config(self.upstream_base_url, master_key=self.master_key)

    def command(self, port: int) -> list[str]:
        # JSON is YAML: no YAML writer needed.
        self.config_path.write_text(json.dumps(self.config(), indent=2) + "\n")
        return [
            str(venv_bin(self.venv, "litellm")),
            *("--config", str(self.config_path)),
            *("--host", self.host, "--port", str(port)),
            *("--num_workers", "1"),
        ]

    def environment(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("LITELLM", "OPENAI_", "DATABASE_URL", "VIRTUAL_ENV", "PYTHON"))
        }
        env.update(_OFFLINE_ENV, PYTHONUNBUFFERED="1")
        return env

    def probe(self) -> str | None:
        alive = http_ok(self.root_url + "/health/liveliness")()
        if alive is not None:
            return alive
        # The router is loaded once the model list answers.
        headers = {"Authorization": f"Bearer {self.master_key}"}
        return http_ok(self.base_url + "/models", headers)()


def main() -> int:
    t0 = time.monotonic()
    venv = ensure_litellm(sys.stderr)
    print(f"ready after {time.monotonic() - t0:.1f}s: {venv}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
