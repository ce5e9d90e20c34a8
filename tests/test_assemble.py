"""ResponseAssembler: one accumulator for every server dialect.

Chunks are written the way each named server sends them (see SERVERS.md).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amplifier_module_provider_chat_completions.reply.arguments import ArgumentsError
from amplifier_module_provider_chat_completions.reply.assemble import (
    BlockEvent,
    InBandError,
    ResponseAssembler,
    normalize_finish_reason,
)

SYNTH_ID = re.compile(r"^call_[0-9a-f]{24}$")


def chunk(delta: dict[str, Any] | None = None, finish: Any = None, **top: Any) -> dict[str, Any]:
    """A standard OpenAI-shaped chunk; `finish` is always written (even null)."""
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [
            {"index": 0, "delta": delta if delta is not None else {}, "finish_reason": finish}
        ],
    }
    body.update(top)
    return body


def tc(
    index: int | None = None,
    id: str | None = None,
    name: str | None = None,
    args: Any = None,
    type_: bool = False,
) -> dict[str, Any]:
    call: dict[str, Any] = {}
    if index is not None:
        call["index"] = index
    if id is not None:
        call["id"] = id
    if type_:
        call["type"] = "function"
    fn: dict[str, Any] = {}
    if name is not None:
        fn["name"] = name
    if args is not None:
        fn["arguments"] = args
    call["function"] = fn
    return call


def feed_all(asm: ResponseAssembler, chunks: list[Any]) -> list[BlockEvent]:
    events: list[BlockEvent] = []
    for c in chunks:
        events.extend(asm.feed_chunk(c))
    events.extend(asm.close())
    return events


def summary(events: list[BlockEvent]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for e in events:
        if e.kind == "delta":
            out.append(("delta", e.index, e.block_type, e.sequence, e.text))
        elif e.kind == "start":
            out.append(("start", e.index, e.block_type, e.name))
        else:
            out.append(("end", e.index, e.block_type))
    return out


def assert_well_formed(events: list[BlockEvent]) -> None:
    """Every block started once, ended once, deltas inside with 0-based sequences."""
    open_: dict[int, int] = {}
    ended: set[int] = set()
    for e in events:
        if e.kind == "start":
            assert e.index not in open_ and e.index not in ended
            open_[e.index] = 0
        elif e.kind == "delta":
            assert e.index in open_ and e.text
            assert e.sequence == open_[e.index]
            open_[e.index] += 1
        else:
            assert e.index in open_
            del open_[e.index]
            ended.add(e.index)
    assert not open_


# --------------------------------------------------------------------------- text/thinking


def test_vllm_text_stream_events_and_usage_trailer() -> None:
    asm = ResponseAssembler()
    chunks = [
        chunk({"role": "assistant", "content": ""}),  # vLLM: first delta content ""
        chunk({"content": "Hel"}),
        chunk({"content": "lo"}),
        chunk({}, "stop"),
        {
            "id": "chatcmpl-1",
            "model": "m",
            "choices": [],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
        },
        "[DONE]",  # a caller bug must not crash the assembler either
    ]
    events = feed_all(asm, chunks)
    assert summary(events) == [
        ("start", 0, "text", None),
        ("delta", 0, "text", 0, "Hel"),
        ("delta", 0, "text", 1, "lo"),
        ("end", 0, "text"),
    ]
    res = asm.result()
    assert [(b.type, b.text) for b in res.blocks] == [("text", "Hello")]
    assert res.usage == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    assert res.finish_reason == "stop"
    assert res.saw_finish and asm.saw_finish and asm.emitted_delta
    assert res.model == "m" and res.response_id == "chatcmpl-1"
    assert res.tool_calls == []


def test_delta_returned_by_the_call_that_parsed_it() -> None:
    asm = ResponseAssembler()
    assert summary(asm.feed_chunk(chunk({"content": "a"}))) == [
        ("start", 0, "text", None),
        ("delta", 0, "text", 0, "a"),
    ]
    assert summary(asm.feed_chunk(chunk({"content": "b"}))) == [("delta", 0, "text", 1, "b")]
    assert asm.feed_chunk(chunk({}, "stop")) == []
    assert summary(asm.close()) == [("end", 0, "text")]
    assert asm.close() == []


def test_llamacpp_reasoning_content_then_text_transition() -> None:
    asm = ResponseAssembler()
    chunks = [
        chunk({"role": "assistant", "content": None}, timings={"predicted_ms": 1.0}),
        chunk({"reasoning_content": "think "}),
        chunk({"reasoning_content": "more"}),
        chunk({"content": "answer"}),
        chunk({}, "stop"),
    ]
    events = feed_all(asm, chunks)
    assert summary(events) == [
        ("start", 0, "thinking", None),
        ("delta", 0, "thinking", 0, "think "),
        ("delta", 0, "thinking", 1, "more"),
        ("end", 0, "thinking"),
        ("start", 1, "text", None),
        ("delta", 1, "text", 0, "answer"),
        ("end", 1, "text"),
    ]
    assert [(b.type, b.text) for b in asm.result().blocks] == [
        ("thinking", "think more"),
        ("text", "answer"),
    ]


def test_vllm_reasoning_field_and_interleaving_in_arrival_order() -> None:
    asm = ResponseAssembler()
    events = feed_all(
        asm,
        [
            chunk({"reasoning": "a"}),
            chunk({"content": "b"}),
            chunk({"reasoning": "c"}),
            chunk({}, "stop"),
        ],
    )
    assert_well_formed(events)
    assert [(b.type, b.text) for b in asm.result().blocks] == [
        ("thinking", "a"),
        ("text", "b"),
        ("thinking", "c"),
    ]
    assert [e.index for e in events if e.kind == "start"] == [0, 1, 2]


def test_vllm_same_reasoning_under_both_names_not_doubled() -> None:
    asm = ResponseAssembler()
    feed_all(asm, [chunk({"reasoning": "x", "reasoning_content": "x"}), chunk({}, "stop")])
    assert [(b.type, b.text) for b in asm.result().blocks] == [("thinking", "x")]


def test_configured_reasoning_fields_only() -> None:
    asm = ResponseAssembler(reasoning_fields=("thoughts",))
    feed_all(asm, [chunk({"thoughts": "t", "reasoning_content": "ignored", "content": "c"})])
    assert [(b.type, b.text) for b in asm.result().blocks] == [("thinking", "t"), ("text", "c")]


def test_ollama_reasoning_and_content_in_separate_chunks_then_truncated() -> None:
    # Ollama on failure: empty chunk, then EOF with no finish chunk.
    asm = ResponseAssembler()
    events = feed_all(asm, [chunk({"reasoning": "r"}), chunk({"content": "partial"}), {}])
    assert_well_formed(events)
    res = asm.result()
    assert not res.saw_finish and not asm.saw_finish
    assert res.finish_reason is None
    assert [(b.type, b.text) for b in res.blocks] == [("thinking", "r"), ("text", "partial")]


def test_empty_fragments_produce_no_events() -> None:
    asm = ResponseAssembler()
    assert (
        asm.feed_chunk(chunk({"role": "assistant", "content": "", "reasoning_content": ""})) == []
    )
    assert asm.close() == []
    assert not asm.emitted_delta
    assert asm.result().blocks == []


def test_content_as_list_of_parts() -> None:
    asm = ResponseAssembler()
    feed_all(
        asm,
        [
            chunk(
                {
                    "content": [
                        {"type": "thinking", "thinking": [{"type": "text", "text": "hm"}]},
                        {"type": "text", "text": "ok"},
                    ]
                }
            )
        ],
    )
    assert [(b.type, b.text) for b in asm.result().blocks] == [("thinking", "hm"), ("text", "ok")]


# --------------------------------------------------------------------------- tool calls


def test_vllm_tool_call_fragments_after_text() -> None:
    asm = ResponseAssembler()
    chunks = [
        chunk({"role": "assistant", "content": "Let me look."}),
        chunk({"tool_calls": [tc(0, "chatcmpl-tool-1", "get_weather", "", type_=True)]}),
        chunk({"tool_calls": [tc(0, args='{"city": ')]}),
        chunk({"tool_calls": [tc(0, args='"Paris"}')]}),
        chunk({}, "tool_calls"),
    ]
    events = feed_all(asm, chunks)
    assert summary(events) == [
        ("start", 0, "text", None),
        ("delta", 0, "text", 0, "Let me look."),
        ("end", 0, "text"),
        ("start", 1, "tool_use", "get_weather"),
        ("end", 1, "tool_use"),
    ]
    res = asm.result()
    assert [b.type for b in res.blocks] == ["text", "tool_call"]
    call = res.tool_calls[0]
    assert res.blocks[1].tool_call is call
    assert (call.id, call.name, call.arguments) == (
        "chatcmpl-tool-1",
        "get_weather",
        {"city": "Paris"},
    )
    assert call.raw_arguments == '{"city": "Paris"}'
    assert res.finish_reason == "tool_calls"


def test_llamacpp_parallel_calls_two_tool_use_blocks_in_index_order() -> None:
    asm = ResponseAssembler()
    chunks = [
        chunk({"tool_calls": [tc(0, "a", "f", '{"x":')]}),
        chunk({"tool_calls": [tc(0, args="1}")]}),
        chunk({"tool_calls": [tc(1, "b", "g", '{"y":2}')]}),
        chunk({}, "tool_calls"),
    ]
    events = feed_all(asm, chunks)
    assert summary(events) == [
        ("start", 0, "tool_use", "f"),
        ("end", 0, "tool_use"),
        ("start", 1, "tool_use", "g"),
        ("end", 1, "tool_use"),
    ]
    res = asm.result()
    assert [(c.id, c.name, c.arguments) for c in res.tool_calls] == [
        ("a", "f", {"x": 1}),
        ("b", "g", {"y": 2}),
    ]


def test_tool_calls_returned_in_index_order_not_arrival_order() -> None:
    asm = ResponseAssembler()
    feed_all(
        asm,
        [
            chunk({"tool_calls": [tc(1, "b", "second", "{}")]}),
            chunk({"tool_calls": [tc(0, "a", "first", "{}")]}),
        ],
    )
    res = asm.result()
    assert [c.name for c in res.tool_calls] == ["first", "second"]
    # Blocks keep arrival order.
    assert [b.tool_call.name for b in res.blocks if b.tool_call] == ["second", "first"]


def test_llama_cpp_python_repeats_id_name_type_every_chunk() -> None:
    asm = ResponseAssembler()
    chunks = [
        chunk({"tool_calls": [tc(0, "call_x", "get_weather", '{"city"', type_=True)]}),
        chunk({"tool_calls": [tc(0, "call_x", "get_weather", ': "Oslo"}', type_=True)]}),
        chunk({}, "tool_calls"),
    ]
    events = feed_all(asm, chunks)
    assert [e.name for e in events if e.kind == "start"] == ["get_weather"]
    call = asm.result().tool_calls[0]
    assert (call.id, call.name, call.arguments) == ("call_x", "get_weather", {"city": "Oslo"})


def test_llama_cpp_python_whole_arguments_repeated_not_appended() -> None:
    asm = ResponseAssembler()
    whole = '{"city": "Oslo"}'
    feed_all(
        asm,
        [
            chunk({"tool_calls": [tc(0, "c", "get_weather", whole)]}),
            chunk({"tool_calls": [tc(0, "c", "get_weather", whole)]}),
            chunk({}, "tool_calls"),
        ],
    )
    call = asm.result().tool_calls[0]
    assert call.arguments == {"city": "Oslo"}
    assert call.raw_arguments == whole


def test_fragment_equal_to_incomplete_prefix_is_still_appended() -> None:
    asm = ResponseAssembler()
    feed_all(
        asm,
        [
            chunk({"tool_calls": [tc(0, "c", "f", '{"a":')]}),
            chunk({"tool_calls": [tc(0, args='{"a":')]}),
            chunk({"tool_calls": [tc(0, args="1}}")]}),
        ],
    )
    assert asm.result().tool_calls[0].arguments == {"a": {"a": 1}}


def test_name_fragments_are_concatenated() -> None:
    asm = ResponseAssembler()
    feed_all(
        asm,
        [
            chunk({"tool_calls": [tc(0, "c", "get_", "")]}),
            chunk({"tool_calls": [tc(0, name="weather", args="{}")]}),
        ],
    )
    assert asm.result().tool_calls[0].name == "get_weather"


def test_ollama_whole_call_in_one_delta() -> None:
    asm = ResponseAssembler()
    events = feed_all(
        asm,
        [
            chunk(
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [tc(0, "call_o1", "get_weather", '{"city":"Rome"}', type_=True)],
                }
            ),
            chunk({}, "tool_calls"),
        ],
    )
    assert summary(events) == [("start", 0, "tool_use", "get_weather"), ("end", 0, "tool_use")]
    call = asm.result().tool_calls[0]
    assert (call.id, call.arguments) == ("call_o1", {"city": "Rome"})


def test_localai_shared_id_repeated_call_and_empty_finish_reason() -> None:
    asm = ResponseAssembler()
    zero = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    cid = "chatcmpl-localai"
    chunks = [
        chunk({"tool_calls": [tc(0, cid, "f", '{"a":1}')]}, "", id=cid, usage=zero),
        chunk({"tool_calls": [tc(1, cid, "g", '{"b":2}')]}, "", id=cid, usage=zero),
        chunk({"tool_calls": [tc(2, cid, "f", '{"a":1}')]}, "", id=cid, usage=zero),
        {"type": "mcp_tool_result", "result": "x"},
        chunk(
            {},
            "tool_calls",
            id=cid,
            usage={"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13},
        ),
        chunk({}, "", id=cid, usage=zero),  # trailing zeros never replace real numbers
    ]
    feed_all(asm, chunks)
    res = asm.result()
    assert [(c.name, c.arguments) for c in res.tool_calls] == [("f", {"a": 1}), ("g", {"b": 2})]
    assert res.tool_calls[0].id == cid
    assert SYNTH_ID.match(res.tool_calls[1].id)
    assert [b.tool_call for b in res.blocks] == res.tool_calls
    assert res.usage == {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}
    assert res.finish_reason == "tool_calls"


def test_old_localai_empty_finish_reason_means_not_finished() -> None:
    asm = ResponseAssembler()
    feed_all(asm, [chunk({"content": "x"}, ""), chunk({"content": "y"}, "")])
    assert not asm.saw_finish
    assert asm.result().finish_reason is None


def test_old_localai_all_zero_usage_is_still_usage() -> None:
    asm = ResponseAssembler()
    zero = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    feed_all(asm, [chunk({"content": "x"}, "", usage=zero), chunk({}, "stop", usage=zero)])
    assert asm.result().usage == zero


def test_localai_zero_usage_then_nonzero_wins() -> None:
    asm = ResponseAssembler()
    zero = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    real = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
    feed_all(asm, [chunk({"content": "x"}, "", usage=zero), chunk({}, "stop", usage=real)])
    assert asm.result().usage == real


def test_ampify_null_finish_on_every_chunk_whole_call_no_usage() -> None:
    asm = ResponseAssembler()
    chunks = [
        chunk({"role": "assistant", "content": "hi"}, None),
        chunk({"tool_calls": [tc(0, "toolu_1", "search", '{"q":"x"}', type_=True)]}, None),
    ]
    feed_all(asm, chunks)
    assert not asm.saw_finish  # model failure: stream stops with null finish reasons only
    res = asm.result()
    assert res.usage is None
    assert res.tool_calls[0].arguments == {"q": "x"}


def test_ampify_finished_stream_without_usage() -> None:
    asm = ResponseAssembler()
    feed_all(asm, [chunk({"content": "hi"}, None), chunk({}, "stop")])
    assert asm.saw_finish
    assert asm.result().usage is None


def test_tgi_object_arguments_empty_id_and_eos_token() -> None:
    asm = ResponseAssembler()
    chunks = [
        chunk(
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": {"city": "Bern"}},
                    }
                ],
            },
            id="",
        ),
        chunk({"role": "assistant", "content": None}, "eos_token", id=""),
    ]
    feed_all(asm, chunks)
    res = asm.result()
    call = res.tool_calls[0]
    assert call.arguments == {"city": "Bern"}
    assert call.raw_arguments == '{"city": "Bern"}'
    assert SYNTH_ID.match(call.id)
    assert res.finish_reason == "tool_calls"  # TGI never says tool_calls
    assert res.response_id is None  # TGI's "" id is not an id
    assert asm.result().tool_calls[0].id == call.id  # stable across result() calls


def test_tgi_ids_0_and_1_are_kept() -> None:
    asm = ResponseAssembler()
    feed_all(
        asm,
        [
            chunk({"tool_calls": [tc(0, "0", "f", "{}")]}),
            chunk({"tool_calls": [tc(1, "1", "g", "{}")]}),
        ],
    )
    assert [c.id for c in asm.result().tool_calls] == ["0", "1"]


def test_tgi_every_call_at_index_0_with_new_id_is_a_new_call() -> None:
    asm = ResponseAssembler()
    feed_all(
        asm,
        [
            chunk({"tool_calls": [tc(0, "0", "f", '{"a":1}')]}),
            chunk({"tool_calls": [tc(0, "1", "g", '{"b":2}')]}),
        ],
    )
    assert [(c.id, c.name) for c in asm.result().tool_calls] == [("0", "f"), ("1", "g")]


def test_object_arguments_after_string_fragments_win() -> None:
    asm = ResponseAssembler()
    feed_all(
        asm,
        [
            chunk({"tool_calls": [tc(0, "c", "f", '{"partial":')]}),
            chunk({"tool_calls": [tc(0, args={"final": True})]}),
        ],
    )
    assert asm.result().tool_calls[0].arguments == {"final": True}


def test_amazon_object_arguments_null_fields_omitted_no_done() -> None:
    asm = ResponseAssembler()
    chunks = [
        {"id": "x", "model": "claude", "choices": [{"index": 0, "delta": {"role": "assistant"}}]},
        {
            "id": "x",
            "model": "claude",
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "tooluse_1",
                                "type": "function",
                                "function": {"name": "f", "arguments": {"k": "v"}},
                            }
                        ]
                    },
                }
            ],
        },
        {
            "id": "x",
            "model": "claude",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_use"}],
        },
    ]
    feed_all(asm, chunks)
    res = asm.result()
    assert res.tool_calls[0].arguments == {"k": "v"}
    assert res.finish_reason == "tool_calls" and res.saw_finish


def test_empty_arguments_mean_empty_dict() -> None:
    asm = ResponseAssembler()
    feed_all(
        asm,
        [chunk({"tool_calls": [tc(0, "a", "now", "")]}), chunk({"tool_calls": [tc(1, "b", "x")]})],
    )
    assert [(c.arguments, c.raw_arguments) for c in asm.result().tool_calls] == [({}, ""), ({}, "")]


def test_missing_index_falls_back_to_id() -> None:
    asm = ResponseAssembler()
    feed_all(
        asm,
        [
            chunk({"tool_calls": [tc(None, "a", "f", '{"x":')]}),
            chunk({"tool_calls": [tc(None, "b", "g", '{"y":')]}),
            chunk({"tool_calls": [tc(None, "a", args="1}")]}),
            chunk({"tool_calls": [tc(None, "b", args="2}")]}),
        ],
    )
    assert [(c.id, c.arguments) for c in asm.result().tool_calls] == [
        ("a", {"x": 1}),
        ("b", {"y": 2}),
    ]


def test_missing_index_and_id_named_delta_starts_next_call() -> None:
    asm = ResponseAssembler()
    feed_all(
        asm,
        [
            chunk({"tool_calls": [tc(name="f", args='{"x":')]}),
            chunk({"tool_calls": [tc(args="1}")]}),
            chunk({"tool_calls": [tc(name="g", args="{}")]}),
        ],
    )
    res = asm.result()
    assert [(c.name, c.arguments) for c in res.tool_calls] == [("f", {"x": 1}), ("g", {})]
    assert len({c.id for c in res.tool_calls}) == 2
    assert all(SYNTH_ID.match(c.id) for c in res.tool_calls)


def test_vllm_named_tool_choice_stop_becomes_tool_calls() -> None:
    asm = ResponseAssembler()
    feed_all(asm, [chunk({"tool_calls": [tc(0, "a", "f", "{}")]}), chunk({}, "stop")])
    assert asm.result().finish_reason == "tool_calls"


@pytest.mark.parametrize("finish", ["end_turn", "content_filter", "something_new"])
def test_any_other_finish_with_tool_calls_is_tool_calls(finish: str) -> None:
    # "length" is the exception: a cut reply runs no calls (test_assemble_policies.py).
    asm = ResponseAssembler()
    feed_all(asm, [chunk({"tool_calls": [tc(0, "a", "f", "{}")]}), chunk({}, finish)])
    assert asm.result().finish_reason == "tool_calls"


def test_invalid_arguments_raise_arguments_error_from_result() -> None:
    asm = ResponseAssembler()
    feed_all(asm, [chunk({"tool_calls": [tc(0, "a", "f", "not json at all")]})])
    with pytest.raises(ArgumentsError):
        asm.result()


def test_legacy_function_call_delta() -> None:
    asm = ResponseAssembler()
    feed_all(
        asm,
        [
            chunk({"function_call": {"name": "f", "arguments": '{"a":'}}),
            chunk({"function_call": {"arguments": "1}"}}),
            chunk({}, "function_call"),
        ],
    )
    res = asm.result()
    assert [(c.name, c.arguments) for c in res.tool_calls] == [("f", {"a": 1})]
    assert res.finish_reason == "tool_calls"


def test_text_after_tool_call_ends_tool_block() -> None:
    asm = ResponseAssembler()
    events = feed_all(
        asm, [chunk({"tool_calls": [tc(0, "a", "f", "{}")]}), chunk({"content": "done"})]
    )
    assert summary(events) == [
        ("start", 0, "tool_use", "f"),
        ("end", 0, "tool_use"),
        ("start", 1, "text", None),
        ("delta", 1, "text", 0, "done"),
        ("end", 1, "text"),
    ]


# --------------------------------------------------------------------------- usage


def test_litellm_usage_chunk_with_nonempty_choices() -> None:
    asm = ResponseAssembler()
    usage = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    feed_all(
        asm,
        [
            chunk({"content": "x"}, provider_specific_fields={}),
            chunk({}, "stop"),
            {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {}}], "usage": usage},
        ],
    )
    assert asm.result().usage == usage


def test_llamacpp_old_usage_in_finish_chunk() -> None:
    asm = ResponseAssembler()
    usage = {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}
    feed_all(asm, [chunk({"content": "x"}), chunk({}, "stop", usage=usage)])
    assert asm.result().usage == usage


def test_sglang_sglext_chunk_skipped() -> None:
    asm = ResponseAssembler()
    events = feed_all(
        asm, [chunk({"content": "x"}), {"id": "c", "choices": [], "sglext": {"k": 1}}]
    )
    assert [b.text for b in asm.result().blocks] == ["x"]
    assert_well_formed(events)


def test_no_usage_is_none() -> None:
    asm = ResponseAssembler()
    feed_all(asm, [chunk({"content": "x"}, "stop", usage=None)])
    assert asm.result().usage is None


# --------------------------------------------------------------------------- errors, junk


def test_vllm_in_band_error_object_raises() -> None:
    asm = ResponseAssembler()
    asm.feed_chunk(chunk({"content": "x"}))
    payload = {"error": {"message": "boom", "type": "InternalServerError", "code": 500}}
    with pytest.raises(InBandError) as info:
        asm.feed_chunk(payload)
    assert info.value.payload is payload
    assert "boom" in str(info.value)


def test_tgi_in_band_error_string_raises() -> None:
    payload = {"error": "Request failed during generation", "error_type": "generation"}
    with pytest.raises(InBandError) as info:
        ResponseAssembler().feed_chunk(payload)
    assert info.value.payload is payload


def test_sglang_object_error_shape_raises() -> None:
    with pytest.raises(InBandError):
        ResponseAssembler().feed_chunk({"object": "error", "message": "bad", "code": 400})


def test_error_in_non_streaming_body_raises() -> None:
    with pytest.raises(InBandError):
        ResponseAssembler().feed_body({"error": {"message": "x"}})


@pytest.mark.parametrize(
    "junk",
    [
        None,
        "text",
        42,
        [1, 2],
        {"choices": "nope"},
        {"choices": [None]},
        {"choices": [{"delta": None}]},
        {"choices": [{"delta": "str"}]},
        {"choices": [{"delta": {"content": 5, "reasoning_content": ["x"]}}]},
        {"choices": [{"delta": {"tool_calls": "x"}}]},
        {"choices": [{"delta": {"tool_calls": [None, 3, {"function": "f"}]}}]},
        {
            "choices": [
                {
                    "delta": {
                        "tool_calls": [
                            {"index": "0", "id": 7, "function": {"name": 3, "arguments": [1]}}
                        ]
                    }
                }
            ]
        },
        {"choices": [{"delta": {"content": [None, 1, {"type": "text", "text": 2}]}}]},
        {"choices": [{"delta": {}, "finish_reason": 7}]},
        {"usage": "lots", "model": 3, "id": []},
    ],
)
def test_junk_never_raises(junk: Any) -> None:
    asm = ResponseAssembler()
    events = asm.feed_chunk(junk)
    events += asm.close()
    assert_well_formed(events)
    res = asm.result()
    assert res.finish_reason is None and res.usage is None and res.model is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("stop", "stop"),
        ("eos_token", "stop"),
        ("stop_sequence", "stop"),
        ("end_turn", "stop"),
        ("eos", "stop"),
        ("max_tokens", "length"),
        ("max_length", "length"),
        ("length", "length"),
        ("function_call", "tool_calls"),
        ("tool_calls", "tool_calls"),
        ("content_filter", "content_filter"),
        ("", None),
        (None, None),
        ("repetition", "repetition"),  # unknown: kept as sent
    ],
)
def test_finish_reason_normalization(raw: Any, expected: str | None) -> None:
    assert normalize_finish_reason(raw) == expected
    asm = ResponseAssembler()
    asm.feed_chunk(chunk({"content": "x"}, raw))
    assert asm.result().finish_reason == expected
    assert asm.saw_finish is (expected is not None)


# --------------------------------------------------------------------------- non-streaming


def test_non_streaming_body_same_normalization_no_events() -> None:
    asm = ResponseAssembler()
    body = {
        "id": "chatcmpl-9",
        "object": "chat.completion",
        "model": "served",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "reasoning_content": "because",
                    "content": "calling",
                    "tool_calls": [
                        {
                            "id": "a",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"x":1}'},
                        },
                        {
                            "id": "a",
                            "type": "function",
                            "function": {"name": "g", "arguments": {"y": 2}},
                        },
                        {
                            "id": "a",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"x":1}'},
                        },
                    ],
                },
                "finish_reason": "eos_token",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }
    asm.feed_body(body)
    assert not asm.emitted_delta
    assert asm.close() == []  # no events, even at close
    res = asm.result()
    assert [b.type for b in res.blocks] == ["thinking", "text", "tool_call", "tool_call"]
    assert [b.text for b in res.blocks[:2]] == ["because", "calling"]
    assert [(c.name, c.arguments) for c in res.tool_calls] == [("f", {"x": 1}), ("g", {"y": 2})]
    assert res.tool_calls[0].id == "a" and SYNTH_ID.match(res.tool_calls[1].id)
    assert res.finish_reason == "tool_calls"
    assert res.saw_finish
    assert res.usage == body["usage"]
    assert (res.model, res.response_id) == ("served", "chatcmpl-9")


def test_non_streaming_plain_text() -> None:
    asm = ResponseAssembler()
    asm.feed_body({"choices": [{"message": {"content": "hi"}, "finish_reason": "max_tokens"}]})
    res = asm.result()
    assert [(b.type, b.text) for b in res.blocks] == [("text", "hi")]
    assert res.finish_reason == "length" and res.usage is None


def test_non_streaming_junk_body() -> None:
    asm = ResponseAssembler()
    asm.feed_body("nope")
    asm.feed_body({"choices": [{"message": None}]})
    assert asm.result().blocks == []


def test_tgi_single_tool_call_object_not_wrapped_in_list() -> None:
    # Older TGI streams `tool_calls` as one object instead of a list.
    asm = ResponseAssembler()
    chunks = [
        chunk(
            {
                "role": "assistant",
                "tool_calls": {
                    "index": 0,
                    "id": "",
                    "type": "function",
                    "function": {"name": "f", "arguments": '{"a"'},
                },
            }
        ),
        chunk(
            {
                "role": "assistant",
                "tool_calls": {
                    "index": 0,
                    "id": "",
                    "type": "function",
                    "function": {"name": None, "arguments": ":1}"},
                },
            }
        ),
        chunk({"role": "assistant"}, "eos_token"),
    ]
    feed_all(asm, chunks)
    res = asm.result()
    assert [(c.name, c.arguments) for c in res.tool_calls] == [("f", {"a": 1})]
    assert res.finish_reason == "tool_calls"


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "choices",
                    "delta",
                    "message",
                    "content",
                    "reasoning",
                    "reasoning_content",
                    "tool_calls",
                    "function",
                    "name",
                    "arguments",
                    "index",
                    "id",
                    "usage",
                    "finish_reason",
                    "model",
                    "type",
                ]
            ),
            inner,
            max_size=5,
        )
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_json, max_size=6))
def test_fuzz_junk_chunks_only_clean_errors(chunks: list[Any]) -> None:
    asm = ResponseAssembler()
    events: list[BlockEvent] = []
    try:
        for c in chunks:
            events.extend(asm.feed_chunk(c))
    except InBandError:
        return
    events.extend(asm.close())
    assert_well_formed(events)
    try:
        res = asm.result()
    except ArgumentsError:
        return
    assert all(b.text or b.tool_call for b in res.blocks)
    assert len({c.id for c in res.tool_calls}) == len(res.tool_calls)
