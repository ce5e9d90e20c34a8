"""The doctor: probe a server through the real provider and say what works and how to fix
what does not.

    python -m amplifier_module_provider_chat_completions doctor --base-url URL [--json]

A handful of small requests (max_tokens small, no retries, a short timeout): plain chat,
streaming, streamed usage, tool calls (non-streamed, streamed, parallel), JSON mode,
JSON schema and reasoning. Every probe goes through `ChatCompletionsProvider.complete`, so
detection, server profiles and self-healing act exactly as they would in a session.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from amplifier_core.llm_errors import (
    AuthenticationError,
    ConfigurationError,
    LLMError,
    LLMTimeoutError,
    NetworkError,
    NotFoundError,
)
from amplifier_core.message_models import (
    ChatRequest,
    ChatResponse,
    Message,
    ResponseFormatJson,
    ResponseFormatJsonSchema,
    ToolSpec,
)

from ..provider import ChatCompletionsProvider
from ..server import detect
from ..server.profiles import ServerProfile

__all__ = ["Check", "Report", "render", "run_doctor"]

Status = Literal["ok", "warn", "fail", "skip"]
# Failures of the first request that mean "nothing else will work either".
_FATAL = (AuthenticationError, NetworkError, LLMTimeoutError, NotFoundError, ConfigurationError)


def _city_tool(name: str, description: str) -> ToolSpec:
    parameters = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    }
    return ToolSpec(name=name, description=description, parameters=parameters)


_WEATHER = _city_tool("get_weather", "Current weather for a city")
_TIME = _city_tool("get_time", "Current local time in a city")
# Control tokens of common chat templates (ChatML, Gemma, Llama 3, Phi): they frame a prompt
# and never belong in an answer. One in a reply means the server formatted the prompt with
# the wrong template or did not stop at the model's end-of-turn token.
_TEMPLATE_TOKENS = (
    "<|im_start|>",
    "<|im_end|>",
    "<start_of_turn>",
    "<end_of_turn>",
    "<|start_header_id|>",
    "<|eot_id|>",
    "<|endoftext|>",
    "<|end|>",
)
_TEMPLATE_FIX = (
    "the server is not using the model's own chat template: give it the model's template "
    "(llama-server: --jinja, with a GGUF that carries its template)"
)
# Model families that write reasoning: only for these is a missing reasoning field a
# server setting to fix. Matched against the model id, case-insensitively.
_REASONING_MODELS = re.compile(
    r"qwen3(?!.*(?:coder|instruct-2507))|qwq|deepseek-r1|r1-distill|gpt-oss|magistral"
    r"|exaone-deep|glm-z1|glm-4\.[56]|seed-oss|think|reasoning",
    re.I,
)
_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
    "required": ["city", "country"],
}


@dataclass
class Check:
    feature: str
    status: Status
    detail: str
    fix: str = ""


@dataclass
class Report:
    base_url: str
    server: str = "openai"
    server_title: str = ""
    version: str | None = None
    model: str | None = None
    context_window: int | None = None
    models: list[dict[str, Any]] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def chat_works(self) -> bool:
        return any(c.feature == "plain chat" and c.status == "ok" for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.chat_works
        return data


class _Hooks:
    """Counts live text/thinking deltas so "streaming" means tokens arrived one by one."""

    def __init__(self) -> None:
        self.deltas = 0

    async def emit(self, event: str, payload: dict[str, Any]) -> None:
        if event == "llm:stream_block_delta":
            self.deltas += 1


class _Coordinator:
    def __init__(self, hooks: _Hooks) -> None:
        self.hooks = hooks


class _Notes(logging.Handler):
    """Keeps the provider's warnings (self-healing, detection) for the report."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.levelno >= logging.WARNING or "server detected" in text:
            self.lines.append(text)


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= 400 else text[:397] + "..."


def _without(detail: str, fix: str) -> str:
    """The error text without the fix it already ends with (shown on its own line)."""
    return detail.replace(f"; {fix}", "") if fix else detail


def _text_instead_fix(server_fix: str) -> str:
    # The server took the tools, so its flags are likely fine: the model or template is not.
    return (
        "the server accepted the tools but the model replied in text: use a model whose chat "
        f"template supports tool calling (if it does: {server_fix})"
    )


def _text(response: ChatResponse) -> str:
    return "".join(
        getattr(b, "text", "") or "" for b in response.content if getattr(b, "type", "") == "text"
    )


def _reply_problem(response: ChatResponse) -> Check | None:
    """A reply that arrived but is not clean: template tokens in it, or cut at the limit
    of a probe whose answer is a few tokens long (reasoning may fill the limit: not
    counted). The feature is filled in by the caller."""
    leaked = [token for token in _TEMPLATE_TOKENS if token in _text(response)]
    if leaked:
        detail = f"the reply contains chat-template tokens {' '.join(leaked)}"
        return Check("", "warn", detail, _TEMPLATE_FIX)
    if response.finish_reason == "length" and not _has_thinking(response):
        return Check(
            "",
            "warn",
            "the reply ran to the token limit instead of ending",
            "the model does not stop at its end-of-turn token: " + _TEMPLATE_FIX,
        )
    return None


def _reasons(model: str | None, response: ChatResponse) -> bool:
    """Whether the model is known to write reasoning (by its id, or by a think tag)."""
    text = _text(response)
    return bool(model and _REASONING_MODELS.search(model)) or "</think>" in text


def _has_thinking(response: ChatResponse) -> bool:
    return any(getattr(b, "type", "") == "thinking" for b in response.content)


def _ask(text: str, **kw: Any) -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content=text)], **kw)


def _no_stream() -> dict[str, Any]:
    return {"stream": False}


def _parse_json(text: str) -> Any:
    cleaned = text.strip()
    if cleaned.startswith("```"):  # some models fence JSON even in JSON mode
        cleaned = cleaned.strip("`").removeprefix("json").strip()
    return json.loads(cleaned)


async def run_doctor(
    base_url: str,
    *,
    api_key: str | None = None,
    model: str | None = None,
    timeout: float = 60.0,
    max_tokens: int = 256,
) -> Report:
    """Probe `base_url` with `model` (default: the server's first listed model) and return
    the report (never raises for server problems)."""
    report = Report(base_url=base_url)
    config: dict[str, Any] = {
        "base_url": base_url,
        "max_retries": 0,
        "timeout": timeout,
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "filtered": False,  # the report lists every model the server has
    }
    if api_key:
        config["api_key"] = api_key
    if model:
        config["default_model"] = model
    hooks = _Hooks()
    try:
        provider = ChatCompletionsProvider(config=config, coordinator=_Coordinator(hooks))
    except ConfigurationError as err:
        report.error = _one_line(err)
        return report
    notes = _Notes()
    provider_logger = logging.getLogger("amplifier_module_provider_chat_completions")
    provider_logger.addHandler(notes)
    previous_level = provider_logger.level
    provider_logger.setLevel(logging.INFO)
    provider_logger.propagate = False  # the report shows them; no stray log lines
    try:
        await _probe(provider, hooks, report, timeout, model)
    finally:
        provider_logger.removeHandler(notes)
        provider_logger.setLevel(previous_level)
        provider_logger.propagate = True
        await provider.close()
    report.notes = list(dict.fromkeys(notes.lines))
    return report


Call = Callable[[ChatRequest], Awaitable[ChatResponse]]


def _caller(provider: ChatCompletionsProvider, timeout: float, model: str | None) -> Call:
    """complete() for `model` (when known), bounded in time."""

    async def call(request: ChatRequest) -> ChatResponse:
        if model and not request.model:
            request = request.model_copy(update={"model": model})
        async with asyncio.timeout(timeout + 5):
            return await provider.complete(request)

    return call


async def _probe(
    provider: ChatCompletionsProvider,
    hooks: _Hooks,
    report: Report,
    timeout: float,
    model: str | None,
) -> None:
    await _profile(provider, report)
    await _list_models(provider, report)
    model = model or (report.models[0]["id"] if report.models else None)
    call = _caller(provider, timeout, model)
    if not await _plain_chat_check(call, report):
        return  # everything else depends on it
    # The profile may be settled only now (detection retries once after a failure).
    profile = await _profile(provider, report)
    await _identity(provider, report, profile, model)
    await _streaming_check(call, hooks, report)
    tools_fix = profile.tools_hint or "use a model and chat template that support tool calling"
    await _tool_check(call, report, "tool calls", {"stream": False}, tools_fix)
    await _tool_check(call, report, "tool calls (streamed)", None, tools_fix)
    await _parallel_check(call, report, tools_fix)
    await _json_check(call, report, "JSON mode", ResponseFormatJson())
    await _json_check(call, report, "JSON schema", ResponseFormatJsonSchema(json_schema=_SCHEMA))
    await _reasoning_check(call, report, profile.reasoning_hint, model)


async def _profile(provider: ChatCompletionsProvider, report: Report) -> ServerProfile:
    profile = await provider.server_profile()
    report.server, report.server_title = profile.key, profile.title
    return profile


async def _list_models(provider: ChatCompletionsProvider, report: Report) -> None:
    try:
        models = await provider.list_models()
    except LLMError:
        models = []  # the plain chat check says why the server cannot be used
    report.models = [{"id": m.id, "context_window": m.context_window or None} for m in models]


async def _plain_chat_check(call: Call, report: Report) -> bool:
    """Whether the server answers at all; on failure the report says why."""
    try:
        response = await call(_ask("Reply with the single word: hello", metadata=_no_stream()))
    except _FATAL as err:
        report.error = _one_line(err)
        return False
    except LLMError as err:
        report.checks.append(Check("plain chat", "fail", _one_line(err)))
        return False
    text = _text(response).strip()
    problem = _reply_problem(response)
    if problem is not None:
        report.checks.append(replace(problem, feature="plain chat"))
    else:
        report.checks.append(
            Check(
                "plain chat",
                "ok" if text or response.tool_calls else "warn",
                f"reply {text[:60]!r}" if text else "empty reply",
            )
        )
    return True


async def _streaming_check(call: Call, hooks: _Hooks, report: Report) -> None:
    """Streaming, and usage in the stream."""
    hooks.deltas = 0
    try:
        streamed = await call(_ask("Count from 1 to 5, separated by spaces."))
    except LLMError as err:
        fix = "set use_streaming: false in the provider config"
        report.checks.append(Check("streaming", "fail", _one_line(err), fix))
        return
    problem = _reply_problem(streamed)
    if problem is not None:
        report.checks.append(replace(problem, feature="streaming"))
    elif hooks.deltas > 1:
        report.checks.append(Check("streaming", "ok", f"{hooks.deltas} live deltas"))
    else:
        detail = f"{hooks.deltas} live delta(s): the reply came whole"
        report.checks.append(Check("streaming", "warn", detail))
    usage = streamed.usage
    if usage is not None and (usage.output_tokens or usage.input_tokens):
        detail = f"input {usage.input_tokens}, output {usage.output_tokens} tokens"
        report.checks.append(Check("streamed usage", "ok", detail))
    else:
        fix = "token counts need use_streaming: false on this server"
        report.checks.append(Check("streamed usage", "warn", "no token counts in the stream", fix))


async def _identity(
    provider: ChatCompletionsProvider, report: Report, profile: ServerProfile, model: str | None
) -> None:
    try:
        info = await provider.fetch_model_info(model)
    except LLMError:
        info = None
    if info is not None:
        report.model, report.context_window = info.id, info.context_window or None
    if profile.version_path:
        try:
            body = await provider.awareness.get_json(profile.version_path)
        except Exception:
            body = None
        report.version = detect.version_from(body, profile.version_key)


async def _answer_or_fail(
    call: Call, request: ChatRequest, report: Report, name: str, fix: str
) -> ChatResponse | None:
    """The reply, or None with the failure recorded as this check's result."""
    try:
        return await call(request)
    except LLMError as err:
        report.checks.append(Check(name, "fail", _without(_one_line(err), fix), fix))
        return None


async def _tool_check(
    call: Call, report: Report, name: str, metadata: dict[str, Any] | None, fix: str
) -> None:
    request = _ask(
        "What is the weather in Paris right now? Use the get_weather tool.",
        tools=[_WEATHER],
        metadata=metadata,
    )
    response = await _answer_or_fail(call, request, report, name, fix)
    if response is None:
        return
    calls = response.tool_calls or []
    if calls:
        first = calls[0]
        report.checks.append(Check(name, "ok", f"{first.name}({json.dumps(first.arguments)})"))
        return
    answered = _text(response).strip()[:60]
    # Tell "the server cannot" from "this model would rather talk": force the call once.
    try:
        forced = await call(request.model_copy(update={"tool_choice": "required"}))
    except LLMError:
        forced = None
    calls = (forced.tool_calls or []) if forced is not None else []
    if calls:
        first = calls[0]
        report.checks.append(
            Check(
                name,
                "warn",
                f"{first.name}({json.dumps(first.arguments)}) only with tool_choice "
                f"'required'; unforced, the model answered {answered!r}",
                "the server handles tools; this model rarely calls them unprompted: "
                "prefer a model trained for tool calling",
            )
        )
        return
    report.checks.append(
        Check(
            name,
            "fail",
            f"no tool call; the model answered {answered!r}",
            _text_instead_fix(fix),
        )
    )


async def _parallel_check(call: Call, report: Report, fix: str) -> None:
    request = _ask(
        "Call get_weather for Paris and get_time for London. Call both tools now, in one turn.",
        tools=[_WEATHER, _TIME],
        metadata={"stream": False},
    )
    name = "parallel tool calls"
    response = await _answer_or_fail(call, request, report, name, fix)
    if response is None:
        return
    calls = response.tool_calls or []
    names = ", ".join(c.name for c in calls)
    if len(calls) >= 2:
        report.checks.append(Check(name, "ok", f"{len(calls)} calls: {names}"))
    elif calls:
        report.checks.append(
            Check(
                name,
                "warn",
                f"one call per turn ({names})",
                "the server or model makes one call at a time; sessions still work, turn by turn",
            )
        )
    elif any(c.feature == "tool calls" and c.status == "warn" for c in report.checks):
        # Known already: the server handles tools, the model only calls them when forced.
        report.checks.append(
            Check(name, "warn", "no unforced tool call from this model (see tool calls)")
        )
    else:
        report.checks.append(Check(name, "fail", "no tool call", _text_instead_fix(fix)))


async def _json_check(call: Call, report: Report, name: str, fmt: Any) -> None:
    request = _ask(
        'Give the city Paris and its country as JSON with keys "city" and "country".',
        response_format=fmt,
        metadata={"stream": False},
    )
    try:
        response = await call(request)
    except LLMError as err:
        report.checks.append(Check(name, "fail", _one_line(err)))
        return
    text = _text(response)
    degraded = response.degradation
    try:
        value = _parse_json(text)
    except ValueError:
        value = None
    if degraded is not None:
        report.checks.append(
            Check(
                name,
                "warn",
                f"the server does not enforce it ({degraded.reason})",
                "ask for JSON in the prompt and validate the reply",
            )
        )
    elif isinstance(value, dict):
        report.checks.append(Check(name, "ok", " ".join(text.split())[:80]))
    else:
        report.checks.append(
            Check(
                name,
                "fail",
                f"reply is not a JSON object: {text.strip()[:60]!r}",
                "the server accepted response_format but did not constrain the output",
            )
        )


async def _reasoning_check(call: Call, report: Report, hint: str, model: str | None) -> None:
    name = "reasoning field"
    request = _ask("Think briefly, then answer: what is 17 * 3?", metadata={"stream": False})
    try:
        response = await call(request)
    except LLMError as err:
        report.checks.append(Check(name, "fail", _one_line(err)))
        return
    if _has_thinking(response):
        report.checks.append(Check(name, "ok", "reasoning arrives separately from the answer"))
    elif _reasons(report.model or model, response):
        report.checks.append(
            Check(
                name,
                "warn",
                "this model reasons, but no reasoning arrived apart from the answer",
                hint or "enable the server's reasoning parser",
            )
        )
    else:
        detail = "no reasoning seen (the model is not known to reason)"
        report.checks.append(Check(name, "skip", detail))


# ------------------------------------------------------------------ output

_MARK = {"ok": "ok  ", "warn": "warn", "fail": "FAIL", "skip": "--  "}


def _verdict(report: Report) -> str:
    if report.chat_works:
        return "chat works"
    if any(c.feature == "plain chat" and c.status == "warn" for c in report.checks):
        return "chat answers, but not cleanly: see plain chat above"
    return "chat does NOT work"


def render(report: Report) -> str:
    """The report for a terminal."""
    if report.error is not None:
        return f"error: {report.error}"
    lines = [f"server   {report.base_url}"]
    identity = report.server_title or report.server
    if report.version:
        identity += f" (version {report.version})"
    lines.append(f"profile  {identity}  [server: {report.server}]")
    if report.model:
        window = f"{report.context_window} tokens" if report.context_window else "not reported"
        lines.append(f"model    {report.model}, context window {window}")
    if report.models:
        listed = ", ".join(
            m["id"] + (f" ({m['context_window']})" if m["context_window"] else "")
            for m in report.models[:8]
        )
        more = f" and {len(report.models) - 8} more" if len(report.models) > 8 else ""
        lines.append(f"models   {listed}{more}")
    lines.append("")
    width = max((len(c.feature) for c in report.checks), default=10)
    for check in report.checks:
        lines.append(f"  {_MARK[check.status]}  {check.feature.ljust(width)}  {check.detail}")
        if check.fix and check.status != "ok":
            lines.append(f"  {' ' * 4}  {' ' * width}  fix: {check.fix}")
    if report.notes:
        lines.append("")
        lines.extend(f"note: {n}" for n in report.notes)
    lines.append("")
    lines.append(_verdict(report))
    return "\n".join(lines)
