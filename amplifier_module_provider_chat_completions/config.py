"""The ONE config parser: mount settings (+ environment) -> a frozen ProviderConfig.

Every setting is declared once, as a ProviderConfig field: its default, parser, environment
fallback, README text and setup-wizard prompt (CONFIG_KEYS lists them).

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
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from amplifier_core.llm_errors import ConfigurationError
from amplifier_core.message_models import Usage
from amplifier_core.models import ConfigField

logger = logging.getLogger(__name__)

# Vocabulary the whole package shares.
ENV_BASE_URL = "CHAT_COMPLETIONS_BASE_URL"
ENV_API_KEY = "CHAT_COMPLETIONS_API_KEY"
DEFAULT_NAME = "chat-completions"  # the mount name, and the provider id the host knows
DEFAULT_MODEL = "default"  # what single-model servers answer to
NO_API_KEY = "not-needed"  # local servers accept any key; the SDK insists on one

_TRUE = frozenset({"true", "yes", "1", "on", "y"})
_FALSE = frozenset({"false", "no", "0", "off", "n"})

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


def _is_unset(value: object, keeps_whitespace: bool = False) -> bool:
    if isinstance(value, str):
        return value == "" if keeps_whitespace else not value.strip()
    return value is None


def _bool_word(value: str) -> bool | None:
    """True/False for a yes/no word ("true", "off", "1", ...), None for anything else."""
    low = value.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    return None


def _to_bool(key: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and _bool_word(value) is not None:
        return _bool_word(value) is True
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
        return _stops_from_string(value)
    if isinstance(value, list | tuple) and all(isinstance(i, str) and i for i in value):
        return list(value) or None
    raise _fail(key, value, "a list of non-empty strings or a comma-separated string")


def _stops_from_string(value: str) -> list[str] | None:
    """A JSON list of strings, kept exactly (the string form for stops whose whitespace
    matters, e.g. from an env variable); "a, b" from a wizard, split at the commas with
    the spaces around them dropped; any other string is one sequence, kept exactly."""
    if value.startswith("["):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None  # "[/INST]" and the like are sequences, not lists
        if isinstance(parsed, list) and parsed and all(isinstance(i, str) and i for i in parsed):
            return parsed
    if "," not in value:
        return [value]
    return [part.strip() for part in value.split(",") if part.strip()] or None


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
        word = _bool_word(value)
        if word is not None:
            return word
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


def _positive_int(key: str, value: object) -> int:
    return _to_int(key, value, minimum=1)


Parser = Callable[[str, object], Any]


# ---------------------------------------------------------------------------- settings


class Prompt(NamedTuple):
    """How the host's setup wizard asks for a setting (an amplifier_core ConfigField)."""

    label: str
    question: str
    secret: bool = False
    required: bool = False
    suggestion: str | None = None
    # The wizard saves the answer under the setting's env variable in keys.env, ONE
    # variable for every instance of this module, and stores "${VAR}" in the config.
    via_env: bool = False


class Setting(NamedTuple):
    """One provider setting, as its ProviderConfig field declares it."""

    name: str
    default: Any  # None: no default (base_url), or unset
    description: str  # the README table's text
    parse: Parser  # (key, raw value) -> value, or ConfigurationError
    env: str | None = None  # the variable that fills it when config leaves it unset
    keeps_whitespace: bool = False  # a blank string is a value, not "unset"
    prompt: Prompt | None = None  # asked by the setup wizard (get_info().config_fields)
    info_key: str | None = None  # reported in get_info().defaults under this key


_SETTING = "setting"
_REQUIRED: Any = object()


def _setting(
    default: Any,
    description: str,
    parse: Parser,
    *,
    env: str | None = None,
    keeps_whitespace: bool = False,
    prompt: Prompt | None = None,
    info_key: str | None = None,
) -> Any:
    """A ProviderConfig field carrying its Setting (named after the field) as metadata."""
    required = default is _REQUIRED
    declared = Setting(
        name="",  # the field's name, filled in by CONFIG_KEYS
        default=None if required else default,
        description=description,
        parse=parse,
        env=env,
        keeps_whitespace=keeps_whitespace,
        prompt=prompt,
        info_key=info_key,
    )
    metadata = {_SETTING: declared}
    if required:
        return field(metadata=metadata)
    if isinstance(default, dict):
        return field(default_factory=dict, metadata=metadata)
    return field(default=default, metadata=metadata)


_delay = partial(_to_float, low=0.0)


@dataclass(frozen=True, slots=True, repr=False)
class ProviderConfig:
    """Validated, normalized provider settings; each field declares its whole Setting."""

    base_url: str = _setting(
        _REQUIRED,
        "Server URL ending in /v1 (required)",
        _to_base_url,
        env=ENV_BASE_URL,
        # Asked without env_var: the wizard would store every instance's URL in that one
        # variable, so adding a second instance would repoint the first.
        prompt=Prompt(
            "Server URL",
            "Base URL of the OpenAI-compatible server (ends in /v1)",
            required=True,
            suggestion="http://localhost:8080/v1",
        ),
    )
    api_key: str = _setting(
        NO_API_KEY,
        "API key sent as a Bearer token (secret)",
        _to_api_key,
        env=ENV_API_KEY,
        # A secret is the one field the CLI renames per instance (CHAT_COMPLETIONS_2_...).
        prompt=Prompt(
            "API key",
            "API key (leave blank for local servers that need none)",
            secret=True,
            via_env=True,
        ),
    )
    default_model: str = _setting(
        DEFAULT_MODEL,
        "Model id when the request names none (alias: model)",
        _to_str,
        info_key="model",
    )
    max_tokens: int = _setting(
        4096, "Default output token limit", _positive_int, info_key="max_tokens"
    )
    temperature: float = _setting(
        0.7,
        "Default sampling temperature, 0..2",
        partial(_to_float, low=0.0, high=2.0),
        info_key="temperature",
    )
    timeout: float = _setting(
        300.0,
        "Seconds to wait for data from the server",
        partial(_to_float, low=0.0, low_exclusive=True),
        info_key="timeout",
    )
    max_retries: int = _setting(
        3,
        "Retries for retryable failures (0 disables)",
        partial(_to_int, minimum=0),
        info_key="max_retries",
    )
    min_retry_delay: float = _setting(
        1.0, "First retry delay in seconds (unset: at most max_retry_delay)", _delay
    )
    max_retry_delay: float = _setting(
        30.0, "Upper bound for one retry delay in seconds (unset: at least min_retry_delay)", _delay
    )
    use_streaming: bool = _setting(
        True, "Stream responses (live tokens)", _to_bool, info_key="use_streaming"
    )
    top_p: float | None = _setting(
        None,
        "Nucleus sampling, 0..1 (unset: server default)",
        partial(_to_float, low=0.0, high=1.0),
    )
    stop: list[str] | None = _setting(
        None,
        "Stop sequences: a list, kept exactly (use one when whitespace matters); a string "
        "is one sequence, or several separated by commas and trimmed",
        _to_stop,
        keeps_whitespace=True,
    )
    seed: int | None = _setting(None, "Sampling seed for reproducible output", _to_int)
    parallel_tool_calls: bool = _setting(True, "Allow several tool calls in one response", _to_bool)
    priority: int = _setting(100, "Provider selection priority", _to_int)
    filtered: bool = _setting(
        True, "list_models(): only the configured model when the server lists it", _to_bool
    )
    raw: bool = _setting(
        False, "Include redacted raw request/response payloads in events", _to_bool
    )
    name: str = _setting(DEFAULT_NAME, "Name the provider mounts under", _to_str)
    headers: dict[str, str] = _setting(
        {}, "Extra HTTP headers (mapping or JSON string; alias: default_headers)", _to_headers
    )
    extra_body: dict[str, Any] = _setting(
        {}, "Fields merged into every request body (mapping or JSON)", _to_extra_body
    )
    context_window: int | None = _setting(
        None, "Context window override in tokens (unset: discover)", _positive_int
    )
    server: str = _setting("auto", "Server profile name (auto: detect)", _to_server)
    think_tags: bool = _setting(
        True, "Parse <think>...</think> and [thinking] in content into ThinkingBlocks", _to_bool
    )
    max_connections: int = _setting(100, "HTTP connection pool limit", _positive_int)
    verify: bool | str = _setting(
        True, "TLS verification: true, false or a CA bundle path", _to_verify
    )
    pricing: Pricing | None = _setting(
        None,
        "USD per million tokens {input, output, cached_input}: cost when the server gives none",
        _to_pricing,
    )

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


CONFIG_KEYS: tuple[Setting, ...] = tuple(
    f.metadata[_SETTING]._replace(name=f.name) for f in fields(ProviderConfig)
)
_DEFAULTS: dict[str, Any] = {key.name: key.default for key in CONFIG_KEYS}

# Other names accepted for a key: `model` (the kernel's word), `default_headers` (the key of
# microsoft/amplifier-module-provider-chat-completions, which this module replaces).
ALIASES: dict[str, str] = {"model": "default_model", "default_headers": "headers"}

_KNOWN_KEYS: frozenset[str] = frozenset(k.name for k in CONFIG_KEYS) | frozenset(ALIASES)

# Keys the host (amplifier-app-cli / foundation) puts into a module's config dict on its
# own; they are not user typos, so they must not trigger the unknown-key warning.
TOLERATED_HOST_KEYS: frozenset[str] = frozenset(
    {"instance_id", "module", "source", "id", "config", "enabled", "provider", "type"}
)


def wizard_fields() -> list[ConfigField]:
    """The settings the host's setup wizard asks for, as get_info() reports them."""
    return [
        ConfigField(
            id=key.name,
            display_name=key.prompt.label,
            field_type="secret" if key.prompt.secret else "text",
            prompt=key.prompt.question,
            env_var=key.env if key.prompt.via_env else None,
            required=key.prompt.required,
            default=key.prompt.suggestion,
        )
        for key in CONFIG_KEYS
        if key.prompt is not None
    ]


def info_defaults(cfg: ProviderConfig) -> dict[str, Any]:
    """The configured values get_info().defaults reports, under the host's key names."""
    return {key.info_key: getattr(cfg, key.name) for key in CONFIG_KEYS if key.info_key}


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
    raw = _with_aliases_resolved(config)
    values: dict[str, Any] = {}
    for key in CONFIG_KEYS:
        value = raw.get(key.name)
        if key.env and _is_unset(value, key.keeps_whitespace):
            value = env.get(key.env)
        if not _is_unset(value, key.keeps_whitespace):
            values[key.name] = key.parse(key.name, value)
    if "base_url" not in values and not require_base_url:
        values["base_url"] = ""
    elif "base_url" not in values:
        raise ConfigurationError(
            "provider config base_url is not set: set base_url in the provider config or the "
            f"{ENV_BASE_URL} environment variable (e.g. http://localhost:8080/v1)"
        )
    _order_retry_delays(values)
    return ProviderConfig(**values)


def _with_aliases_resolved(config: Mapping[str, Any] | None) -> dict[str, Any]:
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
    return raw


def _order_retry_delays(values: dict[str, Any]) -> None:
    """min_retry_delay <= max_retry_delay; a default gives way to the one the user set."""
    low, high = values.get("min_retry_delay"), values.get("max_retry_delay")
    if low is None and high is not None:
        values["min_retry_delay"] = min(_DEFAULTS["min_retry_delay"], high)
    elif high is None and low is not None:
        values["max_retry_delay"] = max(_DEFAULTS["max_retry_delay"], low)
    elif low is not None and high is not None and low > high:
        raise ConfigurationError(
            f"invalid provider config min_retry_delay={low:g} > max_retry_delay={high:g}: "
            "expected min_retry_delay <= max_retry_delay; lower min_retry_delay or raise "
            "max_retry_delay"
        )


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
