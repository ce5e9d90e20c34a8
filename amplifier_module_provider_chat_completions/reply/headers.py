"""What a reply's HTTP headers say beyond the body (pure).

A LiteLLM proxy names the model group it matched, the deployment that served the reply and
how many retries and fallbacks its router spent (``x-litellm-*``). Servers and proxies that
rate-limit say what is left of each budget and when it refills (``x-ratelimit-*``, OpenAI's
names, which LiteLLM, Groq, OpenRouter and others use too); a 429 without Retry-After waits
for the spent budget's reset.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = ["duration_seconds", "header_metadata", "rate_limit_wait"]


def _text(value: str) -> str | None:
    return value


def _count(value: str) -> int | None:
    return int(value) if value.isascii() and value.isdigit() else None


def _millis(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _url(value: str) -> str | None:
    """The deployment's URL without a user:password part or a query (either may hold a key)."""
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return None
    return urlunsplit(parts._replace(netloc=netloc, query="", fragment="")) if host else None


_Reader = Callable[[str], Any]

# (metadata key, header, reader); the order is the order in metadata.
_ROUTE: tuple[tuple[str, str, _Reader], ...] = (
    ("model_group", "x-litellm-model-group", _text),
    ("deployment", "x-litellm-model-id", _text),
    ("deployment_model", "x-litellm-model-name", _text),
    ("api_base", "x-litellm-model-api-base", _url),
    ("attempted_retries", "x-litellm-attempted-retries", _count),
    ("max_retries", "x-litellm-max-retries", _count),
    ("attempted_fallbacks", "x-litellm-attempted-fallbacks", _count),
    ("call_id", "x-litellm-call-id", _text),
    ("proxy_overhead_ms", "x-litellm-overhead-duration-ms", _millis),
)

# Go's time.Duration text, as OpenAI sends resets ("1s", "6m0s", "59.639s", "20ms"); a
# plain number is seconds.
_DURATION = re.compile(
    r"(?:(?P<h>\d+(?:\.\d+)?)h)?(?:(?P<m>\d+(?:\.\d+)?)m(?!s))?"
    r"(?:(?P<s>\d+(?:\.\d+)?)s)?(?:(?P<ms>\d+(?:\.\d+)?)ms)?"
)
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def duration_seconds(text: str) -> float | None:
    """Seconds in a rate-limit reset ("6m0s", "20ms", "1.5"); None when unreadable."""
    text = text.strip()
    try:
        plain = float(text)
    except ValueError:
        found = _DURATION.fullmatch(text) if text else None
        if found is None or not any(found.groupdict().values()):
            return None
        return sum(float(v) * _UNIT_SECONDS[unit] for unit, v in found.groupdict().items() if v)
    return plain if math.isfinite(plain) and plain >= 0 else None


_BUDGETS = ("requests", "tokens")
_RATE: tuple[tuple[str, str, _Reader], ...] = tuple(
    (f"{kind}_{budget}", f"x-ratelimit-{kind}-{budget}", reader)
    for budget in _BUDGETS
    for kind, reader in (("limit", _count), ("remaining", _count), ("reset", duration_seconds))
)


def _lowered(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names in lower case, values stripped; "None" is LiteLLM's way of saying none."""
    out: dict[str, str] = {}
    for name, value in headers.items():
        if isinstance(name, str) and isinstance(value, str):
            value = value.strip()
            if value and value != "None":
                out[name.lower()] = value
    return out


def _read(
    lowered: Mapping[str, str], table: tuple[tuple[str, str, _Reader], ...]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, header, reader in table:
        raw = lowered.get(header)
        value = None if raw is None else reader(raw)
        if value is not None:
            out[key] = value
    return out


def header_metadata(headers: Mapping[str, str], model: str) -> dict[str, Any]:
    """``{"route": ..., "rate_limit": ...}`` for ChatResponse.metadata, each when told.

    ``route`` exists when a router named how it served the reply; its model_group is the
    one the router matched, else ``model`` (the name sent, which a router routes by).
    """
    lowered = _lowered(headers)
    out: dict[str, Any] = {}
    route = _read(lowered, _ROUTE)
    if route:
        out["route"] = {"model_group": model, **route}
    limits = _read(lowered, _RATE)
    if limits:
        out["rate_limit"] = limits
    return out


def rate_limit_wait(headers: Mapping[str, str]) -> float | None:
    """How long a 429 without Retry-After should wait: the reset of the spent budget
    (remaining 0), or the longest reset when the headers do not say which is spent."""
    limits = _read(_lowered(headers), _RATE)
    resets = {b: limits[f"reset_{b}"] for b in _BUDGETS if f"reset_{b}" in limits}
    spent = [resets[b] for b in resets if limits.get(f"remaining_{b}") == 0]
    if spent:
        return max(spent)
    return max(resets.values()) if resets else None
