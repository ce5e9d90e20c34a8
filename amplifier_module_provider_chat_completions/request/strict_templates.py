"""Message hygiene for strict chat templates (pure transformations of wire messages).

Mistral and Llama-2 style templates raise "Conversation roles must alternate" (vLLM 400,
TGI 422, llama.cpp 500) when two user or two assistant messages follow each other or a
system message appears mid-conversation; Mistral tokenizers (vLLM) accept only
9-character alphanumeric tool-call ids in history.
"""

from __future__ import annotations

import hashlib
import re
import string
from typing import Any, Final

_SYSTEM_ROLES: Final = frozenset({"system", "developer"})
_MERGEABLE: Final = frozenset({"user", "assistant"})

_ALTERNATION_ERROR: Final = re.compile(
    r"roles?\s+must\s+alternate"
    r"|must\s+alternate\s+(?:between\s+)?user"
    r"|after\s+the\s+optional\s+system\s+message"
    r"|alternating\s+(?:user|roles)"
    # mistral_common's validator, surfaced by vLLM for Mistral models.
    r"|unexpected\s+role\s+'\w+'\s+after\s+role\s+'\w+'",
    re.IGNORECASE,
)


def is_alternation_error(message: str) -> bool:
    """Whether a server error says the chat template needs alternating roles."""
    return _ALTERNATION_ERROR.search(message) is not None


def enforce_alternation(wire_messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return messages a strict template accepts; the input is not mutated.

    One leading system message (several leading ones merged); later system messages become
    user messages, so they fold into the neighbouring user turn; consecutive user or
    assistant messages merged. Tool messages are kept as they are: they answer the
    assistant's tool_calls and templates handle them specially.
    """
    result: list[dict[str, Any]] = []
    for index, original in enumerate(wire_messages):
        message = dict(original)
        role = message.get("role")
        if role in _SYSTEM_ROLES:
            leading = all(m.get("role") in _SYSTEM_ROLES for m in wire_messages[:index])
            message["role"] = "system" if leading else "user"
            role = message["role"]
        previous = result[-1] if result else None
        if (
            previous is not None
            and previous.get("role") == role
            and role in (*_MERGEABLE, "system")
        ):
            result[-1] = _merge(previous, message)
        else:
            result.append(message)
    return result


def _merge(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    merged = dict(first)
    merged["content"] = _join_content(first.get("content"), second.get("content"))
    calls = [*(first.get("tool_calls") or []), *(second.get("tool_calls") or [])]
    if calls:
        merged["tool_calls"] = calls
    return merged


def _join_content(a: Any, b: Any) -> Any:
    if _is_empty(a):
        return _copy_content(b) if not _is_empty(b) else a
    if _is_empty(b):
        return _copy_content(a)
    if isinstance(a, str) and isinstance(b, str):
        return f"{a}\n\n{b}"
    return [*_as_parts(a), *_as_parts(b)]


def _is_empty(content: Any) -> bool:
    return content is None or content == "" or content == []


def _copy_content(content: Any) -> Any:
    return list(content) if isinstance(content, list) else content


def _as_parts(content: Any) -> list[Any]:
    if isinstance(content, list):
        return list(content)
    return [{"type": "text", "text": str(content)}]


# Model families whose (vLLM) tokenizer validates tool-call ids; matched as name words.
MISTRAL_FAMILIES: Final = ("mistral", "mixtral", "devstral", "magistral", "ministral", "codestral")
_MISTRAL_MODEL: Final = re.compile(
    r"(?<![a-z])(?:" + "|".join(MISTRAL_FAMILIES) + r")", re.IGNORECASE
)


def is_mistral_family(model: str | None) -> bool:
    """Whether a model name (e.g. "mistralai/Mistral-Small-3.1-24B") is Mistral-family."""
    return bool(model) and _MISTRAL_MODEL.search(model or "") is not None


_ID_ALPHABET: Final = string.ascii_letters + string.digits
_ID_LENGTH: Final = 9
_VALID_ID: Final = re.compile(r"[A-Za-z0-9]{9}")


def rewrite_tool_ids_for_mistral(
    wire_messages: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Rewrite tool-call ids to 9 alphanumeric characters, consistently in calls and results.

    Returns the new messages and a mapping new id -> original id (only for ids that
    changed). Ids that already fit are kept. The new ids are derived from a hash of the
    original, so the same history gives the same ids on every request (prompt caching).
    """
    originals: list[str] = []
    for message in wire_messages:
        for call in message.get("tool_calls") or []:
            if isinstance(call, dict) and isinstance(call.get("id"), str):
                originals.append(call["id"])
        if message.get("role") == "tool" and isinstance(message.get("tool_call_id"), str):
            originals.append(message["tool_call_id"])

    taken = {orig for orig in originals if _VALID_ID.fullmatch(orig)}
    forward: dict[str, str] = {}
    for orig in originals:
        if orig in forward or orig in taken:
            continue
        forward[orig] = _fresh_id(orig, taken)
        taken.add(forward[orig])
    if not forward:
        return [dict(m) for m in wire_messages], {}

    rewritten: list[dict[str, Any]] = []
    for message in wire_messages:
        copy = dict(message)
        if copy.get("tool_calls"):
            copy["tool_calls"] = [_with_id(call, forward) for call in copy["tool_calls"]]
        if copy.get("role") == "tool" and copy.get("tool_call_id") in forward:
            copy["tool_call_id"] = forward[copy["tool_call_id"]]
        rewritten.append(copy)
    return rewritten, {new: orig for orig, new in forward.items()}


def _with_id(call: Any, forward: dict[str, str]) -> Any:
    if isinstance(call, dict) and call.get("id") in forward:
        return {**call, "id": forward[call["id"]]}
    return call


def _fresh_id(original: str, taken: set[str]) -> str:
    salt = 0
    while True:
        seed = original if salt == 0 else f"{original}\x00{salt}"
        candidate = _base62(hashlib.sha256(seed.encode()).digest())
        if candidate not in taken:
            return candidate
        salt += 1


def _base62(digest: bytes) -> str:
    number = int.from_bytes(digest, "big")
    chars = []
    for _ in range(_ID_LENGTH):
        number, rest = divmod(number, len(_ID_ALPHABET))
        chars.append(_ID_ALPHABET[rest])
    return "".join(chars)
