"""Tool-call argument parsing and repair.

Servers send arguments as a JSON string (the spec), as a JSON object (TGI, the Amazon
server, some llama.cpp builds), or not at all. Small local models also emit broken JSON:
trailing commas, single quotes, unquoted keys, Python literals, raw newlines in strings,
objects cut by max_tokens, code fences, JSON encoded twice, prose around the object.

Strategy: plain `json.loads` first (the hot path, and what well-behaved servers send);
only on failure do we unwrap (fences, prose, double encoding) and hand the object text
to the `json_repair` library. A repair result is accepted only when it is a dict that
did not drop all of the content, so text that is not JSON at all stays an error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from typing import Any


class ArgumentsError(ValueError):
    """Tool-call arguments that cannot be turned into a JSON object."""

    def __init__(self, tool_name: str, raw: str, reason: str) -> None:
        self.tool_name = tool_name
        self.raw = raw
        # Set by the assembler: the response without the bad call (text, thinking, good
        # calls), so a failed call does not lose the turn.
        self.partial: Any = None
        snippet = raw[:120] + ("..." if len(raw) > 120 else "")
        super().__init__(f"tool call {tool_name!r} has invalid arguments ({reason}): {snippet!r}")


class UnrepairableJSON(ValueError):
    """Text that neither parses nor repairs into a JSON value of the wanted kind."""


# A fenced block anywhere in the text; the closing fence may be missing (cut by max_tokens).
_FENCE = re.compile(r"```[ \t]*[A-Za-z0-9_+-]*[ \t]*\r?\n?(.*?)(?:```|\Z)", re.DOTALL)
# Double encoding is followed at most this deep; deeper nesting is not a real pattern.
_MAX_UNWRAP = 2
_DECODER = json.JSONDecoder(strict=False)


def parse_arguments(raw: Any, tool_name: str) -> dict[str, Any]:
    """Return the arguments of one tool call as a dict, or raise ArgumentsError."""
    if raw is None:
        return {}
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str):
        raise ArgumentsError(
            tool_name, repr(raw), f"expected a JSON string, got {type(raw).__name__}"
        )
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        first_error = f"not valid JSON: {exc.msg}"
    else:
        if isinstance(value, dict):
            return value
        if not isinstance(value, str):
            raise ArgumentsError(
                tool_name, raw, f"expected a JSON object, got {type(value).__name__}"
            )
        # A JSON string: the object was encoded twice.
        first_error = "expected a JSON object, got str"
    try:
        return load_object(raw)
    except UnrepairableJSON:
        raise ArgumentsError(tool_name, raw, first_error) from None


def load_object(text: str) -> dict[str, Any]:
    """Parse or repair `text` into a dict; raise UnrepairableJSON when that is not possible."""
    value = _salvage(text, want_object=True, depth=0)
    assert isinstance(value, dict)
    return value


def load_lenient(text: str) -> Any:
    """Parse or repair `text` into an object or array; raise UnrepairableJSON otherwise."""
    return _salvage(text, want_object=False, depth=0)


def _salvage(text: str, *, want_object: bool, depth: int) -> Any:
    text = text.strip()
    try:
        # strict=False admits raw newlines and tabs inside strings, the most common fault,
        # and keeps them exactly (the repair library may trim them).
        value = json.loads(text, strict=False)
    except json.JSONDecodeError:
        pass
    else:
        return _accept(value, text, want_object=want_object, depth=depth)

    if text[:1] not in ("{", "["):
        # Only a fence that comes before the JSON: a fence inside a string value (a file's
        # markdown content) must not be mistaken for a wrapper.
        fenced = _FENCE.search(text)
        brace = text.find("{")
        if fenced is not None and fenced.group(1).strip() and (brace < 0 or fenced.start() < brace):
            text = fenced.group(1).strip()

    if text.startswith('"') and depth < _MAX_UNWRAP:
        # A (possibly broken) JSON string holding the object: decode it, then go again.
        inner = _repair(text)
        if isinstance(inner, str) and inner.strip():
            return _salvage(inner, want_object=want_object, depth=depth + 1)

    start = _first_container(text, want_object=want_object)
    if start is None:
        raise UnrepairableJSON("no JSON object in the text")
    candidate = text[start:]

    # Valid JSON followed by prose: cheap and exact, no repair needed.
    try:
        value, _ = _DECODER.raw_decode(candidate)
    except json.JSONDecodeError:
        pass
    else:
        if isinstance(value, dict | list):
            return _accept(value, candidate, want_object=want_object, depth=depth)

    value = _repair(candidate)
    if isinstance(value, list) and candidate[0] == "{":
        # The library read several values (object plus trailing prose or a second
        # object); retry on just the first balanced object.
        end = balanced_end(candidate, 0)
        if end is not None:
            value = _repair(candidate[:end])
    return _accept(value, candidate, want_object=want_object, depth=depth)


def _repair(text: str) -> Any:
    # The library loads with the first repair, not with the package (well-behaved servers
    # never need it).
    import json_repair

    return json_repair.loads(text, skip_json_loads=True)


def _accept(value: Any, source: str, *, want_object: bool, depth: int) -> Any:
    if isinstance(value, str) and depth < _MAX_UNWRAP and value.strip()[:1] in ("{", "["):
        return _salvage(value, want_object=want_object, depth=depth + 1)
    if want_object and not isinstance(value, dict):
        raise UnrepairableJSON(f"expected a JSON object, got {type(value).__name__}")
    if not want_object and not isinstance(value, dict | list):
        raise UnrepairableJSON(f"expected a JSON object or array, got {type(value).__name__}")
    if not value and any(ch.isalnum() for ch in source):
        # The repair threw everything away: that is not what the model meant.
        raise UnrepairableJSON("repair dropped all content")
    return value


def _first_container(text: str, *, want_object: bool) -> int | None:
    brace = text.find("{")
    if want_object:
        return None if brace < 0 else brace
    bracket = text.find("[")
    found = [i for i in (brace, bracket) if i >= 0]
    return min(found) if found else None


_OUTSIDE_STOP = re.compile(r'[{}\[\]"]')
_INSIDE_STOP = re.compile(r'["\\]')


class BracketMatcher:
    """Finds where the object/array opening at `start` closes, resumably.

    The streaming scanner calls `advance` again each time its buffer grows; the matcher
    continues where it stopped, so a long call costs one pass, not one pass per fragment.
    Double-quoted strings with escapes are tracked; single-quoted ones are not (an
    apostrophe in prose would otherwise swallow the rest of the text).
    """

    __slots__ = ("_depth", "_in_string", "_pos", "end")

    def __init__(self, start: int) -> None:
        self._pos = start
        self._depth = 0
        self._in_string = False
        self.end: int | None = None

    def advance(self, text: str) -> int | None:
        """Index just past the closing bracket, or None while it has not arrived."""
        while self.end is None:
            if self._in_string:
                stop = _INSIDE_STOP.search(text, self._pos)
                if stop is None:
                    self._pos = len(text)
                    return None
                if stop.group() == "\\":
                    if stop.end() >= len(text):
                        self._pos = stop.start()  # the escaped character is still to come
                        return None
                    self._pos = stop.end() + 1
                    continue
                self._in_string = False
                self._pos = stop.end()
                continue
            stop = _OUTSIDE_STOP.search(text, self._pos)
            if stop is None:
                self._pos = len(text)
                return None
            self._pos = stop.end()
            char = stop.group()
            if char == '"':
                self._in_string = True
            elif char in "{[":
                self._depth += 1
            else:
                self._depth -= 1
                if self._depth == 0:
                    self.end = self._pos
        return self.end


def balanced_end(text: str, start: int) -> int | None:
    """Index just past the object/array opening at `start`, or None if it never closes."""
    return BracketMatcher(start).advance(text)


# Namespaces models put in front of a function name (OpenAI's prompt format says
# `functions.name`; some fine-tunes copy it or invent a neighbour).
_NAME_PREFIXES = ("functions.", "function.", "tools.", "tool.")


def canonical_tool_name(name: str, offered: Collection[str]) -> str:
    """Map a near-miss of an offered tool name (case, `functions.` prefix) onto it.

    Names that match no offered tool exactly or unambiguously are returned unchanged,
    so the orchestrator can still report an unknown tool to the model.
    """
    if name in offered:
        return name
    candidate = name.strip()
    lowered = candidate.lower()
    for prefix in _NAME_PREFIXES:
        if lowered.startswith(prefix):
            candidate = candidate[len(prefix) :]
            break
    if candidate in offered:
        return candidate
    folded = [tool for tool in offered if tool.casefold() == candidate.casefold()]
    # Two offered tools differing only in case: guessing would pick the wrong one.
    return folded[0] if len(folded) == 1 else name
