"""Tool calls the server did not parse: recover them from the message text.

When a server runs without a tool-call parser (llama-server without --jinja, vLLM without
--tool-call-parser, TGI), the model's raw call text lands in `content`. Recognised forms:

- Hermes/Qwen   `<tool_call>{"name": .., "arguments": ..}</tool_call>` (also unclosed at the
                end, and Qwen3-Coder's `<tool_call><function=..><parameter=..>` body)
- Mistral       `[TOOL_CALLS][{"name": .., "arguments": ..}, ..]`, `[TOOL_CALLS]name{..}`
                and `[TOOL_CALLS]name[ARGS]{..}`
- Llama 3.x     `<|python_tag|>{"name": .., "parameters": ..}` (several joined by `;`) and a
                message that is nothing but such objects
- Small models  a message that is nothing but such objects in one ```json fence (the reply
                of Qwen2.5-Coder-0.5B on llama-server with its own template)
- Functionary   `<function=name>{..}</function>`

Only a call to an offered tool (after `canonical_tool_name`) is taken; anything else stays
text. Without a marker, the message must be nothing but calls (bare or in one fence), each
object carrying only call keys: a call object after prose, or followed by prose, is an
example in an explanation and stays text. One scanner serves both paths, so streaming and
non-streaming cannot disagree.

Limitations: Qwen3-Coder `<parameter=..>` values are kept as strings unless they are a JSON
object or array (no schema here to type them).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Final

from .arguments import (
    ArgumentsError,
    BracketMatcher,
    UnrepairableJSON,
    balanced_end,
    canonical_tool_name,
    load_lenient,
    parse_arguments,
)


@dataclass(frozen=True)
class TextToolCall:
    """A tool call recovered from text.

    `error` is set when the call clearly targets an offered tool (explicit marker) but its
    arguments cannot be repaired; `arguments` is then {} and the caller should report it
    like a native call with invalid arguments.
    """

    name: str
    arguments: dict[str, Any]
    error: ArgumentsError | None = field(default=None, compare=False)


_TOOL_CALL: Final = "<tool_call>"
_TOOL_CALL_END: Final = "</tool_call>"
_MISTRAL: Final = "[TOOL_CALLS]"
_PYTHON_TAG: Final = "<|python_tag|>"
_FUNCTION: Final = "<function="
_FUNCTION_END: Final = "</function>"
_MARKERS: Final = (_TOOL_CALL, _MISTRAL, _PYTHON_TAG, _FUNCTION)
_BARE: Final = "bare"
_FENCED: Final = "fenced"
_FENCE: Final = "```"
# Info strings of a fence that may hold a call: none, or json.
_FENCE_LANGUAGES: Final = ("", "json")

# Keys a whole-message call object may carry; anything more and it is a JSON answer.
_CALL_KEYS: Final = frozenset({"name", "arguments", "parameters", "type", "id"})
_NAME_RE: Final = re.compile(r"[A-Za-z0-9_.\-]+")
_JSON_NAME_RE: Final = re.compile(r"""["']name["']\s*:\s*["']([^"']+)["']""")
_PARAM_RE: Final = re.compile(
    r"<parameter=([^>\s]+)>\r?\n?(.*?)\r?\n?(?:</parameter>|(?=<parameter=)|\Z)", re.DOTALL
)
_MISTRAL_ARGS: Final = "[ARGS]"
_MISTRAL_CALL_ID: Final = "[CALL_ID]"

_LLAMA_END: Final = ("<|eom_id|>", "<|eot_id|>")

_UNDECIDED: Final = -1
_LONGEST_TAG: Final = max(len(t) for t in (_TOOL_CALL_END, _FUNCTION_END, *_MARKERS))

# (buffer, index of an opening bracket) -> index past its closing bracket, or None.
Matcher = Callable[[str, int], int | None]


def extract_text_tool_calls(text: str, offered: Collection[str]) -> tuple[str, list[TextToolCall]]:
    """Split `text` into the remaining text and the tool calls written in it.

    With no calls found the text is returned unchanged; otherwise the remaining text is
    stripped (the calls usually sat on lines of their own).
    """
    if not offered or not _may_hold_call(text):
        return text, []
    scanner = TextCallScanner(offered)
    shown = scanner.feed(text)
    rest, calls = scanner.finish()
    if not calls:
        return text, []
    return (shown + rest).strip(), calls


def _may_hold_call(text: str) -> bool:
    # Cheap pre-check so ordinary prose never enters the scanner.
    return text.lstrip()[:1] in ("{", "[", "`") or any(marker in text for marker in _MARKERS)


class TextCallScanner:
    """Streaming extraction: feed text fragments, get back the text safe to show now.

    Text that might begin a call (a marker, a marker's prefix at the end of a fragment, or
    a message starting with `{`/`[`) is held until it is decided; a decided non-call is
    released as text. Nothing is shown twice or lost. Inactive when no tools were offered.
    """

    def __init__(self, offered: Collection[str]) -> None:
        self._offered = frozenset(offered)
        self._buf = ""
        self._region: str | None = None
        self._at_start = True
        self._calls: list[TextToolCall] = []
        # Bracket matchers by start offset in the current buffer, resumed on every feed.
        self._matchers: dict[int, BracketMatcher] = {}
        # Where to resume looking for a closing tag: the text before it was searched.
        self._searched = 0

    @property
    def calls(self) -> list[TextToolCall]:
        return list(self._calls)

    def feed(self, fragment: str) -> str:
        if not self._offered:
            return fragment
        idle = not self._buf and self._region is None and not self._at_start
        if idle and "<" not in fragment and "[" not in fragment:
            return fragment  # hot path: most fragments cannot begin a marker
        self._buf += fragment
        return self._drain(final=False)

    def finish(self) -> tuple[str, list[TextToolCall]]:
        if not self._offered:
            return "", []
        rest = self._drain(final=True)
        return rest, list(self._calls)

    def _drain(self, *, final: bool) -> str:
        out: list[str] = []
        while self._buf:
            if self._region is None:
                if not self._scan_text(out, final=final):
                    break
                continue
            end, is_call = _region_end(
                self._region, self._buf, self._match, self._searched, final=final
            )
            if end == _UNDECIDED:
                self._searched = max(0, len(self._buf) - _LONGEST_TAG)
                break
            self._searched = 0
            region_text = self._buf[:end]
            self._buf = self._buf[end:]
            self._matchers.clear()  # offsets moved
            calls = _parse_region(self._region, region_text, self._offered) if is_call else None
            if calls:
                self._calls.extend(calls)
            else:
                out.append(region_text)
            self._region = None
        return "".join(out)

    def _match(self, buf: str, start: int) -> int | None:
        matcher = self._matchers.get(start)
        if matcher is None:
            matcher = self._matchers[start] = BracketMatcher(start)
        return matcher.advance(buf)

    def _scan_text(self, out: list[str], *, final: bool) -> bool:
        """Move text to `out` up to the next region; False when more input is needed."""
        buf = self._buf
        if self._at_start:
            stripped = buf.lstrip()
            if not stripped:
                if final:
                    out.append(buf)
                    self._buf = ""
                return False
            first = stripped[0]
            if first == "{" or (
                first == "[" and not _MISTRAL.startswith(stripped[: len(_MISTRAL)])
            ):
                self._at_start = False
                self._region = _BARE
                return True
            if first == "`":
                fenced = _fence_may_hold_call(stripped, final=final)
                if fenced is None:
                    return False  # the fence's first line has not arrived yet
                if fenced:
                    self._at_start = False
                    self._region = _FENCED
                    return True
            if first == "[" and len(stripped) < len(_MISTRAL) and not final:
                return False  # "[TOOL_C" or a bare array: cannot tell yet
            self._at_start = False
        index, marker = _find_marker(buf)
        if marker is not None:
            out.append(buf[:index])
            self._buf = buf[index:]
            self._region = marker
            self._at_start = False
            return True
        hold = 0 if final else _partial_marker_len(buf)
        out.append(buf[: len(buf) - hold])
        self._buf = buf[len(buf) - hold :]
        return False


def _fence_may_hold_call(text: str, *, final: bool) -> bool | None:
    """Whether a message opening with a code fence may be a fenced call; None: undecided.

    Decided on the fence's first line and the first character after it, so a code answer
    (```python) is released at once.
    """
    if not text.startswith(_FENCE):
        return None if _FENCE.startswith(text) and not final else False
    newline = text.find("\n", len(_FENCE))
    if newline < 0:
        info = text[len(_FENCE) :].strip().lower()
        return None if not final and "json".startswith(info) else False
    if text[len(_FENCE) : newline].strip().lower() not in _FENCE_LANGUAGES:
        return False
    body = text[newline + 1 :].lstrip()
    if not body:
        return None if not final else False
    return body[0] in "{["


def _find_marker(buf: str) -> tuple[int, str | None]:
    best, found = len(buf), None
    for marker in _MARKERS:
        i = buf.find(marker, 0, best + len(marker))
        if 0 <= i < best:
            best, found = i, marker
    return best, found


def _partial_marker_len(buf: str) -> int:
    """Length of the longest suffix of `buf` that is a proper prefix of some marker."""
    longest = max(len(m) for m in _MARKERS) - 1
    for size in range(min(longest, len(buf)), 0, -1):
        tail = buf[-size:]
        if any(m.startswith(tail) for m in _MARKERS):
            return size
    return 0


def _region_end(
    region: str, buf: str, match: Matcher, searched: int, *, final: bool
) -> tuple[int, bool]:
    """Where the region at the start of `buf` ends, and whether it may be a call.

    Returns (_UNDECIDED, ..) while more input is needed; at the end of the stream the
    whole rest is the region (a call cut by max_tokens is still parsed and repaired).
    """
    if region == _TOOL_CALL:
        end, ok = _closed_by(buf, _TOOL_CALL, _TOOL_CALL_END, (_TOOL_CALL,), searched)
    elif region == _FUNCTION:
        end, ok = _closed_by(buf, _FUNCTION, _FUNCTION_END, (_FUNCTION, _TOOL_CALL), searched)
    elif region == _MISTRAL:
        end, ok = _mistral_end(buf, match)
    elif region == _PYTHON_TAG:
        end, ok = _sequence_end(buf, len(_PYTHON_TAG), match, bare=False)
    elif region == _FENCED:
        end, ok = _fenced_end(buf, match)
    else:
        end, ok = _sequence_end(buf, len(buf) - len(buf.lstrip()), match, bare=True)
    if end == _UNDECIDED and final:
        return len(buf), True
    return end, ok


def _closed_by(
    buf: str, opener: str, closer: str, restarts: tuple[str, ...], searched: int
) -> tuple[int, bool]:
    begin = max(len(opener), searched)
    close = buf.find(closer, begin)
    # A model that forgot the closing tag before the next call: end at the next opener.
    stops = [i for i in (buf.find(r, begin) for r in restarts) if i >= 0]
    if close >= 0 and (not stops or close < min(stops)):
        return close + len(closer), True
    if stops:
        return min(stops), True
    return _UNDECIDED, True


def _skip_ws(buf: str, i: int) -> int:
    while i < len(buf) and buf[i].isspace():
        i += 1
    return i


def _mistral_end(buf: str, match: Matcher) -> tuple[int, bool]:
    i = _skip_ws(buf, len(_MISTRAL))
    if i >= len(buf):
        return _UNDECIDED, True
    if buf[i] in "[{":
        end = match(buf, i)
        return (_UNDECIDED, True) if end is None else (end, True)
    name = _NAME_RE.match(buf, i)
    if name is None:
        return i, False
    i = name.end()
    if i >= len(buf):
        return _UNDECIDED, True
    for tag in (_MISTRAL_CALL_ID, _MISTRAL_ARGS):
        rest = buf[i : i + len(tag)]
        if tag.startswith(rest) and len(rest) < len(tag):
            return _UNDECIDED, True
        if rest == tag:
            i += len(tag)
            if tag == _MISTRAL_CALL_ID:
                call_id = _NAME_RE.match(buf, i)
                if call_id is None:
                    return (_UNDECIDED, True) if i >= len(buf) else (i, False)
                if call_id.end() >= len(buf):
                    return _UNDECIDED, True
                i = call_id.end()
    i = _skip_ws(buf, i)
    if i >= len(buf):
        return _UNDECIDED, True
    if buf[i] != "{":
        return i, False
    end = match(buf, i)
    return (_UNDECIDED, True) if end is None else (end, True)


def _fenced_end(buf: str, match: Matcher) -> tuple[int, bool]:
    """A fence holding only call objects, then nothing but the end of the message."""
    body = buf.index("\n", buf.index(_FENCE)) + 1
    end, ok = _sequence_end(buf, body, match, bare=False)
    if end == _UNDECIDED or not ok:
        return end, ok
    i = _skip_ws(buf, end)
    closer = buf[i : i + len(_FENCE)]
    if closer != _FENCE:
        return (_UNDECIDED, True) if _FENCE.startswith(closer) else (i, False)
    i = _skip_ws(buf, i + len(_FENCE))
    # Text after the fence makes it an example in an explanation; only the end of the
    # message (the caller's final drain) makes it a call.
    return (i, False) if i < len(buf) else (_UNDECIDED, True)


def _sequence_end(buf: str, start: int, match: Matcher, *, bare: bool) -> tuple[int, bool]:
    """End of a run of JSON values joined by `;`/`,`/whitespace (Llama 3.x style)."""
    i = _skip_ws(buf, start)
    last_end = None
    while True:
        if i >= len(buf):
            return _UNDECIDED, True
        if last_end is not None and buf[i] == "<":
            # Llama's end-of-message token leaks when the server keeps special tokens.
            for token in _LLAMA_END:
                if buf.startswith(token, i):
                    return i + len(token), True
                if token.startswith(buf[i:]):
                    return _UNDECIDED, True
        if buf[i] not in "{[" or (last_end is not None and buf[i] == "["):
            if last_end is None:
                return i, False
            # Text after the values: fine after an explicit tag, but a bare message must
            # be nothing but calls, or it is a JSON answer with commentary.
            return (i, False) if bare else (last_end, True)
        end = match(buf, i)
        if end is None:
            return _UNDECIDED, True
        last_end = end
        i = _skip_ws(buf, end)
        if i < len(buf) and buf[i] in ";,":
            i = _skip_ws(buf, i + 1)


def _parse_region(region: str, text: str, offered: frozenset[str]) -> list[TextToolCall] | None:
    """The calls in one region, or None when it is not (entirely) calls to offered tools."""
    if region == _TOOL_CALL:
        body = _strip_tags(text, _TOOL_CALL, _TOOL_CALL_END)
        if body.startswith(_FUNCTION):
            return _parse_function(body, offered)
        return _parse_json_calls(body, offered, strict=False)
    if region == _FUNCTION:
        return _parse_function(text, offered)
    if region == _MISTRAL:
        return _parse_mistral(text[len(_MISTRAL) :].strip(), offered)
    if region == _PYTHON_TAG:
        return _parse_json_sequence(text[len(_PYTHON_TAG) :], offered, strict=False)
    if region == _FENCED:
        body = text.strip()
        body = body[body.find("\n") + 1 :].removesuffix(_FENCE)
        return _parse_json_sequence(body, offered, strict=True)
    return _parse_json_sequence(text, offered, strict=True)


def _strip_tags(text: str, opener: str, closer: str) -> str:
    body = text[len(opener) :]
    if body.rstrip().endswith(closer):
        body = body.rstrip()[: -len(closer)]
    return body.strip()


def _parse_json_sequence(
    text: str, offered: frozenset[str], *, strict: bool
) -> list[TextToolCall] | None:
    text = text.rstrip()
    for token in _LLAMA_END:
        text = text.removesuffix(token)
    calls: list[TextToolCall] = []
    i = _skip_ws(text, 0)
    while i < len(text):
        end = balanced_end(text, i) or len(text)
        parsed = _parse_json_calls(text[i:end], offered, strict=strict)
        if not parsed:
            return None
        calls.extend(parsed)
        i = _skip_ws(text, end)
        if i < len(text) and text[i] in ";,":
            i = _skip_ws(text, i + 1)
    return calls or None


def _parse_json_calls(
    text: str, offered: frozenset[str], *, strict: bool
) -> list[TextToolCall] | None:
    """Calls from one JSON object or array of call objects."""
    try:
        value = load_lenient(text)
    except UnrepairableJSON:
        if strict:
            return None
        # The tag says "this is a call": if the name is readable and offered, report the
        # broken arguments instead of showing the raw call text.
        match = _JSON_NAME_RE.search(text)
        if match is None:
            return None
        name = canonical_tool_name(match.group(1), offered)
        if name not in offered:
            return None
        error = ArgumentsError(name, text, "could not parse the tool call")
        return [TextToolCall(name=name, arguments={}, error=error)]
    items = value if isinstance(value, list) else [value]
    calls = [_call_from_object(item, offered, strict=strict) for item in items]
    if not calls or any(call is None for call in calls):
        return None
    return [call for call in calls if call is not None]


_MISSING: Final = object()


def _call_from_object(obj: Any, offered: frozenset[str], *, strict: bool) -> TextToolCall | None:
    if not isinstance(obj, dict):
        return None
    function = obj.get("function")
    if isinstance(function, dict) and "name" in function:
        # The OpenAI wire shape {"type": "function", "function": {...}} copied from history.
        obj = function
    elif strict and not set(obj) <= _CALL_KEYS:
        return None
    raw_name = obj.get("name")
    if not isinstance(raw_name, str):
        return None
    name = canonical_tool_name(raw_name, offered)
    if name not in offered:
        return None
    raw_args = obj.get("arguments", obj.get("parameters", _MISSING))
    if raw_args is _MISSING:
        if strict:
            return None
        raw_args = None
    return _make_call(name, raw_args, strict=strict)


def _make_call(name: str, raw_args: Any, *, strict: bool) -> TextToolCall | None:
    try:
        return TextToolCall(name=name, arguments=parse_arguments(raw_args, name))
    except ArgumentsError as exc:
        return None if strict else TextToolCall(name=name, arguments={}, error=exc)


def _parse_function(text: str, offered: frozenset[str]) -> list[TextToolCall] | None:
    """`<function=name>{json}</function>` or Qwen3-Coder's `<parameter=k>v</parameter>` body."""
    head_end = text.find(">")
    if head_end < 0:
        return None
    name = canonical_tool_name(text[len(_FUNCTION) : head_end].strip(), offered)
    if name not in offered:
        return None
    body = text[head_end + 1 :]
    close = body.find(_FUNCTION_END)
    if close >= 0:
        body = body[:close]
    body = body.strip()
    if body.startswith("<parameter="):
        arguments = {key: _parameter_value(value) for key, value in _PARAM_RE.findall(body)}
        return [TextToolCall(name=name, arguments=arguments)]
    call = _make_call(name, body, strict=False)
    return None if call is None else [call]


def _parameter_value(raw: str) -> Any:
    value = raw.strip("\r\n")
    if value.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _parse_mistral(rest: str, offered: frozenset[str]) -> list[TextToolCall] | None:
    if rest[:1] in ("[", "{"):
        return _parse_json_calls(rest, offered, strict=False)
    name_match = _NAME_RE.match(rest)
    if name_match is None:
        return None
    name = canonical_tool_name(name_match.group(0), offered)
    if name not in offered:
        return None
    args = rest[name_match.end() :]
    if args.startswith(_MISTRAL_CALL_ID):
        call_id = _NAME_RE.match(args, len(_MISTRAL_CALL_ID))
        args = args[call_id.end() if call_id else len(_MISTRAL_CALL_ID) :]
    if args.startswith(_MISTRAL_ARGS):
        args = args[len(_MISTRAL_ARGS) :]
    call = _make_call(name, args.strip(), strict=False)
    return None if call is None else [call]
