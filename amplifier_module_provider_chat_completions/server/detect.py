"""Which server is this? Fingerprints from /v1/models and response headers (pure).

The provider GETs /models once (short timeout) and calls `classify`; when that is
ambiguous, `follow_up` names at most one more small GET whose body `classify_follow_up`
reads. Anything unexpected falls back to the generic "openai" profile.

Also here: the readers for runtime context windows that servers expose outside /models
(`context_window_from`), one per `profiles.ContextSource`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .models import context_window_of, positive_int
from .profiles import ContextSource

__all__ = [
    "classify",
    "classify_follow_up",
    "context_source_path",
    "context_window_from",
    "follow_up",
    "model_entries",
]

GENERIC = "openai"

# owned_by values that name the server outright.
_OWNED_BY: dict[str, str] = {
    "llamacpp": "llamacpp",  # SERVERS: llama.cpp /v1/models owned_by "llamacpp"
    "vllm": "vllm",
    "sglang": "sglang",
    "organization_owner": "lmstudio",  # LM Studio's /v1/models
    "library": "ollama",  # Ollama /v1/models: the namespace of library models
    "ollama": "ollama",
    "ampify": "ampify",
    "bedrock": "amazon",  # the Amazon server's listing (as in the project's replica)
}


def model_entries(body: Any) -> list[dict[str, Any]]:
    """The model objects of a /models body (OpenAI `data` or a bare list)."""
    data = body.get("data") if isinstance(body, Mapping) else body
    if not isinstance(data, list):
        return []
    return [e for e in data if isinstance(e, dict)]


def classify(models_body: Any, headers: Mapping[str, str] | None = None) -> str:
    """The profile key the /models answer (body and headers) points to; "openai" if unsure."""
    lowered = {str(k).lower(): str(v) for k, v in (headers or {}).items()}
    server = lowered.get("server", "").lower()
    if server.startswith("llama.cpp"):  # SERVERS: header `Server: llama.cpp`
        return "llamacpp"
    if any(name.startswith("x-litellm") for name in lowered):
        return "litellm"
    entries = model_entries(models_body)
    for entry in entries:
        owner = entry.get("owned_by")
        if isinstance(owner, str) and owner.lower() in _OWNED_BY:
            return _OWNED_BY[owner.lower()]
    for entry in entries:
        meta = entry.get("meta")
        if isinstance(meta, Mapping) and "n_ctx_train" in meta:
            return "llamacpp"  # SERVERS: llama.cpp's meta block
        if "max_model_len" in entry:
            return "vllm"  # SERVERS: vLLM and SGLang; owned_by would have told them apart
    if entries and all(set(e) <= {"id", "object"} for e in entries):
        # LocalAI lists models as bare {id, object}; its profile is near-generic anyway.
        return "localai"
    return GENERIC


def follow_up(models_body: Any, headers: Mapping[str, str] | None = None) -> str | None:
    """One more GET that can settle an ambiguous answer, or None.

    Paths starting with "/v1" are under base_url; others are from the server root.
    """
    if classify(models_body, headers) != GENERIC:
        return None
    entries = model_entries(models_body)
    # TGI lists its one model with owned_by equal to the model id.
    if any(e.get("owned_by") and e.get("owned_by") == e.get("id") for e in entries):
        return "/info"
    # LiteLLM reports owned_by "openai" for every model it proxies.
    if entries and all(e.get("owned_by") == "openai" for e in entries):
        return "/v1/model/info"
    # A FastAPI server that lists nothing recognisable: its OpenAPI title names it
    # (open-bedrock-server 2.0.4 lists only upstream "gpt" models, often none).
    if "uvicorn" in str((headers or {}).get("server", (headers or {}).get("Server", ""))).lower():
        return "/openapi.json"
    return None


def classify_follow_up(path: str, body: Any) -> str | None:
    """The profile key a follow-up answer proves, or None."""
    if not isinstance(body, Mapping):
        return None
    if path == "/info" and "model_id" in body and "max_total_tokens" in body:
        return "tgi"  # SERVERS: TGI /info
    if path == "/openapi.json":
        info = body.get("info")
        title = info.get("title") if isinstance(info, Mapping) else None
        if isinstance(title, str) and "bedrock" in title.lower():
            return "amazon"  # real server: info.title "Open Bedrock Server API"
        return None
    if path == "/v1/model/info" and isinstance(body.get("data"), list):
        data = body["data"]
        if any(isinstance(e, Mapping) and "litellm_params" in e for e in data):
            return "litellm"
    return None


# ------------------------------------------------------------------ context windows


def context_source_path(source: ContextSource, model_id: str) -> str | None:
    """Where `source` lives ("/v1/..." under base_url, else from the server root)."""
    return {
        "models": None,
        "props": "/props",
        "tgi_info": "/info",
        "lmstudio": f"/api/v0/models/{model_id}",
        "litellm": "/v1/model/info",
        "ollama_ps": "/api/ps",
    }[source]


def context_window_from(source: ContextSource, body: Any, model_id: str) -> int | None:
    """The runtime context window `body` (from `source`) gives for `model_id`, if any."""
    if source == "models":
        for entry in model_entries(body):
            if entry.get("id") == model_id:
                return context_window_of(entry)
        return None
    if not isinstance(body, Mapping):
        return None
    if source == "props":
        # SERVERS: per-slot runtime n_ctx; never the model's training size.
        settings = body.get("default_generation_settings")
        return positive_int(settings.get("n_ctx")) if isinstance(settings, Mapping) else None
    if source == "tgi_info":
        return positive_int(body.get("max_total_tokens")) or positive_int(
            body.get("max_input_tokens")
        )
    if source == "lmstudio":
        return positive_int(body.get("loaded_context_length"))
    if source == "litellm":
        for entry in body.get("data") or ():
            if isinstance(entry, Mapping) and entry.get("model_name") == model_id:
                info = entry.get("model_info")
                if isinstance(info, Mapping):
                    return positive_int(info.get("max_input_tokens")) or positive_int(
                        info.get("max_tokens")
                    )
        return None
    if source == "ollama_ps":
        # SERVERS: /api/ps is the runtime size of loaded models (/api/show is training).
        for entry in body.get("models") or ():
            if isinstance(entry, Mapping) and model_id in (entry.get("name"), entry.get("model")):
                return positive_int(entry.get("context_length"))
        return None
    return None


_VERSION_TEXT = re.compile(r"[\w.+-]{1,64}")


def version_from(body: Any, key: str | None) -> str | None:
    """A short version string from a version endpoint's JSON body."""
    if key is None or not isinstance(body, Mapping):
        return None
    value = body.get(key)
    if isinstance(value, str) and _VERSION_TEXT.fullmatch(value.strip()):
        return value.strip()
    return None
