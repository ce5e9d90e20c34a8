"""HTTP failures, in-band stream errors and transport exceptions -> amplifier_core.llm_errors.

Every server in docs/SERVERS.md has its own error body shape; `describe_body` turns all of
them (and HTML gateway pages) into one readable line. Classification is by status first,
then by well-known message text that overrides the status (a context overflow is never
worth retrying, and llama.cpp reports some client mistakes as HTTP 500).

Messages never contain request headers or the API key: callers pass the secrets (`api_key=`:
one, several or a Scrubber) and redaction.py scrubs them from anything the server echoed
back, together with Bearer tokens and sk- keys.
"""

from __future__ import annotations

import asyncio
import email.utils
import html
import json
import math
import re
import sys
import time
from collections.abc import Container, Mapping
from dataclasses import dataclass
from typing import Any

from amplifier_core.llm_errors import (
    AccessDeniedError,
    AuthenticationError,
    ContextLengthError,
    InvalidRequestError,
    InvalidToolCallError,
    LLMError,
    LLMTimeoutError,
    NetworkError,
    NotFoundError,
    ProviderUnavailableError,
    QuotaExceededError,
    RateLimitError,
    StreamError,
)

from .redaction import Scrubber, Secrets
from .reply.arguments import ArgumentsError
from .reply.assemble import InBandError
from .reply.headers import rate_limit_wait
from .reply.response import to_chat_response

# The HTTP libraries are looked up, never imported, here: their exceptions exist only once
# something loaded them (transport.py does, with the first request), and importing them
# would cost the package's import time. The openai SDK 3.x runs on httpx2; our own client
# is plain httpx.
_HTTP_LIBRARIES = ("httpx", "httpx2")


def _loaded_http() -> list[Any]:
    return [m for name in _HTTP_LIBRARIES if (m := sys.modules.get(name)) is not None]


MAX_DETAIL = 300

# Context-overflow messages, matched case-insensitively against the raw body text.
# (server, pattern) - keep one row per server message so new ones are easy to add.
CONTEXT_OVERFLOW_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (server, re.compile(pattern, re.IGNORECASE))
    for server, pattern in (
        # llama.cpp 400, type exceed_context_size_error, with n_prompt_tokens / n_ctx
        ("llama.cpp", r"exceed_context_size_error"),
        ("llama.cpp", r"exceeds the available context size"),
        # older llama.cpp builds
        ("llama.cpp", r"input is (too large|larger than the max context size)"),
        # vLLM 400 / OpenAI
        ("vLLM", r"maximum context length is \d+ tokens"),
        ("OpenAI", r"context_length_exceeded"),
        # SGLang
        ("SGLang", r"is longer than the model'?s context length"),
        # TGI 422
        ("TGI", r"`?inputs`? tokens \+ `?max_new_tokens`? must be <="),
        ("TGI", r"input validation error: `?inputs`? must have less than"),
        # LM Studio
        ("LM Studio", r"tokens to keep from the initial prompt is greater than the context length"),
        # LiteLLM proxy (class name of its exception)
        ("LiteLLM", r"ContextWindowExceeded"),
        # Ollama with truncation off: "prompt too long; exceeded max context length by N
        # tokens"
        ("Ollama", r"exceeded max context length"),
        # Perplexity 400: type too_many_prompt_tokens, "The total length of all messages is
        # too long."
        ("Perplexity", r"too_many_prompt_tokens"),
        ("Perplexity", r"total length of all messages is too long"),
        # Mistral: "Prompt contains N tokens, too large for model with M maximum context
        # length"
        ("Mistral", r"too large for model with \d+ maximum context length"),
        # generic wording used by several OpenAI-compatible proxies
        ("generic", r"(prompt|input) is too long"),
        ("generic", r"context (window|length) (exceeded|overflow)"),
    )
)

# Overflow texts that give the window and the prompt's size: (window, prompt) groups.
_OVERFLOW_SIZES: tuple[re.Pattern[str], ...] = (
    # vLLM / OpenAI: "maximum context length is 4096 tokens. However, you requested 5000
    # tokens (3000 in the messages, 2000 in the completion)"
    re.compile(r"maximum context length is (\d+) tokens.{0,80}?\((\d+) in the messages", re.S),
    # OpenAI: "... maximum context length is 8192 tokens. However, your messages resulted
    # in 9000 tokens"; vLLM: "... However, your prompt contains 40000 input tokens"
    re.compile(
        r"maximum context length is (\d+) tokens.{0,80}?"
        r"(?:messages resulted in|prompt contains) (\d+)",
        re.S,
    ),
    # TGI: "`inputs` tokens + `max_new_tokens` must be <= 4096. Given: 3000 `inputs` tokens"
    re.compile(r"must be <= (\d+)\. Given: (\d+) `?inputs`? tokens"),
    # SGLang: "maximum context length of 4096 tokens. You requested a total of 5000 tokens:
    # 3000 tokens from the input messages"
    re.compile(r"context length of (\d+) tokens.{0,80}?(\d+) tokens from the input", re.S),
)
# Wordings that blame the prompt alone: llama.cpp (which never counts max_tokens against
# the window), SGLang, LM Studio, Ollama, Bedrock, Perplexity, Mistral and generic proxies.
_PROMPT_ONLY_OVERFLOW = re.compile(
    r"exceed_context_size_error|exceeds the available context|is longer than the model"
    r"|tokens to keep from the initial prompt|prompt too long|(?:input|prompt) is too long"
    r"|too_many_prompt_tokens|total length of all messages is too long"
    r"|too large for model with \d+ maximum context length",
    re.IGNORECASE,
)


def prompt_overflows(text: str) -> bool | None:
    """Whether an overflow error says the prompt alone is too long for the window.

    False: the prompt fits and only the requested output did not (a smaller max_tokens
    would succeed). None: the text does not tell.
    """
    if _PROMPT_ONLY_OVERFLOW.search(text):
        return True
    for pattern in _OVERFLOW_SIZES:
        found = pattern.search(text)
        if found:
            window, prompt = int(found.group(1)), int(found.group(2))
            return prompt >= window
    return None


_ROLES_ALTERNATE = re.compile(r"roles must alternate", re.IGNORECASE)
# llama.cpp without --jinja: old builds "Unsupported param: tools", current ones (HTTP 500)
# "tools param requires --jinja flag".
_UNSUPPORTED_TOOLS = re.compile(
    r"unsupported param:\s*tools|tools param\w* requires --jinja", re.IGNORECASE
)
# LiteLLM proxy with a master key but no database answers an unknown key with 400
# {"error": {"message": "No connected db.", "type": "no_db_connection"}}: a key problem.
_KEY_LOOKUP_FAILED = re.compile(r"no_db_connection|no connected db", re.IGNORECASE)
# LiteLLM's router when no deployment of the model group can take the request: every one
# failed recently and is cooling down (429), or the last one it tried was unreachable (500).
_ROUTER_COOLDOWN = re.compile(
    r"all_deployments_in_cooldown|all deployments for selected model are in cooldown",
    re.IGNORECASE,
)
_ROUTER_UNREACHABLE = re.compile(
    r"connection error.{0,200}?litellm: model group '[^']*' failed", re.IGNORECASE | re.DOTALL
)
_QUOTA = re.compile(r"insufficient_quota|exceeded your current quota", re.IGNORECASE)
_RATE_TEXT = re.compile(r"rate.?limit|too many requests|model is overloaded", re.IGNORECASE)
# In-band errors with no status: these words mean the request itself is at fault.
_PERMANENT_TEXT = re.compile(
    r"tool|invalid|validation|schema|unsupported|not supported|bad request|template|parse",
    re.IGNORECASE,
)


_CONTEXT_OVERFLOW = re.compile(
    "|".join(f"(?:{pattern.pattern})" for _, pattern in CONTEXT_OVERFLOW_PATTERNS),
    re.IGNORECASE,
)


def is_context_overflow(text: str) -> bool:
    """True when `text` is one of the known "prompt does not fit" messages."""
    return _CONTEXT_OVERFLOW.search(text) is not None


def _cap(text: str, limit: int = MAX_DETAIL) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _compact(obj: object) -> str:
    try:
        return json.dumps(obj, separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        return repr(obj)


def _describe_detail(detail: object) -> str:
    """FastAPI `detail`: a string, or a list of {loc, msg} validation entries."""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        parts: list[str] = []
        for item in detail:
            if isinstance(item, Mapping):
                loc = item.get("loc")
                msg = item.get("msg") or item.get("message") or _compact(item)
                where = ".".join(str(p) for p in loc) if isinstance(loc, list | tuple) else ""
                parts.append(f"{where}: {msg}" if where else str(msg))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    if isinstance(detail, Mapping):
        return _describe_json(detail)
    return _compact(detail)


def _describe_json(obj: object) -> str:
    if isinstance(obj, str):
        return obj
    if isinstance(obj, list):
        return _describe_json(obj[0]) if obj else ""
    if not isinstance(obj, Mapping):
        return _compact(obj)
    error = obj.get("error")
    if isinstance(error, Mapping):
        message = error.get("message") or error.get("msg") or error.get("detail")
        if isinstance(message, str) and message.strip():
            return message
        if message is not None:
            return _describe_detail(message)
        label = error.get("type") or error.get("code")
        return str(label) if label else _compact(error)
    if isinstance(error, str) and error.strip():
        return error  # {"error": "Unauthorized"}, TGI {"error": ..., "error_type": ...}
    message = obj.get("message")
    if isinstance(message, str) and message.strip():
        return message  # SGLang / old vLLM {"object": "error", "message": ...}
    if "detail" in obj:
        return _describe_detail(obj["detail"])
    return _compact(obj)


# Linear-time HTML reading: `.*?</title>`-style patterns rescan the rest of the page for
# every opening tag, and a hostile 200 KB page then blocked the event loop for a minute.
_MAX_HTML_SCAN = 65_536
_TITLE_OPEN = re.compile(r"<title[^<>]*>", re.IGNORECASE)
_BLOCK_OPEN = re.compile(r"<(script|style|head)\b", re.IGNORECASE)
_TAG = re.compile(r"<[^<>]*>")


def _describe_html(text: str) -> str:
    text = text[:_MAX_HTML_SCAN]
    low = text.lower()
    title = _TITLE_OPEN.search(text)
    if title:
        end = low.find("</title", title.end())
        if end >= 0 and text[title.end() : end].strip():
            return html.unescape(text[title.end() : end])
    kept: list[str] = []
    pos = 0
    while (block := _BLOCK_OPEN.search(text, pos)) is not None:
        close = low.find("</" + block.group(1).lower(), block.end())
        if close < 0:
            break
        kept.append(text[pos : block.start()])
        kept.append(" ")
        gt = low.find(">", close)
        pos = len(text) if gt < 0 else gt + 1
    kept.append(text[pos:])
    return html.unescape(_TAG.sub(" ", "".join(kept)))


def describe_body(body_text: str) -> str:
    """One readable line (<= ~300 chars) from any error body; "" for an empty body."""
    text = (body_text or "").strip()
    if not text:
        return ""
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    else:
        return _cap(_describe_json(parsed))
    if text.startswith("<") or re.search(r"<(html|body|h1)\b", text, re.IGNORECASE):
        return _cap(_describe_html(text))
    return _cap(text)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` (seconds or an HTTP date)."""
    lowered: dict[str, str] = {}
    try:
        for key, value in headers.items():
            if isinstance(key, str) and isinstance(value, str):
                lowered[key.lower()] = value.strip()
    except Exception:
        return None
    millis = lowered.get("retry-after-ms")
    if millis:
        try:
            value = float(millis) / 1000.0
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0:
            return value
    raw = lowered.get("retry-after")
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # RFC 9110 dates are GMT
            return None
        return max(0.0, when.timestamp() - time.time())
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


class _Failed:
    """Any failure status: an HTTP error, or None for an in-band error."""

    def __contains__(self, status: object) -> bool:
        return status is None or (isinstance(status, int) and status >= 400)


FAILED = _Failed()
_KEY_HINT = "check api_key / CHAT_COMPLETIONS_API_KEY"


@dataclass(frozen=True, slots=True)
class Rule:
    """One classification: when it applies, the kernel error it gives, what to tell."""

    error: type[LLMError]
    statuses: Container[int | None] = FAILED  # None: an in-band error (no status)
    pattern: re.Pattern[str] | None = None  # searched in the message and the raw body
    unless: Container[int | None] = ()
    hint: str = ""  # {server} becomes the base_url the failed request went to
    model_hint: str = ""  # appended when the model is known ({model} filled in)
    retryable: bool | None = None  # None: the error class's own default
    retry_after: bool = False  # the server's Retry-After goes on the error

    def matches(self, status: int | None, text: str) -> bool:
        if status not in self.statuses or status in self.unless:
            return False
        return self.pattern is None or self.pattern.search(text) is not None


# First match wins. Text rules come first where the text overrides the status.
RULES: tuple[Rule, ...] = (
    # llama.cpp answers HTTP 500 for both of these client mistakes.
    Rule(
        InvalidRequestError,
        pattern=_ROLES_ALTERNATE,
        hint="the model's chat template requires strictly alternating user/assistant turns",
    ),
    Rule(
        InvalidRequestError,
        pattern=_UNSUPPORTED_TOOLS,
        hint="start llama-server with --jinja to enable tool calling",
    ),
    # Never worth retrying, whatever the status (TGI 422, vLLM 400, LM Studio, ...).
    Rule(
        ContextLengthError,
        pattern=_CONTEXT_OVERFLOW,
        unless=(401, 403, 404, 429),
        hint="the conversation does not fit the model's context window",
    ),
    # In-band errors have no status: the words decide; a mid-stream hiccup is retryable
    # unless the text blames the request itself.
    Rule(RateLimitError, statuses=(None,), pattern=_RATE_TEXT, retry_after=True),
    Rule(ProviderUnavailableError, statuses=(None,), pattern=_PERMANENT_TEXT, retryable=False),
    Rule(ProviderUnavailableError, statuses=(None,), retryable=True, retry_after=True),
    Rule(AuthenticationError, statuses=(401,), hint=_KEY_HINT),
    # LiteLLM proxy with a master key but no database, on an unknown key.
    Rule(
        AuthenticationError,
        statuses=(400,),
        pattern=_KEY_LOOKUP_FAILED,
        hint="the LiteLLM proxy could not look up this key (it has no database): "
        "set api_key / CHAT_COMPLETIONS_API_KEY to the proxy's master key",
    ),
    # The Amazon server answers 403 for a missing or wrong key, so name the key too.
    Rule(AccessDeniedError, statuses=(403,), hint=_KEY_HINT),
    Rule(
        NotFoundError,
        statuses=(404,),
        hint="check that base_url ends with /v1 (e.g. http://host:8080/v1)",
        model_hint=" and that model {model!r} exists on the server",
    ),
    Rule(
        ProviderUnavailableError,
        statuses=(429,),
        pattern=_ROUTER_COOLDOWN,
        retryable=True,
        retry_after=True,
        hint="the LiteLLM proxy at {server} has no deployment of this model group available: "
        "each one failed and is cooling down; check that the servers in its model_list are up",
    ),
    Rule(
        ProviderUnavailableError,
        statuses=range(500, 600),
        pattern=_ROUTER_UNREACHABLE,
        retryable=True,
        retry_after=True,
        hint="the LiteLLM proxy at {server} could not reach a deployment of this model group: "
        "its upstream servers are down or unreachable; check the servers in its model_list",
    ),
    # A gateway's request timeout: transient like any other timeout.
    Rule(LLMTimeoutError, statuses=(408,), retry_after=True),
    Rule(QuotaExceededError, statuses=(429,), pattern=_QUOTA, retry_after=True),
    Rule(RateLimitError, statuses=(429,), retry_after=True),
    Rule(
        InvalidRequestError,
        statuses=(413,),
        hint="the request body is too large for the server or a proxy in front of it",
    ),
    Rule(InvalidRequestError, statuses=range(400, 500)),
    # 501: the server does not implement this; waiting will not change that.
    Rule(ProviderUnavailableError, statuses=(501,), retryable=False),
    Rule(ProviderUnavailableError, statuses=range(500, 600), retryable=True, retry_after=True),
)


def _classify(
    status: int | None,
    detail: str,
    raw: str,
    retry_after: float | None,
    *,
    provider: str,
    model: str | None,
    where: str,
    server: str | None = None,
) -> LLMError:
    """The first rule that matches (status, text) makes the error; LLMError otherwise."""
    text = f"{detail}\n{raw}"
    rule = next((r for r in RULES if r.matches(status, text)), Rule(LLMError))
    hint = rule.hint.replace("{server}", server or "your base_url")
    hint += rule.model_hint.format(model=model) if model else ""
    message = f"{detail or 'no error details'} ({where}){'; ' + hint if hint else ''}"
    kw: dict[str, Any] = {"provider": provider, "model": model, "status_code": status}
    if rule.retryable is not None:
        kw["retryable"] = rule.retryable
    if rule.retry_after:
        kw["retry_after"] = retry_after
    return rule.error(message, **kw)


def error_from_response(
    status: int,
    body_text: str,
    headers: Mapping[str, str],
    *,
    provider: str,
    model: str | None,
    api_key: Secrets = None,
    server: str | None = None,
) -> LLMError:
    """Map one failed HTTP response (status, body, headers) to a kernel LLMError.

    `server` is the base_url the request went to (hints that name the server use it).
    """
    body_text = body_text if isinstance(body_text, str) else ""
    scrub = Scrubber.of(api_key).text
    detail = scrub(describe_body(scrub(body_text)))
    wait = parse_retry_after(headers)
    if wait is None and status == 429:
        wait = rate_limit_wait(headers)
    return _classify(
        status,
        detail,
        body_text[:20000],
        wait,
        provider=provider,
        model=model,
        where=f"HTTP {status} from {provider}",
        server=server,
    )


def _payload_status(payload: object) -> int | None:
    candidates: list[object] = []
    if isinstance(payload, Mapping):
        error = payload.get("error")
        for source in (error, payload):
            if isinstance(source, Mapping):
                for key in ("http_status_code", "status_code", "status", "code"):
                    candidates.append(source.get(key))
    for value in candidates:
        if isinstance(value, bool):
            continue
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, int) and 400 <= value <= 599:
            return value
    return None


def error_from_payload(
    payload: object, *, provider: str, model: str | None, api_key: Secrets = None
) -> LLMError:
    """Map an in-band stream error (`{"error": {...}}` or `{"error": "text"}`).

    With an HTTP-like status in the payload (`http_status_code`, `status`, an integer
    `code`) the rules of error_from_response apply. Without one, a context overflow is
    still ContextLengthError, rate-limit wording is RateLimitError, and everything else is
    ProviderUnavailableError: non-retryable when the text blames the request (tool, invalid,
    validation, schema, ...), retryable otherwise (the server hiccupped mid-stream).
    """
    raw = _compact(payload)
    detail = _cap(Scrubber.of(api_key).text(_describe_json(payload)))
    status = _payload_status(payload)
    where = f"in-stream error{f' {status}' if status else ''} from {provider}"
    return _classify(status, detail, raw, None, provider=provider, model=model, where=where)


# ------------------------------------------------------------------ transport exceptions


def _timeout_types() -> tuple[type[BaseException], ...]:
    http = [m.TimeoutException for m in _loaded_http()]
    return (*http, TimeoutError, asyncio.TimeoutError)


def _transport_types() -> tuple[type[BaseException], ...]:
    return tuple(m.TransportError for m in _loaded_http())


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _timeout_error(
    exc: BaseException, *, provider: str, model: str | None, timeout: float | None
) -> LLMError:
    name = type(exc).__name__
    limit = f"{timeout:g} s" if timeout else "the configured time"
    if name == "ConnectTimeout":
        text = f"could not connect to the server within {limit}; is it running and reachable?"
    elif name == "PoolTimeout":
        text = f"no free HTTP connection within {limit}; raise max_connections"
    else:
        text = f"no data from server for {limit}; raise `timeout` if the model is slow to start"
    return LLMTimeoutError(f"{text} ({provider})", provider=provider, model=model)


def _network_error(
    exc: BaseException,
    *,
    provider: str,
    model: str | None,
    api_key: Secrets,
    streaming_started: bool,
) -> LLMError:
    name = type(exc).__name__
    detail = _cap(Scrubber.of(api_key).text(str(exc))) or name
    if "CERTIFICATE_VERIFY_FAILED" in detail:
        detail += "; set verify to a CA bundle path (or false for a trusted local server)"
    elif name == "ConnectError":
        where = _request_url(exc)
        target = f" to {where}" if where else ""
        detail = f"could not connect{target}: {detail}; is the server running? check base_url"
    elif name == "RemoteProtocolError":
        # httpx's text says which: before any response, or inside one.
        before = "without sending a response" in detail
        when = "before answering" if before else "mid-response"
        detail = f"server closed the connection {when}: {detail}"
    else:
        detail = f"{name}: {detail}"
    cls = StreamError if streaming_started else NetworkError
    return cls(f"{detail} ({provider})", provider=provider, model=model)


def _request_url(exc: BaseException) -> str | None:
    """The URL a transport error was for, without credentials or query."""
    try:
        url = exc.request.url  # type: ignore[attr-defined]  # httpx raises when unset
    except Exception:
        return None
    try:
        port = f":{url.port}" if url.port else ""
        return f"{url.scheme}://{url.host}{port}{url.path}"
    except Exception:
        return None


# The endpoints requests go to under base_url.
_ENDPOINT = re.compile(r"/(?:chat/completions|models)$")


def _base_of(url: str | None) -> str | None:
    """The base_url a request URL was built from."""
    return None if url is None else _ENDPOINT.sub("", url)


def _status_error_body(exc: Any) -> str:
    try:
        text = exc.response.text  # raises when the response was never read or is closed
        if isinstance(text, str) and text.strip():
            return text
    except Exception:
        pass
    body = getattr(exc, "body", None)
    if isinstance(body, str) and body.strip():
        return body
    if body is not None:
        # The SDK stores body["error"] when present; re-wrap so describe_body reads it.
        if isinstance(body, Mapping) and "message" in body and "object" not in body:
            return _compact({"error": body})
        return _compact(body)
    message = getattr(exc, "message", None)
    return message if isinstance(message, str) else ""


def _status_error_headers(exc: Any) -> Mapping[str, str]:
    try:
        return dict(exc.response.headers.items())
    except Exception:
        return {}


def error_from_exception(
    exc: BaseException,
    *,
    provider: str,
    model: str | None,
    timeout: float | None,
    api_key: Secrets = None,
    streaming_started: bool = False,
) -> LLMError:
    """The one error boundary: whatever a request raised, as a kernel LLMError.

    HTTP statuses (openai SDK, httpx), in-band errors the assembler found, unusable tool
    arguments, timeouts and transport failures; `__cause__` is the original, scrubbed of
    secrets (tracebacks print it). `streaming_started=True` turns connection failures into
    StreamError (the response had begun; the kernel retries those as interrupted streams).
    """
    if isinstance(exc, LLMError):
        return exc
    # The original becomes __cause__, printed with every traceback: a server that echoed
    # the key back must not get it into the host's logs that way.
    scrubber = Scrubber.of(api_key)
    scrubber.exception_chain(exc)
    where = {"provider": provider, "model": model}
    err = (
        _from_status(exc, api_key=scrubber, **where)
        or _from_reply(exc, api_key=scrubber, **where)
        or _from_connection(
            exc, timeout=timeout, api_key=scrubber, streaming_started=streaming_started, **where
        )
        or _unknown(exc, api_key=scrubber, **where)
    )
    err.__cause__ = exc
    return err


def _from_status(
    exc: BaseException, *, provider: str, model: str | None, api_key: Secrets
) -> LLMError | None:
    """An HTTP error status: the SDK's APIStatusError or httpx's raise_for_status()."""
    openai = sys.modules.get("openai")
    if openai is not None and isinstance(exc, openai.APIStatusError):
        status, body = int(exc.status_code), _status_error_body(exc)
    elif isinstance(getattr(exc, "response", None), tuple(m.Response for m in _loaded_http())):
        response: Any = exc.response  # type: ignore[attr-defined]
        try:
            status, body = response.status_code, response.text
        except Exception:
            status, body = response.status_code, ""
    else:
        return None
    headers = _status_error_headers(exc)
    return error_from_response(
        status,
        body,
        headers,
        provider=provider,
        model=model,
        api_key=api_key,
        server=_base_of(_request_url(exc)),
    )


def _from_reply(
    exc: BaseException, *, provider: str, model: str | None, api_key: Secrets
) -> LLMError | None:
    """What the assembler found wrong in a 200 reply: an in-band error or bad arguments."""
    if isinstance(exc, InBandError):
        return error_from_payload(exc.payload, provider=provider, model=model, api_key=api_key)
    if not isinstance(exc, ArgumentsError):
        return None
    err = InvalidToolCallError(
        Scrubber.of(api_key).text(str(exc)),
        tool_name=exc.tool_name,
        raw_arguments=exc.raw,
        provider=provider,
        model=model,
    )
    partial = exc.partial
    # The turn's text, thinking and good calls survive a bad call.
    err.partial_response = (  # type: ignore[attr-defined]
        None
        if partial is None
        else to_chat_response(partial, provider_name=provider, model=partial.model or model)
    )
    return err


def _from_connection(
    exc: BaseException,
    *,
    provider: str,
    model: str | None,
    timeout: float | None,
    api_key: Secrets,
    streaming_started: bool,
) -> LLMError | None:
    """Timeouts and transport failures, also when the openai SDK wraps them."""
    openai = sys.modules.get("openai")
    wrapped = openai is not None and isinstance(exc, openai.APIConnectionError)
    chain = _chain(exc) if wrapped else [exc]  # the SDK keeps the httpx error as a cause
    timed_out = next((e for e in chain if isinstance(e, _timeout_types())), None)
    if timed_out is None and openai is not None and isinstance(exc, openai.APITimeoutError):
        timed_out = exc
    if timed_out is not None:
        return _timeout_error(timed_out, provider=provider, model=model, timeout=timeout)
    failed = next((e for e in chain if isinstance(e, _transport_types())), None)
    if failed is None and not wrapped:
        return None
    return _network_error(
        failed or exc,
        provider=provider,
        model=model,
        api_key=api_key,
        streaming_started=streaming_started,
    )


def _unknown(exc: BaseException, *, provider: str, model: str | None, api_key: Secrets) -> LLMError:
    detail = _cap(Scrubber.of(api_key).text(str(exc)))
    text = f"{type(exc).__name__}: {detail} ({provider})" if detail else type(exc).__name__
    return LLMError(text, provider=provider, model=model)
