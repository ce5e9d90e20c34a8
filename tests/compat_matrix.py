"""The compatibility matrix: servers x features, each cell backed by named tests.

A cell is "real" when a test drives the provider against the real server, "replica" when a
dialect replica (tests/replicas) stands in for it, and "no (...)" when the server cannot do it
(the replica reproduces that, and a test checks the provider says so instead of pretending).
Replica cells are derived from the dialect data, so a dialect change moves the matrix.

test_compat_matrix.py checks that every test named here exists and that README.md shows
exactly `render()`; the conftest plugin reports, after a run, which cells were backed by
passing tests. Regenerate the README table with `uv run python tests/test_compat_matrix.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

from replicas.dialects import DIALECTS

FEATURES: dict[str, str] = {
    "text": "text",
    "stream": "streaming",
    "usage": "streamed usage",
    "tools": "tool calls",
    "parallel": "parallel tool calls",
    "json": "JSON mode",
    "reasoning": "reasoning",
    "context": "context window",
    "errors": "errors (overflow, auth)",
}

# (row title, replica key or None)
SERVERS: list[tuple[str, str | None]] = [
    ("llama.cpp llama-server", "llamacpp"),
    ("vLLM", "vllm"),
    ("SGLang", "sglang"),
    ("TGI", "tgi"),
    ("Ollama /v1", "ollama"),
    ("LocalAI", "localai"),
    ("LM Studio", "lmstudio"),
    ("LiteLLM proxy", "litellm"),
    ("Ampify Model Proxy", "ampify"),
    ("Amazon Chat Completions Server", "amazon"),
    ("llama-cpp-python", "llama_cpp_python"),
]

_LLAMA = "tests/e2e/test_llama_provider.py::"
_SMOL = "tests/e2e/test_smollm2.py::"  # llama-server running SmolLM2-135M-Instruct
_BEDROCK = "tests/e2e/test_bedrock_server.py::"
_LITELLM = "tests/e2e/test_litellm_proxy.py::"

# Tests against real servers (tests/e2e), by row and feature.
REAL: dict[str, dict[str, tuple[str, ...]]] = {
    "llamacpp": {
        "text": (
            _LLAMA + "test_text_and_usage[json]",
            _SMOL + "test_plain_chat_answers_the_question[json]",
        ),
        "stream": (
            _LLAMA + "test_text_and_usage[stream]",
            _LLAMA + "test_live_stream_events_arrive_before_the_response",
            _SMOL + "test_streaming_delivers_deltas_while_the_server_generates",
            _SMOL + "test_four_concurrent_streams_run_in_separate_slots",
        ),
        "usage": (
            _LLAMA + "test_text_and_usage[stream]",
            _SMOL + "test_plain_chat_answers_the_question[stream]",
        ),
        "tools": (
            _LLAMA + "test_tool_call_required_and_round_trip[stream]",
            _LLAMA + "test_tool_call_required_and_round_trip[json]",
        ),
        "json": (
            _LLAMA + "test_json_schema[stream]",
            _LLAMA + "test_json_schema[json]",
            _SMOL + "test_json_mode_gives_a_json_object[stream]",
            _SMOL + "test_json_schema_is_followed[json]",
        ),
        "context": (
            _LLAMA + "test_list_models_and_context_window",
            _SMOL + "test_prompt_over_a_small_window_is_context_length_error_not_retried[json]",
        ),
        "errors": (
            _LLAMA + "test_over_context_prompt_is_context_length_error_without_retry[stream]",
            _LLAMA + "test_wrong_api_key_is_authentication_error_without_retry[stream]",
            _SMOL + "test_prompt_over_a_small_window_is_context_length_error_not_retried[stream]",
        ),
    },
    "litellm": {
        "text": (_LITELLM + "test_text_with_usage[json]",),
        "stream": (_LITELLM + "test_text_with_usage[stream]",),
        "usage": (_LITELLM + "test_text_with_usage[stream]",),
        "tools": (
            _LITELLM + "test_tool_call_and_round_trip[stream]",
            _LITELLM + "test_tool_call_and_round_trip[json]",
        ),
        "errors": (_LITELLM + "test_wrong_key_fails_once",),
    },
    "amazon": {
        "text": (_BEDROCK + "test_text[json]",),
        "stream": (_BEDROCK + "test_text[stream]",),
        "tools": (
            _BEDROCK + "test_tool_call_fails_once_without_retry[stream]",
            _BEDROCK + "test_tool_call_failure_names_the_server_with_amazon_profile[json]",
        ),
        "context": (_BEDROCK + "test_models_list_is_empty_behind_llama_server",),
        "errors": (_BEDROCK + "test_wrong_key_is_access_denied_without_retry[stream]",),
    },
}

_DIALECTS_TEST = "tests/replicas/test_provider_dialects.py::"


def _replica_tests(key: str) -> dict[str, tuple[str, ...]]:
    t = _DIALECTS_TEST
    if DIALECTS[key].tools_work:
        tools = (f"{t}test_tool_call[{key}-stream]", f"{t}test_tool_call[{key}-json]")
    else:
        tools = tuple(
            f"{t}test_server_side_tool_failure_is_one_clear_error[{key}-{mode}]"
            for mode in ("stream", "json")
        )
    return {
        "text": (f"{t}test_text[{key}-json]",),
        "stream": (f"{t}test_text[{key}-stream]",),
        "usage": (f"{t}test_text[{key}-stream]",),
        "tools": tools,
        "parallel": (f"{t}test_parallel_tool_calls_in_index_order_with_unique_ids[{key}-stream]",),
        "json": (
            f"{t}test_json_mode_is_sent_in_a_shape_the_server_accepts[{key}-stream]",
            f"{t}test_json_mode_is_sent_in_a_shape_the_server_accepts[{key}-json]",
        ),
        "reasoning": (f"{t}test_reasoning[{key}-stream]", f"{t}test_reasoning[{key}-json]"),
        "context": (f"{t}test_context_window_is_the_runtime_one_the_server_reports[{key}]",),
        "errors": (
            f"{t}test_context_overflow_not_retried[{key}]",
            f"{t}test_unauthorized_not_retried[{key}]",
        ),
    }


# SERVERS.md: Ampify and the Amazon server ignore response_format.
JSON_MODE_IGNORED = frozenset({"ampify", "amazon"})


def _unsupported(key: str) -> dict[str, str]:
    """Features the server itself cannot provide, with the reason (from the dialect data)."""
    d = DIALECTS[key]
    out: dict[str, str] = {}
    if not d.usage_in_stream(True):
        out["usage"] = "no (never sent)"
    if not d.tools_work:
        out["tools"] = "no (fails server-side)"
    if not d.tools_work or not d.parallel_tools:
        out["parallel"] = "no (one call)" if d.tools_work else "no"
    if key in JSON_MODE_IGNORED:
        out["json"] = "no (ignored)"
    if d.reasoning == "none":
        out["reasoning"] = "no (dropped)"
    if not d.context_window:
        out["context"] = "no (not reported)"
    return out


@dataclass(frozen=True)
class Cell:
    status: str  # "real", "replica" or "no (...)"
    tests: tuple[str, ...]  # the tests that back it (also for "no": they check the behaviour)


def matrix() -> dict[str, dict[str, Cell]]:
    rows: dict[str, dict[str, Cell]] = {}
    for title, key in SERVERS:
        if key is None:
            continue
        replica = _replica_tests(key)
        unsupported = _unsupported(key)
        real = REAL.get(key, {})
        row: dict[str, Cell] = {}
        for feature in FEATURES:
            tests = real.get(feature, ()) + replica.get(feature, ())
            if feature == "parallel" and "parallel" in unsupported:
                tests = ()  # no parallel replica test: the dialect sends one call
            if feature in unsupported:
                status = unsupported[feature]
            elif feature in real:
                status = "real"
            else:
                status = "replica"
            if feature == "errors" and "context_overflow" not in DIALECTS[key].errors:
                # Ollama truncates an over-long prompt silently: there is no error to map.
                tests = tuple(t for t in tests if "context_overflow" not in t)
            row[feature] = Cell(status, tests)
        rows[title] = row
    return rows


def all_tests() -> set[str]:
    return {t for row in matrix().values() for cell in row.values() for t in cell.tests}


def render() -> str:
    header = "| server | " + " | ".join(FEATURES.values()) + " |"
    lines = [header, "|---" * (len(FEATURES) + 1) + "|"]
    for title, row in matrix().items():
        lines.append(f"| {title} | " + " | ".join(row[f].status for f in FEATURES) + " |")
    return "\n".join(lines)
