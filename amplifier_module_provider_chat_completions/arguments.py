"""Tool-call argument parsing.

Servers send arguments as a JSON string (the spec), as a JSON object (TGI, the Amazon
server, some llama.cpp builds), or not at all. Small local models also emit broken JSON;
the salvage work extends `parse_arguments` to repair it.
"""

from __future__ import annotations

import json
from typing import Any


class ArgumentsError(ValueError):
    """Tool-call arguments that cannot be turned into a JSON object."""

    def __init__(self, tool_name: str, raw: str, reason: str) -> None:
        self.tool_name = tool_name
        self.raw = raw
        snippet = raw[:120] + ("..." if len(raw) > 120 else "")
        super().__init__(f"tool call {tool_name!r} has invalid arguments ({reason}): {snippet!r}")


def parse_arguments(raw: Any, tool_name: str) -> dict[str, Any]:
    """Return the arguments of one tool call as a dict, or raise ArgumentsError."""
    if raw is None:
        return {}
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str):
        raise ArgumentsError(tool_name, repr(raw), f"expected a JSON string, got {type(raw).__name__}")
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ArgumentsError(tool_name, raw, f"not valid JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise ArgumentsError(tool_name, raw, f"expected a JSON object, got {type(value).__name__}")
    return value
