"""errors.py: body shapes, status mapping, overflow texts, Retry-After, transport exceptions."""

from __future__ import annotations

import json
import time
from email.utils import formatdate

import httpx
import httpx2
import openai
import pytest
from amplifier_core.llm_errors import (
    AccessDeniedError,
    AuthenticationError,
    ContextLengthError,
    InvalidRequestError,
    LLMError,
    LLMTimeoutError,
    NetworkError,
    NotFoundError,
    ProviderUnavailableError,
    QuotaExceededError,
    RateLimitError,
    StreamError,
)

from amplifier_module_provider_chat_completions.errors import (
    describe_body,
    error_from_exception,
    error_from_payload,
    error_from_response,
    is_context_overflow,
    parse_retry_after,
    prompt_overflows,
)

P = "chat-completions"
SECRET = "sk-live-SECRETKEY-987654"


def resp(status: int, body: object, headers: dict[str, str] | None = None) -> LLMError:
    text = body if isinstance(body, str) else json.dumps(body)
    return error_from_response(
        status, text, headers or {}, provider=P, model="qwen3", api_key=SECRET
    )


# ------------------------------------------------------------------ describe_body


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"error": {"message": "bad thing", "type": "x", "code": 400}}, "bad thing"),
        ({"error": {"type": "server_error", "code": "E1"}}, "server_error"),
        ({"error": "Unauthorized"}, "Unauthorized"),
        ({"object": "error", "message": "sglang said no", "code": 400}, "sglang said no"),
        (
            {"error": "Input validation error: x", "error_type": "validation"},
            "Input validation error: x",
        ),
        ({"detail": "Not authenticated"}, "Not authenticated"),
        (
            {"detail": [{"loc": ["body", "temperature"], "msg": "must be <= 2", "type": "v"}]},
            "body.temperature: must be <= 2",
        ),
        (
            {"detail": [{"loc": ["body", "a"], "msg": "m1"}, {"loc": ["body", "b"], "msg": "m2"}]},
            "body.a: m1; body.b: m2",
        ),
        ([{"error": {"message": "wrapped"}}], "wrapped"),
        ({"something": "else"}, '{"something":"else"}'),
        ("plain crash text\n  with   spaces", "plain crash text with spaces"),
        ("", ""),
    ],
)
def test_describe_body_shapes(body: object, expected: str) -> None:
    text = body if isinstance(body, str) else json.dumps(body)
    assert describe_body(text) == expected


def test_describe_body_exact_values() -> None:
    assert describe_body('{"error": "Unauthorized"}') == "Unauthorized"
    assert describe_body('{"detail": [{"loc": ["body", "t"], "msg": "m"}]}') == "body.t: m"


def test_describe_html_title() -> None:
    page = (
        "<!DOCTYPE html><html><head><title>502 Bad Gateway</title><style>p{}</style></head>"
        "<body><center><h1>502 Bad Gateway</h1></center><hr>nginx</body></html>"
    )
    assert describe_body(page) == "502 Bad Gateway"


def test_describe_html_without_title() -> None:
    page = "<html><body>\n<h1>Service  Unavailable</h1>\n<p>Try &amp; retry</p></body></html>"
    assert describe_body(page) == "Service Unavailable Try & retry"


def test_describe_body_caps_length() -> None:
    text = describe_body("x " * 1000)
    assert len(text) <= 300
    assert text.endswith("...")


# ------------------------------------------------------------------ status mapping


@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [
        (400, InvalidRequestError, False),
        (401, AuthenticationError, False),
        (403, AccessDeniedError, False),
        (404, NotFoundError, False),
        (408, LLMTimeoutError, True),
        (409, InvalidRequestError, False),
        (413, InvalidRequestError, False),
        (422, InvalidRequestError, False),
        (429, RateLimitError, True),
        (500, ProviderUnavailableError, True),
        (501, ProviderUnavailableError, False),
        (502, ProviderUnavailableError, True),
        (503, ProviderUnavailableError, True),
        (504, ProviderUnavailableError, True),
        (302, LLMError, False),
    ],
)
def test_status_mapping(status: int, cls: type[LLMError], retryable: bool) -> None:
    err = resp(status, {"error": {"message": "server says hi"}})
    assert type(err) is cls
    assert err.retryable is retryable
    assert err.status_code == status
    assert err.provider == P
    assert err.model == "qwen3"
    assert str(err).startswith("server says hi (HTTP ")
    assert f"HTTP {status} from {P}" in str(err)


def test_401_hint_and_403_is_authentication() -> None:
    err = resp(401, {"error": "Unauthorized"})
    assert str(err) == (
        f"Unauthorized (HTTP 401 from {P}); check api_key / CHAT_COMPLETIONS_API_KEY"
    )
    assert isinstance(resp(403, {"detail": "Forbidden"}), AuthenticationError)


def test_404_hint() -> None:
    err = resp(404, "404 page not found")
    assert "base_url ends with /v1" in str(err)
    assert "model 'qwen3'" in str(err)


def test_429_retry_after_and_quota() -> None:
    err = resp(429, {"error": "Model is overloaded"}, {"Retry-After": "7"})
    assert isinstance(err, RateLimitError)
    assert err.retry_after == 7.0
    quota = resp(429, {"error": {"message": "You exceeded your current quota", "type": "x"}})
    assert type(quota) is QuotaExceededError
    assert quota.retryable is False


def test_503_retry_after_from_localai() -> None:
    err = resp(503, {"error": {"message": "Loading model"}}, {"retry-after": "3"})
    assert type(err) is ProviderUnavailableError
    assert (err.retryable, err.retry_after) == (True, 3.0)


def test_html_gateway_error() -> None:
    page = "<html><head><title>504 Gateway Time-out</title></head><body>...</body></html>"
    err = resp(504, page)
    assert str(err) == f"504 Gateway Time-out (HTTP 504 from {P})"


def test_empty_body() -> None:
    assert str(resp(500, "")) == f"no error details (HTTP 500 from {P})"


# ------------------------------------------------------------------ context overflow

OVERFLOW_MESSAGES = {
    "llama.cpp": (
        400,
        {
            "error": {
                "code": 400,
                "message": "the request exceeds the available context size, try increasing it",
                "type": "exceed_context_size_error",
                "n_prompt_tokens": 9000,
                "n_ctx": 4096,
            }
        },
    ),
    "vLLM": (
        400,
        {
            "object": "error",
            "message": "This model's maximum context length is 8192 tokens. However, your "
            "prompt contains 9000 input tokens.",
            "type": "BadRequestError",
            "code": 400,
        },
    ),
    "SGLang": (
        400,
        {
            "object": "error",
            "message": "The input (9000 tokens) is longer than the model's context length "
            "(8192 tokens).",
        },
    ),
    "TGI": (
        422,
        {
            "error": "Input validation error: `inputs` tokens + `max_new_tokens` must be <= "
            "4096. Given: 4000 `inputs` tokens and 500 `max_new_tokens`",
            "error_type": "validation",
        },
    ),
    "LM Studio": (
        400,
        {
            "error": "Trying to keep the first 9000 tokens when context the overflows. However, "
            "the model is loaded with context length of only 4096 tokens. The number of "
            "tokens to keep from the initial prompt is greater than the context length."
        },
    ),
    "LiteLLM": (
        400,
        {
            "error": {
                "message": "litellm.ContextWindowExceededError: litellm.BadRequestError: ...",
                "type": None,
                "param": None,
                "code": "400",
            }
        },
    ),
    # Ollama with truncation off (its /v1 error shape).
    "Ollama": (
        400,
        {
            "error": {
                "message": "prompt too long; exceeded max context length by 4021 tokens",
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
        },
    ),
    # Perplexity (recorded answer): the type names it, the message words it; "code": 200.
    "Perplexity": (
        400,
        {
            "error": {
                "message": "The total length of all messages is too long.",
                "type": "too_many_prompt_tokens",
                "code": 200,
            }
        },
    ),
    "Perplexity (type only)": (
        400,
        {"error": {"message": "Bad request", "type": "too_many_prompt_tokens", "code": 200}},
    ),
    "Mistral": (
        400,
        {
            "object": "error",
            "message": "Prompt contains 240000 tokens, too large for model with 128000 "
            "maximum context length",
            "type": "invalid_request_error",
        },
    ),
}


@pytest.mark.parametrize("server", sorted(OVERFLOW_MESSAGES))
def test_context_overflow_per_server(server: str) -> None:
    status, body = OVERFLOW_MESSAGES[server]
    assert is_context_overflow(json.dumps(body))
    err = resp(status, body)
    assert type(err) is ContextLengthError
    assert err.retryable is False
    assert err.status_code == status


@pytest.mark.parametrize("server", ["Ollama", "Perplexity", "Mistral"])
def test_prompt_only_overflow_wordings_say_the_prompt_is_too_long(server: str) -> None:
    _, body = OVERFLOW_MESSAGES[server]
    assert prompt_overflows(json.dumps(body)) is True


def test_context_overflow_413_and_in_band() -> None:
    _, body = OVERFLOW_MESSAGES["vLLM"]
    assert type(resp(413, body)) is ContextLengthError
    err = error_from_payload({"error": {"message": body["message"]}}, provider=P, model=None)
    assert type(err) is ContextLengthError


def test_not_overflow() -> None:
    assert not is_context_overflow("Loading model")
    assert not is_context_overflow("invalid temperature")


# ------------------------------------------------------------------ text overrides


def test_roles_must_alternate_on_500_is_not_retryable() -> None:
    body = {"error": {"code": 500, "message": "Conversation roles must alternate user/assistant"}}
    for status in (400, 422, 500):
        err = resp(status, body)
        assert type(err) is InvalidRequestError
        assert err.retryable is False
        assert "alternating" in str(err)


def test_unsupported_tools_hint_jinja() -> None:
    err = resp(500, {"error": {"code": 500, "message": "Unsupported param: tools"}})
    assert type(err) is InvalidRequestError
    assert err.retryable is False
    assert "--jinja" in str(err)


# ------------------------------------------------------------------ secrets


@pytest.mark.parametrize("status", [400, 401, 403, 404, 429, 500, 503])
def test_api_key_never_in_message(status: int) -> None:
    body = {"error": {"message": f"Incorrect API key provided: {SECRET}; header Bearer {SECRET}"}}
    err = resp(status, body)
    assert SECRET not in str(err)
    assert SECRET not in repr(err)
    assert "***" in str(err)


def test_unknown_bearer_token_scrubbed() -> None:
    err = error_from_response(
        400, "bad header Authorization: Bearer abcdef123456", {}, provider=P, model=None
    )
    assert "abcdef123456" not in str(err)


# ------------------------------------------------------------------ Retry-After


def test_retry_after_seconds_ms_and_date() -> None:
    assert parse_retry_after({"Retry-After": "12"}) == 12.0
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    # ms is more precise and wins when both are present
    assert parse_retry_after({"retry-after-ms": "500", "Retry-After": "1"}) == 0.5
    date = formatdate(time.time() + 30, usegmt=True)
    value = parse_retry_after({"Retry-After": date})
    assert value is not None and 25 <= value <= 31
    past = formatdate(time.time() - 60, usegmt=True)
    assert parse_retry_after({"Retry-After": past}) == 0.0


@pytest.mark.parametrize(
    "headers", [{}, {"Retry-After": "soon"}, {"Retry-After": "-3"}, {"retry-after-ms": "x"}]
)
def test_retry_after_absent_or_invalid(headers: dict[str, str]) -> None:
    assert parse_retry_after(headers) is None


def test_retry_after_httpx_headers() -> None:
    assert parse_retry_after(httpx.Headers({"Retry-After": "4"})) == 4.0


# ------------------------------------------------------------------ in-band payloads


def test_payload_with_http_status_code_tgi() -> None:
    err = error_from_payload(
        {"error": {"message": "Model is overloaded", "http_status_code": 429}},
        provider=P,
        model="m",
    )
    assert type(err) is RateLimitError
    assert err.status_code == 429
    assert str(err) == f"Model is overloaded (in-stream error 429 from {P})"


def test_payload_integer_code_llamacpp() -> None:
    err = error_from_payload(
        {"error": {"code": 500, "message": "slot crashed", "type": "server_error"}},
        provider=P,
        model="m",
    )
    assert type(err) is ProviderUnavailableError
    assert (err.status_code, err.retryable) == (500, True)


def test_payload_without_status_transient_is_retryable() -> None:
    err = error_from_payload({"error": "connection to backend lost"}, provider=P, model="m")
    assert type(err) is ProviderUnavailableError
    assert err.retryable is True
    assert err.status_code is None


def test_payload_without_status_permanent_is_not_retryable() -> None:
    # The Amazon server reports tool failures in-band with no status.
    err = error_from_payload(
        {"error": {"message": "Streaming error: tool use failed", "type": "api_error"}},
        provider=P,
        model="m",
    )
    assert type(err) is ProviderUnavailableError
    assert err.retryable is False
    assert "Streaming error: tool use failed" in str(err)


def test_payload_string_code_ignored_as_status() -> None:
    err = error_from_payload(
        {"error": {"message": "boom", "code": "internal"}}, provider=P, model=None
    )
    assert err.status_code is None


def test_payload_garbage_types() -> None:
    for payload in (None, 5, [], "text", {"error": None}, {"error": [1, 2]}):
        assert isinstance(error_from_payload(payload, provider=P, model=None), LLMError)


# ------------------------------------------------------------------ exceptions


REQ2 = httpx2.Request("POST", "http://h/v1/chat/completions")


def test_httpx_read_timeout() -> None:
    exc = httpx.ReadTimeout("timed out")
    err = error_from_exception(exc, provider=P, model="m", timeout=30)
    assert type(err) is LLMTimeoutError
    assert err.retryable is True
    assert "no data from server for 30 s" in str(err)
    assert "raise `timeout`" in str(err)
    assert err.__cause__ is exc


def test_asyncio_timeout_and_connect_timeout() -> None:
    err = error_from_exception(TimeoutError(), provider=P, model=None, timeout=5)
    assert type(err) is LLMTimeoutError
    assert "no data from server for 5 s" in str(err)
    err = error_from_exception(httpx.ConnectTimeout("x"), provider=P, model=None, timeout=5)
    assert type(err) is LLMTimeoutError
    assert "could not connect" in str(err)


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("All connection attempts failed"),
        httpx.ReadError("reset"),
        httpx.RemoteProtocolError("peer closed connection"),
        httpx2.ConnectError("refused"),
    ],
)
def test_transport_errors_are_network(exc: BaseException) -> None:
    err = error_from_exception(exc, provider=P, model="m", timeout=None)
    assert type(err) is NetworkError
    assert err.retryable is True
    assert err.__cause__ is exc


def test_transport_error_mid_stream_is_stream_error() -> None:
    exc = httpx.RemoteProtocolError("incomplete chunked read")
    err = error_from_exception(exc, provider=P, model="m", timeout=None, streaming_started=True)
    assert type(err) is StreamError
    assert "mid-response" in str(err)


def test_connect_error_message() -> None:
    err = error_from_exception(httpx.ConnectError("refused"), provider=P, model=None, timeout=1)
    assert str(err) == f"could not connect: refused; is the server running? check base_url ({P})"


def test_openai_status_error_reads_response_text() -> None:
    response = httpx2.Response(
        503,
        headers={"Retry-After": "9"},
        content=b'{"error":{"message":"server busy"}}',
        request=REQ2,
    )
    exc = openai.InternalServerError("Error code: 503", response=response, body=None)
    err = error_from_exception(exc, provider=P, model="m", timeout=None)
    assert type(err) is ProviderUnavailableError
    assert (err.status_code, err.retry_after) == (503, 9.0)
    assert str(err) == f"server busy (HTTP 503 from {P})"
    assert err.__cause__ is exc


def test_openai_status_error_unread_response_falls_back_to_body() -> None:
    response = httpx2.Response(
        400, stream=httpx2.ByteStream(b"unread"), request=REQ2
    )  # never read: .text raises
    with pytest.raises(httpx2.ResponseNotRead):
        _ = response.text
    body = {"message": "This model's maximum context length is 10 tokens", "type": "x"}
    exc = openai.BadRequestError("Error code: 400", response=response, body=body)
    err = error_from_exception(exc, provider=P, model="m", timeout=None)
    assert type(err) is ContextLengthError
    assert str(err).startswith("This model's maximum context length is 10 tokens (HTTP 400")


def test_openai_status_error_string_body_and_message_fallback() -> None:
    response = httpx2.Response(401, stream=httpx2.ByteStream(b""), request=REQ2)
    exc = openai.AuthenticationError("Error code: 401", response=response, body="Unauthorized")
    err = error_from_exception(exc, provider=P, model="m", timeout=None)
    assert type(err) is AuthenticationError
    assert str(err).startswith("Unauthorized (HTTP 401")
    exc = openai.AuthenticationError("Error code: 401", response=response, body=None)
    err = error_from_exception(exc, provider=P, model="m", timeout=None)
    assert str(err).startswith("Error code: 401 (HTTP 401")


def test_openai_timeout_and_connection_errors() -> None:
    err = error_from_exception(openai.APITimeoutError(REQ2), provider=P, model=None, timeout=60)
    assert type(err) is LLMTimeoutError
    assert "60 s" in str(err)

    conn = openai.APIConnectionError(request=REQ2)
    conn.__cause__ = httpx2.ReadTimeout("read timed out")
    err = error_from_exception(conn, provider=P, model=None, timeout=60)
    assert type(err) is LLMTimeoutError
    assert err.__cause__ is conn

    conn = openai.APIConnectionError(request=REQ2)
    conn.__cause__ = httpx2.ConnectError("[Errno 111] Connection refused")
    err = error_from_exception(conn, provider=P, model=None, timeout=60)
    assert type(err) is NetworkError
    assert "Connection refused" in str(err)


def test_tls_verify_hint() -> None:
    exc = httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    err = error_from_exception(exc, provider=P, model=None, timeout=None)
    assert "set verify to a CA bundle path" in str(err)


def test_httpx_status_error() -> None:
    request = httpx.Request("GET", "http://h/v1/models")
    response = httpx.Response(404, text="Not Found", request=request)
    exc = httpx.HTTPStatusError("404", request=request, response=response)
    err = error_from_exception(exc, provider=P, model=None, timeout=None)
    assert type(err) is NotFoundError
    assert err.__cause__ is exc


def test_llm_error_passes_through_and_unknown_wrapped() -> None:
    original = RateLimitError("slow down", provider=P)
    assert error_from_exception(original, provider=P, model=None, timeout=None) is original
    exc = ValueError(f"odd thing with {SECRET}")
    err = error_from_exception(exc, provider=P, model="m", timeout=None, api_key=SECRET)
    assert type(err) is LLMError
    assert err.retryable is False
    assert SECRET not in str(err)
    assert str(err).startswith("ValueError: odd thing")


def test_connection_closed_before_any_response_says_so() -> None:
    exc = httpx.RemoteProtocolError("Server disconnected without sending a response.")
    err = error_from_exception(exc, provider=P, model="m", timeout=None)
    assert type(err) is NetworkError
    assert "closed the connection before answering" in str(err)


def test_litellm_key_lookup_without_database_is_an_authentication_error() -> None:
    """LiteLLM 1.106 with a master key and no database answers an unknown key with 400."""
    body = {"error": {"message": "No connected db.", "type": "no_db_connection", "code": "400"}}
    response = httpx.Response(
        400, json=body, request=httpx.Request("POST", "http://h/v1/chat/completions")
    )
    exc = openai.BadRequestError("Error code: 400", response=response, body=body["error"])
    err = error_from_exception(exc, provider=P, model="m", timeout=None)
    assert type(err) is AuthenticationError
    assert err.retryable is False
    assert "master key" in str(err)


# ------------------------------------------------------------------ the one boundary


def test_an_in_band_error_maps_like_its_payload() -> None:
    from amplifier_module_provider_chat_completions.reply.assemble import InBandError

    payload = {"error": {"message": "the request exceeds the available context size"}}
    err = error_from_exception(InBandError(payload), provider=P, model="m", timeout=None)
    assert type(err) is ContextLengthError
    assert "in-stream error" in str(err)


def test_unusable_tool_arguments_are_an_invalid_tool_call_with_the_rest_kept() -> None:
    from amplifier_core.llm_errors import InvalidToolCallError

    from amplifier_module_provider_chat_completions.reply.assemble import ResponseAssembler

    assembler = ResponseAssembler(offered_tools={"f"})
    function = {"name": "f", "arguments": "hello there"}
    call = {"index": 0, "id": "c1", "type": "function", "function": function}
    assembler.feed_body(
        {
            "choices": [
                {
                    "message": {
                        "content": "Let me check.",
                        "tool_calls": [call],
                    },
                    "finish_reason": "tool_calls",
                }
            ]
        }
    )
    with pytest.raises(Exception) as raised:
        assembler.result()
    err = error_from_exception(raised.value, provider=P, model="m", timeout=None)
    assert type(err) is InvalidToolCallError
    assert err.tool_name == "f" and err.retryable is False
    assert err.partial_response.text == "Let me check."  # type: ignore[attr-defined]
