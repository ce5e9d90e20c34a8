"""The assembler's policies: what a cut-off reply may run, which calls are one call, how a
reply ends, where reasoning starts, and usage outside `usage`.

Chunks are shaped the way the named servers send them (SERVERS.md).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from salvage_corpus import OFFERED
from wire_helpers import chunk

from amplifier_module_provider_chat_completions.reply.arguments import ArgumentsError
from amplifier_module_provider_chat_completions.reply.assemble import (
    BlockEvent,
    InBandError,
    ResponseAssembler,
)


def call(
    index: int | None, call_id: str | None, name: str | None, args: Any = None
) -> dict[str, Any]:
    delta: dict[str, Any] = {"function": {}}
    if index is not None:
        delta["index"] = index
    if call_id is not None:
        delta["id"] = call_id
        delta["type"] = "function"
    if name is not None:
        delta["function"]["name"] = name
    if args is not None:
        delta["function"]["arguments"] = args
    return delta


def run(asm: ResponseAssembler, chunks: list[dict[str, Any]], **close: bool) -> list[BlockEvent]:
    events: list[BlockEvent] = []
    for c in chunks:
        events += asm.feed_chunk(c)
    return events + asm.close(**close)


def well_formed(events: list[BlockEvent]) -> None:
    open_: dict[int, int] = {}
    for e in events:
        if e.kind == "start":
            assert e.index not in open_
            open_[e.index] = 0
        elif e.kind == "delta":
            assert e.sequence == open_[e.index] and e.text
            open_[e.index] += 1
        else:
            del open_[e.index]
    assert not open_


def shown(events: list[BlockEvent], block_type: str = "text") -> str:
    return "".join(e.text for e in events if e.kind == "delta" and e.block_type == block_type)


# ------------------------------------------------------------------ cut-off tool calls

CUT_ARGS = '{"path": "app.py", "content": "def main():\\n    pri'


def test_call_cut_by_the_output_limit_is_not_handed_over_to_run() -> None:
    # vLLM / llama.cpp: the limit falls inside a write_file call's arguments.
    asm = ResponseAssembler(offered_tools=OFFERED)
    events = run(
        asm,
        [
            chunk({"role": "assistant", "content": "Writing it."}),
            chunk({"tool_calls": [call(0, "call_w", "write_file", "")]}),
            chunk({"tool_calls": [call(0, None, None, CUT_ARGS[:20])]}),
            chunk({"tool_calls": [call(0, None, None, CUT_ARGS[20:])]}),
            chunk({}, "length"),
        ],
    )
    well_formed(events)
    res = asm.result()  # no ArgumentsError: the arguments are cut, not wrong
    assert res.tool_calls == []
    assert res.finish_reason == "length"
    assert [b.type for b in res.blocks] == ["text", "text"]
    notice = res.blocks[1].text
    assert "write_file" in notice and "not run" in notice and "output limit" in notice
    assert CUT_ARGS in notice  # what the model wrote so far stays visible
    assert [(c.id, c.name, c.raw_arguments) for c in res.truncated_calls] == [
        ("call_w", "write_file", CUT_ARGS)
    ]
    # The stream says so too: the notice is streamed as text after the call's block.
    assert shown(events) == "Writing it." + notice


def test_every_call_of_a_cut_reply_is_withheld_not_only_the_last() -> None:
    # The batch was the model's plan as a whole, and a server may have closed the last
    # call's JSON itself: nothing of a cut reply runs.
    asm = ResponseAssembler(offered_tools=OFFERED)
    run(
        asm,
        [
            chunk({"tool_calls": [call(0, "a", "read_file", '{"path": "a.py"}')]}),
            chunk({"tool_calls": [call(1, "b", "write_file", '{"path": "b.py"}')]}),
            chunk({}, "length"),
        ],
    )
    res = asm.result()
    assert res.tool_calls == [] and res.finish_reason == "length"
    assert [c.name for c in res.truncated_calls] == ["read_file", "write_file"]
    assert [b.type for b in res.blocks] == ["text"]
    assert "read_file" in res.blocks[0].text and "write_file" in res.blocks[0].text


def test_cut_call_with_unrepairable_arguments_is_withheld_not_raised() -> None:
    # The same arguments in a finished reply are an ArgumentsError (invalid, not cut).
    chunks = [chunk({"tool_calls": [call(0, "a", "bash", "run the tes")]})]
    with pytest.raises(ArgumentsError):
        run(finished := ResponseAssembler(), [*chunks, chunk({}, "stop")])
        finished.result()
    asm = ResponseAssembler()
    run(asm, [*chunks, chunk({}, "max_tokens")])
    res = asm.result()
    assert res.tool_calls == [] and res.finish_reason == "length"
    assert [c.raw_arguments for c in res.truncated_calls] == ["run the tes"]


def test_text_written_call_cut_by_the_limit_is_withheld() -> None:
    raw = 'Checking.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Par'
    chunks = [chunk({"content": raw[i : i + 4]}) for i in range(0, len(raw), 4)]
    asm = ResponseAssembler(offered_tools=OFFERED)
    events = run(asm, [*chunks, chunk({}, "length")])
    well_formed(events)
    res = asm.result()
    assert res.tool_calls == [] and res.finish_reason == "length"
    assert [c.name for c in res.truncated_calls] == ["get_weather"]
    assert [b.type for b in res.blocks] == ["text", "text"]
    assert res.blocks[0].text == "Checking."
    assert not [e for e in events if e.block_type == "tool_use"]


def test_non_streaming_cut_reply_runs_nothing() -> None:
    asm = ResponseAssembler()
    asm.feed_body(
        {
            "choices": [
                {
                    "message": {
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "write_file", "arguments": CUT_ARGS},
                            }
                        ],
                    },
                    "finish_reason": "length",
                }
            ]
        }
    )
    res = asm.result()
    assert res.tool_calls == [] and res.finish_reason == "length"
    assert [c.id for c in res.truncated_calls] == ["call_1"]
    assert len(res.blocks) == 1 and CUT_ARGS in res.blocks[0].text
    assert asm.result().blocks == res.blocks  # repeatable


def test_a_complete_reply_still_runs_its_calls() -> None:
    asm = ResponseAssembler()
    run(asm, [chunk({"tool_calls": [call(0, "a", "f", "{}")]}), chunk({}, "stop")])
    res = asm.result()
    assert [c.name for c in res.tool_calls] == ["f"] and res.truncated_calls == []
    assert res.finish_reason == "tool_calls"


# ------------------------------------------------------------------ failed generations


@pytest.mark.parametrize("reason", ["abort", "error", "ABORT"])
def test_failed_generation_finish_reason_is_an_in_band_error(reason: str) -> None:
    # vLLM and SGLang end an aborted request with "abort"; vLLM's engine errors and
    # OpenRouter end a failed one with "error".
    asm = ResponseAssembler()
    asm.feed_chunk(chunk({"content": "Half an ans"}))
    with pytest.raises(InBandError) as info:
        asm.feed_chunk(chunk({}, reason))
    payload = info.value.payload
    assert isinstance(payload, dict) and payload["error"]["finish_reason"] == reason
    assert reason in str(info.value)


def test_failed_generation_in_a_non_streaming_body_raises() -> None:
    with pytest.raises(InBandError, match="abort"):
        ResponseAssembler().feed_body(
            {"choices": [{"message": {"content": "x"}, "finish_reason": "abort"}]}
        )


def test_failed_generation_classifies_as_retryable_server_failure() -> None:
    from amplifier_core.llm_errors import ProviderUnavailableError

    from amplifier_module_provider_chat_completions.errors import error_from_payload

    with pytest.raises(InBandError) as info:
        ResponseAssembler().feed_chunk(chunk({}, "abort"))
    err = error_from_payload(info.value.payload, provider="p", model="m")
    assert isinstance(err, ProviderUnavailableError) and err.retryable
    assert "abort" in str(err)


# ------------------------------------------------------------------ identical parallel calls


def dice_calls() -> list[dict[str, Any]]:
    return [call(i, f"call_{i}", "dice_roll", "{}") for i in range(3)]


def test_identical_parallel_calls_with_their_own_ids_are_all_kept() -> None:
    # Several servers answer "roll three dice" with three `dice_roll {}` calls, ids differ.
    asm = ResponseAssembler()
    events = run(asm, [chunk({"tool_calls": [c]}) for c in dice_calls()] + [chunk({}, "stop")])
    res = asm.result()
    assert [(c.id, c.name, c.arguments) for c in res.tool_calls] == [
        ("call_0", "dice_roll", {}),
        ("call_1", "dice_roll", {}),
        ("call_2", "dice_roll", {}),
    ]
    assert [b.tool_call.id for b in res.blocks if b.tool_call] == ["call_0", "call_1", "call_2"]
    assert [e.name for e in events if e.kind == "start"] == ["dice_roll"] * 3


def test_identical_calls_in_one_delta_and_in_a_body_are_all_kept() -> None:
    asm = ResponseAssembler()
    run(asm, [chunk({"tool_calls": dice_calls()}), chunk({}, "tool_calls")])
    assert len(asm.result().tool_calls) == 3
    body_calls = [
        {"id": f"c{i}", "type": "function", "function": {"name": "dice_roll", "arguments": "{}"}}
        for i in range(3)
    ]
    asm = ResponseAssembler()
    asm.feed_body({"choices": [{"message": {"tool_calls": body_calls}, "finish_reason": "stop"}]})
    assert [c.id for c in asm.result().tool_calls] == ["c0", "c1", "c2"]


def test_repeat_without_an_id_is_merged() -> None:
    asm = ResponseAssembler()
    events = run(
        asm,
        [
            chunk({"tool_calls": [call(0, None, "f", '{"a": 1}')]}),
            chunk({"tool_calls": [call(1, None, "f", '{"a": 1}')]}),
        ],
    )
    assert len(asm.result().tool_calls) == 1
    assert len([e for e in events if e.kind == "start"]) == 1


def test_identical_text_written_calls_are_all_kept() -> None:
    # The model wrote the call three times: three calls, as with native ids.
    one = '<tool_call>{"name": "get_weather", "arguments": {}}</tool_call>'
    asm = ResponseAssembler(offered_tools=OFFERED)
    run(asm, [chunk({"content": one + "\n" + one + "\n" + one}), chunk({}, "stop")])
    res = asm.result()
    assert [c.name for c in res.tool_calls] == ["get_weather"] * 3
    assert len({c.id for c in res.tool_calls}) == 3


# ------------------------------------------------------------------ how a reply ends


def test_complete_stream_without_finish_reason_ends_as_stop() -> None:
    # [DONE] arrived but no chunk carried a finish_reason: the caller says it completed.
    asm = ResponseAssembler()
    run(asm, [chunk({"content": "Hi"})], complete=True)
    res = asm.result()
    assert res.finish_reason == "stop"
    assert not res.saw_finish and not asm.saw_finish  # the server did not say so


def test_complete_stream_with_calls_and_no_finish_reason_ends_as_tool_calls() -> None:
    asm = ResponseAssembler()
    run(asm, [chunk({"tool_calls": [call(0, "a", "f", "{}")]})], complete=True)
    res = asm.result()
    assert res.finish_reason == "tool_calls" and [c.name for c in res.tool_calls] == ["f"]


def test_incomplete_stream_without_finish_reason_has_none() -> None:
    asm = ResponseAssembler()
    run(asm, [chunk({"content": "Hi"})])
    assert asm.result().finish_reason is None


def test_complete_does_not_override_a_finish_reason_the_server_sent() -> None:
    asm = ResponseAssembler()
    run(asm, [chunk({"content": "Hi"}), chunk({}, "length")], complete=True)
    assert asm.result().finish_reason == "length"


# ------------------------------------------------------------------ reasoning only at the start


@pytest.mark.parametrize(
    "answer",
    [
        "Strip it with re.sub(r'<think>.*?</think>', '', text).",
        "Qwen3 wraps its reasoning in <think> tags, closed by </think>.",
        "```html\n<think>\n</think>\n```",
    ],
)
@pytest.mark.parametrize("size", [1, 3, 100])
def test_think_tag_inside_an_answer_stays_text(answer: str, size: int) -> None:
    asm = ResponseAssembler()
    pieces = [answer[i : i + size] for i in range(0, len(answer), size)]
    events = run(asm, [chunk({"content": p}) for p in pieces] + [chunk({}, "stop")])
    assert [(b.type, b.text) for b in asm.result().blocks] == [("text", answer)]
    assert shown(events) == answer and not shown(events, "thinking")


def test_think_block_at_the_start_after_whitespace_still_splits() -> None:
    asm = ResponseAssembler()
    run(asm, [chunk({"content": "\n <think>plan</think>"}), chunk({"content": "Answer"})])
    assert [(b.type, b.text) for b in asm.result().blocks] == [
        ("thinking", "plan"),
        ("text", "Answer"),
    ]


# ------------------------------------------------------------------ usage outside `usage`


def test_groq_usage_in_x_groq_on_the_last_chunk() -> None:
    usage = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15, "queue_time": 0.01}
    asm = ResponseAssembler()
    run(
        asm,
        [
            chunk({"role": "assistant", "content": ""}) | {"x_groq": {"id": "req_1"}},
            chunk({"content": "Hi"}),
            chunk({}, "stop") | {"x_groq": {"id": "req_1", "usage": usage}},
        ],
    )
    assert asm.result().usage == usage


def test_top_level_usage_wins_over_x_groq() -> None:
    top = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    groq = {"prompt_tokens": 9, "completion_tokens": 9, "total_tokens": 18}
    asm = ResponseAssembler()
    run(asm, [chunk({}, "stop", usage=top) | {"x_groq": {"usage": groq}}])
    assert asm.result().usage == top


def test_junk_x_groq_is_ignored() -> None:
    asm = ResponseAssembler()
    run(asm, [chunk({}, "stop") | {"x_groq": "fast"}, chunk({}) | {"x_groq": {"usage": 5}}])
    assert asm.result().usage is None


def test_usage_keeps_json_round_trip() -> None:
    # Usage is kept as the wire dict (cost and details are read from it later).
    usage = {"prompt_tokens": 1, "completion_tokens": 1, "cost": 0.5}
    asm = ResponseAssembler()
    run(asm, [chunk({}, "stop") | {"x_groq": {"usage": usage}}])
    assert json.dumps(asm.result().usage) == json.dumps(usage)
