"""Server detection and context-window discovery: pure classifiers, then the provider
against replica servers (real local HTTP) and respx for failure modes."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx
from amplifier_core.message_models import ChatRequest, Message
from replicas.dialects import DIALECTS, LLAMA_CPP, Dialect
from replicas.replica import Replica
from wire_helpers import completion

from amplifier_module_provider_chat_completions import ChatCompletionsProvider
from amplifier_module_provider_chat_completions.server.detect import (
    classify,
    classify_follow_up,
    context_window_from,
    follow_up,
)

EXPECTED = {
    "vllm": "vllm",
    "sglang": "sglang",
    "tgi": "tgi",
    "ollama": "ollama",
    "localai": "localai",
    "lmstudio": "lmstudio",
    "litellm": "litellm",
    "ampify": "ampify",
    "amazon": "amazon",
    "llama_cpp_python": "openai",
    "llamacpp": "llamacpp",
}


def headers_of(d: Dialect) -> dict[str, str]:
    return {"Server": d.server_header} if d.server_header else {}


def user() -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content="hi")])


@pytest.fixture
def start() -> Iterator[Any]:
    started: list[Replica] = []

    def _start(dialect: Dialect | str, scenario: str = "text", **kw: Any) -> Replica:
        server = Replica(dialect, scenario, **kw).start()
        started.append(server)
        return server

    yield _start
    for server in started:
        server.stop()


def provider_for(replica: Replica, **config: Any) -> ChatCompletionsProvider:
    return ChatCompletionsProvider(
        config={"base_url": replica.base_url, "max_retries": 0, "timeout": 10, **config}
    )


# -- pure classification ------------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_classify_with_at_most_one_follow_up(key):
    d = DIALECTS[key]
    found = classify(d.models_body, headers_of(d))
    path = follow_up(d.models_body, headers_of(d))
    if path is not None:
        # the follow-up answer as the server gives it (or nothing, like a 404)
        route = f"GET {path}"
        found = classify_follow_up(path, d.routes.get(route)) or found
    assert found == EXPECTED[key]


def test_llamacpp_header_alone_is_enough():
    assert classify({"data": []}, {"server": "llama.cpp"}) == "llamacpp"


def test_unknown_shapes_are_generic():
    assert classify(None, {}) == "openai"
    assert classify("oops", {"server": "nginx"}) == "openai"
    assert classify({"data": [{"id": "gpt-4o", "owned_by": "system"}]}, {}) == "openai"
    assert follow_up({"data": [{"id": "gpt-4o", "owned_by": "system"}]}, {}) is None


def test_follow_up_bodies_that_prove_nothing():
    assert classify_follow_up("/info", {"status": "ok"}) is None
    assert classify_follow_up("/v1/model/info", {"data": [{"id": "x"}]}) is None
    assert classify_follow_up("/info", "text") is None


def test_context_window_readers_never_take_the_training_size():
    body = copy.deepcopy(LLAMA_CPP.models_body)
    del body["data"][0]["meta"]["n_ctx"]  # older builds: only n_ctx_train
    assert context_window_from("models", body, "Qwen3-8B-Q4_K_M.gguf") is None
    props = LLAMA_CPP.routes["GET /props"]
    assert context_window_from("props", props, "any") == 8192
    ps = DIALECTS["ollama"].routes["GET /api/ps"]
    assert context_window_from("ollama_ps", ps, "qwen3:8b") == 8192
    assert context_window_from("ollama_ps", ps, "other") is None
    assert context_window_from("tgi_info", {"max_input_tokens": 100}, "m") == 100
    assert context_window_from("lmstudio", {"max_context_length": 40960}, "m") is None


# -- the provider against replicas ---------------------------------------------------------


@pytest.mark.parametrize("key", sorted(EXPECTED))
async def test_provider_detects_each_replica_with_two_gets_at_most(start, key):
    server = start(key)
    provider = provider_for(server)
    try:
        response = await provider.complete(user())
        assert response.content
        profile = await provider.server_profile()
        assert profile.key == EXPECTED[key]
        await provider.complete(user())  # detection is cached: no more probes
    finally:
        await provider.close()
    gets = [r for r in server.requests if r.method == "GET"]
    assert 1 <= len(gets) <= 2
    assert gets[0].path == "/v1/models"


async def test_one_probe_for_many_concurrent_first_requests(start):
    server = start("vllm")
    provider = provider_for(server, use_streaming=False)
    try:
        results = await asyncio.gather(*(provider.complete(user()) for _ in range(40)))
    finally:
        await provider.close()
    assert len(results) == 40
    assert [r.path for r in server.requests if r.method == "GET"] == ["/v1/models"]


async def test_configured_server_skips_detection_and_asks_only_for_the_window(start):
    server = start("lmstudio")
    provider = provider_for(server, server="lmstudio")
    try:
        await provider.complete(user())
        await provider.complete(user())
        assert (await provider.server_profile()).key == "lmstudio"
    finally:
        await provider.close()
    # No /v1/models fingerprint: one GET of LM Studio's own window source, once.
    requests = [(r.method, r.path) for r in server.requests]
    assert requests[0][0] == "GET" and requests[0][1].startswith("/api/v0/models/")
    assert [method for method, _ in requests[1:]] == ["POST", "POST"]


async def test_get_info_makes_no_request(start):
    server = start("vllm")
    provider = provider_for(server)
    provider.get_info()
    await provider.close()
    assert server.requests == []


@pytest.mark.parametrize(
    "key", sorted(k for k, d in DIALECTS.items() if d.context_window is not None)
)
async def test_runtime_context_window_per_server(start, key):
    d = DIALECTS[key]
    server = start(key)
    provider = provider_for(server)
    try:
        info = await provider.fetch_model_info(d.model)
        models = await provider.list_models()
    finally:
        await provider.close()
    assert info is not None and info.context_window == d.context_window
    assert {m.id: m.context_window for m in models}[d.model] == d.context_window


async def test_llamacpp_without_meta_n_ctx_reads_props_per_slot(start):
    body = copy.deepcopy(LLAMA_CPP.models_body)
    del body["data"][0]["meta"]["n_ctx"]
    routes = dict(LLAMA_CPP.routes)
    routes["GET /props"] = {"default_generation_settings": {"n_ctx": 2048}, "total_slots": 4}
    old = dataclasses.replace(LLAMA_CPP, models_body=body, routes=routes)
    server = start(old)
    provider = provider_for(server)
    try:
        info = await provider.fetch_model_info()  # "default": the single listed model
    finally:
        await provider.close()
    assert info is not None
    assert info.id == "Qwen3-8B-Q4_K_M.gguf"
    assert info.context_window == 2048  # not n_ctx_train 40960


async def test_context_window_config_overrides_discovery(start):
    server = start("vllm")
    provider = provider_for(server, context_window=1000)
    try:
        info = await provider.fetch_model_info("Qwen/Qwen3-8B")
        models = await provider.list_models()
    finally:
        await provider.close()
    assert info is not None and info.context_window == 1000
    assert models[0].context_window == 1000


async def test_unknown_model_without_window_is_none(start):
    server = start("ampify")
    provider = provider_for(server)
    try:
        assert await provider.fetch_model_info("not-listed") is None
    finally:
        await provider.close()


# -- failures never reach a chat request ----------------------------------------------------


@respx.mock
async def test_failed_detection_falls_back_to_generic_and_chat_works():
    models = respx.get("http://llm.test/v1/models").mock(return_value=httpx.Response(500))
    chat = respx.post("http://llm.test/v1/chat/completions").mock(
        return_value=httpx.Response(200, json=completion("ok"))
    )
    provider = ChatCompletionsProvider(
        config={"base_url": "http://llm.test/v1", "use_streaming": False, "max_retries": 0}
    )
    try:
        for _ in range(4):
            assert (await provider.complete(user())).content[0].text == "ok"
        assert (await provider.server_profile()).key == "openai"
    finally:
        await provider.close()
    assert chat.call_count == 4
    assert models.call_count == 2  # tried again once (the server may have been starting)


@respx.mock
async def test_hanging_models_endpoint_is_cut_short():
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        return httpx.Response(200, json={"data": []})

    respx.get("http://llm.test/v1/models").mock(side_effect=hang)
    respx.post("http://llm.test/v1/chat/completions").mock(
        return_value=httpx.Response(200, json=completion("ok"))
    )
    provider = ChatCompletionsProvider(
        config={"base_url": "http://llm.test/v1", "use_streaming": False, "max_retries": 0}
    )
    loop = asyncio.get_running_loop()
    began = loop.time()
    try:
        assert (await provider.complete(user())).content[0].text == "ok"
    finally:
        await provider.close()
    assert loop.time() - began < 10


def test_real_open_bedrock_server_is_found_by_its_openapi_title():
    # What open-bedrock-server 2.0.4 really answers in front of a non-"gpt" upstream.
    headers = {"server": "uvicorn"}
    body = {"object": "list", "data": []}
    assert classify(body, headers) == "openai"
    assert follow_up(body, headers) == "/openapi.json"
    assert classify_follow_up("/openapi.json", {"info": {"title": "Open Bedrock Server API"}}) == (
        "amazon"
    )
    assert classify_follow_up("/openapi.json", {"info": {"title": "FastAPI"}}) is None
