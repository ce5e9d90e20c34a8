"""The local mode's command line without a model run: what it says when it cannot start,
and the Amplifier settings it prints. (tests/e2e/test_local_mode.py runs it for real.)"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import respx
import yaml

from amplifier_module_provider_chat_completions.cli.local import install_source, settings_snippet
from amplifier_module_provider_chat_completions.cli.main import main

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache with no model in it (and where the server logs go)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache / "amplifier-chat-completions"


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1, captured.err
    return captured.err


@pytest.mark.parametrize("command", [["chat", "--local", "hi"], ["serve", "--local"]])
@respx.mock  # no route: any download attempt fails the test
def test_without_xllamacpp_it_names_the_extra_before_downloading_anything(
    command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "xllamacpp", None)  # as if not installed
    assert main(command) == 1
    err = one_error_line(capsys)
    assert "xllamacpp" in err and "amplifier-module-provider-chat-completions[local]" in err


def test_a_missing_model_file_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chat", "--local", "--model-file", "/nowhere/model.gguf", "hi"]) == 1
    assert "no model file at /nowhere/model.gguf" in one_error_line(capsys)


def test_a_file_that_is_no_model_is_one_line_naming_the_kept_log(
    tmp_path: Path, empty_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("xllamacpp")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a model at all" * 64)
    assert main(["chat", "--local", "--model-file", str(junk), "hi"]) == 1
    err = one_error_line(capsys)
    assert "the local server could not start with junk.gguf:" in err
    assert "GGUF" in err  # llama.cpp's own reason, not a generic failure
    [log] = (empty_cache / "logs").glob("local-server-*.log")
    assert f"(log: {log})" in err and "GGUF" in log.read_text()


def test_local_and_base_url_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["chat", "--local", "--base-url", "http://localhost:8080/v1", "hi"])
    assert exited.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_the_settings_snippet_is_the_providers_entry_amplifier_reads() -> None:
    text = settings_snippet("http://127.0.0.1:8123/v1", "SmolLM2-135M-Instruct", "git+file:///src")
    assert yaml.safe_load(text) == {
        "providers": [
            {
                "module": "provider-chat-completions",
                "source": "git+file:///src",
                "config": {
                    "base_url": "http://127.0.0.1:8123/v1",
                    "default_model": "SmolLM2-135M-Instruct",
                },
            }
        ]
    }


def test_the_packaged_models_temperature_goes_into_the_settings() -> None:
    text = settings_snippet("http://127.0.0.1:8123/v1", "SmolLM2-135M-Instruct", None, 0.2)
    assert yaml.safe_load(text)["providers"][0]["config"]["temperature"] == 0.2


def test_without_a_known_source_the_snippet_explains_instead_of_inventing_one() -> None:
    text = settings_snippet("http://127.0.0.1:8123/v1", "m", None)
    entry = yaml.safe_load(text)["providers"][0]
    assert "source" not in entry and entry["config"]["base_url"] == "http://127.0.0.1:8123/v1"
    assert "amplifier module add provider-chat-completions --source" in text


def test_the_source_is_this_clone() -> None:
    assert (ROOT / ".git").exists(), "the tests run from a git clone"
    assert install_source() == f"git+{ROOT.as_uri()}"
