"""Tests of the replica servers themselves, with plain httpx (no provider code)."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

import httpx
import pytest

from .conftest import ALL_DIALECTS, ReplicaFactory
from .dialects import (
    DIALECTS,
    ERROR_SCENARIOS,
    TEXT,
    THINKING,
    TIME,
    USAGE,
    WEATHER,
    Dialect,
    chunks,
    stream_events,
)
from .replica import Replica
from .server import Reply

USER = [{"role": "user", "content": "hi"}]
COMPLETE = ("text", "reasoning", "tool_call", "tool_calls_parallel")


# ----------------------------------------------------------------------------- helpers
def parse_sse(raw: bytes) -> tuple[list[Any], list[str], bool]:
    """(data payloads as JSON, comment lines, saw [DONE]) from an SSE body."""
    text = raw.decode()
    assert text == "" or text.endswith("\n\n"), f"SSE body must end with a blank line: {text!r}"
    payloads: list[Any] = []
    comments: list[str] = []
    done = False
    for event in text.split("\n\n"):
        if not event:
            continue
        data = []
        for line in event.split("\n"):
            if line.startswith(":"):
                comments.append(line)
            elif line.startswith("data: "):
                data.append(line[len("data: ") :])
            else:
                raise AssertionError(f"unexpected SSE line {line!r}")
        if not data:
            continue
        joined = "\n".join(data)
        if joined == "[DONE]":
            assert not done, "two [DONE] lines"
            done = True
        else:
            assert not done, "data after [DONE]"
            payloads.append(json.loads(joined))
    return payloads, comments, done


def assemble(payloads: list[Any]) -> dict[str, Any]:
    """A small reference reader: enough to check what a dialect's stream contains."""
    content, reasoning, finish, usage = "", "", None, None
    calls: dict[int, dict[str, Any]] = {}
    errors = []
    for p in payloads:
        if "error" in p:
            errors.append(p["error"])
            continue
        if p.get("usage"):
            usage = p["usage"]
        for choice in p.get("choices") or []:
            delta = choice.get("delta") or {}
            content += delta.get("content") or ""
            reasoning += delta.get("reasoning") or delta.get("reasoning_content") or ""
            if choice.get("finish_reason"):
                finish = choice["finish_reason"]
            for tc in delta.get("tool_calls") or []:
                slot = calls.setdefault(tc["index"], {"id": None, "name": "", "args": ""})
                slot["id"] = slot["id"] or tc.get("id")
                fn = tc.get("function") or {}
                if fn.get("name") and fn["name"] != slot["name"]:
                    slot["name"] += fn["name"]
                args = fn.get("arguments")
                if isinstance(args, dict):
                    slot["args"] = json.dumps(args)
                elif args:
                    slot["args"] += args
    return {
        "content": content,
        "reasoning": reasoning,
        "finish": finish,
        "usage": usage,
        "calls": [calls[i] for i in sorted(calls)],
        "errors": errors,
    }


def expected_content(d: Dialect, scenario: str) -> str:
    if scenario != "reasoning":
        return TEXT
    return {
        "think_tags": f"<think>{THINKING}</think>\n\n{TEXT}",
        "inline_thinking": f"[thinking]\n{THINKING}\n\n{TEXT}",
    }.get(d.reasoning, TEXT)


def chat(
    server: Replica, stream: bool, *, include_usage: bool = True, **extra: Any
) -> httpx.Response:
    body: dict[str, Any] = {"model": server.dialect.model, "messages": USER, **extra}
    if stream:
        body["stream"] = True
        if include_usage:
            body["stream_options"] = {"include_usage": True}
    return httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=10)


# ----------------------------------------------------------------------------- streaming
@pytest.mark.parametrize("scenario", COMPLETE)
@pytest.mark.parametrize("key", ALL_DIALECTS)
def test_stream_complete_scenarios(replica: ReplicaFactory, key: str, scenario: str) -> None:
    server = replica(key, scenario)
    d = server.dialect
    resp = chat(server, stream=True)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert resp.headers.get("transfer-encoding") == "chunked"
    if d.server_header:
        assert resp.headers["server"] == d.server_header
    payloads, comments, done = parse_sse(resp.content)
    got = assemble(payloads)

    if scenario.startswith("tool") and not d.tools_work:
        # Amazon 2.0.4: the tool request fails in-band and the stream ends
        assert got["errors"] and got["errors"][0]["message"].startswith("Streaming error:")
        assert got["finish"] is None and not done
        return

    assert done is d.done
    assert got["errors"] == []
    assert got["finish"] is not None
    if scenario in ("text", "reasoning"):
        assert got["content"] == expected_content(d, scenario)
        assert got["finish"] == d.stop_reason
        if scenario == "reasoning" and d.uses_reasoning_field:
            assert got["reasoning"] == THINKING
            assert all(
                d.reasoning in (c["choices"][0]["delta"])
                for c in payloads
                if c.get("choices") and c["choices"][0]["delta"].get(d.reasoning)
            )
        else:
            assert got["reasoning"] == ""
    else:
        expected = (
            [WEATHER, TIME] if scenario == "tool_calls_parallel" and d.parallel_tools else [WEATHER]
        )
        unique = []
        for c in got["calls"]:
            if (c["name"], c["args"]) not in unique:
                unique.append((c["name"], c["args"]))
        assert [(n, json.loads(a)) for n, a in unique] == [
            (c.name, c.arguments_obj) for c in expected
        ]
        assert all(c["id"] is not None for c in got["calls"])
        assert got["finish"] == d.tool_reason
        assert got["content"] == ""

    if d.usage_in_stream(include_usage=True):
        assert got["usage"] == USAGE
    else:
        assert got["usage"] is None
    assert bool(comments) is d.keepalive


@pytest.mark.parametrize("key", ALL_DIALECTS)
def test_usage_only_when_asked(replica: ReplicaFactory, key: str) -> None:
    server = replica(key, "text")
    payloads, _, _ = parse_sse(chat(server, stream=True, include_usage=False).content)
    usages = [p["usage"] for p in payloads if p.get("usage")]
    if server.dialect.usage == "localai_old":
        assert usages[-1] == USAGE and usages[0]["total_tokens"] == 0
    else:
        assert usages == []


@pytest.mark.parametrize("key", ALL_DIALECTS)
def test_stream_error_midstream(replica: ReplicaFactory, key: str) -> None:
    server = replica(key, "error_midstream")
    d = server.dialect
    payloads, _, done = parse_sse(chat(server, stream=True).content)
    got = assemble(payloads)
    assert got["finish"] is None
    assert got["content"].startswith("Hel")
    if d.midstream is None:  # Ampify, llama-cpp-python: the stream just stops
        assert got["errors"] == [] and not done
    elif key == "ollama":  # an empty chunk, then EOF
        assert got["errors"] == [] and not done
        assert payloads[-1]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    else:
        assert len(got["errors"]) == 1
        assert "message" in got["errors"][0]
        assert done is (key in ("vllm", "sglang"))


@pytest.mark.parametrize("key", ALL_DIALECTS)
def test_stream_truncated_is_clean_eof_without_finish(replica: ReplicaFactory, key: str) -> None:
    server = replica(key, "truncated")
    payloads, _, done = parse_sse(chat(server, stream=True).content)
    assert not done
    assert assemble(payloads)["finish"] is None


@pytest.mark.parametrize("key", ["vllm", "tgi", "amazon"])
def test_stream_dropped_closes_mid_body(replica: ReplicaFactory, key: str) -> None:
    server = replica(key, "dropped")
    received = b""
    with pytest.raises(httpx.RemoteProtocolError), httpx.Client(timeout=10) as client:  # noqa: SIM117
        with client.stream(
            "POST",
            f"{server.base_url}/chat/completions",
            json={"model": "m", "messages": USER, "stream": True},
        ) as resp:
            assert resp.status_code == 200
            for part in resp.iter_raw():
                received += part
    assert b"Hel" in received and b"[DONE]" not in received


def test_connection_close_transfer(replica: ReplicaFactory) -> None:
    server = replica("vllm", "text", transfer="close")
    resp = chat(server, stream=True)
    assert "transfer-encoding" not in resp.headers
    assert resp.headers["connection"] == "close"
    payloads, _, done = parse_sse(resp.content)
    assert done and assemble(payloads)["content"] == TEXT


def test_chunk_delay_spaces_events(replica: ReplicaFactory) -> None:
    server = replica("vllm", "text", chunk_delay=0.05)
    arrivals: list[float] = []
    with httpx.Client(timeout=10) as client:
        sent = time.monotonic()
        with client.stream(
            "POST",
            f"{server.base_url}/chat/completions",
            json={"model": "m", "messages": USER, "stream": True},
        ) as resp:
            for line in resp.iter_lines():
                if line.startswith("data: "):
                    arrivals.append(time.monotonic())
    # role chunk, 3 text chunks, finish, [DONE]: 5 sleeps of 50 ms before the last one is
    # sent. Only this lower bound holds on a busy machine: a client that reads late sees
    # events bunched together, so the gaps between arrivals prove nothing.
    assert len(arrivals) == 6
    assert arrivals[-1] - sent >= 5 * 0.05 - 0.01  # (the event loop's clock resolution)


# ----------------------------------------------------------------------------- dialect details
def _items(key: str, scenario: str, include_usage: bool = True) -> list[dict[str, Any]]:
    request = {"stream": True, "stream_options": {"include_usage": include_usage}}
    return chunks(stream_events(DIALECTS[key], scenario, request))


def _has_calls(chunk: dict[str, Any]) -> bool:
    return bool(chunk.get("choices") and chunk["choices"][0]["delta"].get("tool_calls"))


def test_vllm_first_delta_and_usage_chunk() -> None:
    items = _items("vllm", "text")
    assert items[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert items[-1]["choices"] == [] and items[-1]["usage"] == USAGE


def test_vllm_tool_deltas_id_and_name_on_first_only() -> None:
    deltas = [c["choices"][0]["delta"]["tool_calls"][0] for c in _items("vllm", "tool_call")[1:-2]]
    assert "id" in deltas[0] and deltas[0]["function"]["name"] == "get_weather"
    assert all("id" not in d and "name" not in d["function"] for d in deltas[1:])
    assert "".join(d["function"].get("arguments", "") for d in deltas) == WEATHER.arguments


def test_sglang_sglext_chunk_and_reasoning_content() -> None:
    items = _items("sglang", "reasoning")
    assert any(c["choices"] == [] and "sglext" in c for c in items)
    assert any("reasoning_content" in c["choices"][0]["delta"] for c in items if c["choices"])


def test_tgi_quirks() -> None:
    items = _items("tgi", "tool_call")
    assert all(c["id"] == "" for c in items)
    with_choices = [c for c in items if c["choices"]]
    assert all(c["choices"][0]["delta"]["role"] == "assistant" for c in with_choices)
    tool_deltas = [c["choices"][0]["delta"]["tool_calls"][0] for c in with_choices[:-1]]
    assert all(t["index"] == 0 and t["id"] == "0" and t["type"] == "function" for t in tool_deltas)
    assert with_choices[-1]["choices"][0]["finish_reason"] == "eos_token"
    events = stream_events(DIALECTS["tgi"], "text", {"stream": True})
    assert any(not isinstance(e, dict) and type(e).__name__ == "Comment" for e in events)


def test_ollama_reasoning_and_content_in_separate_chunks() -> None:
    items = _items("ollama", "reasoning")
    for c in items:
        if c["choices"]:
            delta = c["choices"][0]["delta"]
            assert not (delta.get("reasoning") and delta.get("content"))
    tool = _items("ollama", "tool_calls_parallel")
    calls = [c for c in tool if c["choices"] and c["choices"][0]["delta"].get("tool_calls")]
    assert len(calls) == 1 and len(calls[0]["choices"][0]["delta"]["tool_calls"]) == 2


def test_localai_shared_id_repeat_and_mcp_event() -> None:
    items = _items("localai", "tool_call")
    cid = items[0]["id"]
    tcs = [
        t for c in items if c.get("choices") for t in c["choices"][0]["delta"].get("tool_calls", [])
    ]
    assert [t["index"] for t in tcs] == [0, 1]
    assert {t["id"] for t in tcs} == {cid}
    assert {"type": "mcp_tool_result", "name": "get_weather", "result": "sunny"} in items
    assert items[1]["choices"][0]["finish_reason"] == ""
    assert items[1]["usage"]["total_tokens"] == 0


def test_litellm_finish_omitted_and_usage_with_choices() -> None:
    items = _items("litellm", "text")
    assert all("finish_reason" not in c["choices"][0] for c in items[:-2])
    assert items[-2]["choices"][0]["finish_reason"] == "stop"
    assert items[-1]["choices"] == [{"index": 0, "delta": {}}] and items[-1]["usage"] == USAGE
    assert "provider_specific_fields" in items[1]["choices"][0]["delta"]


def test_ampify_explicit_null_finish_and_whole_calls() -> None:
    items = _items("ampify", "tool_calls_parallel")
    assert all("finish_reason" in c["choices"][0] for c in items)
    assert all(c["choices"][0]["finish_reason"] is None for c in items[:-1])
    tcs = [c["choices"][0]["delta"]["tool_calls"] for c in items if _has_calls(c)]
    assert [len(t) for t in tcs] == [1, 1]
    assert tcs[0][0]["function"]["arguments"] == WEATHER.arguments


def test_amazon_omits_nulls_and_has_no_done() -> None:
    events = stream_events(DIALECTS["amazon"], "text", {"stream": True})
    assert all(isinstance(e, dict) for e in events)
    assert "null" not in json.dumps(events)


def test_amazon_claude_path_object_arguments(replica: ReplicaFactory) -> None:
    server = replica("amazon", "tool_call_claude_path")
    payloads, _, done = parse_sse(chat(server, stream=True).content)
    args = payloads[1]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
    assert args == {"city": "Paris"} and not done
    body = chat(server, stream=False).json()
    assert body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == {
        "city": "Paris"
    }


def test_llama_cpp_python_repeats_id_name_type() -> None:
    items = _items("llama_cpp_python", "tool_call")
    tcs = [c["choices"][0]["delta"]["tool_calls"][0] for c in items if _has_calls(c)]
    assert len(tcs) > 1
    assert all(t["function"]["name"] == "get_weather" and t["id"] and t["type"] for t in tcs)


def test_llamacpp_first_delta_null_content_and_timings() -> None:
    items = _items("llamacpp", "text")
    assert items[0]["choices"][0]["delta"] == {"role": "assistant", "content": None}
    assert "timings" in items[-2]


# ----------------------------------------------------------------------------- non-streaming
@pytest.mark.parametrize("scenario", COMPLETE)
@pytest.mark.parametrize("key", ALL_DIALECTS)
def test_json_complete_scenarios(replica: ReplicaFactory, key: str, scenario: str) -> None:
    server = replica(key, scenario)
    d = server.dialect
    resp = chat(server, stream=False)
    if scenario.startswith("tool") and not d.tools_work:
        assert resp.status_code == 500 and "detail" in resp.json()
        return
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert body["object"] == "chat.completion"
    choice = body["choices"][0]
    message = choice["message"]
    assert message["role"] == "assistant"
    if scenario in ("text", "reasoning"):
        assert message["content"] == expected_content(d, scenario)
        assert choice["finish_reason"] == d.stop_reason
        if scenario == "reasoning" and d.uses_reasoning_field:
            assert message[d.reasoning] == THINKING
    else:
        calls = message["tool_calls"]
        n = 2 if scenario == "tool_calls_parallel" and d.parallel_tools else 1
        assert len(calls) == n
        args = calls[0]["function"]["arguments"]
        assert (json.loads(args) if isinstance(args, str) else args) == {"city": "Paris"}
        assert isinstance(args, dict) is d.json_args_object
        assert choice["finish_reason"] == d.tool_reason
        if key == "localai":
            assert {c["id"] for c in calls} == {body["id"]}
    assert ("usage" in body) is d.nonstream_usage
    if d.omit_nulls:
        assert "null" not in resp.text


@pytest.mark.parametrize("key", ALL_DIALECTS)
def test_json_cut_short(replica: ReplicaFactory, key: str) -> None:
    server = replica(key, "dropped")
    with pytest.raises(httpx.RemoteProtocolError):
        chat(server, stream=False)


@pytest.mark.parametrize("scenario", ERROR_SCENARIOS)
@pytest.mark.parametrize("key", ALL_DIALECTS)
def test_http_errors(replica: ReplicaFactory, key: str, scenario: str) -> None:
    server = replica(key, scenario)
    d = server.dialect
    for stream in (False, True):
        resp = chat(server, stream=stream)
        err = d.errors.get(scenario)
        if err is None:  # Ollama: context overflow is silently truncated
            assert resp.status_code == 200
            continue
        assert resp.status_code == err.status
        assert resp.json() == err.body
        for name, value in err.headers:
            assert resp.headers[name] == value


def test_error_statuses_match_servers_md() -> None:
    assert DIALECTS["tgi"].errors["context_overflow"].status == 422
    assert DIALECTS["tgi"].errors["overloaded"].status == 429
    assert DIALECTS["amazon"].errors["unauthorized"].status == 403
    assert DIALECTS["llamacpp"].errors["context_overflow"].body["error"]["type"] == (
        "exceed_context_size_error"
    )
    assert DIALECTS["vllm"].errors["unauthorized"].body == {"error": "Unauthorized"}
    assert DIALECTS["litellm"].errors["context_overflow"].body["error"]["code"] == "400"
    assert DIALECTS["ampify"].errors["overloaded"].body["error"]["code"] == 503
    assert "object" in DIALECTS["sglang"].errors["context_overflow"].body
    assert "retry-after" in dict(DIALECTS["localai"].errors["overloaded"].headers)


# ----------------------------------------------------------------------------- models, routes
@pytest.mark.parametrize("key", ALL_DIALECTS)
def test_models_and_routes(replica: ReplicaFactory, key: str) -> None:
    server = replica(key)
    d = server.dialect
    resp = httpx.get(f"{server.base_url}/models", timeout=10)
    assert resp.status_code == 200 and resp.json() == d.models_body
    assert resp.json()["data"][0]["id"] == d.model
    for route, value in d.routes.items():
        method, path = route.split(" ", 1)
        r = httpx.request(method, server.origin + path, json={} if method == "POST" else None)
        assert r.status_code == 200
        assert (r.text if isinstance(value, str) else r.json()) == value
    assert httpx.get(server.origin + "/nope", timeout=10).status_code == 404


def test_context_window_sources() -> None:
    assert DIALECTS["vllm"].models_body["data"][0]["max_model_len"] == 32768
    meta = DIALECTS["llamacpp"].models_body["data"][0]["meta"]
    assert meta["n_ctx"] == 8192 != meta["n_ctx_train"]
    assert DIALECTS["llamacpp"].routes["GET /props"]["default_generation_settings"]["n_ctx"] == 8192
    assert DIALECTS["tgi"].routes["GET /info"]["max_total_tokens"] == 4096


# ----------------------------------------------------------------------------- recording & control
def test_records_requests(replica: ReplicaFactory) -> None:
    server = replica("vllm")
    with httpx.Client(timeout=10, headers={"authorization": "Bearer k"}) as client:
        client.get(f"{server.base_url}/models")
        client.post(
            f"{server.base_url}/chat/completions",
            json={"model": "x", "messages": USER, "stream": True},
        )
        client.post(f"{server.base_url}/chat/completions", json={"model": "y", "messages": USER})
    assert [(r.method, r.path) for r in server.requests] == [
        ("GET", "/v1/models"),
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/chat/completions"),
    ]
    assert len(server.chat_requests) == 2
    assert server.chat_requests[0].body == {"model": "x", "messages": USER, "stream": True}
    assert server.chat_requests[0].header("Authorization") == "Bearer k"
    assert server.last_body["model"] == "y"
    assert server.connections_opened == 1  # keep-alive reused one connection


def test_queue_then_default(replica: ReplicaFactory) -> None:
    server = replica("llamacpp", "text")
    server.queue("overloaded", Reply.json({"custom": True}, status=502))
    codes = [chat(server, stream=False).status_code for _ in range(3)]
    assert codes == [503, 502, 200]
    server.set_scenario("tool_call")
    assert chat(server, stream=False).json()["choices"][0]["finish_reason"] == "tool_calls"
    with pytest.raises(KeyError):
        server.set_scenario("no-such-scenario")


@pytest.mark.parametrize("key", ALL_DIALECTS)
def test_auth(replica: ReplicaFactory, key: str) -> None:
    server = replica(key, api_key="secret")
    d = server.dialect
    assert chat(server, stream=False).status_code == d.errors["unauthorized"].status
    ok = httpx.post(
        f"{server.base_url}/chat/completions",
        json={"model": "m", "messages": USER},
        headers={"authorization": "Bearer secret"},
        timeout=10,
    )
    assert ok.status_code == 200
    if "x-api-key" in d.auth_schemes:
        r = httpx.post(
            f"{server.base_url}/chat/completions",
            json={"model": "m", "messages": USER},
            headers={"x-api-key": "secret"},
            timeout=10,
        )
        assert r.status_code == 200


def test_validators(replica: ReplicaFactory) -> None:
    vllm = replica("vllm")
    assert (
        httpx.post(
            f"{vllm.base_url}/chat/completions",
            json={"model": "m", "messages": USER, "stream_options": {"include_usage": True}},
        ).status_code
        == 400
    )
    history = [
        *USER,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    assert chat(replica("ollama"), stream=False, messages=history).status_code == 400
    assert chat(replica("ampify"), stream=False, messages=history).status_code == 500
    amazon = replica("amazon")
    dev = [{"role": "developer", "content": "be brief"}, *USER]
    assert chat(amazon, stream=False, messages=dev).status_code == 422
    assert (
        chat(replica("lmstudio"), stream=False, response_format={"type": "json_object"}).status_code
        == 400
    )
    assert (
        chat(replica("tgi"), stream=False, response_format={"type": "json_object"}).status_code
        == 422
    )
    lax = replica("vllm", strict=False)
    assert (
        httpx.post(
            f"{lax.base_url}/chat/completions",
            json={"model": "m", "messages": USER, "stream_options": {"include_usage": True}},
        ).status_code
        == 200
    )


async def test_async_client_on_test_loop(replica: ReplicaFactory) -> None:
    server = replica("sglang", "reasoning")
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream(
            "POST",
            f"{server.base_url}/chat/completions",
            json={"model": "m", "messages": USER, "stream": True},
        ) as resp,
    ):
        raw = b"".join([part async for part in resp.aiter_raw()])
    got = assemble(parse_sse(raw)[0])
    assert got["reasoning"] == THINKING and got["content"] == TEXT


# ----------------------------------------------------------------------------- lifecycle
def test_stop_leaves_no_thread_or_socket() -> None:
    before = {t.ident for t in threading.enumerate()}
    server = Replica("vllm").start()
    port = server.server.port
    # leave an idle keep-alive connection and a half-read stream open
    client = httpx.Client(timeout=10)
    client.get(f"{server.base_url}/models")
    server.stop()
    client.close()
    assert not server.server.running
    assert {t.ident for t in threading.enumerate()} <= before
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_fixture_stops_servers(replica: ReplicaFactory) -> None:
    servers = [replica(k) for k in ("tgi", "ollama")]
    assert all(s.server.running for s in servers)
    assert len({s.server.port for s in servers}) == 2
