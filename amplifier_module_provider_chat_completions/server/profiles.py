"""Server profiles: what differs between Chat Completions servers, as data in one table.

Every difference the provider adapts to lives in `PROFILES`. A request is shaped by one
resolved profile: the server family's entry, the model's own traits and the fixes the
server taught us for that model (`resolve_profile`); `apply_profile` is the one place that
reshapes a built request body with it. Facts come from
/work/shared/SERVERS.md ("SERVERS:" in the comments); where a server is not known to need
an adaptation, the profile keeps the OpenAI default.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from ..request.strict_templates import (
    enforce_alternation,
    is_mistral_family,
    rewrite_tool_ids_for_mistral,
)

__all__ = [
    "GENERIC",
    "PROFILES",
    "ContextSource",
    "ResponseFormatStyle",
    "ServerProfile",
    "ToolIdStyle",
    "apply_profile",
    "permissive_schema_format",
    "profile_for",
    "resolve_profile",
]

ResponseFormatStyle = Literal["openai", "json_schema_only", "tgi", "drop"]
# "mistral9": history tool-call ids must be 9 alphanumerics (Mistral tokenizers in vLLM).
ToolIdStyle = Literal["any", "mistral9"]
NamedToolChoice = Literal["native", "emulate"]
# Where the runtime context window can be read (never the training size).
ContextSource = Literal["models", "props", "tgi_info", "lmstudio", "litellm", "ollama_ps"]

# A JSON-object schema that accepts any object: json_object mode for json_schema-only servers.
_ANY_OBJECT: dict[str, Any] = {"type": "object"}


@dataclass(frozen=True, slots=True)
class ServerProfile:
    """What one server family accepts and how it wants things shaped."""

    key: str
    title: str
    # How to enable separate reasoning output, for the doctor's advice.
    reasoning_hint: str = ""
    response_format_style: ResponseFormatStyle = "openai"
    # False: the server rejects response_format together with tools (TGI grammar).
    response_format_with_tools: bool = True
    # "emulate": offer only the named tool and send tool_choice "required".
    named_tool_choice: NamedToolChoice = "native"
    accepts_stream_options: bool = True
    accepts_parallel_tool_calls: bool = True
    accepts_seed: bool = True
    max_tokens_field: str = "max_tokens"
    # Only these top-level fields are sent (None: everything).
    allowed_fields: frozenset[str] | None = None
    # What to tell the user when the server cannot do tools as started.
    tools_hint: str = ""
    # True: the server's own tool-call path is broken, so a 5xx on a request with tools is
    # a permanent failure, not worth a retry.
    tools_fail_server_side: bool = False
    context_sources: tuple[ContextSource, ...] = ("models",)
    # A GET path (absolute from the server root when it starts with "/") and the JSON key
    # holding the server's version, for the doctor.
    version_path: str | None = None
    version_key: str | None = None
    # Strict chat templates ("Conversation roles must alternate"): merge same-role runs and
    # fold later system messages in. Set by self-healing when the server says so.
    needs_role_alternation: bool = False
    # Ask for prompt-progress chunks while the server reads the prompt (streaming only), so
    # a long prompt on slow hardware keeps the stream alive within `timeout`.
    prompt_progress: bool = False
    # History tool-call ids as the model accepts them; chosen by model name.
    tool_id_style: ToolIdStyle = "any"
    # Fields the server rejected for this model: left out from then on (set from the
    # remembered fixes, never in the table).
    drop_fields: frozenset[str] = frozenset()


GENERIC = ServerProfile(key="openai", title="OpenAI-compatible (generic)")

_PROFILES: tuple[ServerProfile, ...] = (
    GENERIC,
    # llama.cpp llama-server. SERVERS: tool_choice reads only "auto"/"none"/"required" (a
    # named-function object is treated as auto) -> emulate; tools need --jinja; reasoning
    # in reasoning_content; runtime context in /v1/models meta.n_ctx or /props
    # default_generation_settings.n_ctx (per slot); /props has build_info. llama.cpp
    # tools/server: `return_progress: true` with stream streams a chunk per prompt batch
    # carrying prompt_progress {total, cache, processed, time_ms} and an empty delta.
    ServerProfile(
        key="llamacpp",
        title="llama.cpp llama-server",
        reasoning_hint="start llama-server with --reasoning-format deepseek",
        named_tool_choice="emulate",
        tools_hint="start llama-server with --jinja to enable tool calling",
        context_sources=("models", "props"),
        version_path="/props",
        version_key="build_info",
        prompt_progress=True,
    ),
    # vLLM. SERVERS: "auto" tool choice needs --enable-auto-tool-choice --tool-call-parser;
    # named choice works (finish_reason "stop"); unknown fields ignored; reasoning in
    # `reasoning` (older: reasoning_content); max_model_len on /v1/models.
    ServerProfile(
        key="vllm",
        title="vLLM",
        reasoning_hint="start vLLM with --reasoning-parser NAME (e.g. qwen3, deepseek_r1)",
        tools_hint=(
            "start vLLM with --enable-auto-tool-choice --tool-call-parser NAME "
            "(e.g. hermes for Qwen, llama3_json, mistral)"
        ),
        version_path="/version",
        version_key="version",
    ),
    # SGLang. SERVERS: as vLLM for streaming; reasoning_content; max_model_len on /v1/models.
    ServerProfile(
        key="sglang",
        title="SGLang",
        reasoning_hint="start SGLang with --reasoning-parser NAME (e.g. qwen3)",
        tools_hint="start SGLang with --tool-call-parser NAME (e.g. qwen25, llama3)",
    ),
    # Hugging Face TGI. SERVERS: response_format is {"type": "json_object"|"json", "value":
    # schema} (the OpenAI shape is a 422); response_format plus tools is a 422; no reasoning
    # parser; /info max_input_tokens / max_total_tokens and version.
    ServerProfile(
        key="tgi",
        title="Hugging Face TGI",
        response_format_style="tgi",
        response_format_with_tools=False,
        context_sources=("tgi_info",),
        version_path="/info",
        version_key="version",
    ),
    # Ollama /v1. SERVERS: reasoning in `reasoning`; max_completion_tokens ignored (we send
    # max_tokens everywhere); runtime context from /api/ps, not /api/show (training size).
    ServerProfile(
        key="ollama",
        title="Ollama /v1",
        context_sources=("ollama_ps",),
        version_path="/api/version",
        version_key="version",
    ),
    # LocalAI. SERVERS: reasoning in `reasoning`; otherwise OpenAI-shaped requests.
    ServerProfile(key="localai", title="LocalAI"),
    # LM Studio. SERVERS: rejects json_object (400 "must be json_schema or text");
    # reasoning in `reasoning`; /api/v0/models/{id} loaded_context_length.
    ServerProfile(
        key="lmstudio",
        title="LM Studio",
        response_format_style="json_schema_only",
        context_sources=("lmstudio",),
    ),
    # LiteLLM proxy. SERVERS: reasoning_content; /v1/model/info for context windows.
    ServerProfile(
        key="litellm",
        title="LiteLLM proxy",
        context_sources=("litellm",),
    ),
    # Ampify Model Proxy. SERVERS: treats a named tool choice as "required" (emulating makes
    # that exact); drops response_format (so JSON mode is reported as degraded); thinking
    # inlined as content "[thinking]\n..." rather than a field.
    ServerProfile(
        key="ampify",
        title="Ampify Model Proxy",
        response_format_style="drop",
        named_tool_choice="emulate",
    ),
    # Amazon Chat Completions Server (open-bedrock-server). SERVERS: forwards only model,
    # messages, stream, temperature, max_tokens, tools, tool_choice; mis-detects a body as
    # Bedrock-Claude when it has max_tokens plus system/top_k/stop_sequences or an object
    # tool_choice -> send only those fields and emulate named choices; drops response_format.
    ServerProfile(
        key="amazon",
        title="Amazon Chat Completions Server (open-bedrock-server)",
        response_format_style="drop",
        named_tool_choice="emulate",
        tools_hint="open-bedrock-server 2.0.4 fails tool calls server-side; no client "
        "setting fixes that",
        tools_fail_server_side=True,
        accepts_stream_options=False,
        accepts_parallel_tool_calls=False,
        accepts_seed=False,
        allowed_fields=frozenset(
            {"model", "messages", "stream", "temperature", "max_tokens", "tools", "tool_choice"}
        ),
    ),
)

PROFILES: dict[str, ServerProfile] = {p.key: p for p in _PROFILES}
# Spellings users type in `server:`.
_ALIASES: dict[str, str] = {
    "generic": "openai",
    "auto": "openai",
    "llama.cpp": "llamacpp",
    "llama-cpp": "llamacpp",
    "llama_cpp": "llamacpp",
    "llama-server": "llamacpp",
    "text-generation-inference": "tgi",
    "lm-studio": "lmstudio",
    "lm_studio": "lmstudio",
    "open-bedrock-server": "amazon",
    "bedrock": "amazon",
}


def profile_for(name: str | None) -> ServerProfile | None:
    """The profile for a `server:` value (aliases accepted); None when unknown."""
    key = (name or "").strip().lower()
    return PROFILES.get(_ALIASES.get(key, key))


def permissive_schema_format() -> dict[str, Any]:
    """json_object mode expressed as a json_schema accepting any object."""
    return {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": dict(_ANY_OBJECT)},
    }


def _reshape_response_format(rf: Any, style: ResponseFormatStyle) -> Any | None:
    """The response_format in the server's shape; None means leave it out."""
    if style == "drop" or not isinstance(rf, Mapping):
        return None if style == "drop" else rf
    kind = rf.get("type")
    if style == "json_schema_only" and kind == "json_object":
        return permissive_schema_format()
    if style == "tgi" and kind in ("json_object", "json_schema") and "value" not in rf:
        schema: Any = dict(_ANY_OBJECT)
        wrapper = rf.get("json_schema")
        if kind == "json_schema" and isinstance(wrapper, Mapping):
            schema = wrapper.get("schema") or schema
        return {"type": "json_object", "value": schema}
    return rf


def _named_choice(choice: Any) -> str | None:
    if isinstance(choice, Mapping):
        function = choice.get("function")
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            return function["name"]
    return None


def resolve_profile(
    server: ServerProfile,
    model: str,
    *,
    changes: Mapping[str, Any] | None = None,
    drop: Iterable[str] = (),
) -> ServerProfile:
    """The profile requests for `model` on this server are shaped by.

    The server family's entry, then the model's own traits (Mistral tokenizers take only
    9-alphanumeric tool-call ids, whichever server runs them), then what the server taught
    us about this model: profile `changes` and rejected fields to `drop`.
    """
    merged: dict[str, Any] = {"tool_id_style": "mistral9"} if is_mistral_family(model) else {}
    merged.update(changes or {})
    dropped = server.drop_fields.union(drop)
    if dropped != server.drop_fields:
        merged["drop_fields"] = dropped
    return replace(server, **merged) if merged else server


def apply_profile(body: Mapping[str, Any], profile: ServerProfile) -> dict[str, Any]:
    """The request body as a server with this (resolved) profile gets it.

    Pure: returns a new top-level dict and never mutates `body` or its values.
    """
    out = dict(body)
    named = _named_choice(out.get("tool_choice"))
    if named is not None and profile.named_tool_choice == "emulate":
        only = [t for t in out.get("tools") or () if _tool_name(t) == named]
        if only:  # an unknown name is left for the server to report
            out["tools"] = only
            out["tool_choice"] = "required"
    if "response_format" in out:
        style = profile.response_format_style
        reshaped = _reshape_response_format(out["response_format"], style)
        if reshaped is None or (out.get("tools") and not profile.response_format_with_tools):
            del out["response_format"]
        else:
            out["response_format"] = reshaped
    _drop_unaccepted(out, profile)
    if profile.prompt_progress and out.get("stream") is True:
        out["return_progress"] = True
    if profile.max_tokens_field != "max_tokens" and "max_tokens" in out:
        out[profile.max_tokens_field] = out.pop("max_tokens")
    if profile.allowed_fields is not None:
        out = {k: v for k, v in out.items() if k in profile.allowed_fields}
    if isinstance(out.get("messages"), list):
        out["messages"] = _shape_messages(out["messages"], profile)
    for name in profile.drop_fields:  # last: whatever name the field was given above
        out.pop(name, None)
    return out


def _drop_unaccepted(out: dict[str, Any], profile: ServerProfile) -> None:
    if not profile.accepts_stream_options:
        out.pop("stream_options", None)
    if not profile.accepts_parallel_tool_calls:
        out.pop("parallel_tool_calls", None)
    if not profile.accepts_seed:
        out.pop("seed", None)


def _shape_messages(messages: list[dict[str, Any]], profile: ServerProfile) -> list[Any]:
    if profile.needs_role_alternation:
        messages = enforce_alternation(messages)
    if profile.tool_id_style == "mistral9":
        # Only the wire copy changes: Amplifier keeps the ids it gave, and the response's
        # ids are the server's own.
        rewritten, mapping = rewrite_tool_ids_for_mistral(messages)
        if mapping:
            messages = rewritten
    return messages


def _tool_name(tool: Any) -> str | None:
    if isinstance(tool, Mapping):
        function = tool.get("function")
        if isinstance(function, Mapping):
            name = function.get("name")
            return name if isinstance(name, str) else None
    return None
