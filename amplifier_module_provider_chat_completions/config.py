"""The ONE config parser: mount settings (+ environment) -> a frozen ProviderConfig.

Values arrive from YAML, `${VAR}` expansion, a CLI wizard (everything a string) or Python
callers, so every key accepts its natural type *and* a string spelling of it. Anything
invalid raises `amplifier_core.llm_errors.ConfigurationError` naming the key, the value
(never the api_key's), what is expected and how to fix it; no other exception type escapes.

Precedence: a value in `config` wins; the environment fills what config leaves unset; an
empty string or None counts as unset (an unset `${VAR}` in settings expands to "").
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from amplifier_core.llm_errors import ConfigurationError
from amplifier_core.message_models import Usage

logger = logging.getLogger(__name__)

ENV_BASE_URL = "CHAT_COMPLETIONS_BASE_URL"
ENV_API_KEY = "CHAT_COMPLETIONS_API_KEY"
DEFAULT_NAME = "chat-completions"
NO_API_KEY = "not-needed"  # local servers accept any key; the SDK insists on one


class ConfigKey(NamedTuple):
    """One documented setting: drives the README table, get_info and the wizard."""

    name: str
    default: Any
    description: str
    env: str | None = None


CONFIG_KEYS: tuple[ConfigKey, ...] = (
    ConfigKey("base_url", None, "Server URL ending in /v1 (required)", ENV_BASE_URL),
    ConfigKey("api_key", NO_API_KEY, "API key sent as a Bearer token (secret)", ENV_API_KEY),
    ConfigKey("default_model", "default", "Model id when the request names none (alias: model)"),
    ConfigKey("max_tokens", 4096, "Default output token limit"),
    ConfigKey("temperature", 0.7, "Default sampling temperature, 0..2"),
    ConfigKey("timeout", 300.0, "Seconds to wait for data from the server"),
    ConfigKey("max_retries", 3, "Retries for retryable failures (0 disables)"),
    ConfigKey("min_retry_delay", 1.0, "First retry delay in seconds"),
    ConfigKey("max_retry_delay", 30.0, "Upper bound for one retry delay in seconds"),
    ConfigKey("use_streaming", True, "Stream responses (live tokens)"),
    ConfigKey("top_p", None, "Nucleus sampling, 0..1 (unset: server default)"),
    ConfigKey("stop", None, "Stop sequences: a list or a comma-separated string"),
    ConfigKey("seed", None, "Sampling seed for reproducible output"),
    ConfigKey("parallel_tool_calls", True, "Allow several tool calls in one response"),
    ConfigKey("priority", 100, "Provider selection priority"),
    ConfigKey(
        "filtered", True, "list_models(): only the configured model when the server lists it"
    ),
    ConfigKey("raw", False, "Include redacted raw request/response payloads in events"),
    ConfigKey("name", DEFAULT_NAME, "Name the provider mounts under"),
    ConfigKey("headers", {}, "Extra HTTP headers (mapping or JSON string; alias: default_headers)"),
    ConfigKey("extra_body", {}, "Fields merged into every request body (mapping or JSON)"),
    ConfigKey("context_window", None, "Context window override in tokens (unset: discover)"),
    ConfigKey("server", "auto", "Server profile name (auto: detect)"),
    ConfigKey(
        "think_tags",
        True,
        "Parse <think>...</think> and [thinking] in content into ThinkingBlocks",
    ),
    ConfigKey("max_connections", 100, "HTTP connection pool limit"),
    ConfigKey("verify", True, "TLS verification: true, false or a CA bundle path"),
    ConfigKey(
        "pricing",
        None,
        "USD per million tokens {input, output, cached_input}: cost when the server gives none",
    ),
)

# Other names accepted for a key: `model` (the kernel's word), `default_headers` (the key of
# microsoft/amplifier-module-provider-chat-completions, which this module replaces).
ALIASES: dict[str, str] = {"model": "default_model", "default_headers": "headers"}

_KNOWN_KEYS: frozenset[str] = frozenset(k.name for k in CONFIG_KEYS) | frozenset(ALIASES)

# Keys the host (amplifier-app-cli / foundation) puts into a module's config dict on its
# own; they are not user typos, so they must not trigger the unknown-key warning.
TOLERATED_HOST_KEYS: frozenset[str] = frozenset(
    {"instance_id", "module", "source", "id", "config", "enabled", "provider", "type"}
)

_TRUE = frozenset({"true", "yes", "1", "on", "y"})
_FALSE = frozenset({"false", "no", "0", "off", "n"})


@dataclass(frozen=True, slots=True, repr=False)
class ProviderConfig:
    """Validated, normalized provider settings (see CONFIG_KEYS for meaning)."""

    base_url: str
    api_key: str = NO_API_KEY
    default_model: str = "default"
    max_tokens: int = 4096
    temperature: float = 0.7
    timeout: float = 300.0
    max_retries: int = 3
    min_retry_delay: float = 1.0
    max_retry_delay: float = 30.0
    use_streaming: bool = True
    top_p: float | None = None
    stop: list[str] | None = None
    seed: int | None = None
    parallel_tool_calls: bool = True
    priority: int = 100
    filtered: bool = True
    raw: bool = False
    name: str = DEFAULT_NAME
    headers: dict[str, str] = field(default_factory=dict)
    extra_body: dict[str, Any] = field(default_factory=dict)
    context_window: int | None = None
    server: str = "auto"
    think_tags: bool = True
    max_connections: int = 100
    verify: bool | str = True
    pricing: Pricing | None = None

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key) and self.api_key != NO_API_KEY

    def __repr__(self) -> str:
        parts: list[str] = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "api_key":
                shown = "'***'" if self.has_api_key else repr(value)
            elif f.name == "headers":
                # Header values are often credentials (Authorization, X-Api-Key): names only.
                shown = repr({k: "***" for k in value})
            else:
                shown = repr(value)
            parts.append(f"{f.name}={shown}")
        return f"ProviderConfig({', '.join(parts)})"


_MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class Pricing:
    """USD per million tokens; cached input is billed at `cached_input` (else `input`)."""

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None

    def cost(self, usage: Usage) -> Decimal:
        cached = usage.cache_read_tokens or 0
        fresh = max(usage.input_tokens - cached, 0)
        cached_rate = self.input if self.cached_input is None else self.cached_input
        total = fresh * self.input + cached * cached_rate + usage.output_tokens * self.output
        return total / _MILLION


# ---------------------------------------------------------------------------- helpers


def _show(value: object) -> str:
    """A short, exception-proof rendering of a user value for error messages."""
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 80 else text[:77] + "..."


def _fail(key: str, value: object, expected: str, fix: str = "") -> ConfigurationError:
    shown = "<hidden>" if key == "api_key" else _show(value)
    msg = f"invalid provider config {key}={shown}: expected {expected}"
    if fix:
        msg += f"; {fix}"
    return ConfigurationError(msg)


def _is_unset(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _to_bool(key: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        low = value.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
    # int 0/1 from hand-written YAML ("raw: 1") is a plain bool, anything else is a mistake.
    if type(value) is int and value in (0, 1):
        return bool(value)
    raise _fail(key, value, "true or false (also yes/no, on/off, 1/0)")


def _to_int(key: str, value: object, *, minimum: int | None = None) -> int:
    result: int | None = None
    if isinstance(value, bool):
        result = None  # True is not a number, though Python says it is
    elif isinstance(value, int) or (
        isinstance(value, float) and math.isfinite(value) and value.is_integer()
    ):
        result = int(value)
    elif isinstance(value, str):
        try:
            result = int(value.strip())
        except ValueError:
            result = None
    expected = "an integer" if minimum is None else f"an integer >= {minimum}"
    if result is None or (minimum is not None and result < minimum):
        raise _fail(key, value, expected)
    return result


def _to_float(
    key: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_exclusive: bool = False,
) -> float:
    result: float | None = None
    if isinstance(value, bool):
        result = None
    elif isinstance(value, int | float):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            result = None
    if low is not None and high is not None:
        expected = f"a number from {low:g} to {high:g}"
    elif low is not None:
        expected = f"a number {'>' if low_exclusive else '>='} {low:g}"
    else:
        expected = "a number"
    if result is None or not math.isfinite(result):
        raise _fail(key, value, expected)
    if low is not None and (result < low or (low_exclusive and result == low)):
        raise _fail(key, value, expected)
    if high is not None and result > high:
        raise _fail(key, value, expected)
    return result


def _to_str(key: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(key, value, "a non-empty string")
    return value.strip()


def _to_stop(key: str, value: object) -> list[str] | None:
    if isinstance(value, str):
        # "a,b" from a wizard or env; a lone sequence stays whole.
        items = [part.strip() for part in value.split(",")]
        result = [item for item in items if item]
        return result or None
    if isinstance(value, list | tuple) and all(isinstance(i, str) and i for i in value):
        return list(value) or None
    raise _fail(key, value, "a list of non-empty strings or a comma-separated string")


def _to_mapping(key: str, value: object, hint: str) -> dict[str, Any]:
    parsed = value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            raise _fail(key, value, f"a mapping or a JSON object string, e.g. {hint}") from None
    if not isinstance(parsed, Mapping) or not all(isinstance(k, str) for k in parsed):
        raise _fail(key, value, f"a mapping with string keys, e.g. {hint}")
    return dict(parsed)


def _to_headers(key: str, value: object) -> dict[str, str]:
    if isinstance(value, str):
        return _headers_from_json(value)
    if not isinstance(value, Mapping):
        raise _fail(key, value, 'a mapping of header names to values, e.g. {"X-Name": "v"}')
    return _header_values(value)


def _headers_from_json(value: str) -> dict[str, str]:
    try:
        parsed = json.loads(value)
    except ValueError:
        # Header values may be secrets: do not echo the string back.
        raise _fail("headers", "<hidden>", 'a JSON object like {"X-Name": "value"}') from None
    if not isinstance(parsed, dict):
        raise _fail("headers", "<hidden>", 'a JSON object like {"X-Name": "value"}')
    return _header_values(parsed)


def _header_values(mapping: Mapping[Any, Any]) -> dict[str, str]:
    result: dict[str, str] = {}
    for name, val in mapping.items():
        if not isinstance(name, str) or not name.strip():
            raise _fail("headers", name, "header names that are non-empty strings")
        if isinstance(val, bool) or not isinstance(val, str | int | float):
            raise _fail(
                "headers", f"{name}=<{type(val).__name__}>", "string header values (or numbers)"
            )
        text = str(val)
        if "\n" in text or "\r" in text:
            raise _fail("headers", f"{name}=<hidden>", "header values without line breaks")
        result[name.strip()] = text
    return result


def _to_extra_body(key: str, value: object) -> dict[str, Any]:
    result = _to_mapping(key, value, '{"top_k": 40}')
    try:
        # It is merged into a JSON body: catch unserializable objects now, not per request.
        json.dumps(result, allow_nan=False)
    except (TypeError, ValueError):
        raise _fail(key, value, "JSON-serializable values only") from None
    return result


def _to_verify(key: str, value: object) -> bool | str:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        low = value.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        path = Path(value.strip()).expanduser()
        if path.exists():
            return str(path)
        expected = "true, false or the path of an existing CA bundle"
        raise _fail(key, value, expected, "that file does not exist")
    raise _fail(key, value, "true, false or the path of a CA bundle file")


def _to_pricing(key: str, value: object) -> Pricing:
    hint = '{"input": 0.15, "output": 0.6, "cached_input": 0.075}'
    raw = _to_mapping(key, value, hint)
    unknown = sorted(set(raw) - {"input", "output", "cached_input"})
    if unknown or "input" not in raw or "output" not in raw:
        raise _fail(key, value, f"input and output prices (and optional cached_input), e.g. {hint}")
    prices = {
        name: Decimal(str(_to_float(f"{key}.{name}", price, low=0.0)))
        for name, price in raw.items()
    }
    return Pricing(**prices)


def _redact_url(url: str) -> str:
    # http://user:secret@host/v1 must not end up in a log or an error message.
    return re.sub(r"//[^/@\s]*@", "//***@", url)


def _to_base_url(key: str, value: object) -> str:
    if not isinstance(value, str):
        raise _fail(key, value, "a URL string such as http://localhost:8080/v1")
    url = value.strip().rstrip("/")
    shown = _redact_url(url)
    try:
        parts = urlsplit(url)
        host_ok = bool(parts.hostname)
        _ = parts.port  # raises ValueError on a bad port
    except ValueError:
        raise _fail(key, shown, "a URL such as http://localhost:8080/v1") from None
    if parts.scheme not in ("http", "https"):
        raise _fail(
            key,
            shown,
            "a URL starting with http:// or https://",
            f"e.g. set base_url to http://{shown.split('://')[-1]}",
        )
    if not host_ok:
        raise _fail(key, shown, "a URL with a host, e.g. http://localhost:8080/v1")
    if parts.path.rstrip("/").endswith("/chat/completions"):
        root = url[: url.rfind("/chat/completions")]
        raise _fail(
            key,
            shown,
            "the API root, not the endpoint",
            f"set base_url to {_redact_url(root)} (e.g. http://host:8080/v1); "
            "the provider appends /chat/completions itself",
        )
    if parts.query or parts.fragment:
        raise _fail(key, shown, "a URL without ?query or #fragment")
    return url


def _to_api_key(key: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(key, value, f"a string (the type given was {type(value).__name__})")
    if any(ch in value for ch in "\r\n"):
        raise _fail(key, value, "a single-line string")
    return value.strip()


def _to_server(key: str, value: object) -> str:
    return _to_str(key, value).lower()


def _opt_int_pos(key: str, value: object) -> int:
    return _to_int(key, value, minimum=1)


_Parser = Callable[[str, object], Any]

_PARSERS: dict[str, _Parser] = {
    "base_url": _to_base_url,
    "api_key": _to_api_key,
    "default_model": _to_str,
    "max_tokens": _opt_int_pos,
    "temperature": lambda k, v: _to_float(k, v, low=0.0, high=2.0),
    "timeout": lambda k, v: _to_float(k, v, low=0.0, low_exclusive=True),
    "max_retries": lambda k, v: _to_int(k, v, minimum=0),
    "min_retry_delay": lambda k, v: _to_float(k, v, low=0.0),
    "max_retry_delay": lambda k, v: _to_float(k, v, low=0.0),
    "use_streaming": _to_bool,
    "top_p": lambda k, v: _to_float(k, v, low=0.0, high=1.0),
    "stop": _to_stop,
    "seed": _to_int,
    "parallel_tool_calls": _to_bool,
    "priority": _to_int,
    "filtered": _to_bool,
    "raw": _to_bool,
    "name": _to_str,
    "headers": _to_headers,
    "extra_body": _to_extra_body,
    "context_window": _opt_int_pos,
    "server": _to_server,
    "think_tags": _to_bool,
    "max_connections": _opt_int_pos,
    "verify": _to_verify,
    "pricing": _to_pricing,
}


# ---------------------------------------------------------------------------- public API


def resolve_base_url(
    config: Mapping[str, Any] | None, env: Mapping[str, str] | None = None
) -> str | None:
    """The base_url from config, else CHAT_COMPLETIONS_BASE_URL, else None (nothing set).

    Not validated: mount() uses it to decide "not configured at all" before parse_config().
    A non-string value is returned as its repr so parse_config() reports it properly.
    """
    env = os.environ if env is None else env
    value: object = None
    if isinstance(config, Mapping):
        try:
            value = config.get("base_url")
        except Exception:
            value = None
    if _is_unset(value):
        value = env.get(ENV_BASE_URL)
    if _is_unset(value):
        return None
    return value.strip() if isinstance(value, str) else _show(value)


def parse_config(
    config: Mapping[str, Any] | None,
    env: Mapping[str, str] | None = None,
    *,
    require_base_url: bool = True,
) -> ProviderConfig:
    """Validate and normalize mount settings; raise ConfigurationError on any bad value.

    `model` is an alias of `default_model`; when both are given and differ,
    `default_model` wins (it is the documented name). With `require_base_url=False` a
    missing base_url gives `base_url=""` instead of an error (the host may build the
    provider without settings just to call get_info()); a present one is still validated.
    """
    try:
        return _parse(config, os.environ if env is None else env, require_base_url)
    except ConfigurationError:
        raise
    except Exception as exc:  # a fuzzed Mapping whose methods raise, etc.
        # str(exc) could carry a secret value: report only the type.
        raise ConfigurationError(
            f"invalid provider config: could not read settings ({type(exc).__name__})"
        ) from exc


def _parse(
    config: Mapping[str, Any] | None, env: Mapping[str, str], require_base_url: bool
) -> ProviderConfig:
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        raise ConfigurationError(
            f"invalid provider config: expected a mapping of settings, got {type(config).__name__}"
        )
    raw = dict(config)
    _warn_unknown(raw)

    for alias, name in ALIASES.items():
        value = raw.pop(alias, None)
        if _is_unset(raw.get(name)) and not _is_unset(value):
            raw[name] = value
        elif not _is_unset(value) and value != raw.get(name):
            logger.debug("both %s and %s set; using %s", alias, name, name)

    env_fallback = {k.name: k.env for k in CONFIG_KEYS if k.env}
    values: dict[str, Any] = {}
    for spec in CONFIG_KEYS:
        value = raw.get(spec.name)
        if _is_unset(value) and spec.name in env_fallback:
            value = env.get(env_fallback[spec.name] or "")
        if _is_unset(value):
            continue  # dataclass default
        values[spec.name] = _PARSERS[spec.name](spec.name, value)

    if "base_url" not in values and not require_base_url:
        values["base_url"] = ""
    elif "base_url" not in values:
        raise ConfigurationError(
            "provider config base_url is not set: set base_url in the provider config or the "
            f"{ENV_BASE_URL} environment variable (e.g. http://localhost:8080/v1)"
        )
    low = values.get("min_retry_delay", 1.0)
    high = values.get("max_retry_delay", 30.0)
    if low > high:
        raise ConfigurationError(
            f"invalid provider config min_retry_delay={low:g} > max_retry_delay={high:g}: "
            "expected min_retry_delay <= max_retry_delay; lower min_retry_delay or raise "
            "max_retry_delay"
        )
    return ProviderConfig(**values)


def _warn_unknown(raw: Mapping[Any, Any]) -> None:
    unknown = [k for k in raw if k not in _KNOWN_KEYS and k not in TOLERATED_HOST_KEYS]
    if not unknown:
        return
    described: list[str] = []
    for key in unknown:
        text = key if isinstance(key, str) else _show(key)
        close = difflib.get_close_matches(str(text), sorted(_KNOWN_KEYS), n=1, cutoff=0.6)
        described.append(f"{text!r} (did you mean {close[0]!r}?)" if close else repr(text))
    logger.warning(
        "provider-chat-completions: ignoring unknown config key(s): %s", ", ".join(described)
    )
