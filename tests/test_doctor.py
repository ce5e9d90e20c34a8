"""The doctor against replica servers (real local HTTP) and a dead URL, via the CLI too."""

from __future__ import annotations

import dataclasses
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from replicas.dialects import DIALECTS, STRICT_FASTAPI, VLLM_NO_AUTO_TOOLS, Dialect, Done
from replicas.replica import Replica, encode_stream
from replicas.server import Reply

from amplifier_module_provider_chat_completions.cli.doctor import render, run_doctor
from amplifier_module_provider_chat_completions.cli.main import main

# What each doctor probe asks for, in order, so a replica can answer like a capable model.
PROBE_SCENARIOS = (
    "text",  # plain chat
    "text",  # streaming (+ streamed usage)
    "tool_call",
    "tool_call",  # streamed
    "tool_calls_parallel",
    "text",  # JSON mode
    "text",  # JSON schema
    "reasoning",
)


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


def statuses(report: Any) -> dict[str, str]:
    return {c.feature: c.status for c in report.checks}


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"  # nothing listens there any more


async def test_capable_vllm_report(start):
    server = start("vllm")
    server.queue(*PROBE_SCENARIOS)
    report = await run_doctor(server.base_url, timeout=10)
    assert report.error is None
    assert report.server == "vllm"
    assert report.model == "Qwen/Qwen3-8B" and report.context_window == 32768
    assert statuses(report) == {
        "plain chat": "ok",
        "streaming": "ok",
        "streamed usage": "ok",
        "tool calls": "ok",
        "tool calls (streamed)": "ok",
        "parallel tool calls": "ok",
        "JSON mode": "ok",
        "JSON schema": "ok",
        "reasoning field": "ok",
    }
    assert report.chat_works
    # every probe is small and not retried
    bodies = [r.body for r in server.chat_requests]
    assert len(bodies) == len(PROBE_SCENARIOS)
    assert all(b["max_tokens"] <= 256 for b in bodies)
    text = render(report)
    assert "vLLM" in text and "32768 tokens" in text and "chat works" in text


# SERVERS.md: these ignore response_format, so the doctor warns rather than passes.
JSON_IGNORED = {"ampify", "amazon"}


@pytest.mark.parametrize("key", sorted(DIALECTS))
async def test_doctor_against_every_replica(start, key: str):
    """Each replica answers like a capable model; the report must match what its dialect
    can and cannot do, and chat must work everywhere."""
    server = start(key)
    server.queue(*PROBE_SCENARIOS)
    report = await run_doctor(server.base_url, timeout=10)
    d = server.dialect
    assert report.error is None and report.chat_works
    assert report.context_window in (d.context_window, None, 0)
    if d.context_window:
        assert report.context_window == d.context_window
    got = statuses(report)
    assert got["plain chat"] == got["streaming"] == "ok"
    assert (got["streamed usage"] == "ok") is d.usage_in_stream(True)
    tools = "ok" if d.tools_work else "fail"
    assert got["tool calls"] == got["tool calls (streamed)"] == tools
    parallel = got["parallel tool calls"]
    assert (parallel == "ok") is (d.tools_work and d.parallel_tools)
    json_status = "warn" if key in JSON_IGNORED else "ok"
    assert got["JSON mode"] == got["JSON schema"] == json_status
    assert (got["reasoning field"] == "ok") is (d.reasoning != "none")
    assert "Traceback" not in render(report)


def two_models(key: str) -> Dialect:
    """The dialect listing two models, each with its own window."""
    listed = [
        {"id": "first/model", "object": "model", "max_model_len": 16384},
        {"id": "second/model", "object": "model", "max_model_len": 8192},
    ]
    return dataclasses.replace(DIALECTS[key], models_body={"object": "list", "data": listed})


async def test_without_a_model_the_first_listed_model_is_probed(start):
    server = start(two_models("vllm"))
    report = await run_doctor(server.base_url, timeout=10)
    assert report.chat_works
    assert {r.body["model"] for r in server.chat_requests} == {"first/model"}
    assert (report.model, report.context_window) == ("first/model", 16384)
    assert [m["id"] for m in report.models] == ["first/model", "second/model"]


async def test_a_given_model_is_probed(start):
    server = start(two_models("vllm"))
    report = await run_doctor(server.base_url, model="second/model", timeout=10)
    assert {r.body["model"] for r in server.chat_requests} == {"second/model"}
    assert (report.model, report.context_window) == ("second/model", 8192)


async def test_vllm_without_tool_parser_names_the_flags(start):
    server = start(VLLM_NO_AUTO_TOOLS)
    report = await run_doctor(server.base_url, timeout=10)
    tools = next(c for c in report.checks if c.feature == "tool calls")
    assert tools.status == "fail"
    assert "--enable-auto-tool-choice --tool-call-parser" in tools.fix
    assert report.chat_works


async def test_strict_server_heals_and_the_report_says_so(start):
    server = start(STRICT_FASTAPI)
    report = await run_doctor(server.base_url, timeout=10)
    assert report.chat_works
    assert any("stream_options" in note for note in report.notes)
    assert statuses(report)["streaming"] in ("ok", "warn")


async def test_lmstudio_json_mode_is_sent_in_its_shape(start):
    server = start("lmstudio")
    report = await run_doctor(server.base_url, timeout=10)
    assert report.server == "lmstudio" and report.context_window == 4096
    formats = [r.body.get("response_format") for r in server.chat_requests]
    assert {"type": "json_object"} not in formats
    assert any(f and f["type"] == "json_schema" for f in formats)


async def test_server_that_drops_response_format_is_a_warning(start):
    server = start("ampify")
    report = await run_doctor(server.base_url, timeout=10)
    assert statuses(report)["JSON mode"] == "warn"


async def test_dead_url_is_one_clear_error():
    report = await run_doctor(dead_url(), timeout=5)
    assert report.error is not None and "connect" in report.error
    assert not report.chat_works
    assert render(report).count("\n") == 0


def test_cli_exit_codes_and_json(start, capsys):
    server = start("llamacpp")
    assert main(["doctor", "--base-url", server.base_url, "--timeout", "10", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True and data["server"] == "llamacpp"
    assert data["version"] == "b6500-abcdef0"
    assert data["context_window"] == 8192  # runtime n_ctx, not n_ctx_train

    assert main(["doctor", "--base-url", dead_url(), "--timeout", "5"]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1
    assert "Traceback" not in captured.err + captured.out


def test_cli_bad_key_is_one_line(start, capsys):
    server = start("vllm", api_key="right")
    assert main(["doctor", "--base-url", server.base_url, "--api-key", "wrong"]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and "api_key" in captured.err
    assert captured.err.count("\n") == 1 and captured.out == ""


async def test_model_that_calls_tools_only_when_forced_is_a_warning(start):
    """Under tool_choice auto the model talks; forced, it calls: the server is fine."""
    server = start("vllm")
    server.queue("text", "text", "text", "tool_call", "text", "tool_call", "text")
    report = await run_doctor(server.base_url, timeout=10)
    got = statuses(report)
    assert got["tool calls"] == got["tool calls (streamed)"] == "warn"
    assert got["parallel tool calls"] == "warn"
    forced = [r.body for r in server.chat_requests if r.body.get("tool_choice") == "required"]
    assert len(forced) == 2
    tools = next(c for c in report.checks if c.feature == "tool calls")
    assert "required" in tools.detail and "model" in tools.fix


# -- replies that arrive but are not clean ------------------------------------------------


def completion(text: str, finish: str = "stop", reasoning: str | None = None) -> Reply:
    """A whole (non-streamed) chat completion carrying `text`."""
    message = {"role": "assistant", "content": text}
    if reasoning is not None:
        message["reasoning_content"] = reasoning
    return Reply.json(
        {
            "id": "chatcmpl-doctor",
            "object": "chat.completion",
            "created": 1767225600,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": finish,
                }
            ],
            "usage": {"prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16},
        }
    )


def streamed(*parts: str, finish: str = "stop") -> Reply:
    """A streamed chat completion sending `parts` as text deltas."""

    def chunk(delta: dict[str, Any], reason: str | None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": reason}
        return {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [choice],
        }

    items: list[Any] = [chunk({"content": p}, None) for p in parts]
    items += [chunk({}, finish), Done()]
    return Reply(headers=[("content-type", "text/event-stream")], parts=encode_stream(items))


def check(report: Any, feature: str) -> Any:
    return next(c for c in report.checks if c.feature == feature)


async def test_a_reply_leaking_chat_template_tokens_is_flagged(start):
    server = start("vllm")
    server.queue(completion("hello<|im_end|>\n<|im_start|>user\nhello again"))
    report = await run_doctor(server.base_url, timeout=10)
    plain = check(report, "plain chat")
    assert plain.status == "warn"
    assert "<|im_start|>" in plain.detail and "<|im_end|>" in plain.detail
    assert "chat template" in plain.fix
    assert not report.chat_works
    assert "not cleanly" in render(report)


async def test_a_short_reply_cut_at_the_token_limit_is_flagged(start):
    server = start("llamacpp")
    server.queue(completion("hello hello hello hello", finish="length"))
    report = await run_doctor(server.base_url, timeout=10)
    plain = check(report, "plain chat")
    assert plain.status == "warn" and "token limit" in plain.detail
    assert "end-of-turn" in plain.fix


async def test_reasoning_that_fills_the_token_limit_is_not_a_template_problem(start):
    server = start("llamacpp")
    server.queue(completion("hello", finish="length", reasoning="The user wants one word..."))
    report = await run_doctor(server.base_url, timeout=10)
    assert check(report, "plain chat").status == "ok"


async def test_a_streamed_reply_leaking_a_gemma_end_of_turn_is_flagged(start):
    server = start("llamacpp")
    server.queue("text", streamed("1 2 3", " 4 5", "<end_of_turn>\n<start_of_turn>user"))
    report = await run_doctor(server.base_url, timeout=10)
    assert check(report, "plain chat").status == "ok"
    stream = check(report, "streaming")
    assert stream.status == "warn" and "<end_of_turn>" in stream.detail


NO_REASONING = (*PROBE_SCENARIOS[:-1], "text")


async def test_the_reasoning_fix_is_suggested_for_a_model_known_to_reason(start):
    server = start("llamacpp")  # lists Qwen3-8B: a reasoning model
    server.queue(*NO_REASONING)
    report = await run_doctor(server.base_url, timeout=10)
    reasoning = check(report, "reasoning field")
    assert reasoning.status == "warn" and "--reasoning-format" in reasoning.fix
    assert "--reasoning-format" in render(report)


async def test_no_reasoning_fix_for_a_model_not_known_to_reason(start):
    server = start("llamacpp")
    server.queue(*NO_REASONING)
    report = await run_doctor(server.base_url, model="SmolLM2-135M-Instruct", timeout=10)
    reasoning = check(report, "reasoning field")
    assert reasoning.status == "skip" and reasoning.fix == ""
    assert "--reasoning-format" not in render(report)
