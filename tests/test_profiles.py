"""Server profiles: the table and apply_profile, one server difference per test."""

from __future__ import annotations

import copy
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from amplifier_module_provider_chat_completions.server.profiles import (
    GENERIC,
    PROFILES,
    ServerProfile,
    apply_profile,
    profile_for,
    resolve_profile,
)

PACKAGE = Path(__file__).parent.parent / "amplifier_module_provider_chat_completions"

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
        apply_profile(body, resolve_profile(profile, "mistral-large", drop={"seed", "top_p"}))
    assert body == before


def test_fields_the_server_rejected_for_the_model_are_left_out():
    profile = resolve_profile(GENERIC, "m", drop={"seed", "parallel_tool_calls"})
    out = apply_profile(full_body(), profile)
    assert "seed" not in out and "parallel_tool_calls" not in out
    assert out["top_p"] == 0.9


def _tool_history() -> list[dict[str, Any]]:
    call = {"id": "call_abc_123456", "type": "function", "function": {"name": "f"}}
    return [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_abc_123456", "content": "done"},
    ]


@pytest.mark.parametrize("key", sorted(PROFILES))
def test_a_mistral_model_gets_nine_character_tool_ids_on_any_server(key):
    body = {"model": "mistralai/Mistral-Small-3.1-24B", "messages": _tool_history()}
    profile = resolve_profile(PROFILES[key], body["model"])
    messages = apply_profile(body, profile)["messages"]
    (new_id,) = {messages[1]["tool_calls"][0]["id"], messages[2]["tool_call_id"]}
    assert re.fullmatch(r"[A-Za-z0-9]{9}", new_id)
    other = apply_profile({**body, "model": "qwen3"}, resolve_profile(PROFILES[key], "qwen3"))
    assert other["messages"][2]["tool_call_id"] == "call_abc_123456"


def test_resolving_merges_the_models_fixes_over_the_servers_entry():
    profile = resolve_profile(
        PROFILES["lmstudio"],
        "m",
        changes={"needs_role_alternation": True, "max_tokens_field": "max_completion_tokens"},
        drop={"seed"},
    )
    assert profile.key == "lmstudio" and profile.response_format_style == "json_schema_only"
    assert profile.needs_role_alternation and profile.drop_fields == {"seed"}
    assert resolve_profile(PROFILES["vllm"], "qwen3") is PROFILES["vllm"]  # nothing to add


def test_every_profile_field_is_read_outside_the_table():
    # A field nothing reads is a server fact nobody acts on: read it or delete it.
    table = PACKAGE / "server" / "profiles.py"
    sources = [p.read_text() for p in PACKAGE.rglob("*.py") if p != table]
    shaping = table.read_text().split("def apply_profile", 1)[1]
    unread = [
        f.name
        for f in fields(ServerProfile)
        if not any(f".{f.name}" in text for text in [*sources, shaping])
    ]
    assert unread == []


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


@pytest.mark.parametrize("key", sorted(PROFILES))
@pytest.mark.parametrize("stream", [True, False])
def test_only_llamacpp_is_asked_for_prompt_progress_and_only_when_streaming(key, stream):
    # llama-server streams a progress chunk per prompt batch when asked (return_progress).
    out = apply_profile(full_body(stream=stream), PROFILES[key])
    assert out.get("return_progress") is (True if key == "llamacpp" and stream else None)
