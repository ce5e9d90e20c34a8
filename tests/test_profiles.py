"""Server profiles: the table and apply_profile, one server difference per test."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from amplifier_module_provider_chat_completions.server.profiles import (
    GENERIC,
    PROFILES,
    apply_profile,
    profile_for,
)

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "", "parameters": {}}},
    {"type": "function", "function": {"name": "get_time", "description": "", "parameters": {}}},
]
NAMED = {"type": "function", "function": {"name": "get_time"}}
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}


def full_body(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "m",
        "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}],
        "temperature": 0.7,
        "top_p": 0.9,
        "max_tokens": 64,
        "stop": ["END"],
        "seed": 7,
        "tools": TOOLS,
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    body.update(extra)
    return body


def test_table_covers_every_server_family():
    assert set(PROFILES) == {
        "openai",
        "llamacpp",
        "vllm",
        "sglang",
        "tgi",
        "ollama",
        "localai",
        "lmstudio",
        "litellm",
        "ampify",
        "amazon",
    }
    assert all(key == p.key for key, p in PROFILES.items())


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("llama.cpp", "llamacpp"),
        ("VLLM", "vllm"),
        ("open-bedrock-server", "amazon"),
        ("generic", "openai"),
        ("lm-studio", "lmstudio"),
    ],
)
def test_profile_for_accepts_aliases(name, key):
    profile = profile_for(name)
    assert profile is not None and profile.key == key


def test_profile_for_unknown_is_none():
    assert profile_for("nonsense") is None


@pytest.mark.parametrize("key", ["openai", "vllm", "sglang", "litellm", "localai", "ollama"])
def test_permissive_servers_get_the_body_unchanged(key):
    body = full_body(response_format={"type": "json_object"})
    assert apply_profile(body, PROFILES[key]) == body


def test_apply_profile_does_not_mutate_its_input():
    body = full_body(tool_choice=NAMED, response_format={"type": "json_object"})
    before = copy.deepcopy(body)
    for profile in PROFILES.values():
        apply_profile(body, profile, removed={"seed", "top_p"})
    assert body == before


def test_removed_fields_are_left_out():
    out = apply_profile(full_body(), GENERIC, removed={"seed", "parallel_tool_calls"})
    assert "seed" not in out and "parallel_tool_calls" not in out
    assert out["top_p"] == 0.9


def test_amazon_sends_only_what_it_forwards_and_never_an_object_choice():
    out = apply_profile(full_body(tool_choice=NAMED), PROFILES["amazon"])
    assert set(out) == {
        "model",
        "messages",
        "stream",
        "temperature",
        "max_tokens",
        "tools",
        "tool_choice",
    }
    # An object tool_choice makes it mis-detect Bedrock-Claude: emulate instead.
    assert out["tool_choice"] == "required"
    assert [t["function"]["name"] for t in out["tools"]] == ["get_time"]


@pytest.mark.parametrize("key", ["llamacpp", "ampify"])
def test_named_choice_is_emulated_where_ignored(key):
    out = apply_profile(full_body(tool_choice=NAMED), PROFILES[key])
    assert out["tool_choice"] == "required"
    assert out["tools"] == [TOOLS[1]]


def test_named_choice_stays_native_on_vllm():
    out = apply_profile(full_body(tool_choice=NAMED), PROFILES["vllm"])
    assert out["tool_choice"] == NAMED and out["tools"] == TOOLS


def test_emulation_leaves_an_unknown_tool_name_for_the_server_to_report():
    choice = {"type": "function", "function": {"name": "nope"}}
    out = apply_profile(full_body(tool_choice=choice), PROFILES["llamacpp"])
    assert out["tool_choice"] == choice and out["tools"] == TOOLS


def test_lmstudio_gets_json_mode_as_a_permissive_schema():
    out = apply_profile({"response_format": {"type": "json_object"}}, PROFILES["lmstudio"])
    rf = out["response_format"]
    assert rf["type"] == "json_schema"
    assert rf["json_schema"]["schema"] == {"type": "object"}


def test_lmstudio_keeps_a_real_schema():
    rf = {"type": "json_schema", "json_schema": {"name": "r", "schema": SCHEMA}}
    assert apply_profile({"response_format": rf}, PROFILES["lmstudio"])["response_format"] == rf


def test_tgi_response_format_uses_the_value_key():
    rf = {"type": "json_schema", "json_schema": {"name": "r", "schema": SCHEMA}}
    out = apply_profile({"model": "m", "response_format": rf}, PROFILES["tgi"])
    assert out["response_format"] == {"type": "json_object", "value": SCHEMA}
    out = apply_profile({"response_format": {"type": "json_object"}}, PROFILES["tgi"])
    assert out["response_format"] == {"type": "json_object", "value": {"type": "object"}}


def test_tgi_drops_response_format_next_to_tools():
    body = full_body(response_format={"type": "json_object"})
    out = apply_profile(body, PROFILES["tgi"])
    assert "response_format" not in out and out["tools"] == TOOLS


@pytest.mark.parametrize("key", ["ampify", "amazon"])
def test_servers_that_ignore_response_format_do_not_get_it(key):
    out = apply_profile({"model": "m", "response_format": {"type": "json_object"}}, PROFILES[key])
    assert "response_format" not in out


def test_max_tokens_field_rename():
    from dataclasses import replace

    profile = replace(GENERIC, max_tokens_field="max_completion_tokens")
    out = apply_profile({"max_tokens": 10}, profile)
    assert out == {"max_completion_tokens": 10}
