"""Hostile input, property-based: config values, server replies and Amplifier messages.

Server replies go through the real provider with respx at the HTTP boundary (no sockets:
hundreds of examples per second). The only outcomes allowed are a working result or an
amplifier_core error; KeyError/TypeError/AttributeError/ValueError must never escape.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import respx
from amplifier_core.llm_errors import ConfigurationError, InvalidRequestError, LLMError
from amplifier_core.message_models import (
    ChatRequest,
    ChatResponse,
    Message,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
    ToolResultBlock,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amplifier_module_provider_chat_completions import ChatCompletionsProvider
from amplifier_module_provider_chat_completions.config import CONFIG_KEYS

BASE = "http://hostile.test/v1"
QUICK = {"server": "openai", "max_retries": 0, "timeout": 5}
# Example counts: the reported numbers for issue 8 (hypothesis runs exactly these unless
# it exhausts the search space first).
CONFIG_EXAMPLES = 400
STREAM_EXAMPLES = 400
BODY_EXAMPLES = 300
MESSAGE_EXAMPLES = 300
COMMON = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

SURROGATES = st.sampled_from(["\ud800", "\udfff", "\udc80x", "a\ud83d", "\ud83d\ude00"])
TEXT = st.one_of(
    st.text(max_size=20),
    st.text(st.characters(codec="utf-8"), max_size=20),
    SURROGATES,
    st.sampled_from(["", " ", "null", "{", "[DONE]", "\u2028", "\x00", "\r\n"]),
)
HUGE = st.sampled_from(
    ["x" * 200_000, 10**40, -(10**40), 1e308, -1e308, float("inf"), float("nan")]
)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), TEXT, HUGE)


def json_like(leaf: st.SearchStrategy[Any] = SCALARS) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaf,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
        max_leaves=12,
    )


ANY = json_like()


class Counter:
    """Counts examples actually run, so the report can quote real numbers."""

    runs: dict[str, int] = {}  # noqa: RUF012 - shared tally on purpose

    @classmethod
    def tick(cls, name: str) -> None:
        cls.runs[name] = cls.runs.get(name, 0) + 1

    @classmethod
    def outcome(cls, name: str, result: object) -> None:
        cls.tick(f"{name}->{type(result).__name__}")


@pytest.fixture(scope="module", autouse=True)
def _report_counts() -> Any:
    yield
    print(f"\nhypothesis examples run: {Counter.runs}")


# -- config ---------------------------------------------------------------------------------

KEYS = [k.name for k in CONFIG_KEYS] + ["model", "instance_id"]
GOOD = {
    "base_url": st.sampled_from(
        ["http://127.0.0.1:8080/v1", "https://h.example/v1", "http://10.0.0.5/v1"]
    ),
    "timeout": st.floats(0.1, 600),
    "verify": st.booleans(),
}


@st.composite
def configs(draw: Callable[..., Any]) -> Any:
    shape = draw(st.sampled_from(["mapping", "mapping", "mapping", "other"]))
    if shape == "other":
        return draw(ANY | st.builds(object) | st.binary())
    out: dict[Any, Any] = {}
    for key in draw(st.lists(st.sampled_from(KEYS) | TEXT, max_size=8)):
        good = GOOD.get(key) if isinstance(key, str) else None
        out[key] = draw(good | ANY if good is not None else ANY)
    return out


@settings(COMMON, max_examples=CONFIG_EXAMPLES)
@given(config=configs(), base_url=st.none() | ANY, api_key=st.none() | ANY)
def test_any_config_gives_a_provider_or_configuration_error(
    config: Any, base_url: Any, api_key: Any
) -> None:
    Counter.tick("config")
    try:
        provider = ChatCompletionsProvider(base_url=base_url, api_key=api_key, config=config)
    except ConfigurationError as err:
        Counter.outcome("config", err)
        return
    Counter.outcome("config", provider)
    provider.get_info()
    repr(provider)
    repr(provider.config)


# -- server replies ---------------------------------------------------------------------------

FIELD = st.one_of(ANY, st.sampled_from([None, "", "stop", "length", "tool_calls"]))


@st.composite
def tool_deltas(draw: Callable[..., Any]) -> Any:
    call: dict[str, Any] = {}
    for key, value in (
        ("index", st.integers(-2, 3) | ANY),
        ("id", TEXT | ANY),
        ("type", st.just("function") | ANY),
        (
            "function",
            st.fixed_dictionaries(
                {},
                optional={
                    "name": TEXT | ANY,
                    "arguments": st.sampled_from(['{"a": 1}', '{"a"', "}", "", "[1]"]) | ANY,
                },
            )
            | ANY,
        ),
    ):
        if draw(st.booleans()):
            call[key] = draw(value)
    return call


@st.composite
def messages_like(draw: Callable[..., Any]) -> Any:
    msg: dict[str, Any] = {}
    for key, value in (
        ("role", st.just("assistant") | ANY),
        ("content", TEXT | ANY),
        ("reasoning_content", TEXT | ANY),
        ("reasoning", TEXT | ANY),
        ("tool_calls", st.lists(tool_deltas(), max_size=3) | ANY),
        ("function_call", ANY),
    ):
        if draw(st.booleans()):
            msg[key] = draw(value)
    return msg


@st.composite
def chunks(draw: Callable[..., Any], key: str = "delta") -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(ANY)  # not even an object
    obj: dict[str, Any] = {}
    if draw(st.booleans()):
        choice: dict[str, Any] = {}
        for k, v in (
            ("index", st.just(0) | ANY),
            (key, messages_like() | ANY),
            ("finish_reason", FIELD),
        ):
            if draw(st.booleans()):
                choice[k] = draw(v)
        obj["choices"] = draw(st.sampled_from([[choice], [], [choice, choice]]) | ANY)
    for k, v in (
        ("id", TEXT | ANY),
        ("model", TEXT | ANY),
        (
            "usage",
            st.fixed_dictionaries({}, optional={"prompt_tokens": ANY, "completion_tokens": ANY})
            | ANY,
        ),
        ("error", ANY),
        ("object", st.sampled_from(["error", "chat.completion.chunk"]) | ANY),
    ):
        if draw(st.integers(0, 3)) == 0:
            obj[k] = draw(v)
    return obj


def _sse(events: list[Any]) -> bytes:
    out = []
    for event in events:
        if isinstance(event, bytes):
            out.append(b"data: " + event + b"\n\n")  # raw, possibly invalid bytes
        else:
            text = json.dumps(event, ensure_ascii=False)
            out.append(b"data: " + text.encode("utf-8", "surrogatepass") + b"\n\n")
    return b"".join(out)


class Harness:
    """One event loop, one respx router and one provider per config for a whole test:
    building a client per example (TLS context, SDK) would cost ~100 ms each."""

    def __init__(self) -> None:
        self.runner = asyncio.Runner()
        self.router = respx.mock(assert_all_called=False)
        self.router.start()
        self.route = self.router.post(f"{BASE}/chat/completions")
        self.providers: dict[tuple[tuple[str, Any], ...], ChatCompletionsProvider] = {}

    def complete(
        self, reply: httpx.Response, request: ChatRequest | None = None, **config: Any
    ) -> tuple[ChatResponse | LLMError, list[httpx.Request]]:
        key = tuple(sorted(config.items()))
        if key not in self.providers:
            self.providers[key] = ChatCompletionsProvider(
                config={"base_url": BASE, **QUICK, **config}
            )
        self.route.reset()
        self.route.return_value = reply
        request = request or ChatRequest(messages=[Message(role="user", content="hi")])
        result = self.runner.run(self._one(self.providers[key], request))
        return result, [call.request for call in self.route.calls]

    @staticmethod
    async def _one(provider: ChatCompletionsProvider, request: ChatRequest) -> Any:
        async with asyncio.timeout(10):
            try:
                return await provider.complete(request)
            except LLMError as err:
                return err

    def close(self) -> None:
        for provider in self.providers.values():
            self.runner.run(provider.close())
        self.runner.close()
        self.router.stop()


@pytest.fixture(scope="module")
def harness() -> Any:
    h = Harness()
    yield h
    h.close()


def _check_result(result: ChatResponse | LLMError) -> None:
    assert isinstance(result, ChatResponse | LLMError), type(result)
    if isinstance(result, ChatResponse):
        # A response the host can render: content blocks and text are reachable.
        _ = result.text, result.content_blocks, result.tool_calls


@settings(COMMON, max_examples=STREAM_EXAMPLES)
@given(
    events=st.lists(chunks() | st.binary(max_size=30), max_size=8),
    finish=st.booleans(),
    done=st.booleans(),
)
def test_random_stream_chunks_give_response_or_llm_error(
    harness: Harness, events: list[Any], finish: bool, done: bool
) -> None:
    Counter.tick("stream")
    if finish:
        events = [*events, {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}]
    body = _sse(events) + (b"data: [DONE]\n\n" if done else b"")
    reply = httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})
    result, _ = harness.complete(reply)
    Counter.outcome("stream", result)
    _check_result(result)


@settings(COMMON, max_examples=BODY_EXAMPLES)
@given(
    body=chunks(key="message") | st.binary(max_size=40),
    status=st.sampled_from([200, 200, 200, 400, 404, 413, 422, 429, 500, 503]),
    content_type=st.sampled_from(["application/json", "text/html", "text/plain", ""]),
    retry_after=st.none() | TEXT | st.sampled_from(["5", "-1", "1e9", "nan", "Wed, 21 Oct"]),
)
def test_random_bodies_give_response_or_llm_error(
    harness: Harness, body: Any, status: int, content_type: str, retry_after: Any
) -> None:
    Counter.tick("body")
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"content-type": content_type} if content_type else {}
    if retry_after is not None and retry_after.isprintable() and retry_after.isascii():
        headers["retry-after"] = retry_after
    reply = httpx.Response(status, content=content, headers=headers)
    result, _ = harness.complete(reply, use_streaming=False)
    Counter.outcome("body", result)
    _check_result(result)


# -- messages from Amplifier --------------------------------------------------------------------

BLOCK_TYPES = ["text", "thinking", "tool_call", "tool_result", "image", "redacted_thinking", "x"]


@st.composite
def blocks(draw: Callable[..., Any]) -> Any:
    kind = draw(st.sampled_from(["model", "dict", "none", "junk"]))
    if kind == "none":
        return None
    if kind == "junk":
        return draw(ANY)
    if kind == "dict":
        block = {"type": draw(st.sampled_from(BLOCK_TYPES) | ANY)}
        for key in draw(
            st.lists(
                st.sampled_from(["text", "id", "name", "input", "output", "tool_call_id", "source"])
            )
        ):
            block[key] = draw(ANY)
        return block
    # Pydantic blocks built without validation: None where a str belongs, etc.
    maker = draw(st.sampled_from([TextBlock, ThinkingBlock, ToolCallBlock, ToolResultBlock]))
    fields: dict[str, Any] = {}
    for name in maker.model_fields:
        if name != "type" and draw(st.booleans()):
            fields[name] = draw(ANY | st.just(None) | st.just("x" * 1_000_000))
    return maker.model_construct(**fields)


ODD_TEXT = st.one_of(
    TEXT, st.sampled_from(["", "x" * 1_000_000, "\ud800 lone", "\x00\x1f", "\u2028"])
)


@st.composite
def plausible_blocks(draw: Callable[..., Any]) -> Any:
    """Blocks a real session produces, with odd values: lone surrogates, huge tool
    output, empty text, unknown block types as dicts."""
    kind = draw(st.sampled_from(["text", "thinking", "call", "result", "unknown", "image"]))
    if kind == "text":
        return TextBlock(text=draw(ODD_TEXT))
    if kind == "thinking":
        return ThinkingBlock(thinking=draw(ODD_TEXT))
    if kind == "call":
        return ToolCallBlock(
            id=draw(ODD_TEXT),
            name=draw(ODD_TEXT),
            input=draw(st.dictionaries(TEXT, ANY, max_size=3)),
        )
    if kind == "result":
        return ToolResultBlock(tool_call_id=draw(ODD_TEXT), output=draw(ANY | ODD_TEXT))
    if kind == "image":
        return {"type": "image", "source": draw(ANY)}
    return {"type": draw(TEXT), "text": draw(ANY)}


@st.composite
def messages(draw: Callable[..., Any]) -> Any:
    plausible = draw(st.booleans())
    roles = st.sampled_from(["user", "assistant", "tool", "system", "developer", "function"])
    role = draw(roles if plausible else roles | ANY)
    item = plausible_blocks() if plausible else blocks()
    content = draw(
        st.lists(item, max_size=4) | ODD_TEXT | st.just([]) | (st.none() if plausible else ANY)
    )
    extra = {}
    for key in ("name", "tool_call_id", "tool_calls"):
        if draw(st.booleans()):
            extra[key] = draw((st.none() | ODD_TEXT) if plausible else ANY)
    return Message.model_construct(role=role, content=content, **extra)


@st.composite
def histories(draw: Callable[..., Any]) -> list[Any]:
    msgs: list[Any] = draw(st.lists(messages(), max_size=5))
    # A None message is rare: it rejects the whole request before anything is sent.
    if draw(st.integers(0, 9)) == 7:  # not 0: hypothesis favours boundary values
        msgs.insert(draw(st.integers(0, len(msgs))), None)
    return msgs


@settings(COMMON, max_examples=MESSAGE_EXAMPLES)
@given(msgs=histories())
def test_unusual_messages_give_valid_request_or_clear_error(
    harness: Harness, msgs: list[Any]
) -> None:
    Counter.tick("messages")
    request = ChatRequest.model_construct(messages=msgs)
    reply = httpx.Response(
        200,
        json={"choices": [{"index": 0, "message": {"content": "ok"}, "finish_reason": "stop"}]},
    )
    result, sent = harness.complete(reply, request, use_streaming=False)
    Counter.outcome("messages", result)
    if isinstance(result, LLMError):
        assert not sent or isinstance(result, InvalidRequestError), result
        if not sent:
            # Rejected before sending: the message says which message and why.
            assert isinstance(result, InvalidRequestError), repr(result)
            assert "message" in str(result)
        return
    assert isinstance(result, ChatResponse)
    (request_sent,) = sent
    body = json.loads(request_sent.content.decode("utf-8"))  # strict UTF-8, valid JSON
    assert isinstance(body["messages"], list)


# -- the regressions the properties found, pinned -------------------------------------------


@pytest.mark.parametrize(
    "config", ["base_url=http://x", 3, [("base_url", "http://x/v1")], object()]
)
def test_non_mapping_config_is_a_configuration_error(config: Any) -> None:
    with pytest.raises(ConfigurationError, match="expected a mapping"):
        ChatCompletionsProvider(config=config)


def test_unconvertible_message_is_invalid_request_naming_it(harness: Harness) -> None:
    request = ChatRequest.model_construct(
        messages=[
            Message(role="user", content="hi"),
            Message.model_construct(role="tool", content="x"),
        ]
    )
    reply = httpx.Response(200, json={"choices": []})
    result, sent = harness.complete(reply, request)
    assert isinstance(result, InvalidRequestError), repr(result)
    assert "message 1" in str(result) and "tool_call_id" in str(result)
    assert not result.retryable and sent == []


HOSTILE_BODIES = {
    "titles": "<title" * 300_000,
    "scripts": "<html>" + "<script" * 300_000,
    "tags": "<h1" + "<" * 2_000_000,
    "word": "x" * 2_000_000,
    "pydantic-ish": "a" * 2_000_000 + ": extra inputs",
}


@pytest.mark.parametrize("status", [400, 502])
@pytest.mark.parametrize("name", sorted(HOSTILE_BODIES))
def test_huge_hostile_error_bodies_do_not_block_the_loop(
    harness: Harness, name: str, status: int
) -> None:
    # Regexes over the body run synchronously: a quadratic one froze the loop for a minute
    # (asyncio.timeout cannot interrupt it), so bound the wall time from outside.
    reply = httpx.Response(status, text=HOSTILE_BODIES[name], headers={"content-type": "text/html"})
    started = time.monotonic()
    result, _ = harness.complete(reply, use_streaming=False)
    assert isinstance(result, LLMError), result
    assert time.monotonic() - started < 2.0
    assert len(str(result)) < 600
