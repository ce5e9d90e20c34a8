"""Self-healing parameters: read a 400/422 rejection and decide how to resend (pure).

Servers reject fields they do not know ("Unrecognized request argument", FastAPI's
"Extra inputs are not permitted", "Unsupported parameter") or want in another shape
(LM Studio's json_schema-only response_format, TGI's `value` key). `diagnose_rejection`
turns such an answer into a `Fix`: fields to leave out from now on and/or profile fields
to override, or - for tools, which must not silently vanish - a hint telling the user which
server flag to set. A field is only ever dropped when the server named it and we sent it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..request.strict_templates import is_alternation_error
from .profiles import GENERIC, ServerProfile

__all__ = ["PROTECTED", "Fix", "diagnose_alternation", "diagnose_rejection", "rejection_text"]

# Never dropped: without them the request means something else (tools get a hint instead).
PROTECTED: frozenset[str] = frozenset({"model", "messages", "tools", "stream"})

_LLAMACPP_TOOLS_HINT = "start llama-server with --jinja to enable tool calling"
_VLLM_TOOLS_HINT = (
    "start vLLM with --enable-auto-tool-choice --tool-call-parser NAME "
    "(e.g. hermes for Qwen, llama3_json, mistral)"
)

# Rejections of tools as a whole: (pattern, hint when the profile has none).
_TOOLS_REJECTED: tuple[tuple[re.Pattern[str], str], ...] = (
    # vLLM started without the tool parser flags
    (
        re.compile(r"auto\W{0,3}\s*tool choice requires --enable-auto-tool-choice", re.I),
        _VLLM_TOOLS_HINT,
    ),
    # llama.cpp without --jinja (old builds: 500 "Unsupported param: tools")
    (re.compile(r"unsupported param:\s*tools\b", re.I), _LLAMACPP_TOOLS_HINT),
    (re.compile(r"tools? param\w* requires --jinja", re.I), _LLAMACPP_TOOLS_HINT),
)
_JSON_SCHEMA_ONLY = re.compile(r"must be\W{0,3}json_schema\W{0,3} or\W{0,3}text", re.I)
_TGI_VALUE = re.compile(r"response_format[^\n]{0,80}missing field\W{0,3}value", re.I)
_TGI_GRAMMAR_TOOLS = re.compile(r"grammar is not supported with tools", re.I)
_USE_MAX_COMPLETION = re.compile(r"max_tokens[^\n]{0,120}max_completion_tokens", re.I)

# Texts that name rejected fields; each yields candidate names.
_NAME_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"unrecognized request arguments? supplied:?\s*(?P<names>\w+(?:\s*,\s*\w+)*)", re.I),
    re.compile(r"unsupported param(?:eter)?s?\s*:?\s*['\"`]?(?P<names>\w+)", re.I),
    re.compile(r"['\"`](?P<names>\w+)['\"`]\s+is not (?:supported|permitted|allowed)", re.I),
    re.compile(
        r"(?:unknown|unexpected|unrecognized|extra) (?:field|parameter|argument|key)s?"
        r"\s*:?\s*['\"`](?P<names>\w+)",
        re.I,
    ),
    # pydantic's text form: "seed\n  Extra inputs are not permitted" / "body.seed: Extra ..."
    # \b and a bounded \w: an unbounded \w+ here backtracks quadratically on a long word.
    re.compile(
        r"(?:body\.)?\b(?P<names>\w{1,64})['\"\]]?\s*[:\n]\s*extra inputs are not permitted",
        re.I,
    ),
)
# Rejections name their fields early; scanning a huge hostile body would block the loop.
_MAX_SCAN = 16_384


@dataclass(frozen=True, slots=True)
class Fix:
    """How to resend after a rejection, remembered for the provider instance."""

    parameter: str  # the field the server objected to (for the warning and degradation)
    drop: tuple[str, ...] = ()  # fields to leave out from now on
    profile_changes: Mapping[str, Any] = field(default_factory=dict)  # ServerProfile overrides
    actual: str = "omitted"  # what is sent instead, for Degradation.actual
    hint: str | None = None  # set: we cannot fix it; tell the user this and fail

    @property
    def lossy(self) -> bool:
        """True when the caller's request is no longer fully honoured (not just reshaped)."""
        return bool(self.drop) or self.profile_changes.get("response_format_with_tools") is False

    @property
    def key(self) -> str:
        """Identity for remembering: one entry per parameter and change."""
        changes = ",".join(f"{k}={v}" for k, v in sorted(self.profile_changes.items()))
        return f"{self.parameter}|{','.join(self.drop)}|{changes}"


def rejection_text(err: BaseException) -> str:
    """The server's raw error body behind an LLMError (falls back to the message)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        response = getattr(current, "response", None)
        try:
            text = response.text if response is not None else None
        except Exception:  # a closed or unread streamed response
            text = None
        if isinstance(text, str) and text.strip():
            return text
        body = getattr(current, "body", None)
        if isinstance(body, str) and body.strip():
            return body
        if isinstance(body, Mapping | list):
            return json.dumps(body, default=str)
        current = current.__cause__ or current.__context__
    return str(err)


def _detail_names(parsed: Any) -> list[str]:
    """Top-level body fields named by a FastAPI/pydantic `detail` list (extra_forbidden)."""
    detail = parsed.get("detail") if isinstance(parsed, Mapping) else None
    names: list[str] = []
    for item in detail if isinstance(detail, list) else ():
        if not isinstance(item, Mapping):
            continue
        kind = str(item.get("type") or "")
        msg = str(item.get("msg") or "")
        if "extra" not in kind and "not permitted" not in msg.lower():
            continue
        loc = item.get("loc")
        if isinstance(loc, list | tuple) and loc:
            parts = [str(p) for p in loc]
            names.append(parts[1] if parts[0] == "body" and len(parts) > 1 else parts[0])
    return names


def _text_names(text: str) -> list[str]:
    text = text[:_MAX_SCAN]
    names: list[str] = []
    for pattern in _NAME_PATTERNS:
        for match in pattern.finditer(text):
            names.extend(n.strip() for n in match.group("names").split(","))
    return names


def _named_choice(choice: Any) -> bool:
    return isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping)


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def diagnose_alternation(body_text: str, profile: ServerProfile = GENERIC) -> Fix | None:
    """A strict chat template's "roles must alternate" (vLLM 400, TGI 422, llama.cpp 500):
    resend with alternating roles (`ServerProfile.needs_role_alternation`), once."""
    if profile.needs_role_alternation or not is_alternation_error(body_text or ""):
        return None
    return Fix(
        parameter="messages",
        profile_changes={"needs_role_alternation": True},
        actual="alternating roles (same-role messages merged)",
    )


def diagnose_rejection(
    status: int | None,
    body_text: str,
    sent_body: Mapping[str, Any],
    profile: ServerProfile = GENERIC,
) -> Fix | None:
    """What to change after the server rejected `sent_body`, or None (not ours to fix)."""
    text = body_text or ""
    if status is None or not 400 <= status < 600:
        return None
    # llama.cpp reports a missing --jinja as HTTP 500: check tools before the status.
    tools = _tools_rejected(text, sent_body, profile)
    if tools is not None or status >= 500:
        return tools
    return (
        _format_fix(text, sent_body)
        or _max_tokens_fix(text, sent_body)
        or _named_fields_fix(text, sent_body, profile)
    )


def _tools_rejected(text: str, sent: Mapping[str, Any], profile: ServerProfile) -> Fix | None:
    if not sent.get("tools"):
        return None
    for pattern, fallback in _TOOLS_REJECTED:
        if pattern.search(text):
            return Fix(parameter="tools", hint=profile.tools_hint or fallback)
    return None


def _format_fix(text: str, sent: Mapping[str, Any]) -> Fix | None:
    """response_format in another server's shape, or not beside tools (TGI grammar)."""
    rf = sent.get("response_format")
    if not isinstance(rf, Mapping):
        return None
    if _JSON_SCHEMA_ONLY.search(text) and rf.get("type") == "json_object":
        return Fix(
            parameter="response_format",
            profile_changes={"response_format_style": "json_schema_only"},
            actual="json_schema with a schema accepting any JSON object",
        )
    if _TGI_VALUE.search(text):
        return Fix(
            parameter="response_format",
            profile_changes={"response_format_style": "tgi"},
            actual='{"type": "json_object", "value": schema} (TGI shape)',
        )
    if sent.get("tools") and _TGI_GRAMMAR_TOOLS.search(text):
        return Fix(
            parameter="response_format",
            profile_changes={"response_format_with_tools": False},
            actual="omitted when tools are offered",
        )
    return None


def _max_tokens_fix(text: str, sent: Mapping[str, Any]) -> Fix | None:
    if "max_tokens" not in sent or not _USE_MAX_COMPLETION.search(text):
        return None
    return Fix(
        parameter="max_tokens",
        profile_changes={"max_tokens_field": "max_completion_tokens"},
        actual="max_completion_tokens",
    )


def _named_fields_fix(text: str, sent: Mapping[str, Any], profile: ServerProfile) -> Fix | None:
    """Fields the rejection names and we sent: dropped, except what must not vanish."""
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    named = [n for n in (*_detail_names(parsed), *_text_names(text)) if n in sent]
    if not named:
        return None
    names = _unique(named)
    if "tools" in names:
        hint = profile.tools_hint or "the server does not accept tools as it is started"
        return Fix(parameter="tools", hint=hint)
    if "tool_choice" in names and _named_choice(sent.get("tool_choice")):
        # Offer only the named tool with "required" instead of losing the choice.
        return Fix(
            parameter="tool_choice",
            profile_changes={"named_tool_choice": "emulate"},
            actual='"required" with only the named tool offered',
        )
    droppable = tuple(n for n in names if n not in PROTECTED)
    if not droppable:
        return None
    return Fix(parameter=", ".join(droppable), drop=droppable)
