"""A canary api_key (and an x-api-key header value) never shows up anywhere we can see:
log records at DEBUG (ours, openai's, httpx's, httpcore's), event payloads (raw mode on),
exception messages and reprs along the whole cause chain, and the provider's repr.

The server here is hostile: it echoes the Authorization header back in its error bodies,
HTML pages, in-band stream errors and 429 messages."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from amplifier_core.llm_errors import LLMError
from amplifier_core.message_models import ChatRequest, ChatResponse, Message
from fault_helpers import make_provider
from faulty_server import Conn, FaultyServer, Request, chunk, free_port, stream_text

# Two shapes: one the generic sk- scrubber catches anyway, one only the literal scrub does.
CANARIES = ["sk-canary-0123456789abcdef", "CanaryKey-7f3a9c1e5b0d-SECRET"]
HEADER_CANARY = "HeaderCanary-44c2e1d9b7"
LOGGERS = ["", "openai", "httpx", "httpcore", "amplifier_module_provider_chat_completions"]


def _echo(req: Request) -> str:
    return req.headers.get("authorization", "")


async def _handle(scenario: str, conn: Conn, req: Request) -> None:
    auth = _echo(req)
    if scenario == "ok":
        await stream_text(conn, ["fine"])
    elif scenario == "401-echo":
        await conn.respond(401, {"error": {"message": f"Incorrect API key provided: {auth}"}})
    elif scenario == "400-echo-headers":
        await conn.respond(400, {"error": {"message": json.dumps(req.headers)}})
    elif scenario == "500-html":
        page = f"<html><head><title>Error {auth}</title></head><body>{auth}</body></html>"
        await conn.respond(500, page, content_type="text/html")
    elif scenario == "inband":
        await conn.start_stream()
        await conn.send_event(chunk("partial "))
        await conn.send_event({"error": {"message": f"upstream said {auth}", "code": 500}})
        await conn.end_stream()
    elif scenario == "429-then-ok":
        if req.index == 0:
            body = {"error": {"message": f"rate limited for {auth}"}}
            await conn.respond(429, body, headers={"Retry-After": "0"})
        else:
            await stream_text(conn, ["ok"])
    elif scenario == "reset-mid":
        await conn.start_stream()
        await conn.send_event(chunk(f"text {auth}"[:4]))
        await asyncio.sleep(0.05)
        conn.reset()
    elif scenario == "silent":
        await conn.start_stream()
        await conn.wait_client_close(10)
    elif scenario == "200-not-json":
        await conn.respond(200, f"oops {auth} oops", content_type="text/plain")
    else:
        raise AssertionError(scenario)


SCENARIOS = [
    "ok",
    "401-echo",
    "400-echo-headers",
    "500-html",
    "inband",
    "429-then-ok",
    "reset-mid",
    "silent",
    "200-not-json",
    "refused",
]


def _chain(exc: BaseException | None) -> list[BaseException]:
    out: list[BaseException] = []
    while exc is not None and exc not in out:
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


@pytest.mark.parametrize("canary", CANARIES)
@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_canary_never_leaks(
    serve: Any, coordinator: Any, caplog: pytest.LogCaptureFixture, scenario: str, canary: str
) -> None:
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)

    async def handler(conn: Conn, req: Request) -> None:
        await _handle(scenario, conn, req)

    if scenario == "refused":
        url, server = f"http://127.0.0.1:{free_port()}/v1", None
    else:
        server = serve(handler)
        url = server.url
    provider = make_provider(
        url,
        coordinator,
        api_key=canary,
        headers={"x-api-key": HEADER_CANARY},
        raw=True,
        max_retries=1,
        timeout=0.5,
    )
    request = ChatRequest(messages=[Message(role="user", content="hi")])
    error: BaseException | None = None
    async with asyncio.timeout(10):
        try:
            result = await provider.complete(request)
            assert isinstance(result, ChatResponse)
        except LLMError as exc:
            error = exc
        list_error: BaseException | None = None
        try:
            await provider.list_models()  # a failing GET path too: raises what went wrong
        except LLMError as exc:
            list_error = exc
    await provider.close()

    if server is not None:
        # The key did go to the server, in the header, and only there.
        first = server.requests[0]
        assert first.headers["authorization"] == f"Bearer {canary}"
        assert first.headers["x-api-key"] == HEADER_CANARY
        assert canary.encode() not in first.body
    if scenario in ("401-echo", "500-html", "inband", "reset-mid", "silent", "refused"):
        assert error is not None, scenario

    seen: list[str] = [repr(provider), repr(provider.config), str(provider.get_info())]
    for exc in [*_chain(error), *_chain(list_error)]:
        seen += [str(exc), repr(exc), repr(exc.args)]
    seen.append(json.dumps(coordinator.hooks.events, default=repr))
    seen.append(caplog.text)
    for record in caplog.records:
        seen.append(record.getMessage())
        if record.exc_info and record.exc_info[1] is not None:
            seen += [str(e) + repr(e) for e in _chain(record.exc_info[1])]
    assert caplog.records, "DEBUG logging captured nothing: the check would be vacuous"
    for text in seen:
        assert canary not in text, f"{scenario}: api_key leaked in {text[:300]!r}"
        assert HEADER_CANARY not in text, f"{scenario}: x-api-key leaked in {text[:300]!r}"
    # The raw request event exists and is redacted, not missing.
    (request_event,) = coordinator.hooks.named("llm:request")
    assert "raw" in request_event


def test_config_repr_and_errors_hide_credentials() -> None:
    from amplifier_core.llm_errors import ConfigurationError

    from amplifier_module_provider_chat_completions import ChatCompletionsProvider

    provider = ChatCompletionsProvider(
        config={
            "base_url": "http://user:pw-canary@127.0.0.1:1/v1",
            "api_key": CANARIES[1],
            "headers": {"Authorization": f"Bearer {CANARIES[0]}", "X-Api-Key": HEADER_CANARY},
        }
    )
    shown = repr(provider.config)
    for secret in (CANARIES[0], CANARIES[1], HEADER_CANARY):
        assert secret not in shown
    with pytest.raises(ConfigurationError) as info:
        ChatCompletionsProvider(config={"base_url": "http://h/v1", "api_key": ["CanaryList"]})
    assert "CanaryList" not in str(info.value)
    with pytest.raises(ConfigurationError) as info:
        ChatCompletionsProvider(
            config={"base_url": "http://h/v1", "headers": f"{{bad {HEADER_CANARY}"}
        )
    assert HEADER_CANARY not in str(info.value)
    _ = FaultyServer  # the helper is shared with the socket tests above
