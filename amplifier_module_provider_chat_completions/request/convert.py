"""Amplifier messages and ChatRequest -> Chat Completions wire body (pure, no I/O).

Everything is read by attribute (or key, for dict-shaped blocks) instead of through
`model_dump()`: a long history is converted on every turn, and dumping pydantic models
for a 2 MB conversation costs far more than reading the few fields we need.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from pydantic import BaseModel

if TYPE_CHECKING:
    from amplifier_core.message_models import ChatRequest, Message

__all__ = [
    "CONTEXT_FILE_CLOSE",
    "CONTEXT_FILE_OPEN",
    "TOOL_IMAGE_NOTE",
    "BodyDefaults",
    "ConversionError",
    "build_request_body",
    "dumps_body",
    "messages_to_wire",
    "serialize_tool_output",
    "tool_arguments_json",
]

CONTEXT_FILE_OPEN = "<context_file>\n"
CONTEXT_FILE_CLOSE = "\n</context_file>"
# OpenAI accepts only text parts in a tool message and the open servers' chat templates
# render a tool message's content as text, so an image a tool returned travels in a user
# message right after the turn's tool results (user messages are where vision servers
# take images), and the tool message says where it went.
TOOL_IMAGE_NOTE = "(image: in the next message)"
# Legacy functions-API calls carry no id; each gets one derived from its message position,
# so the same history gives the same ids (prompt caches hold).
LEGACY_CALL_ID = "call_legacy_{index}"

_EMPTY_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}
_TOOL_CHOICE_KEYWORDS = {"auto": "auto", "none": "none", "required": "required", "any": "required"}
# OpenAI's json_schema name rule; other servers accept anything, so it is safe everywhere.
_SCHEMA_NAME_BAD = re.compile(r"[^A-Za-z0-9_-]")


class ConversionError(ValueError):
    """A message that cannot be expressed on the wire; `index` is its position in the input."""

    def __init__(self, index: int, reason: str) -> None:
        self.index = index
        self.reason = reason
        super().__init__(f"cannot convert message {index}: {reason}")


class BodyDefaults(Protocol):
    """Provider-level defaults; ProviderConfig satisfies this structurally."""

    @property
    def default_model(self) -> str | None: ...
    @property
    def temperature(self) -> float | None: ...
    @property
    def top_p(self) -> float | None: ...
    @property
    def max_tokens(self) -> int | None: ...
    @property
    def stop(self) -> Sequence[str] | str | None: ...
    @property
    def seed(self) -> int | None: ...
    @property
    def parallel_tool_calls(self) -> bool | None: ...
    @property
    def extra_body(self) -> Mapping[str, Any] | None: ...


# ---------------------------------------------------------------------------
# small helpers


class _Attrs:
    """Mapping-style `.get` over an arbitrary object's attributes (the rare slow path)."""

    __slots__ = ("_obj",)

    def __init__(self, obj: Any) -> None:
        self._obj = obj

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self._obj, name, default)


def _fields(obj: Any) -> Mapping[str, Any] | _Attrs:
    """The fields of a pydantic model or a plain dict (hostile input may be either), read
    with `.get()`.

    A model's instance dict is read directly: getattr() on a field a model lacks (Message
    has no `tool_calls`) goes through pydantic's __getattr__, which builds and raises an
    AttributeError, and one lookup per object instead of per field keeps a 600-message
    history's conversion near a millisecond.
    """
    if isinstance(obj, dict):
        return obj
    if isinstance(obj, BaseModel):
        extra = obj.__pydantic_extra__
        return {**extra, **obj.__dict__} if extra else obj.__dict__
    return _Attrs(obj)


def _get(obj: Any, name: str) -> Any:
    return _fields(obj).get(name)


def _clean(text: str) -> str:
    """Make `text` encodable as UTF-8.

    Lone surrogates (from broken tool output or decoding with surrogateescape) make the
    final `.encode("utf-8")` raise; real pairs are rejoined, lone halves become U+FFFD.
    Only dumps_body calls it, once per body and only when encoding failed: cleaning every
    string during conversion cost 15% of a long history's conversion time.
    """
    if text.isascii():  # O(1) in CPython: the common case costs nothing
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def _json_default(value: Any) -> Any:
    """json.dumps fallback: structured data stays structured, never a Python repr."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def _dumps(value: Any) -> str:
    """Compact JSON text; orjson, with the stdlib for what orjson refuses."""
    try:  # orjson: one pass straight to UTF-8, several times faster per history call
        return orjson.dumps(value, default=_json_default).decode()
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_json_default)


def serialize_tool_output(output: Any) -> str:
    """Tool result content: strings as they are, everything else as JSON."""
    if isinstance(output, str):
        return output
    return _dumps(output)


def tool_arguments_json(arguments: Any) -> str:
    """Arguments sent back in history must be a JSON string (Ollama 400s on an object,
    llama.cpp 500s on invalid JSON)."""
    if arguments is None:
        return "{}"
    if isinstance(arguments, str):
        if not arguments.strip():
            return "{}"
        try:
            json.loads(arguments)
        except ValueError:
            return _dumps(arguments)
        return arguments
    return _dumps(arguments)


def _image_url(source: Any) -> str | None:
    if not isinstance(source, Mapping):
        return None
    kind = source.get("type")
    if kind == "base64" or (kind is None and source.get("data")):
        data = source.get("data")
        if not isinstance(data, str) or not data:
            return None
        if data.startswith("data:"):
            return data
        media_type = source.get("media_type") or "image/png"
        return f"data:{media_type};base64,{data}"
    url = source.get("url")
    if isinstance(url, str) and url:
        return url
    return None


# ---------------------------------------------------------------------------
# messages


class _Parts:
    """Collected user-visible content of one message, split by kind, order preserved."""

    __slots__ = ("has_image", "images_follow", "items", "results")

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []  # text and image_url parts in block order
        self.results: list[dict[str, Any]] = []  # wire tool messages
        self.has_image = False
        self.images_follow = False  # a result's images wait in a follow-up user message

    def text(self) -> str:
        return "\n".join(p["text"] for p in self.items if p["type"] == "text")

    def images(self) -> list[dict[str, Any]]:
        return [p for p in self.items if p["type"] == "image_url"] if self.has_image else []

    def content(self) -> str | list[dict[str, Any]]:
        # Plain string unless an image forces content parts: every server takes strings.
        if self.has_image:
            return self.items
        return self.text()


class _ImageFollowUp(dict[str, Any]):
    """The user message carrying a tool result's images (see TOOL_IMAGE_NOTE)."""


def _tool_reply(call_id: str, text: str, images: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tool message, and the user message with its images when it has any."""
    if not images:
        return [{"role": "tool", "tool_call_id": call_id, "content": text}]
    note = f"{text}\n{TOOL_IMAGE_NOTE}" if text else TOOL_IMAGE_NOTE
    label = {"type": "text", "text": f"Image returned by tool call {call_id}:"}
    return [
        {"role": "tool", "tool_call_id": call_id, "content": note},
        _ImageFollowUp(role="user", content=[label, *images]),
    ]


def _output_parts(output: Any) -> tuple[str, list[dict[str, Any]]] | None:
    """Text and image parts of a tool output made of text and image blocks, at least one
    of them a usable image; None for any other output (sent as text or JSON)."""
    if type(output) is str:  # nearly every tool result: rule it out first
        return None
    if isinstance(output, dict):  # most outputs: cheap to rule out
        if output.get("type") != "image":
            return None
        items: Sequence[Any] = (output,)
    elif isinstance(output, list | tuple):
        items = output
    elif isinstance(output, BaseModel):
        items = (output,)
    else:
        return None
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    for item in items:
        if not isinstance(item, Mapping | BaseModel):
            return None
        f = _fields(item)
        kind = f.get("type")
        if kind == "text" and isinstance(f.get("text"), str):
            texts.append(f["text"])
        elif kind == "image":
            url = _image_url(f.get("source"))
            if url is not None:
                images.append({"type": "image_url", "image_url": {"url": url}})
        else:
            return None
    return ("\n".join(texts), images) if images else None


def _result_message(index: int, call_id: Any, output: Any) -> dict[str, Any]:
    if not isinstance(call_id, str) or not call_id:
        raise ConversionError(index, "tool result has no tool_call_id")
    return {"role": "tool", "tool_call_id": call_id, "content": serialize_tool_output(output)}


def _result_messages(index: int, call_id: Any, output: Any) -> list[dict[str, Any]]:
    """A ToolResultBlock's tool message, and its images' user message when it has any."""
    parts = _output_parts(output)
    if parts is None:
        return [_result_message(index, call_id, output)]
    if not isinstance(call_id, str) or not call_id:
        raise ConversionError(index, "tool result has no tool_call_id")
    return _tool_reply(call_id, *parts)


def _collect(index: int, blocks: Sequence[Any]) -> _Parts:
    parts = _Parts()
    for block in blocks:
        if block is None:
            continue
        b = _fields(block)
        kind = b.get("type")
        if kind == "text":
            text = b.get("text")
            if isinstance(text, str):
                parts.items.append({"type": "text", "text": text})
        elif kind == "image":
            url = _image_url(b.get("source"))
            if url is not None:
                parts.items.append({"type": "image_url", "image_url": {"url": url}})
                parts.has_image = True
        elif kind == "tool_result":
            results = _result_messages(index, b.get("tool_call_id"), b.get("output"))
            parts.results.extend(results)
            parts.images_follow = parts.images_follow or len(results) > 1
        # thinking, tool_call outside an assistant turn and unknown blocks: nothing to send
    return parts


def _content_blocks(index: int, content: Any) -> list[Any] | None:
    """None for string content; the block list otherwise."""
    if content is None:
        return []
    if isinstance(content, str):
        return None
    if isinstance(content, list):
        return content  # only iterated, never mutated
    if isinstance(content, tuple):
        return list(content)
    raise ConversionError(
        index, f"content must be a string or a list, got {type(content).__name__}"
    )


def _wrap_context(content: str | list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return f"{CONTEXT_FILE_OPEN}{content}{CONTEXT_FILE_CLOSE}"
    # With images the tags become their own text parts so block order is kept.
    return [
        {"type": "text", "text": CONTEXT_FILE_OPEN.rstrip("\n")},
        *content,
        {"type": "text", "text": CONTEXT_FILE_CLOSE.lstrip("\n")},
    ]


def _tool_call(index: int, call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    if not isinstance(call_id, str) or not call_id:
        raise ConversionError(index, "assistant tool call has no id")
    if not isinstance(name, str) or not name:
        raise ConversionError(index, f"assistant tool call {call_id!r} has no name")
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": tool_arguments_json(arguments)},
    }


def _extra_tool_calls(index: int, raw: Any, in_blocks: set[str]) -> list[dict[str, Any]]:
    """Tool calls carried as an extra `tool_calls` field, beside or instead of blocks.

    Accepted shapes: OpenAI's {"id", "function": {"name", "arguments"}}, ToolCall's
    {"id", "name", "arguments"}, and the orchestrators' {"id", "tool", "arguments"}
    (loop-streaming and loop-basic store every tool turn that way, next to ToolCallBlocks).
    A call whose id a content block already carried is skipped before it is checked: the
    block is the complete copy, and the duplicate must never fail the request. Calls here
    that share an id are all kept (LocalAI gives every call of a response the same id).
    """
    if not raw:
        return []
    if not isinstance(raw, list | tuple):
        raise ConversionError(index, "assistant tool_calls must be a list")
    calls = []
    for item in raw:
        f = _fields(item)
        call_id = f.get("id")
        if isinstance(call_id, str) and call_id in in_blocks:
            continue
        function = f.get("function")
        source = f if function is None else _fields(function)
        name = source.get("name") or f.get("tool")
        arguments = source.get("arguments")
        if arguments is None:
            arguments = f.get("input")
        calls.append(_tool_call(index, call_id, name, arguments))
    return calls


def _legacy_call(index: int, function_call: Any) -> dict[str, Any]:
    """The legacy functions API's `function_call` as a tool call."""
    f = _fields(function_call)
    return _tool_call(index, LEGACY_CALL_ID.format(index=index), f.get("name"), f.get("arguments"))


def _assistant(index: int, message: Mapping[str, Any], out: list[dict[str, Any]]) -> bool:
    """Appends the assistant message (and results in its blocks); True when images follow."""
    content = message.get("content")
    blocks = _content_blocks(index, content)
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    if blocks is None:
        text = content
    else:
        texts: list[str] = []
        for block in blocks:
            b = _fields(block)
            kind = b.get("type")
            if kind == "text":
                value = b.get("text")
                if isinstance(value, str):
                    texts.append(value)
            elif kind == "tool_call":
                calls.append(_tool_call(index, b.get("id"), b.get("name"), b.get("input")))
            elif kind == "tool_result":
                results.extend(_result_messages(index, b.get("tool_call_id"), b.get("output")))
            # thinking/reasoning is never sent back: most servers reject or re-template it
        text = "\n".join(texts)
    extra = message.get("tool_calls")
    if extra:
        calls.extend(_extra_tool_calls(index, extra, {call["id"] for call in calls}))
    legacy = message.get("function_call")
    if legacy:
        calls.append(_legacy_call(index, legacy))
    # "" and never null: Ampify answers 500 to content null
    wire: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        wire["tool_calls"] = calls
    out.append(wire)
    out.extend(results)
    return bool(results) and any(type(m) is _ImageFollowUp for m in results)


def _open_call(out: list[dict[str, Any]], name: Any) -> str | None:
    """The id of the first call of the latest assistant turn that is named `name` (any
    name when it has none) and has no result yet; None when no turn is open."""
    answered: set[Any] = set()
    for message in reversed(out):
        role = message.get("role")
        if role == "tool":
            answered.add(message.get("tool_call_id"))
        elif type(message) is not _ImageFollowUp:
            if role != "assistant":
                return None
            for call in message.get("tool_calls") or ():
                if call["id"] not in answered and (not name or call["function"]["name"] == name):
                    return call["id"]
            return None
    return None


def _function_result_as_text(index: int, message: Mapping[str, Any]) -> dict[str, Any]:
    """A legacy function result that answers no call: as user text, the one place any
    server takes it (a tool message answering nothing is rejected)."""
    content = message.get("content")
    blocks = _content_blocks(index, content)
    text = content if blocks is None else _collect(index, blocks).text()
    name = message.get("name")
    label = f"Result of function {name}:" if isinstance(name, str) and name else "Function result:"
    return {"role": "user", "content": f"{label}\n{text}"}


def _tool(index: int, role: str, message: Mapping[str, Any], out: list[dict[str, Any]]) -> bool:
    """Appends the tool results a tool message holds; True when images follow them."""
    call_id = message.get("tool_call_id")
    if role == "function" and not (isinstance(call_id, str) and call_id):
        # The legacy functions API names the function instead of a call id.
        call_id = _open_call(out, message.get("name"))
        if call_id is None:
            out.append(_function_result_as_text(index, message))
            return False
    content = message.get("content")
    blocks = _content_blocks(index, content)
    if blocks is None:
        out.append(_result_message(index, call_id, content))
        return False
    parts = _collect(index, blocks)
    out.extend(parts.results)
    if isinstance(call_id, str) and call_id:
        if parts.items or not parts.results:
            out.extend(_tool_reply(call_id, parts.text(), parts.images()))
            return parts.images_follow or parts.has_image
    elif not parts.results:
        raise ConversionError(index, "tool message has no tool_call_id")
    elif parts.items:
        out.append({"role": "user", "content": parts.content()})
    return parts.images_follow


def _plain(index: int, role: str, message: Mapping[str, Any], out: list[dict[str, Any]]) -> bool:
    """system, developer and user messages; True when images of the results they hold
    follow."""
    content = message.get("content")
    blocks = _content_blocks(index, content)
    wire_role = "user" if role == "developer" else role
    body: str | list[dict[str, Any]]
    images_follow = False
    if blocks is None:
        body = content
        emit = True
    else:
        parts = _collect(index, blocks)
        # Anthropic-style results inside a user message go first: they answer the
        # preceding assistant turn and must sit right after it.
        out.extend(parts.results)
        body = parts.content()
        emit = bool(parts.items) or not parts.results
        images_follow = parts.images_follow
    if not emit:
        return images_follow
    if role == "developer":
        body = _wrap_context(body)
    wire: dict[str, Any] = {"role": wire_role, "content": body}
    name = message.get("name")
    if role == "user" and isinstance(name, str) and name:
        wire["name"] = name
    out.append(wire)
    return images_follow


def messages_to_wire(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Convert Amplifier messages to Chat Completions messages, order preserved.

    Legacy functions-API messages become tool calls and tool results; images a tool
    returned follow the turn's tool results in one user message (see TOOL_IMAGE_NOTE).

    Raises ConversionError (a ValueError) naming the message index when a message
    cannot be expressed (unknown role, tool result without an id, ...).
    """
    out: list[dict[str, Any]] = []
    images_follow = False
    for index, message in enumerate(messages):
        if message is None:
            raise ConversionError(index, "message is None")
        fields = _fields(message)
        role = fields.get("role")
        if role == "tool" or role == "function":
            if _tool(index, role, fields, out):
                images_follow = True
        elif role == "assistant":
            if _assistant(index, fields, out):
                images_follow = True
        elif role in ("user", "system", "developer"):
            if _plain(index, role, fields, out):
                images_follow = True
        else:
            raise ConversionError(index, f"unknown role {role!r}")
    return _images_after_results(out) if images_follow else out


def _images_after_results(out: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool results' images moved after the run of tool messages they sit in (a tool
    message must directly follow its assistant turn), merged into one user message."""
    result: list[dict[str, Any]] = []
    held: list[dict[str, Any]] = []
    for message in out:
        if type(message) is _ImageFollowUp:
            held.extend(message["content"])
            continue
        if held and message.get("role") != "tool":
            result.append({"role": "user", "content": held})
            held = []
        result.append(message)
    if held:
        result.append({"role": "user", "content": held})
    return result


# ---------------------------------------------------------------------------
# request body


def _tools(specs: Sequence[Any]) -> list[dict[str, Any]]:
    tools = []
    for spec in specs:
        parameters = _get(spec, "parameters")
        # The Amazon server 422s without description or parameters, so both are always sent.
        tools.append(
            {
                "type": "function",
                "function": {
                    "name": _get(spec, "name"),
                    "description": _get(spec, "description") or "",
                    "parameters": parameters if parameters else dict(_EMPTY_PARAMETERS),
                },
            }
        )
    return tools


def _tool_choice(choice: Any) -> str | dict[str, Any] | None:
    if choice is None:
        return None
    if isinstance(choice, str):
        stripped = choice.strip()
        if not stripped:
            return None
        keyword = _TOOL_CHOICE_KEYWORDS.get(stripped.lower())
        if keyword is not None:
            return keyword
        return {"type": "function", "function": {"name": stripped}}
    if isinstance(choice, Mapping):
        # Anthropic's {"type": "tool", "name"} and the Responses API's {"type": "function",
        # "name"} are translated; anything else is the caller's own shape.
        kind = choice.get("type")
        if "function" not in choice:
            if kind in ("tool", "function") and isinstance(choice.get("name"), str):
                return {"type": "function", "function": {"name": choice["name"]}}
            if kind in _TOOL_CHOICE_KEYWORDS:
                return _TOOL_CHOICE_KEYWORDS[kind]
        return dict(choice)
    return None


def _response_format(fmt: Any) -> dict[str, Any] | None:
    if fmt is None:
        return None
    kind = _get(fmt, "type")
    if kind == "json":
        return {"type": "json_object"}
    if kind != "json_schema":
        return None
    schema = _get(fmt, "json_schema")
    if schema is None:
        schema = _get(fmt, "schema")
    schema = dict(schema) if isinstance(schema, Mapping) else {}
    name: Any = None
    # Already in OpenAI's {name, schema, strict} wrapper: unwrap instead of nesting twice.
    if isinstance(schema.get("schema"), Mapping) and "properties" not in schema:
        name = schema.get("name")
        strict_inner = schema.get("strict")
        schema = dict(schema["schema"])
    else:
        strict_inner = None
    if not isinstance(name, str) or not name:
        name = schema.get("title")
    name = _SCHEMA_NAME_BAD.sub("_", name)[:64] if isinstance(name, str) and name else "response"
    wrapper: dict[str, Any] = {"name": name, "schema": schema}
    strict = _get(fmt, "strict")
    if strict is None:
        strict = strict_inner
    if strict is not None:
        wrapper["strict"] = bool(strict)
    return {"type": "json_schema", "json_schema": wrapper}


def _stop(value: Any) -> list[str] | str | None:
    if not value:
        return None
    if isinstance(value, str):
        return value
    return list(value)


def build_request_body(
    request: ChatRequest, cfg: BodyDefaults, *, stream: bool, max_tokens: int | None = None
) -> dict[str, Any]:
    """The JSON body for POST /chat/completions.

    Request fields override configured defaults; unset values are omitted rather than
    sent as null (strict servers 422 on nulls); `cfg.extra_body` is merged last and wins.
    `max_tokens`, when given, is the output limit already decided for this request.
    """
    body: dict[str, Any] = {
        "model": request.model or cfg.default_model,
        "messages": messages_to_wire(request.messages),
    }
    _add_sampling(body, request, cfg, max_tokens)
    if request.tools:
        _add_tools(body, request, cfg)
    response_format = _response_format(request.response_format)
    if response_format is not None:
        body["response_format"] = response_format
    if request.reasoning_effort:
        body["reasoning_effort"] = request.reasoning_effort
    if stream:
        # Only when streaming: vLLM 400s on stream_options with stream false.
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    if cfg.extra_body:
        body.update(cfg.extra_body)
    return body


def _add_sampling(
    body: dict[str, Any], request: ChatRequest, cfg: BodyDefaults, max_tokens: int | None
) -> None:
    temperature = request.temperature if request.temperature is not None else cfg.temperature
    if temperature is not None:
        body["temperature"] = temperature
    top_p = request.top_p if request.top_p is not None else cfg.top_p
    if top_p is not None:
        body["top_p"] = top_p
    if max_tokens is None:
        max_tokens = (
            request.max_output_tokens if request.max_output_tokens is not None else cfg.max_tokens
        )
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    stop = _stop(request.stop) or _stop(cfg.stop)
    if stop:
        body["stop"] = stop
    if cfg.seed is not None:
        body["seed"] = cfg.seed


def _add_tools(body: dict[str, Any], request: ChatRequest, cfg: BodyDefaults) -> None:
    body["tools"] = _tools(request.tools or ())
    choice = _tool_choice(request.tool_choice)
    if choice is not None:
        body["tool_choice"] = choice
    if cfg.parallel_tool_calls is not None:
        body["parallel_tool_calls"] = cfg.parallel_tool_calls


def dumps_body(body: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON for the request body.

    orjson writes UTF-8 bytes directly, 4-5x faster than json.dumps + encode on a 2 MB
    history; the stdlib path remains for what orjson refuses (lone surrogates, non-str
    keys, integers beyond 64 bits).
    """
    try:
        return orjson.dumps(body, default=_json_default)
    except (orjson.JSONEncodeError, TypeError):
        pass
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=_json_default)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate slipped in through extra_body or arguments: replace, don't fail.
        return _clean(text).encode("utf-8")
