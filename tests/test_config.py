"""parse_config: every key from strings, env precedence, validation messages, unknown keys."""

from __future__ import annotations

import ast
import dataclasses
import logging
from pathlib import Path
from typing import Any

import pytest
from amplifier_core.llm_errors import ConfigurationError

from amplifier_module_provider_chat_completions import ChatCompletionsProvider
from amplifier_module_provider_chat_completions import config as config_module
from amplifier_module_provider_chat_completions.config import (
    CONFIG_KEYS,
    DEFAULT_NAME,
    ENV_API_KEY,
    ENV_BASE_URL,
    ProviderConfig,
    parse_config,
    resolve_base_url,
)

URL = "http://localhost:8080/v1"
SECRET = "sk-test-SECRET-value-1234"
LOGGER = "amplifier_module_provider_chat_completions.config"


def parse(env: dict[str, str] | None = None, **config: Any) -> ProviderConfig:
    config.setdefault("base_url", URL)
    return parse_config(config, env=env or {})


def test_defaults() -> None:
    cfg = parse()
    assert cfg.base_url == URL
    assert cfg.api_key == "not-needed"
    assert cfg.default_model == "default"
    assert (cfg.max_tokens, cfg.temperature, cfg.timeout) == (4096, 0.7, 300.0)
    assert (cfg.max_retries, cfg.min_retry_delay, cfg.max_retry_delay) == (3, 1.0, 30.0)
    assert cfg.use_streaming is True and cfg.parallel_tool_calls is True
    assert (cfg.top_p, cfg.stop, cfg.seed, cfg.context_window) == (None, None, None, None)
    assert (cfg.priority, cfg.filtered, cfg.raw, cfg.name) == (100, True, False, "chat-completions")
    assert (cfg.headers, cfg.extra_body) == ({}, {})
    assert (cfg.server, cfg.max_connections, cfg.verify) == ("auto", 100, True)


def test_config_keys_match_dataclass_defaults() -> None:
    names = [k.name for k in CONFIG_KEYS]
    assert len(names) == len(set(names))
    cfg = parse()
    for key in CONFIG_KEYS:
        assert hasattr(cfg, key.name), key.name
        assert key.description
        if key.name != "base_url":
            assert getattr(cfg, key.name) == key.default, key.name


def test_every_key_from_strings(tmp_path: Any) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("x")
    cfg = parse(
        base_url="https://example.com/v1/",
        api_key=SECRET,
        default_model="qwen3",
        max_tokens="2048",
        temperature="0.2",
        timeout="12.5",
        max_retries="0",
        min_retry_delay="0.5",
        max_retry_delay="4",
        use_streaming="no",
        top_p="0.9",
        stop="a,b",
        seed="42",
        parallel_tool_calls="off",
        priority="5",
        filtered="false",
        raw="yes",
        name="local",
        headers='{"X-Team": "core"}',
        extra_body='{"top_k": 40}',
        context_window="32768",
        server="VLLM",
        max_connections="8",
        verify=str(bundle),
    )
    assert cfg.base_url == "https://example.com/v1"
    assert cfg.api_key == SECRET
    assert cfg.default_model == "qwen3"
    assert cfg.max_tokens == 2048 and isinstance(cfg.max_tokens, int)
    assert cfg.temperature == 0.2
    assert cfg.timeout == 12.5
    assert cfg.max_retries == 0
    assert (cfg.min_retry_delay, cfg.max_retry_delay) == (0.5, 4.0)
    assert cfg.use_streaming is False
    assert cfg.top_p == 0.9
    assert cfg.stop == ["a", "b"]
    assert cfg.seed == 42
    assert cfg.parallel_tool_calls is False
    assert cfg.priority == 5
    assert cfg.filtered is False
    assert cfg.raw is True
    assert cfg.name == "local"
    assert cfg.headers == {"X-Team": "core"}
    assert cfg.extra_body == {"top_k": 40}
    assert cfg.context_window == 32768
    assert cfg.server == "vllm"
    assert cfg.max_connections == 8
    assert cfg.verify == str(bundle)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("false", False),
        ("yes", True),
        ("no", False),
        ("1", True),
        ("0", False),
        ("on", True),
        ("OFF", False),
        (True, True),
        (False, False),
    ],
)
def test_bool_spellings(text: object, expected: bool) -> None:
    assert parse(raw=text).raw is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a,b", ["a", "b"]),
        ("</s>", ["</s>"]),
        (["x", "y"], ["x", "y"]),
        (("x",), ["x"]),
        ([], None),
    ],
)
def test_stop_forms(value: object, expected: list[str] | None) -> None:
    assert parse(stop=value).stop == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (["\n\n", " END"], ["\n\n", " END"]),
        ("\n\n", ["\n\n"]),  # YAML "\n\n", or ${VAR} holding it
        (" END", [" END"]),  # one sequence: kept exactly
        ("a, b", ["a", "b"]),  # comma-separated: spaces around the commas are layout
        ('["\\n\\n", " END"]', ["\n\n", " END"]),  # a JSON list: the string form that keeps them
        ("[/INST]", ["[/INST]"]),  # looks like a list, is not one
    ],
)
def test_stop_sequences_keep_their_whitespace(value: object, expected: list[str]) -> None:
    assert parse(stop=value).stop == expected


def test_a_lone_retry_delay_moves_the_other_default() -> None:
    cfg = parse(max_retry_delay=0.5)
    assert (cfg.min_retry_delay, cfg.max_retry_delay) == (0.5, 0.5)
    cfg = parse(min_retry_delay="60")
    assert (cfg.min_retry_delay, cfg.max_retry_delay) == (60.0, 60.0)


def test_native_types_accepted() -> None:
    cfg = parse(
        headers={"A": "b", "N": 3}, extra_body={"k": [1]}, verify=False, temperature=1, seed=-1
    )
    assert cfg.headers == {"A": "b", "N": "3"}
    assert cfg.extra_body == {"k": [1]}
    assert cfg.verify is False
    assert cfg.temperature == 1.0 and isinstance(cfg.temperature, float)
    assert cfg.seed == -1


def test_verify_string_false() -> None:
    assert parse(verify="false").verify is False


def test_model_alias_and_precedence() -> None:
    assert parse(model="llama").default_model == "llama"
    # Both given and different: default_model is the documented name and wins.
    assert parse(model="llama", default_model="qwen").default_model == "qwen"
    assert parse(model="llama", default_model="").default_model == "llama"


def test_env_fills_unset_and_config_wins() -> None:
    env = {ENV_BASE_URL: "http://env:1234/v1/", ENV_API_KEY: "env-key-123"}
    cfg = parse_config({}, env=env)
    assert cfg.base_url == "http://env:1234/v1"
    assert cfg.api_key == "env-key-123"
    cfg = parse_config({"base_url": URL, "api_key": "cfg-key"}, env=env)
    assert (cfg.base_url, cfg.api_key) == (URL, "cfg-key")


def test_empty_string_counts_as_unset() -> None:
    env = {ENV_BASE_URL: "http://env:1/v1", ENV_API_KEY: "env-key"}
    cfg = parse_config({"base_url": "", "api_key": "  ", "temperature": "", "stop": ""}, env=env)
    assert cfg.base_url == "http://env:1/v1"
    assert cfg.api_key == "env-key"
    assert cfg.temperature == 0.7
    assert cfg.stop is None
    # Empty env values are unset too.
    assert parse_config({"base_url": URL}, env={ENV_API_KEY: ""}).api_key == "not-needed"


def test_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_BASE_URL, "http://osenv:9/v1")
    assert parse_config(None).base_url == "http://osenv:9/v1"


def test_missing_base_url() -> None:
    with pytest.raises(ConfigurationError, match=ENV_BASE_URL):
        parse_config({"base_url": ""}, env={})
    with pytest.raises(ConfigurationError, match=ENV_BASE_URL):
        parse_config(None, env={})


def test_base_url_optional_for_info_only_construction() -> None:
    cfg = parse_config({"temperature": "0.1"}, env={}, require_base_url=False)
    assert (cfg.base_url, cfg.temperature) == ("", 0.1)
    # A base_url that IS given is still validated.
    with pytest.raises(ConfigurationError, match="base_url='localhost:1'"):
        parse_config({"base_url": "localhost:1"}, env={}, require_base_url=False)


def test_resolve_base_url() -> None:
    assert resolve_base_url({}, {}) is None
    assert resolve_base_url({"base_url": ""}, {ENV_BASE_URL: ""}) is None
    assert resolve_base_url(None, {ENV_BASE_URL: " http://e/v1 "}) == "http://e/v1"
    assert resolve_base_url({"base_url": "http://c/v1"}, {ENV_BASE_URL: "http://e"}) == (
        "http://c/v1"
    )


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("temperature", "hot", "a number from 0 to 2"),
        ("temperature", 2.5, "a number from 0 to 2"),
        ("temperature", -0.1, "a number from 0 to 2"),
        ("temperature", True, "a number from 0 to 2"),
        ("temperature", "nan", "a number from 0 to 2"),
        ("max_tokens", -5, "an integer >= 1"),
        ("max_tokens", 0, "an integer >= 1"),
        ("max_tokens", "12.5", "an integer >= 1"),
        ("max_tokens", True, "an integer >= 1"),
        ("top_p", 1.5, "a number from 0 to 1"),
        ("top_p", -1, "a number from 0 to 1"),
        ("timeout", 0, "a number > 0"),
        ("timeout", "-3", "a number > 0"),
        ("max_retries", -1, "an integer >= 0"),
        ("min_retry_delay", -1, "a number >= 0"),
        ("use_streaming", "maybe", "true or false"),
        ("raw", 7, "true or false"),
        ("stop", 5, "a list of non-empty strings"),
        ("stop", ["a", 1], "a list of non-empty strings"),
        ("seed", "abc", "an integer"),
        ("priority", [1], "an integer"),
        ("context_window", 0, "an integer >= 1"),
        ("max_connections", "-2", "an integer >= 1"),
        ("server", 3, "a non-empty string"),
        ("name", ["x"], "a non-empty string"),
        ("default_model", {"a": 1}, "a non-empty string"),
        ("extra_body", "[1, 2]", "a mapping"),
        ("extra_body", "{not json", "a mapping or a JSON object string"),
        ("extra_body", {"k": object()}, "JSON-serializable"),
        ("headers", ["x"], "a mapping of header names"),
        ("headers", {"X": ["v"]}, "string header values"),
        ("verify", "/no/such/ca.pem", "existing CA bundle"),
        ("verify", 3.5, "true, false or the path"),
        ("base_url", 8080, "a URL string"),
    ],
)
def test_invalid_values_name_key_value_and_expectation(
    key: str, value: object, expected: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse(**{key: value})
    message = str(info.value)
    assert f"{key}=" in message
    assert expected in message
    if isinstance(value, str | int | float) and key != "headers":
        assert repr(value) in message


def test_base_url_without_scheme() -> None:
    with pytest.raises(ConfigurationError) as info:
        parse(base_url="localhost:8080")
    message = str(info.value)
    assert "base_url='localhost:8080'" in message
    assert "http:// or https://" in message
    assert "http://localhost:8080" in message


def test_base_url_with_chat_completions_path() -> None:
    with pytest.raises(ConfigurationError) as info:
        parse(base_url="http://host:8080/v1/chat/completions/")
    message = str(info.value)
    assert "set base_url to http://host:8080/v1" in message
    assert "appends /chat/completions itself" in message


def test_base_url_credentials_not_echoed() -> None:
    with pytest.raises(ConfigurationError) as info:
        parse(base_url="ftp://user:hunter2pass@host/v1")
    assert "hunter2pass" not in str(info.value)


def test_retry_delay_order() -> None:
    with pytest.raises(ConfigurationError, match="min_retry_delay=5 > max_retry_delay=2"):
        parse(min_retry_delay=5, max_retry_delay="2")


@pytest.mark.parametrize("bad", [123, 4.5, ["x"], {"nested": 1}, object()])
def test_api_key_value_never_in_message(bad: object) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse(api_key=bad)
    assert "api_key=<hidden>" in str(info.value)
    assert repr(bad) not in str(info.value)


def test_api_key_with_newline_hidden() -> None:
    with pytest.raises(ConfigurationError) as info:
        parse(api_key=SECRET + "\n")
    assert SECRET not in str(info.value)


def test_headers_json_string_value_not_echoed() -> None:
    with pytest.raises(ConfigurationError) as info:
        parse(headers="Authorization: Bearer " + SECRET)
    assert SECRET not in str(info.value)
    assert "headers=" in str(info.value)


def test_repr_hides_api_key_and_header_values() -> None:
    cfg = parse(api_key=SECRET, headers={"Authorization": "Bearer " + SECRET})
    text = repr(cfg)
    assert SECRET not in text
    assert "api_key='***'" in text
    assert "'Authorization': '***'" in text
    assert "api_key='not-needed'" in repr(parse())
    assert SECRET not in str(cfg)


def test_config_is_frozen() -> None:
    cfg = parse()
    with pytest.raises(AttributeError):
        cfg.temperature = 1.0  # type: ignore[misc]


def test_unknown_keys_one_warning_with_suggestion(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    parse(temprature=0.5, banana=1, instance_id="x", module="m", source="s", id="i")
    records = [r for r in caplog.records if r.name == LOGGER]
    assert len(records) == 1
    message = records[0].getMessage()
    assert "'temprature' (did you mean 'temperature'?)" in message
    assert "'banana'" in message
    for host_key in ("instance_id", "module", "source", "'id'"):
        assert host_key not in message


def test_non_string_unknown_key_only_warns(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    parse_config({"base_url": URL, 5: "x"}, env={})
    assert "'5'" in caplog.records[-1].getMessage()


def test_no_warning_for_known_keys(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    parse(model="m", priority=1, instance_id="x")
    assert [r for r in caplog.records if r.name == LOGGER] == []


class _Exploding:
    def __repr__(self) -> str:
        raise RuntimeError("boom")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("boom")

    __hash__ = object.__hash__


@pytest.mark.parametrize(
    "config",
    [
        ["base_url", URL],
        "base_url=" + URL,
        {"base_url": URL, "temperature": _Exploding()},
        {"base_url": URL, "model": _Exploding(), "default_model": "x"},
        {"base_url": [URL]},
        {"base_url": URL, "headers": {1: "x"}},
        {"base_url": "http://host:notaport/v1"},
        {"base_url": "http:///v1"},
        {"base_url": "http://h/v1?x=1"},
    ],
)
def test_any_garbage_is_configuration_error(config: Any) -> None:
    with pytest.raises(ConfigurationError):
        parse_config(config, env={})


# ---------------------------------------------------------------------------
# one declaration per setting


def test_dataclass_parser_and_env_come_from_one_declaration() -> None:
    by_name = {k.name: k for k in CONFIG_KEYS}
    assert [f.name for f in dataclasses.fields(ProviderConfig)] == list(by_name)
    assert by_name["base_url"].env == ENV_BASE_URL and by_name["api_key"].env == ENV_API_KEY
    assert by_name["max_tokens"].parse("max_tokens", "12") == 12
    with pytest.raises(ConfigurationError, match="max_tokens"):
        by_name["max_tokens"].parse("max_tokens", "0")


def test_get_info_is_drawn_from_the_declarations() -> None:
    provider = ChatCompletionsProvider(
        config={
            "base_url": URL,
            "default_model": "qwen",
            "max_tokens": 77,
            "temperature": 0.1,
            "timeout": 9,
            "max_retries": 0,
            "use_streaming": False,
            "name": "box",
        }
    )
    info = provider.get_info()
    assert info.id == DEFAULT_NAME and info.display_name == "OpenAI-Compatible (box)"
    assert info.defaults == {
        "model": "qwen",
        "max_tokens": 77,
        "temperature": 0.1,
        "timeout": 9.0,
        "max_retries": 0,
        "use_streaming": False,
    }
    asked = [k for k in CONFIG_KEYS if k.prompt is not None]
    fields = {f.id: f for f in info.config_fields}
    assert list(fields) == [k.name for k in asked] == ["base_url", "api_key"]
    base_url, api_key = fields["base_url"], fields["api_key"]
    # No env_var on base_url: the CLI wizard would store every instance's URL in it.
    assert (base_url.env_var, base_url.required) == (None, True)
    assert base_url.default == "http://localhost:8080/v1" and base_url.field_type == "text"
    assert (api_key.env_var, api_key.required, api_key.field_type) == (ENV_API_KEY, False, "secret")
    assert info.credential_env_vars == [ENV_API_KEY]
    assert set(info.capabilities) == {"streaming", "tools", "json_mode"}


# Vocabulary every module shares: defined once, in config.py, and imported everywhere else.
VOCABULARY = (
    "chat-completions",
    "not-needed",
    "CHAT_COMPLETIONS_BASE_URL",
    "CHAT_COMPLETIONS_API_KEY",
)
PACKAGE = Path(config_module.__file__).parent


def _string_constants(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and type(n.value) is str}


@pytest.mark.parametrize("word", VOCABULARY)
def test_shared_vocabulary_is_defined_once(word: str) -> None:
    spelled = {
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if word in _string_constants(path)
    }
    assert spelled == {"config.py"}
