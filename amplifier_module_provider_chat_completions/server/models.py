"""Parsing /v1/models listings into ModelInfo (pure)."""

from __future__ import annotations

from typing import Any

from amplifier_core.models import ModelInfo

from ..config import DEFAULT_MODEL


def positive_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, float) and value.is_integer() and value > 0:
        return int(value)
    return None


def context_window_of(entry: dict[str, Any]) -> int | None:
    """The runtime context window a /models entry states, if any.

    vLLM and SGLang: `max_model_len`. llama.cpp: `meta.n_ctx` (runtime; newer builds),
    never `meta.n_ctx_train`, which is the training size and overstates the limit.
    """
    found = positive_int(entry.get("max_model_len"))
    if found:
        return found
    meta = entry.get("meta")
    if isinstance(meta, dict):
        return positive_int(meta.get("n_ctx"))
    return None


def output_limit(max_tokens: int, window: int | None) -> int:
    """The default output limit: the configured max_tokens, at most half a known window.

    Half, so a default never leaves a long prompt no room (servers that count max_tokens
    against the window reject prompt + max_tokens > window), and so a context manager
    that reserves part of max_output_tokens keeps a usable budget on small windows.
    """
    if window:
        return max(1, min(max_tokens, window // 2))
    return max_tokens


def model_info(model_id: str, window: int | None, max_tokens: int) -> ModelInfo:
    """ModelInfo for one model: its window (0: unknown) and the output limit it allows."""
    return ModelInfo(
        id=model_id,
        display_name=model_id,
        context_window=window or 0,
        max_output_tokens=output_limit(max_tokens, window),
        capabilities=["tools", "streaming", "json_mode"],
    )


def parse_model_list(
    body: Any,
    *,
    configured_model: str,
    filtered: bool,
    max_output_tokens: int,
    context_window_override: int | None = None,
) -> list[ModelInfo]:
    """Turn a /models body into ModelInfo; never invents a model the server did not list."""
    data = body.get("data") if isinstance(body, dict) else body
    if not isinstance(data, list):
        # Ollama's native /api/tags shape uses "models"; accept it too.
        data = body.get("models") if isinstance(body, dict) else None
        if not isinstance(data, list):
            return []
    models: list[ModelInfo] = []
    seen: set[str] = set()
    for entry in data:
        if not isinstance(entry, dict):
            continue
        model_id = entry.get("id") or entry.get("model") or entry.get("name")
        if not isinstance(model_id, str) or not model_id or model_id in seen:
            continue
        seen.add(model_id)
        window = context_window_override or context_window_of(entry)
        models.append(model_info(model_id, window, max_output_tokens))
    if filtered and configured_model != DEFAULT_MODEL:
        chosen = [m for m in models if m.id == configured_model]
        if chosen:
            return chosen
    return models
