"""The real llama-server fixture works: plain httpx against it, no provider involved."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import E2E_API_KEY
from .llama_build import LlamaArtifacts
from .servers import LlamaServer, ServerStartError

pytestmark = pytest.mark.e2e

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def _sse_chunks(text: str) -> tuple[list[dict[str, Any]], bool]:
    """(parsed data chunks, whether [DONE] came last) from a raw SSE body."""
    chunks: list[dict[str, Any]] = []
    done = False
    for line in text.splitlines():
        if not line.startswith("data:"):
            continue
        data = line[len("data:") :].strip()
        if data == "[DONE]":
            done = True
            continue
        assert not done, "data after [DONE]"
        chunks.append(json.loads(data))
    return chunks, done


def test_health(llama_server: LlamaServer) -> None:
    resp = httpx.get(llama_server.root_url + "/health", timeout=10)
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok"}
    assert llama_server.base_url == llama_server.root_url + "/v1"
    assert llama_server.running


def test_models_lists_the_tiny_model(llama_server: LlamaServer) -> None:
    body = httpx.get(llama_server.base_url + "/models", timeout=10).json()
    assert body["object"] == "list"
    assert len(body["data"]) == 1
    model = body["data"][0]
    assert model["object"] == "model"
    assert model["owned_by"] == "llamacpp"
    assert model["id"].endswith(".gguf")


def test_chat_completion_says_hello_world(llama_server: LlamaServer) -> None:
    resp = httpx.post(
        llama_server.base_url + "/chat/completions",
        json={"model": "any", "messages": [{"role": "user", "content": "Say hello"}]},
        timeout=60,
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == "Hello world"
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["completion_tokens"] == 3  # "Hello", " world" and the EOS token
    assert usage["prompt_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_streamed_tool_call_with_tool_choice_required(llama_server: LlamaServer) -> None:
    resp = httpx.post(
        llama_server.base_url + "/chat/completions",
        json={
            "model": "any",
            "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
            "tools": [WEATHER_TOOL],
            "tool_choice": "required",
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        timeout=60,
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/event-stream")
    chunks, done = _sse_chunks(resp.text)
    assert done, "the stream must end with data: [DONE]"

    calls: dict[int, dict[str, str]] = {}
    finish_reasons: list[str] = []
    usage: dict[str, Any] | None = None
    for chunk in chunks:
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if choice.get("finish_reason"):
                finish_reasons.append(choice["finish_reason"])
            for delta_call in choice.get("delta", {}).get("tool_calls") or []:
                call = calls.setdefault(delta_call["index"], {"id": "", "name": "", "args": ""})
                call["id"] += delta_call.get("id") or ""
                fn = delta_call.get("function") or {}
                call["name"] += fn.get("name") or ""
                call["args"] += fn.get("arguments") or ""

    assert finish_reasons == ["tool_calls"]
    assert list(calls) == [0]
    assert calls[0]["name"] == "get_weather"
    assert calls[0]["id"]
    assert isinstance(json.loads(calls[0]["args"]), dict)
    assert usage is not None and usage["completion_tokens"] > 0
    # The usage chunk comes last, with no choices.
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]


def test_api_key_server_rejects_a_wrong_key(llama_server_with_key: LlamaServer) -> None:
    url = llama_server_with_key.base_url + "/chat/completions"
    body = {"model": "any", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
    wrong = httpx.post(url, json=body, headers={"Authorization": "Bearer nope"}, timeout=30)
    assert wrong.status_code == 401
    assert wrong.json()["error"]["type"] == "authentication_error"
    right = httpx.post(
        url, json=body, headers={"Authorization": f"Bearer {E2E_API_KEY}"}, timeout=30
    )
    assert right.status_code == 200, right.text


def test_a_server_that_fails_to_start_raises_with_its_log(
    llama_artifacts: LlamaArtifacts, tmp_path: Path
) -> None:
    bad_model = tmp_path / "not-a-model.gguf"
    bad_model.write_bytes(b"this is not a GGUF file")
    server = LlamaServer(
        llama_artifacts.server_command, bad_model, startup_timeout=30, log_dir=tmp_path
    )
    with pytest.raises(ServerStartError, match="exited with code") as info:
        server.start()
    assert str(bad_model) in str(info.value)  # the log tail (the command line at least)
    assert not server.running
    assert server.proc is None
