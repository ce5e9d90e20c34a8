"""Server dialects as data: what each Chat Completions server sends, per scenario.

Every entry below is a `Dialect` whose comments cite the behaviour it reproduces from
/work/shared/SERVERS.md ("SERVERS: ..."). Where SERVERS.md is silent the replica uses a
plain OpenAI-like shape and says so ("assumed"): those details are not claims about the
real server.

Pure functions, no I/O:
  stream_events(dialect, scenario, request) -> list of StreamItem (chunk dicts, SSE
      comments, the [DONE] marker, pauses, an abrupt close), exactly in emission order.
  json_body(dialect, scenario, request) -> (status, headers, body) for stream=false.
The HTTP side (replica.py) turns these into bytes on a socket; unit tests of a stream
accumulator can also feed `chunks(stream_events(...))` directly.

Scenarios (every dialect):
  text                "Hello world" split over several chunks ('{"answer": "Hello world"}'
                      when the request carries response_format, as a model under JSON mode)
  tool_call           one call get_weather {"city": "Paris"}
  tool_calls_parallel get_weather(Paris) + get_time(London), where the server does parallel
                      calls (`Dialect.parallel_tools`); elsewhere the single call
  reasoning           thinking "Let me think." then text "Hello world" (how the thinking
                      shows depends on `Dialect.reasoning`)
  error_midstream     some text, then the server's in-band error (or its failure mode)
  truncated           some text, then a clean end of the HTTP body with no finish_reason
  dropped             some text, then the connection closes mid-body (no chunk terminator)
HTTP error scenarios (same answer streaming or not): see ERROR_SCENARIOS.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

# --------------------------------------------------------------------------- the script
TEXT = "Hello world"
TEXT_PARTS: tuple[str, ...] = ("Hel", "lo", " world")
# What a model under JSON mode answers (the "text" scenario when response_format is sent).
JSON_TEXT = '{"answer": "Hello world"}'
JSON_PARTS: tuple[str, ...] = ('{"answer": ', '"Hello', ' world"}')
THINKING = "Let me think."
THINKING_PARTS: tuple[str, ...] = ("Let me", " think.")


@dataclass(frozen=True)
class Call:
    name: str
    arguments: str  # the JSON text the model produced
    fragments: tuple[str, ...]  # how a fragmenting server splits it

    @property
    def arguments_obj(self) -> dict[str, Any]:
        import json

        return json.loads(self.arguments)


WEATHER = Call("get_weather", '{"city": "Paris"}', ('{"city": "', "Par", 'is"}'))
TIME = Call("get_time", '{"city": "London"}', ('{"city": ', '"London"}'))

USAGE = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
ZERO_USAGE = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
CREATED = 1767225600

STREAM_SCENARIOS: tuple[str, ...] = (
    "text",
    "tool_call",
    "tool_calls_parallel",
    "reasoning",
    "error_midstream",
    "truncated",
    "dropped",
)
ERROR_SCENARIOS: tuple[str, ...] = (
    "context_overflow",
    "unauthorized",
    "overloaded",
    "server_error",
)
SCENARIOS: tuple[str, ...] = STREAM_SCENARIOS + ERROR_SCENARIOS

# --------------------------------------------------------------------------- stream items


@dataclass(frozen=True)
class Comment:
    """An SSE comment line (keep-alive). `text` is what follows the colon."""

    text: str = " "


@dataclass(frozen=True)
class Done:
    """The `data: [DONE]` line."""


@dataclass(frozen=True)
class Wait:
    """Pause before the next item."""

    seconds: float


@dataclass(frozen=True)
class Drop:
    """Close the connection here, in the middle of the HTTP body."""


DONE = Done()
DROP = Drop()
StreamItem = dict[str, Any] | Comment | Done | Wait | Drop


def chunks(items: list[StreamItem]) -> list[dict[str, Any]]:
    """Only the JSON payloads, for feeding a pure accumulator."""
    return [i for i in items if isinstance(i, dict)]


# --------------------------------------------------------------------------- the data model
Reasoning = Literal["reasoning_content", "reasoning", "think_tags", "inline_thinking", "none"]
ToolStream = Literal["fragments", "tgi", "repeat_all", "whole", "whole_all", "localai"]
UsageMode = Literal["include_usage", "litellm", "localai_old", "never"]
FinishKey = Literal["null", "omit", "empty"]


@dataclass(frozen=True)
class ErrorReply:
    status: int
    body: Any  # dict -> JSON, str -> text/plain
    headers: tuple[tuple[str, str], ...] = ()


Validator = Callable[[dict[str, Any]], ErrorReply | None]


@dataclass(frozen=True)
class Dialect:
    key: str
    title: str
    model: str
    # ---- HTTP
    server_header: str | None = None
    models_body: dict[str, Any] = field(default_factory=dict)
    # "GET /path" or "POST /path" -> JSON body (status 200) or ErrorReply
    routes: Mapping[str, Any] = field(default_factory=dict)
    errors: Mapping[str, ErrorReply] = field(default_factory=dict)
    validators: tuple[Validator, ...] = ()
    auth_schemes: tuple[str, ...] = ("bearer",)  # "bearer" and/or "x-api-key"
    # ---- what discovery should find (runtime context window), None when not exposed
    context_window: int | None = None
    # ---- chunk shape
    completion_id: Callable[[int], str] = lambda n: f"chatcmpl-{n:032x}"
    tool_id: Callable[[int, int, str], str] = lambda n, i, cid: f"call_{n:04d}{i:04d}"
    first_delta: dict[str, Any] | None = None  # the role chunk, None = no role chunk
    role_every_delta: bool = False
    finish_key: FinishKey = "null"  # how "no finish yet" is written
    logprobs_key: bool = False
    omit_nulls: bool = False
    chunk_extra: Mapping[str, Any] = field(default_factory=dict)
    delta_extra: Mapping[str, Any] = field(default_factory=dict)
    final_delta: Mapping[str, Any] = field(default_factory=dict)
    finish_extra: Mapping[str, Any] = field(default_factory=dict)  # top-level, finish chunk
    finish_with_last_content: bool = False
    stop_reason: str = "stop"
    tool_reason: str = "tool_calls"
    usage: UsageMode = "include_usage"
    done: bool = True
    keepalive: bool = False
    # prompt_progress chunks before the first token when the request says return_progress
    prompt_progress: bool = False
    reasoning: Reasoning = "reasoning_content"
    tool_stream: ToolStream = "fragments"
    first_tool_delta_has_arguments: bool = True
    parallel_tools: bool = True
    tools_work: bool = True  # False: a tool request fails server-side (Amazon 2.0.4)
    # ---- in-band failure: items after some text; None = the stream just stops
    midstream: Callable[[str], list[StreamItem]] | None = None
    # extra chunks without choices put before the finish (SGLang sglext, LocalAI MCP)
    extra_chunks: Callable[[str, str], list[dict[str, Any]]] | None = None
    # ---- non-streaming
    message_extra: Mapping[str, Any] = field(default_factory=dict)
    tool_content: Any = None  # message.content when the answer is only tool calls
    json_args_object: bool = False  # arguments as a JSON object (TGI before 2025-03)
    tool_function_extra: Mapping[str, Any] = field(default_factory=dict)
    nonstream_usage: bool = True
    # ---- dialect-only scenarios: name -> (stream items fn, json fn)
    extra_scenarios: Mapping[str, tuple[Callable[..., list[StreamItem]], Callable[..., Any]]] = (
        field(default_factory=dict)
    )
    notes: str = ""

    @property
    def uses_reasoning_field(self) -> str | None:
        return self.reasoning if self.reasoning in ("reasoning", "reasoning_content") else None

    def usage_in_stream(self, include_usage: bool) -> bool:
        if self.usage in ("never",):
            return False
        if self.usage == "localai_old":
            return True
        return include_usage


# --------------------------------------------------------------------------- builders
def _strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_nulls(v) for v in value]
    return value


class _Stream:
    """Accumulates the items one response emits, in the dialect's shape."""

    def __init__(self, d: Dialect, request: dict[str, Any], serial: int) -> None:
        self.d = d
        self.request = request
        self.serial = serial
        self.cid = d.completion_id(serial)
        opts = request.get("stream_options") or {}
        self.include_usage = bool(isinstance(opts, dict) and opts.get("include_usage"))
        self.model = d.model
        self.items: list[StreamItem] = []

    # -- low level
    def chunk(
        self,
        delta: dict[str, Any] | None,
        finish: str | None = None,
        *,
        usage: dict[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        d = self.d
        body: dict[str, Any] = {
            "id": self.cid,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": self.model,
            **d.chunk_extra,
        }
        if delta is not None:
            full = dict(delta)
            if d.role_every_delta:
                full = {"role": "assistant", **full}
            full = {**full, **d.delta_extra}
            choice: dict[str, Any] = {"index": 0, "delta": full}
            if d.logprobs_key:
                choice["logprobs"] = None
            if finish is not None:
                choice["finish_reason"] = finish
            elif d.finish_key == "null":
                choice["finish_reason"] = None
            elif d.finish_key == "empty":
                choice["finish_reason"] = ""
            body["choices"] = [choice]
        else:
            body["choices"] = []
        if d.usage == "localai_old" and usage is None:
            usage = dict(ZERO_USAGE)
        if usage is not None:
            body["usage"] = usage
        if extra:
            body.update(extra)
        if d.omit_nulls:
            body = _strip_nulls(body)
        self.items.append(body)
        return body

    # -- scenario pieces
    def start(self) -> None:
        if self.d.keepalive:
            self.items.append(Comment(" "))
        if self.d.prompt_progress and self.request.get("return_progress") is True:
            self.progress()
        if self.d.first_delta is not None:
            self.chunk(dict(self.d.first_delta))

    def progress(self) -> None:
        """One report per prompt batch: the first at the cached prefix (processed ==
        cache), the last at processed == total; each with an empty assistant delta."""
        for processed, time_ms in PROGRESS_REPORTS:
            report = {"total": PROMPT_TOKENS, "cache": 0, "processed": processed}
            self.chunk(
                {"role": "assistant", "content": None},
                extra={"prompt_progress": {**report, "time_ms": time_ms}},
            )

    def text(self, parts: tuple[str, ...] = TEXT_PARTS, finish_last: bool = False) -> None:
        for n, part in enumerate(parts):
            last = n == len(parts) - 1
            if finish_last and last:
                self.finish(self.d.stop_reason, delta={"content": part})
            else:
                self.chunk({"content": part})
            if self.d.keepalive and n == 0:
                self.items.append(Comment(" "))

    def thinking(self) -> None:
        style = self.d.reasoning
        if style in ("reasoning", "reasoning_content"):
            for part in THINKING_PARTS:
                self.chunk({style: part})
        elif style == "think_tags":
            for part in ("<think>", *THINKING_PARTS, "</think>\n\n"):
                self.chunk({"content": part})
        elif style == "inline_thinking":
            for part in ("[thinking]\n", *THINKING_PARTS, "\n\n"):
                self.chunk({"content": part})
        # "none": the server drops the thinking

    def tool_calls(self, calls: list[Call]) -> None:
        d = self.d
        style = d.tool_stream
        ids = [d.tool_id(self.serial, i, self.cid) for i in range(len(calls))]
        if style == "whole_all":
            self.chunk({"tool_calls": [self._whole(i, c, ids[i]) for i, c in enumerate(calls)]})
            return
        if style == "localai":
            # SERVERS: every call shares ONE id (the completion id); the same call can
            # repeat at several indices. A single call is sent again at index 1.
            entries = [self._whole(i, c, self.cid) for i, c in enumerate(calls)]
            if len(calls) == 1:
                entries.append(self._whole(1, calls[0], self.cid))
            for entry in entries:
                self.chunk({"tool_calls": [entry]})
            return
        for i, call in enumerate(calls):
            if style == "whole":
                self.chunk({"tool_calls": [self._whole(i, call, ids[i])]})
            elif style == "fragments":
                fn: dict[str, Any] = {"name": call.name}
                if d.first_tool_delta_has_arguments:
                    fn["arguments"] = ""
                self.chunk(
                    {"tool_calls": [{"index": i, "id": ids[i], "type": "function", "function": fn}]}
                )
                for frag in call.fragments:
                    self.chunk({"tool_calls": [{"index": i, "function": {"arguments": frag}}]})
            elif style == "tgi":
                # SERVERS: repeats index 0, id and type on every delta
                self.chunk(
                    {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": ids[i],
                                "type": "function",
                                "function": {"name": call.name, "arguments": ""},
                            }
                        ]
                    }
                )
                for frag in call.fragments:
                    self.chunk(
                        {
                            "tool_calls": [
                                {
                                    "index": 0,
                                    "id": ids[i],
                                    "type": "function",
                                    "function": {"arguments": frag},
                                }
                            ]
                        }
                    )
            elif style == "repeat_all":
                # SERVERS: id, name and type repeated in EVERY tool delta
                for frag in ("", *call.fragments):
                    self.chunk(
                        {
                            "tool_calls": [
                                {
                                    "index": i,
                                    "id": ids[i],
                                    "type": "function",
                                    "function": {"name": call.name, "arguments": frag},
                                }
                            ]
                        }
                    )

    @staticmethod
    def _whole(i: int, call: Call, call_id: str) -> dict[str, Any]:
        return {
            "index": i,
            "id": call_id,
            "type": "function",
            "function": {"name": call.name, "arguments": call.arguments},
        }

    def finish(self, reason: str, delta: dict[str, Any] | None = None) -> None:
        d = self.d
        final_usage = None
        if d.usage == "localai_old":
            final_usage = dict(USAGE)  # old LocalAI: zeros on every chunk, real at the end
        self.chunk(
            {**d.final_delta, **(delta or {})},
            reason,
            usage=final_usage,
            extra=d.finish_extra,
        )
        if d.usage == "include_usage" and self.include_usage:
            self.chunk(None, usage=dict(USAGE))
        elif d.usage == "litellm" and self.include_usage:
            # SERVERS: usage chunk with NON-empty choices [{"index":0,"delta":{}}]
            self.items.append(
                {
                    "id": self.cid,
                    "object": "chat.completion.chunk",
                    "created": CREATED,
                    "model": self.model,
                    **d.chunk_extra,
                    "choices": [{"index": 0, "delta": {}}],
                    "usage": dict(USAGE),
                }
            )

    def end(self) -> None:
        if self.d.done:
            self.items.append(DONE)

    def extras(self, scenario: str) -> None:
        if self.d.extra_chunks is not None:
            self.items.extend(self.d.extra_chunks(self.cid, scenario))


def _calls_for(d: Dialect, scenario: str) -> list[Call]:
    if scenario == "tool_calls_parallel" and d.parallel_tools:
        return [WEATHER, TIME]
    return [WEATHER]


def stream_events(
    d: Dialect, scenario: str, request: dict[str, Any] | None = None, serial: int = 1
) -> list[StreamItem]:
    """The items a `stream: true` request gets, in order."""
    request = request or {}
    s = _Stream(d, request, serial)
    if scenario in d.extra_scenarios:
        return d.extra_scenarios[scenario][0](s)
    if scenario in ("tool_call", "tool_calls_parallel") and not d.tools_work:
        return d.extra_scenarios["tool_failure"][0](s)
    s.start()
    if scenario == "text":
        parts = JSON_PARTS if request.get("response_format") else TEXT_PARTS
        s.text(parts, finish_last=d.finish_with_last_content)
        s.extras(scenario)
        if not d.finish_with_last_content:
            s.finish(d.stop_reason)
        s.end()
    elif scenario == "reasoning":
        s.thinking()
        s.text(finish_last=d.finish_with_last_content)
        s.extras(scenario)
        if not d.finish_with_last_content:
            s.finish(d.stop_reason)
        s.end()
    elif scenario in ("tool_call", "tool_calls_parallel"):
        s.tool_calls(_calls_for(d, scenario))
        s.extras(scenario)
        s.finish(d.tool_reason)
        s.end()
    elif scenario == "error_midstream":
        s.text(TEXT_PARTS[:2])
        if d.midstream is not None:
            s.items.extend(d.midstream(s.cid))
        # None: the stream just stops (no finish chunk, no [DONE])
    elif scenario == "truncated":
        s.text(TEXT_PARTS[:2])
    elif scenario == "dropped":
        s.text(TEXT_PARTS[:2])
        s.items.append(DROP)
    else:
        raise KeyError(f"unknown streaming scenario {scenario!r}")
    return s.items


def _tool_json(d: Dialect, i: int, call: Call, serial: int, cid: str) -> dict[str, Any]:
    call_id = cid if d.tool_stream == "localai" else d.tool_id(serial, i, cid)
    fn: dict[str, Any] = {**d.tool_function_extra, "name": call.name}
    fn["arguments"] = call.arguments_obj if d.json_args_object else call.arguments
    return {"id": call_id, "type": "function", "function": fn}


def json_body(
    d: Dialect, scenario: str, request: dict[str, Any] | None = None, serial: int = 1
) -> tuple[int, list[tuple[str, str]], Any]:
    """(status, headers, body) for a `stream: false` request. Body None = cut short."""
    request = request or {}
    if scenario in d.extra_scenarios:
        return d.extra_scenarios[scenario][1](d, serial)
    if scenario in ("tool_call", "tool_calls_parallel") and not d.tools_work:
        return d.extra_scenarios["tool_failure"][1](d, serial)
    if scenario == "error_midstream":
        err = d.errors["server_error"]
        return err.status, list(err.headers), err.body
    if scenario in ("truncated", "dropped"):
        return 200, [], None
    cid = d.completion_id(serial)
    content = JSON_TEXT if scenario == "text" and request.get("response_format") else TEXT
    message: dict[str, Any] = {"role": "assistant", "content": content, **d.message_extra}
    finish = d.stop_reason
    if scenario == "reasoning":
        if d.uses_reasoning_field:
            message[d.reasoning] = THINKING
        elif d.reasoning == "think_tags":
            message["content"] = f"<think>{THINKING}</think>\n\n{TEXT}"
        elif d.reasoning == "inline_thinking":
            message["content"] = f"[thinking]\n{THINKING}\n\n{TEXT}"
    elif scenario in ("tool_call", "tool_calls_parallel"):
        calls = _calls_for(d, scenario)
        message["content"] = d.tool_content
        message["tool_calls"] = [_tool_json(d, i, c, serial, cid) for i, c in enumerate(calls)]
        finish = d.tool_reason
    elif scenario != "text":
        raise KeyError(f"unknown scenario {scenario!r}")
    choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": finish}
    if d.logprobs_key:
        choice["logprobs"] = None
    body: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion",
        "created": CREATED,
        "model": d.model,
        **d.chunk_extra,
        "choices": [choice],
    }
    if d.nonstream_usage:
        body["usage"] = dict(USAGE)
    if d.omit_nulls:
        body = _strip_nulls(body)
    return 200, [], body


# --------------------------------------------------------------------------- validators
def _openai_error(message: str, type_: str, code: Any, param: Any = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _assistant_tool_args(body: dict[str, Any]) -> list[Any]:
    out: list[Any] = []
    for m in body.get("messages") or []:
        if isinstance(m, dict) and m.get("role") == "assistant":
            for tc in m.get("tool_calls") or []:
                out.append(((tc or {}).get("function") or {}).get("arguments"))
    return out


def _vllm_stream_options(body: dict[str, Any]) -> ErrorReply | None:
    # SERVERS (vLLM): `stream_options` with `stream:false` is a 400
    if body.get("stream_options") is not None and not body.get("stream"):
        return ErrorReply(
            400,
            _openai_error(
                "Stream options can only be defined when `stream=True`.", "BadRequestError", 400
            ),
        )
    return None


def _ollama_object_args(body: dict[str, Any]) -> ErrorReply | None:
    # SERVERS: arguments sent back in history must be a JSON string (Ollama 400 on an object)
    if any(not isinstance(a, str) for a in _assistant_tool_args(body)):
        return ErrorReply(
            400,
            _openai_error(
                "json: cannot unmarshal object into Go struct field "
                ".messages.tool_calls.function.arguments of type string",
                "invalid_request_error",
                None,
            ),
        )
    return None


def _llamacpp_invalid_args(body: dict[str, Any]) -> ErrorReply | None:
    # SERVERS: llama.cpp 500 on invalid JSON arguments in history
    import json

    for a in _assistant_tool_args(body):
        if isinstance(a, str):
            try:
                json.loads(a)
            except ValueError:
                return ErrorReply(
                    500,
                    {
                        "error": {
                            "code": 500,
                            "message": "Failed to parse tool call arguments as JSON",
                            "type": "server_error",
                        }
                    },
                )
    return None


def _ampify_null_content(body: dict[str, Any]) -> ErrorReply | None:
    # SERVERS: Ampify: assistant message with `content: null` -> 500; "" works
    for m in body.get("messages") or []:
        if isinstance(m, dict) and m.get("role") == "assistant" and m.get("content") is None:
            return ErrorReply(
                500, {"error": {"message": "internal error", "type": "server_error", "code": 500}}
            )
    return None


def _amazon_request_rules(body: dict[str, Any]) -> ErrorReply | None:
    # SERVERS: Amazon server: role `developer` -> 422; every tool needs description and
    # parameters (else 422). FastAPI error shape {"detail": ...}.
    for m in body.get("messages") or []:
        if isinstance(m, dict) and m.get("role") == "developer":
            return ErrorReply(422, {"detail": "Invalid OpenAI request format: role 'developer'"})
    for t in body.get("tools") or []:
        fn = (t or {}).get("function") or {}
        if "description" not in fn or "parameters" not in fn:
            return ErrorReply(
                422, {"detail": "Invalid OpenAI request format: tool needs description/parameters"}
            )
    return None


def _tgi_response_format(body: dict[str, Any]) -> ErrorReply | None:
    # SERVERS: TGI uses {"type":"json_object"|"json","value": schema}; the OpenAI shape gives
    # 422; response_format plus tools is 422.
    rf = body.get("response_format")
    if not isinstance(rf, dict) or rf.get("type") in (None, "text"):
        return None
    if body.get("tools"):
        return ErrorReply(
            422,
            {
                "error": "Input validation error: grammar is not supported with tools",
                "error_type": "validation",
            },
        )
    if "value" not in rf:
        return ErrorReply(
            422,
            {
                "error": "Failed to deserialize the JSON body into the target type: "
                "response_format: missing field `value`",
                "error_type": "validation",
            },
        )
    return None


def _lmstudio_json_object(body: dict[str, Any]) -> ErrorReply | None:
    # SERVERS: LM Studio rejects json_object (400: must be json_schema or text)
    rf = body.get("response_format")
    if isinstance(rf, dict) and rf.get("type") == "json_object":
        return ErrorReply(400, {"error": "'response_format.type' must be 'json_schema' or 'text'"})
    return None


# --------------------------------------------------------------------------- helpers
def _models(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"object": "list", "data": list(entries)}


def _sse_error(payload: dict[str, Any], then_done: bool = False) -> Callable[[str], list]:
    def items(_cid: str) -> list[StreamItem]:
        out: list[StreamItem] = [copy.deepcopy(payload)]
        if then_done:
            out.append(DONE)
        return out

    return items


# =========================================================================== the dialects

# vLLM (0.33 era). SERVERS: first delta content ""; usage only in a `choices: []` chunk with
# include_usage; `stream_options` with stream:false is a 400; mid-stream errors are
# `data: {"error":{...}}` then [DONE]; reasoning in `reasoning` (since PR 27752);
# tool deltas: index always, id/name on the first delta only, arguments in fragments;
# /v1/models has max_model_len; errors {"error":{message,type,code}} (>= 0.10.1),
# auth {"error":"Unauthorized"}; context overflow 400 "This model's maximum context length..."
VLLM = Dialect(
    key="vllm",
    title="vLLM",
    model="Qwen/Qwen3-8B",
    server_header="uvicorn",
    context_window=32768,
    models_body=_models(
        {
            "id": "Qwen/Qwen3-8B",
            "object": "model",
            "created": CREATED,
            "owned_by": "vllm",
            "root": "Qwen/Qwen3-8B",
            "parent": None,
            "max_model_len": 32768,
            "permission": [],
        }
    ),
    routes={"GET /health": ""},
    completion_id=lambda n: f"chatcmpl-{n:032x}",
    tool_id=lambda n, i, cid: f"chatcmpl-tool-{n:024x}{i:08x}",
    first_delta={"role": "assistant", "content": ""},
    logprobs_key=True,
    reasoning="reasoning",
    first_tool_delta_has_arguments=False,
    midstream=_sse_error(
        _openai_error("The engine encountered an internal error.", "InternalServerError", 500),
        then_done=True,
    ),
    validators=(_vllm_stream_options,),
    message_extra={"refusal": None, "annotations": None, "audio": None, "function_call": None},
    tool_content=None,
    errors={
        "context_overflow": ErrorReply(
            400,
            _openai_error(
                "This model's maximum context length is 32768 tokens. However, your prompt "
                "contains 40000 input tokens. Please reduce the length of the input messages.",
                "BadRequestError",
                400,
            ),
        ),
        "unauthorized": ErrorReply(401, {"error": "Unauthorized"}),
        "overloaded": ErrorReply(
            503, _openai_error("Service Unavailable", "ServiceUnavailableError", 503)
        ),
        "server_error": ErrorReply(
            500, _openai_error("EngineCore encountered an issue.", "InternalServerError", 500)
        ),
    },
)


def _sglext(cid: str, scenario: str) -> list[dict[str, Any]]:
    # SERVERS: optional `sglext` chunks with `choices: []` (shape of the payload assumed)
    return [
        {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": "Qwen/Qwen3-8B",
            "choices": [],
            "sglext": {"routed_experts": None},
        }
    ]


# SGLang 0.5. SERVERS: streaming as vLLM (first delta content "", usage chunk with
# include_usage, [DONE]); `data: {"error":{...}}` mid-stream; optional `sglext` chunks with
# `choices: []`; reasoning in `reasoning_content`; errors {"object":"error","message",...};
# auth {"error":"Unauthorized"}; overflow "The input (N tokens) is longer than the model's
# context length (M tokens)"; max_model_len on /v1/models.
SGLANG = Dialect(
    key="sglang",
    title="SGLang",
    model="Qwen/Qwen3-8B",
    server_header="uvicorn",
    context_window=40960,
    models_body=_models(
        {
            "id": "Qwen/Qwen3-8B",
            "object": "model",
            "created": CREATED,
            "owned_by": "sglang",
            "root": "Qwen/Qwen3-8B",
            "max_model_len": 40960,
        }
    ),
    routes={"GET /health": ""},
    completion_id=lambda n: f"{n:032x}",
    tool_id=lambda n, i, cid: f"call_{n:012x}{i:012x}",
    first_delta={"role": "assistant", "content": ""},
    logprobs_key=True,
    reasoning="reasoning_content",
    first_tool_delta_has_arguments=False,
    extra_chunks=_sglext,
    midstream=_sse_error(
        {
            "error": {
                "object": "error",
                "message": "Internal server error",
                "type": "InternalServerError",
                "param": None,
                "code": 500,
            }
        },
        then_done=True,
    ),
    errors={
        "context_overflow": ErrorReply(
            400,
            {
                "object": "error",
                "message": "The input (40000 tokens) is longer than the model's context "
                "length (32768 tokens).",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            },
        ),
        "unauthorized": ErrorReply(401, {"error": "Unauthorized"}),
        "overloaded": ErrorReply(
            503,
            {
                "object": "error",
                "message": "Service Unavailable",
                "type": "ServiceUnavailableError",
                "param": None,
                "code": 503,
            },
        ),
        "server_error": ErrorReply(
            500,
            {
                "object": "error",
                "message": "Internal server error",
                "type": "InternalServerError",
                "param": None,
                "code": 500,
            },
        ),
    },
)

# Hugging Face TGI. SERVERS: `: ` keep-alive comment lines; every delta repeats role; chunk
# id ""; usage in a `choices: []` chunk with include_usage; [DONE]; mid-stream error
# `data: {"error": {"message", "http_status_code"}}`; tool deltas repeat index 0, id and
# type, ids "0","1"; finish_reason never "tool_calls" (raw "eos_token" leaks); arguments as
# a JSON object (before 2025-03, here in the non-streaming body); no reasoning parser
# (<think> stays in content); errors {"error":"<text>","error_type":"validation"}; overflow
# 422 "Input validation error: `inputs` tokens + `max_new_tokens` must be <= N"; 429 "Model is
# overloaded"; /info max_input_tokens / max_total_tokens; one tool call only (grammar).
TGI = Dialect(
    key="tgi",
    title="Hugging Face TGI",
    model="meta-llama/Llama-3.1-8B-Instruct",
    context_window=4096,
    models_body=_models(
        {
            "id": "meta-llama/Llama-3.1-8B-Instruct",
            "object": "model",
            "created": 0,
            "owned_by": "meta-llama/Llama-3.1-8B-Instruct",
        }
    ),
    routes={
        "GET /info": {
            "model_id": "meta-llama/Llama-3.1-8B-Instruct",
            "model_dtype": "torch.float16",
            "max_concurrent_requests": 128,
            "max_input_tokens": 4095,
            "max_total_tokens": 4096,
            "max_best_of": 2,
            "max_stop_sequences": 4,
            "version": "3.1.0",
        },
        "GET /health": "",
    },
    completion_id=lambda n: "",
    tool_id=lambda n, i, cid: str(i),
    first_delta=None,
    role_every_delta=True,
    logprobs_key=True,
    chunk_extra={"system_fingerprint": "3.1.0-native"},
    finish_with_last_content=True,
    stop_reason="eos_token",
    tool_reason="eos_token",
    keepalive=True,
    reasoning="think_tags",
    tool_stream="tgi",
    parallel_tools=False,
    json_args_object=True,
    tool_function_extra={"description": None},
    midstream=_sse_error(
        {
            "error": {
                "message": "Request failed during generation: CUDA out of memory",
                "http_status_code": 500,
            }
        }
    ),
    errors={
        "context_overflow": ErrorReply(
            422,
            {
                "error": "Input validation error: `inputs` tokens + `max_new_tokens` must be "
                "<= 4096. Given: 4000 `inputs` tokens and 1000 `max_new_tokens`",
                "error_type": "validation",
            },
        ),
        "unauthorized": ErrorReply(401, {"error": "Unauthorized", "error_type": "authorization"}),
        "overloaded": ErrorReply(429, {"error": "Model is overloaded", "error_type": "overloaded"}),
        "server_error": ErrorReply(
            500,
            {
                "error": "Request failed during generation: CUDA out of memory",
                "error_type": "generation",
            },
        ),
    },
    validators=(_tgi_response_format,),
)

# Ollama /v1 (OpenAI compatibility layer). SERVERS: usage with include_usage; [DONE] except
# on error: the stream just stops, no finish chunk ("empty chunk, then EOF"); reasoning
# (`reasoning` field) and content in separate chunks; each call whole in one delta;
# arguments in history must be a string (400 on an object); context overflow: silently
# truncates (no error); 503 "server busy"; runtime context from /api/ps, training from
# /api/show. Every delta carries role (assumed from Ollama's chunk builder).
OLLAMA = Dialect(
    key="ollama",
    title="Ollama /v1",
    model="qwen3:8b",
    context_window=8192,
    models_body=_models(
        {"id": "qwen3:8b", "object": "model", "created": CREATED, "owned_by": "library"}
    ),
    routes={
        "GET /api/ps": {
            "models": [
                {
                    "name": "qwen3:8b",
                    "model": "qwen3:8b",
                    "size": 6654289920,
                    "digest": "500a1f067a9f",
                    "expires_at": "2026-01-01T00:05:00Z",
                    "size_vram": 6654289920,
                    "context_length": 8192,
                }
            ]
        },
        "POST /api/show": {"model_info": {"qwen3.context_length": 40960}},
        "GET /api/version": {"version": "0.12.0"},
    },
    completion_id=lambda n: f"chatcmpl-{n % 1000}",
    tool_id=lambda n, i, cid: f"call_{n:04d}{i:04d}",
    first_delta=None,
    role_every_delta=True,
    chunk_extra={"system_fingerprint": "fp_ollama"},
    final_delta={"content": ""},
    reasoning="reasoning",
    tool_stream="whole_all",
    tool_content="",
    midstream=lambda cid: [
        {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": "qwen3:8b",
            "system_fingerprint": "fp_ollama",
            "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
            ],
        }
    ],
    validators=(_ollama_object_args,),
    errors={
        # no "context_overflow": Ollama silently truncates, the scenario answers normally
        "unauthorized": ErrorReply(
            401, _openai_error("unauthorized", "invalid_request_error", None)
        ),
        "overloaded": ErrorReply(
            503,
            _openai_error(
                "server busy, please try again.  maximum pending requests exceeded",
                "api_error",
                None,
            ),
        ),
        "server_error": ErrorReply(
            500, _openai_error("llama runner process has terminated", "api_error", None)
        ),
    },
)


def _localai_mcp(cid: str, scenario: str) -> list[dict[str, Any]]:
    # SERVERS: extra {"type":"mcp_tool_result"} events without `choices` (payload assumed)
    if scenario not in ("tool_call", "tool_calls_parallel"):
        return []
    return [{"type": "mcp_tool_result", "name": "get_weather", "result": "sunny"}]


# LocalAI. SERVERS: older builds put zero usage on every chunk and `finish_reason: ""`
# (reproduced here: zeros everywhere, real usage on the finish chunk); [DONE];
# `data: {"error":...}` mid-stream; extra {"type":"mcp_tool_result"} events without
# choices; each call whole in one delta; every call shares ONE id (the completion id) and
# the same call can repeat at several indices; reasoning in `reasoning`; 503 with
# Retry-After; error shape {"error":{message,type,code}}.
LOCALAI = Dialect(
    key="localai",
    title="LocalAI",
    model="qwen3-8b",
    models_body=_models({"id": "qwen3-8b", "object": "model"}),
    routes={"GET /readyz": "OK", "GET /healthz": "OK"},
    completion_id=lambda n: f"0b9c3f2e-{n:04d}-4e3a-9a41-5c2d1f0e{n:04d}",
    first_delta={"role": "assistant", "content": ""},
    finish_key="empty",
    usage="localai_old",
    reasoning="reasoning",
    tool_stream="localai",
    extra_chunks=_localai_mcp,
    midstream=_sse_error(
        {
            "error": {
                "code": 500,
                "message": "rpc error: code = Unavailable desc = error reading from server: EOF",
                "type": "",
            }
        }
    ),
    errors={
        "context_overflow": ErrorReply(
            500,
            {
                "error": {
                    "code": 500,
                    "message": "rpc error: code = Unknown desc = the request exceeds the "
                    "available context size, try increasing it",
                    "type": "",
                }
            },
        ),
        "unauthorized": ErrorReply(
            401,
            {
                "error": {
                    "code": 401,
                    "message": "An authentication key is required",
                    "type": "invalid_request_error",
                }
            },
        ),
        "overloaded": ErrorReply(
            503,
            {"error": {"code": 503, "message": "model is loading", "type": ""}},
            (("retry-after", "2"),),
        ),
        "server_error": ErrorReply(
            500, {"error": {"code": 500, "message": "could not load model", "type": ""}}
        ),
    },
)

# LM Studio (closed source). SERVERS: historically no usage in the stream; [DONE];
# reasoning in `reasoning` (gpt-oss); rejects json_object (400); overflow "tokens to keep
# from the initial prompt is greater than the context length"; /api/v0/models/{id}
# loaded_context_length. Error shape {"error": "<text>"} and tool fragments as OpenAI:
# assumed.
LMSTUDIO = Dialect(
    key="lmstudio",
    title="LM Studio",
    model="qwen/qwen3-8b",
    context_window=4096,
    models_body=_models(
        {"id": "qwen/qwen3-8b", "object": "model", "owned_by": "organization_owner"}
    ),
    routes={
        "GET /api/v0/models/qwen/qwen3-8b": {
            "id": "qwen/qwen3-8b",
            "object": "model",
            "type": "llm",
            "publisher": "qwen",
            "arch": "qwen3",
            "compatibility_type": "gguf",
            "quantization": "Q4_K_M",
            "state": "loaded",
            "max_context_length": 40960,
            "loaded_context_length": 4096,
        }
    },
    completion_id=lambda n: f"chatcmpl-{n:020d}",
    tool_id=lambda n, i, cid: f"{n * 1000 + i:09d}",
    first_delta={"role": "assistant", "content": ""},
    logprobs_key=True,
    chunk_extra={"system_fingerprint": "qwen/qwen3-8b"},
    usage="never",
    reasoning="reasoning",
    midstream=_sse_error({"error": {"message": "Model crashed"}}),
    validators=(_lmstudio_json_object,),
    errors={
        "context_overflow": ErrorReply(
            400,
            {
                "error": "The number of tokens to keep from the initial prompt is greater "
                "than the context length. Try to load the model with a larger context "
                "length, or provide a shorter input"
            },
        ),
        "unauthorized": ErrorReply(401, {"error": "Unauthorized"}),
        "overloaded": ErrorReply(503, {"error": "Model is loading"}),
        "server_error": ErrorReply(
            500,
            {"error": "The model has crashed without additional information. (Exit code: null)"},
        ),
    },
)

# LiteLLM proxy. SERVERS: usage chunk with NON-empty `choices: [{"index":0,"delta":{}}]`;
# [DONE]; finish_reason omitted until the last chunk; adds provider_specific_fields;
# errors {"error":{message,type,code}} with a STRING code; overflow
# "ContextWindowExceededError"; /v1/model/info. Reasoning in `reasoning_content`.
LITELLM = Dialect(
    key="litellm",
    title="LiteLLM proxy",
    model="local-qwen",
    server_header="uvicorn",
    context_window=32768,
    models_body=_models(
        {"id": "local-qwen", "object": "model", "created": 1677610602, "owned_by": "openai"}
    ),
    routes={
        "GET /v1/model/info": {
            "data": [
                {
                    "model_name": "local-qwen",
                    "litellm_params": {"model": "hosted_vllm/Qwen/Qwen3-8B"},
                    "model_info": {
                        "max_input_tokens": 32768,
                        "max_output_tokens": 8192,
                        "max_tokens": 8192,
                    },
                }
            ]
        },
        "GET /health/liveliness": "I'm alive!",
    },
    completion_id=lambda n: f"chatcmpl-6d1c0a2e-{n:04d}-4f4e-8c0a-{n:012d}",
    tool_id=lambda n, i, cid: f"call_{n:010d}{i:014d}",
    first_delta={"role": "assistant", "content": ""},
    finish_key="omit",
    chunk_extra={"system_fingerprint": None},
    delta_extra={"provider_specific_fields": None},
    usage="litellm",
    reasoning="reasoning_content",
    midstream=_sse_error(
        {
            "error": {
                "message": "litellm.APIConnectionError: Connection error.",
                "type": "None",
                "param": "None",
                "code": "500",
            }
        }
    ),
    errors={
        "context_overflow": ErrorReply(
            400,
            _openai_error(
                "litellm.ContextWindowExceededError: litellm.BadRequestError: "
                "ContextWindowExceededError: Hosted_vllmException - This model's maximum "
                "context length is 32768 tokens.",
                "None",
                "400",
                "None",
            ),
        ),
        "unauthorized": ErrorReply(
            401,
            _openai_error(
                "Authentication Error, Invalid proxy server token passed.",
                "auth_error",
                "401",
                "None",
            ),
        ),
        "overloaded": ErrorReply(
            429,
            _openai_error("litellm.RateLimitError: Rate limit exceeded", "None", "429", "None"),
        ),
        "server_error": ErrorReply(
            500,
            _openai_error("litellm.APIConnectionError: Connection error.", "None", "500", "None"),
        ),
    },
)

# Ampify Model Proxy. SERVERS: never sends usage; [DONE]; on model failure the stream just
# stops (no finish chunk, no [DONE]) and there is no in-band error; every chunk has
# `"finish_reason": null` explicitly; each tool call arrives whole in one delta; thinking
# inlined as content starting with `[thinking]\n` (the separator before the answer is
# assumed); errors {"error":{message,type,code}} with an INTEGER code; 401 with x-api-key
# or Bearer; 503 model unavailable; assistant `content: null` in history -> 500.
AMPIFY = Dialect(
    key="ampify",
    title="Ampify Model Proxy",
    model="ampify-default",
    models_body=_models({"id": "ampify-default", "object": "model", "owned_by": "ampify"}),
    auth_schemes=("bearer", "x-api-key"),
    completion_id=lambda n: f"chatcmpl-ampify-{n:08d}",
    tool_id=lambda n, i, cid: f"toolu_{n:08d}{i:08d}",
    first_delta={"role": "assistant", "content": ""},
    finish_key="null",
    usage="never",
    reasoning="inline_thinking",
    tool_stream="whole",
    midstream=None,
    nonstream_usage=False,
    validators=(_ampify_null_content,),
    errors={
        "context_overflow": ErrorReply(
            400,
            {
                "error": {
                    "message": "prompt is too long: exceeds the maximum context length",
                    "type": "invalid_request_error",
                    "code": 400,
                }
            },
        ),
        "unauthorized": ErrorReply(
            401,
            {"error": {"message": "invalid api key", "type": "authentication_error", "code": 401}},
        ),
        "overloaded": ErrorReply(
            503,
            {"error": {"message": "model unavailable", "type": "unavailable", "code": 503}},
        ),
        "server_error": ErrorReply(
            500, {"error": {"message": "internal error", "type": "server_error", "code": 500}}
        ),
    },
)


def _amazon_tool_failure_stream(s: _Stream) -> list[StreamItem]:
    # SERVERS: open-bedrock-server 2.0.4: tool calls fail server-side (in-band error)
    return [
        {
            "error": {
                "message": "Streaming error: tool calling failed in the Bedrock adapter",
                "type": "LLMIntegrationError",
            }
        }
    ]


def _amazon_tool_failure_json(d: Dialect, serial: int) -> tuple[int, list, Any]:
    # SERVERS: open-bedrock-server 2.0.4: tool calls fail server-side (500)
    return (
        500,
        [],
        {"detail": "An unexpected error occurred: tool calling failed in the Bedrock adapter"},
    )


def _amazon_claude_tool_stream(s: _Stream) -> list[StreamItem]:
    # SERVERS: arguments may arrive as a JSON object (Amazon server on its Claude path)
    s.start()
    s.chunk(
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "tooluse_0001",
                    "type": "function",
                    "function": {"name": WEATHER.name, "arguments": WEATHER.arguments_obj},
                }
            ]
        }
    )
    s.finish("tool_calls")
    return s.items  # no [DONE]


def _amazon_claude_tool_json(d: Dialect, serial: int) -> tuple[int, list, Any]:
    return (
        200,
        [],
        {
            "id": d.completion_id(serial),
            "object": "chat.completion",
            "created": CREATED,
            "model": d.model,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "tooluse_0001",
                                "type": "function",
                                "function": {
                                    "name": WEATHER.name,
                                    "arguments": WEATHER.arguments_obj,
                                },
                            }
                        ],
                    },
                    "finish_reason": "tool_calls",
                }
            ],
            "usage": dict(USAGE),
        },
    )


# Amazon Chat Completions Server (open-bedrock-server 2.0.4). SERVERS: no usage in the
# stream; NO [DONE] (EOF after the finish chunk is the normal end); null fields omitted;
# mid-stream `data: {"error":{"message":"Streaming error: ...","type":...}}`; tool calls
# fail server-side (500 / in-band error) -> scenarios tool_call*; the Claude path's
# arguments-as-object is scenario "tool_call_claude_path"; 403 for a missing or wrong key;
# role developer / tools without description+parameters -> 422. FastAPI {"detail": ...}
# error bodies (its source). Thinking is not exposed (assumed).
AMAZON = Dialect(
    key="amazon",
    title="Amazon Chat Completions Server (open-bedrock-server 2.0.4)",
    model="anthropic.claude-3-haiku-20240307-v1:0",
    server_header="uvicorn",
    models_body=_models(
        {
            "id": "anthropic.claude-3-haiku-20240307-v1:0",
            "object": "model",
            "owned_by": "bedrock",
        }
    ),
    routes={"GET /health": {"status": "healthy"}},
    completion_id=lambda n: f"chatcmpl-{n:032x}",
    first_delta={"role": "assistant"},
    finish_key="omit",
    omit_nulls=True,
    usage="never",
    done=False,
    reasoning="none",
    tool_stream="whole",
    tools_work=False,
    midstream=_sse_error(
        {"error": {"message": "Streaming error: ModelStreamErrorException", "type": "ClientError"}}
    ),
    validators=(_amazon_request_rules,),
    extra_scenarios={
        "tool_failure": (_amazon_tool_failure_stream, _amazon_tool_failure_json),
        "tool_call_claude_path": (_amazon_claude_tool_stream, _amazon_claude_tool_json),
    },
    errors={
        "context_overflow": ErrorReply(
            400,
            {
                "detail": "An error occurred (ValidationException) when calling the Converse "
                "operation: Input is too long for requested model."
            },
        ),
        "unauthorized": ErrorReply(403, {"detail": "Invalid API key"}),
        "overloaded": ErrorReply(503, {"detail": "Service unavailable: ThrottlingException"}),
        "server_error": ErrorReply(500, {"detail": "An unexpected error occurred"}),
    },
)

# llama-cpp-python server. SERVERS: no usage in the stream; [DONE]; tool deltas repeat id,
# name and type in EVERY chunk (a client that appends names gets `get_weatherget_weather`).
# Role-only first delta, OpenAI-style context_length_exceeded error and no reasoning
# parser (<think> in content): assumed.
LLAMA_CPP_PYTHON = Dialect(
    key="llama_cpp_python",
    title="llama-cpp-python server",
    model="llama-3.2-3b-instruct",
    server_header="uvicorn",
    models_body=_models(
        {"id": "llama-3.2-3b-instruct", "object": "model", "owned_by": "me", "permissions": []}
    ),
    completion_id=lambda n: f"chatcmpl-8e6b2a1c-{n:04d}-4d2f-9b1e-{n:012d}",
    tool_id=lambda n, i, cid: f"call__{i}_get_weather_{cid}",
    first_delta={"role": "assistant"},
    logprobs_key=True,
    usage="never",
    reasoning="think_tags",
    tool_stream="repeat_all",
    midstream=None,
    errors={
        "context_overflow": ErrorReply(
            400,
            _openai_error(
                "This model's maximum context length is 2048 tokens. However, you requested "
                "3000 tokens (2900 in the messages, 100 in the completion). Please reduce the "
                "length of the messages or completion.",
                "invalid_request_error",
                "context_length_exceeded",
                "messages",
            ),
        ),
        "unauthorized": ErrorReply(401, {"detail": "Invalid API key"}),
        "overloaded": ErrorReply(503, {"detail": "Service Unavailable"}),
        "server_error": ErrorReply(
            500, _openai_error("llama_decode returned -1", "internal_server_error", None)
        ),
    },
)

PROMPT_TOKENS = 12
PROGRESS_REPORTS = ((0, 0), (8, 15), (12, 20))  # (processed, time_ms)

# llama.cpp llama-server (also runs for real in e2e tests). SERVERS: usage in a separate
# `choices: []` chunk only with include_usage; [DONE]; `data: {"error":{...}}` mid-stream;
# first delta {role, content: null}; extra `timings` object; reasoning_content; tool deltas
# index always, id/name first only; header `Server: llama.cpp`; /v1/models owned_by
# "llamacpp" with meta.n_ctx (runtime) and meta.n_ctx_train (NOT the runtime limit);
# /props default_generation_settings.n_ctx; overflow 400 type exceed_context_size_error
# with n_prompt_tokens/n_ctx; 503 "Loading model"; 500 on invalid JSON tool arguments.
# tools/server/server-task.cpp: with `return_progress` a streamed request gets a chunk per
# prompt batch: delta {role, content: null} plus prompt_progress {total, cache, processed,
# time_ms}.
LLAMA_CPP = Dialect(
    key="llamacpp",
    title="llama.cpp llama-server",
    model="Qwen3-8B-Q4_K_M.gguf",
    server_header="llama.cpp",
    context_window=8192,
    models_body={
        "models": [{"name": "Qwen3-8B-Q4_K_M.gguf", "model": "Qwen3-8B-Q4_K_M.gguf"}],
        "object": "list",
        "data": [
            {
                "id": "Qwen3-8B-Q4_K_M.gguf",
                "object": "model",
                "created": CREATED,
                "owned_by": "llamacpp",
                "meta": {
                    "vocab_type": 2,
                    "n_vocab": 151936,
                    "n_ctx_train": 40960,
                    "n_ctx": 8192,
                    "n_embd": 4096,
                    "n_params": 8190735360,
                    "size": 5025821696,
                },
            }
        ],
    },
    routes={
        "GET /props": {
            "default_generation_settings": {"n_ctx": 8192, "params": {"n_predict": -1}},
            "total_slots": 1,
            "model_path": "/models/Qwen3-8B-Q4_K_M.gguf",
            "build_info": "b6500-abcdef0",
        },
        "GET /health": {"status": "ok"},
    },
    completion_id=lambda n: f"chatcmpl-{n:032d}",
    tool_id=lambda n, i, cid: f"{n:016d}{i:016d}",
    first_delta={"role": "assistant", "content": None},
    prompt_progress=True,
    finish_extra={
        "timings": {
            "prompt_n": PROMPT_TOKENS,
            "prompt_ms": 20.5,
            "predicted_n": 5,
            "predicted_ms": 80.1,
            "predicted_per_second": 62.4,
        }
    },
    reasoning="reasoning_content",
    midstream=_sse_error(
        {"error": {"code": 500, "message": "Failed to decode the batch", "type": "server_error"}}
    ),
    validators=(_llamacpp_invalid_args,),
    errors={
        "context_overflow": ErrorReply(
            400,
            {
                "error": {
                    "code": 400,
                    "message": "the request exceeds the available context size, try increasing it",
                    "type": "exceed_context_size_error",
                    "n_prompt_tokens": 9000,
                    "n_ctx": 8192,
                }
            },
        ),
        "unauthorized": ErrorReply(
            401,
            {"error": {"code": 401, "message": "Invalid API Key", "type": "authentication_error"}},
        ),
        "overloaded": ErrorReply(
            503, {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}
        ),
        "server_error": ErrorReply(
            500, {"error": {"code": 500, "message": "Internal error", "type": "server_error"}}
        ),
    },
)

DIALECTS: dict[str, Dialect] = {
    d.key: d
    for d in (
        VLLM,
        SGLANG,
        TGI,
        OLLAMA,
        LOCALAI,
        LMSTUDIO,
        LITELLM,
        AMPIFY,
        AMAZON,
        LLAMA_CPP_PYTHON,
        LLAMA_CPP,
    )
}


# --------------------------------------------------------------------------- rejecting variants
# Servers started without a feature, or strict about fields. Kept out of DIALECTS so the
# every-dialect tests keep their meaning; pass the Dialect object to Replica(...).
def _vllm_auto_tool_choice(body: dict[str, Any]) -> ErrorReply | None:
    # SERVERS (vLLM): without --enable-auto-tool-choice --tool-call-parser X, tools with
    # tool_choice "auto" (also the default when tools are sent) are a 400.
    if body.get("tools") and body.get("tool_choice", "auto") == "auto":
        return ErrorReply(
            400,
            _openai_error(
                '"auto" tool choice requires --enable-auto-tool-choice and '
                "--tool-call-parser to be set",
                "BadRequestError",
                400,
            ),
        )
    return None


_STRICT_FIELDS = frozenset(
    {
        "model",
        "messages",
        "stream",
        "temperature",
        "top_p",
        "max_tokens",
        "stop",
        "tools",
        "tool_choice",
        "response_format",
    }
)


def _strict_extra_fields(body: dict[str, Any]) -> ErrorReply | None:
    # SERVERS: "rejected with 422 by strict servers (FastAPI servers)": pydantic with
    # extra="forbid" lists every unknown field as {"type": "extra_forbidden", "loc":
    # ["body", name], "msg": "Extra inputs are not permitted"}. Which fields this one
    # knows is synthetic.
    extra = [k for k in body if k not in _STRICT_FIELDS]
    if not extra:
        return None
    return ErrorReply(
        422,
        {
            "detail": [
                {
                    "type": "extra_forbidden",
                    "loc": ["body", name],
                    "msg": "Extra inputs are not permitted",
                    "input": body[name],
                }
                for name in extra
            ]
        },
    )


def _variant(base: Dialect, key: str, title: str, *validators: Validator) -> Dialect:
    import dataclasses

    return dataclasses.replace(
        base, key=key, title=title, validators=(*base.validators, *validators)
    )


VLLM_NO_AUTO_TOOLS = _variant(
    VLLM, "vllm_no_auto_tools", "vLLM without --enable-auto-tool-choice", _vllm_auto_tool_choice
)
# A FastAPI server (llama-cpp-python's shape) that 422s on fields it does not know.
STRICT_FASTAPI = _variant(
    LLAMA_CPP_PYTHON, "strict_fastapi", "strict FastAPI server", _strict_extra_fields
)
VARIANTS: dict[str, Dialect] = {d.key: d for d in (VLLM_NO_AUTO_TOOLS, STRICT_FASTAPI)}
