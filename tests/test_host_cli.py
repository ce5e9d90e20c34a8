"""What amplifier-app-cli does with the provider class, replayed as data.

Facts from microsoft/amplifier-app-cli f16375f:
- provider_loader._try_instantiate_provider builds the class for `amplifier provider test`,
  `provider models` and the `provider add` model picker. It tries the forms in CLI_FORMS,
  in order, catching (TypeError, ValueError, RuntimeError); `config` is always {}. Only
  base_url, host and api_key come from the stored settings, `${VAR}` resolved from the
  environment, with "http://placeholder", "http://localhost:11434" and "" when unset.
- keys.env is loaded into the environment at CLI start, so CHAT_COMPLETIONS_BASE_URL may
  hold another instance's URL.
- commands/provider.py provider_test: a row is a failure only when list_models() raises;
  it shows f"{type(e).__name__}: {e}" cut to 57 characters + "...".
- provider_config_utils._prompt_model_selection: an exception prints the message and
  falls back to free-text "Model name" entry, as an empty list does.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest
import respx
from amplifier_core.llm_errors import AuthenticationError, NetworkError

from amplifier_module_provider_chat_completions import ChatCompletionsProvider

CLI_ERRORS = (TypeError, ValueError, RuntimeError)


def _resolve(value: str | None) -> str | None:
    # provider_loader._resolve_env_placeholder
    if value and value.startswith("${") and value.endswith("}"):
        return os.environ.get(value[2:-1])
    return value


def cli_forms(stored: dict[str, Any]) -> list[dict[str, Any]]:
    base_url = _resolve(stored.get("base_url")) or "http://placeholder"
    host = _resolve(stored.get("host")) or "http://localhost:11434"
    api_key = _resolve(stored.get("api_key")) or ""
    return [
        {"api_key": api_key, "config": {}},
        {"base_url": base_url, "api_key": api_key, "config": {}},
        {"base_url": base_url, "config": {}},
        {"host": host, "config": {}},
        {"config": {}},
        {},
    ]


def cli_instantiate(stored: dict[str, Any]) -> ChatCompletionsProvider:
    for kwargs in cli_forms(stored):
        try:
            return ChatCompletionsProvider(**kwargs)
        except CLI_ERRORS:
            continue
    raise AssertionError("no constructor form worked")


def cli_test_row(error: BaseException) -> str:
    message = f"{type(error).__name__}: {error}"
    return message[:57] + "..." if len(message) > 60 else message


def test_each_instance_reaches_its_own_server_whatever_the_environment(monkeypatch) -> None:
    # A second instance's URL in the environment (keys.env) must not repoint the first.
    monkeypatch.setenv("CHAT_COMPLETIONS_BASE_URL", "http://other-instance:9000/v1")
    monkeypatch.setenv("CHAT_COMPLETIONS_2_API_KEY", "sk-second-instance-key")
    first = cli_instantiate({"base_url": "http://127.0.0.1:8080/v1"})
    second = cli_instantiate(
        {"base_url": "http://127.0.0.1:8081/v1", "api_key": "${CHAT_COMPLETIONS_2_API_KEY}"}
    )
    assert first.config.base_url == "http://127.0.0.1:8080/v1"
    assert second.config.base_url == "http://127.0.0.1:8081/v1"
    assert second.config.api_key == "sk-second-instance-key"


def test_the_wizard_gets_info_without_any_settings() -> None:
    # provider_loader.get_provider_info: no stored settings at all.
    provider = cli_instantiate({})
    assert provider.get_info().display_name == "OpenAI-Compatible"
    assert provider.config.base_url == ""  # "http://placeholder" counts as unset


def test_api_key_alone_is_refused_so_the_cli_passes_the_base_url() -> None:
    with pytest.raises(TypeError, match="base_url"):
        ChatCompletionsProvider(api_key="k", config={})
    # with a base_url anywhere it is an ordinary form
    assert ChatCompletionsProvider(api_key="k", config={"base_url": "http://h/v1"}).config


@respx.mock
async def test_provider_test_fails_with_our_reason_when_the_server_is_down() -> None:
    respx.get("http://127.0.0.1:8080/v1/models").mock(side_effect=httpx.ConnectError("refused"))
    provider = cli_instantiate({"base_url": "http://127.0.0.1:8080/v1"})
    with pytest.raises(NetworkError) as info:
        await provider.list_models()
    await provider.close()
    row = cli_test_row(info.value)
    assert row.startswith("NetworkError: could not connect to http://127.0.0.1:8080")


@respx.mock
async def test_provider_test_fails_on_a_wrong_key_and_passes_when_up() -> None:
    url = "http://127.0.0.1:8080/v1/models"
    respx.get(url).mock(
        side_effect=[
            httpx.Response(401, json={"error": {"message": "Invalid API key"}}),
            httpx.Response(200, json={"data": [{"id": "m", "object": "model"}]}),
        ]
    )
    stored = {"base_url": "http://127.0.0.1:8080/v1", "api_key": "sk-wrong-key-1234567"}
    with pytest.raises(AuthenticationError) as info:
        await cli_instantiate(stored).list_models()
    assert "sk-wrong-key-1234567" not in cli_test_row(info.value)
    models = await cli_instantiate(stored).list_models()
    assert [m.id for m in models] == ["m"]
