"""Amplifier -> wire conversion: exact request bodies."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from amplifier_core.message_models import (
    ChatRequest,
    ImageBlock,
    Message,
    ReasoningBlock,
    RedactedThinkingBlock,
    ResponseFormatJson,
    ResponseFormatJsonSchema,
    ResponseFormatText,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
    ToolResultBlock,
    ToolSpec,
)

from amplifier_module_provider_chat_completions.request.convert import (
    BodyDefaults,
    ConversionError,
    build_request_body,
    dumps_body,
    messages_to_wire,
    serialize_tool_output,
    tool_arguments_json,
)


@dataclass(frozen=True)
class Cfg:
    default_model: str | None = "cfg-model"
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    seed: int | None = None
    parallel_tool_calls: bool | None = None
    extra_body: dict[str, Any] = field(default_factory=dict)


def _cfg(**kwargs: Any) -> BodyDefaults:
    return Cfg(**kwargs)


def user(text: str) -> Message:
    return Message(role="user", content=text)


HI = [user("hi")]
WIRE_HI = [{"role": "user", "content": "hi"}]
TOOL = ToolSpec(name="get_weather", description="Weather", parameters={"type": "object"})
WIRE_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object"}},
}


def body(stream: bool = False, cfg: BodyDefaults | None = None, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("messages", HI)
    return build_request_body(ChatRequest(**kwargs), cfg or _cfg(), stream=stream)


# ---------------------------------------------------------------------------
# messages_to_wire: plain roles


def test_string_roles_pass_through_in_order() -> None:
    messages = [
        Message(role="system", content="sys"),
        Message(role="user", content="u1"),
        Message(role="assistant", content="a1"),
        Message(role="user", content="u2"),
    ]
    assert messages_to_wire(messages) == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "u1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "u2"},
    ]


def test_developer_becomes_wrapped_user_message_in_place() -> None:
    messages = [
        Message(role="system", content="sys"),
        Message(role="user", content="u1"),
        Message(role="developer", content="ctx"),
        Message(role="developer", content=[TextBlock(text="a"), TextBlock(text="b")]),
        Message(role="system", content="late system"),
    ]
    assert messages_to_wire(messages) == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "u1"},
        {"role": "user", "content": "<context_file>\nctx\n</context_file>"},
        {"role": "user", "content": "<context_file>\na\nb\n</context_file>"},
        {"role": "system", "content": "late system"},
    ]


def test_developer_with_image_keeps_order_inside_tags() -> None:
    source = {"type": "url", "url": "https://x/i.png"}
    messages = [Message(role="developer", content=[TextBlock(text="t"), ImageBlock(source=source)])]
    assert messages_to_wire(messages) == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "<context_file>"},
                {"type": "text", "text": "t"},
                {"type": "image_url", "image_url": {"url": "https://x/i.png"}},
                {"type": "text", "text": "</context_file>"},
            ],
        }
    ]


def test_text_blocks_joined_for_user_and_system() -> None:
    messages = [
        Message(role="system", content=[TextBlock(text="s1"), TextBlock(text="s2")]),
        Message(role="user", content=[TextBlock(text="u1"), TextBlock(text="u2")]),
    ]
    assert messages_to_wire(messages) == [
        {"role": "system", "content": "s1\ns2"},
        {"role": "user", "content": "u1\nu2"},
    ]


def test_images_both_sources_become_content_parts() -> None:
    messages = [
        Message(
            role="user",
            content=[
                TextBlock(text="look"),
                ImageBlock(source={"type": "base64", "media_type": "image/jpeg", "data": "QUJD"}),
                ImageBlock(source={"type": "url", "url": "https://example.com/cat.png"}),
                TextBlock(text="and this"),
            ],
        )
    ]
    assert messages_to_wire(messages) == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                {"type": "text", "text": "and this"},
            ],
        }
    ]


def test_unusable_image_and_unknown_blocks_are_skipped() -> None:
    messages = [
        Message(
            role="user",
            content=[
                ImageBlock(source={"type": "base64", "media_type": "image/png"}),  # no data
                ImageBlock(source={"type": "weird"}),
                ThinkingBlock(thinking="hmm"),
                TextBlock(text="ok"),
            ],
        )
    ]
    assert messages_to_wire(messages) == [{"role": "user", "content": "ok"}]


def test_dict_blocks_and_unknown_dict_types_do_not_crash() -> None:
    message = Message.model_construct(
        role="user",
        content=[{"type": "text", "text": "a"}, {"type": "audio", "data": "x"}, {"no": "type"}],
    )
    assert messages_to_wire([message]) == [{"role": "user", "content": "a"}]


def test_empty_content_list_and_none_content_give_empty_string() -> None:
    messages = [
        Message(role="user", content=[]),
        Message.model_construct(role="system", content=None),
        Message(role="assistant", content=[]),
    ]
    assert messages_to_wire(messages) == [
        {"role": "user", "content": ""},
        {"role": "system", "content": ""},
        {"role": "assistant", "content": ""},
    ]


def test_name_passed_for_user_only() -> None:
    messages = [
        Message(role="user", content="hi", name="alice"),
        Message(role="user", content="hi"),
        Message(role="system", content="s", name="ignored"),
        Message(role="assistant", content="a", name="ignored"),
    ]
    assert messages_to_wire(messages) == [
        {"role": "user", "content": "hi", "name": "alice"},
        {"role": "user", "content": "hi"},
        {"role": "system", "content": "s"},
        {"role": "assistant", "content": "a"},
    ]


# ---------------------------------------------------------------------------
# assistant


def test_assistant_tool_only_has_empty_string_content_and_thinking_dropped() -> None:
    message = Message(
        role="assistant",
        content=[
            ThinkingBlock(thinking="secret", signature="sig"),
            RedactedThinkingBlock(data="xx"),
            ReasoningBlock(content=["enc"], summary=[]),
            ToolCallBlock(id="c1", name="read", input={"path": "ä.txt", "n": 1}),
            ToolCallBlock(id="c2", name="list", input={}),
        ],
    )
    assert messages_to_wire([message]) == [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "read", "arguments": '{"path":"ä.txt","n":1}'},
                },
                {"id": "c2", "type": "function", "function": {"name": "list", "arguments": "{}"}},
            ],
        }
    ]


def test_assistant_text_joined_with_tool_calls() -> None:
    message = Message(
        role="assistant",
        content=[
            TextBlock(text="one"),
            ThinkingBlock(thinking="t"),
            TextBlock(text="two"),
            ToolCallBlock(id="c1", name="f", input={"a": [1, 2]}),
        ],
    )
    assert messages_to_wire([message]) == [
        {
            "role": "assistant",
            "content": "one\ntwo",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "f", "arguments": '{"a":[1,2]}'},
                }
            ],
        }
    ]


def test_assistant_string_input_arguments() -> None:
    blocks = [
        ToolCallBlock.model_construct(type="tool_call", id="a", name="f", input='{"x": 1}'),
        ToolCallBlock.model_construct(type="tool_call", id="b", name="f", input="{broken"),
        ToolCallBlock.model_construct(type="tool_call", id="c", name="f", input="  "),
        ToolCallBlock.model_construct(type="tool_call", id="d", name="f", input=None),
    ]
    wire = messages_to_wire([Message.model_construct(role="assistant", content=blocks)])
    arguments = [call["function"]["arguments"] for call in wire[0]["tool_calls"]]
    assert arguments == ['{"x": 1}', '"{broken"', "{}", "{}"]


def test_assistant_extra_tool_calls_openai_and_toolcall_shapes() -> None:
    message = Message(
        role="assistant",
        content="",
        tool_calls=[
            {"id": "o1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}},
            {"id": "t1", "name": "g", "arguments": {"b": 2}},
        ],
    )
    assert messages_to_wire([message]) == [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "o1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}},
                {"id": "t1", "type": "function", "function": {"name": "g", "arguments": '{"b":2}'}},
            ],
        }
    ]


def test_extra_tool_calls_sharing_one_id_are_all_kept() -> None:
    # LocalAI gives every call of a response the same id; the orchestrators store them as
    # extra tool_calls.
    message = Message(
        role="assistant",
        content="",
        tool_calls=[
            {"id": "call_0", "tool": "f", "arguments": {"a": 1}},
            {"id": "call_0", "tool": "g", "arguments": {"b": 2}},
        ],
    )
    calls = messages_to_wire([message])[0]["tool_calls"]
    assert [(c["id"], c["function"]["name"]) for c in calls] == [("call_0", "f"), ("call_0", "g")]


def test_extra_tool_calls_do_not_duplicate_blocks() -> None:
    message = Message(
        role="assistant",
        content=[ToolCallBlock(id="c1", name="f", input={})],
        tool_calls=[{"id": "c1", "name": "f", "arguments": {}}, {"id": "c2", "name": "g"}],
    )
    ids = [call["id"] for call in messages_to_wire([message])[0]["tool_calls"]]
    assert ids == ["c1", "c2"]


def test_tool_call_without_id_is_a_conversion_error_naming_the_index() -> None:
    bad = Message(role="assistant", content="", tool_calls=[{"name": "f", "arguments": "{}"}])
    with pytest.raises(ConversionError) as info:
        messages_to_wire([user("a"), bad])
    assert info.value.index == 1
    assert "message 1" in str(info.value)
    assert isinstance(info.value, ValueError)


# ---------------------------------------------------------------------------
# tool results


def test_several_results_in_one_message_all_survive_in_order() -> None:
    messages = [
        Message(
            role="tool",
            content=[
                ToolResultBlock(tool_call_id="c1", output="one"),
                ToolResultBlock(tool_call_id="c2", output={"success": True, "output": "two"}),
                ToolResultBlock(tool_call_id="c3", output=[1, "x", None]),
            ],
        )
    ]
    assert messages_to_wire(messages) == [
        {"role": "tool", "tool_call_id": "c1", "content": "one"},
        {"role": "tool", "tool_call_id": "c2", "content": '{"success":true,"output":"two"}'},
        {"role": "tool", "tool_call_id": "c3", "content": '[1,"x",null]'},
    ]


def test_tool_message_with_string_content_and_id() -> None:
    messages = [Message(role="tool", content="result", tool_call_id="c9")]
    assert messages_to_wire(messages) == [
        {"role": "tool", "tool_call_id": "c9", "content": "result"}
    ]


def test_tool_message_text_blocks_with_id() -> None:
    messages = [
        Message(role="tool", content=[TextBlock(text="a"), TextBlock(text="b")], tool_call_id="c")
    ]
    assert messages_to_wire(messages) == [{"role": "tool", "tool_call_id": "c", "content": "a\nb"}]


def test_function_role_treated_like_tool() -> None:
    messages = [Message(role="function", content="r", tool_call_id="c1", name="f")]
    assert messages_to_wire(messages) == [{"role": "tool", "tool_call_id": "c1", "content": "r"}]


def test_tool_message_without_any_id_is_a_conversion_error() -> None:
    with pytest.raises(ConversionError) as info:
        messages_to_wire([Message(role="tool", content="r")])
    assert info.value.index == 0


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("plain", "plain"),
        ({"a": "ü"}, '{"a":"ü"}'),
        ([1, 2], "[1,2]"),
        (3, "3"),
        (2.5, "2.5"),
        (True, "true"),
        (None, "null"),
        (
            {"success": False, "output": None, "error": "x"},
            '{"success":false,"output":null,"error":"x"}',
        ),
    ],
)
def test_output_serialization_is_json_never_repr(output: Any, expected: str) -> None:
    assert serialize_tool_output(output) == expected
    wire = messages_to_wire(
        [Message(role="tool", content=[ToolResultBlock(tool_call_id="c", output=output)])]
    )
    assert wire == [{"role": "tool", "tool_call_id": "c", "content": expected}]


def test_output_with_non_json_values_uses_json_not_repr() -> None:
    result = serialize_tool_output({"block": TextBlock(text="t"), "raw": b"xy", "tags": ("a",)})
    assert json.loads(result) == {
        "block": {"type": "text", "text": "t", "visibility": None},
        "raw": "xy",
        "tags": ["a"],
    }


def test_anthropic_style_results_in_user_message_become_tool_messages_then_user_text() -> None:
    messages = [
        Message(
            role="assistant",
            content=[
                ToolCallBlock(id="c1", name="f", input={}),
                ToolCallBlock(id="c2", name="g", input={}),
            ],
        ),
        Message(
            role="user",
            content=[
                ToolResultBlock(tool_call_id="c1", output="r1"),
                TextBlock(text="also this"),
                ToolResultBlock(tool_call_id="c2", output={"k": 1}),
            ],
        ),
        Message(role="user", content=[ToolResultBlock(tool_call_id="c3", output="only")]),
    ]
    wire = messages_to_wire(messages)
    assert wire[1:] == [
        {"role": "tool", "tool_call_id": "c1", "content": "r1"},
        {"role": "tool", "tool_call_id": "c2", "content": '{"k":1}'},
        {"role": "user", "content": "also this"},
        {"role": "tool", "tool_call_id": "c3", "content": "only"},
    ]


# ---------------------------------------------------------------------------
# legacy functions API


def test_legacy_function_call_and_function_result_pair_up() -> None:
    messages = [
        user("weather?"),
        Message(
            role="assistant",
            content="",
            function_call={"name": "get_weather", "arguments": '{"city":"Paris"}'},
        ),
        Message(role="function", name="get_weather", content='{"temp": 20}'),
        Message(role="assistant", content="20 degrees"),
    ]
    wire = messages_to_wire(messages)
    call_id = wire[1]["tool_calls"][0]["id"]
    assert isinstance(call_id, str) and call_id
    assert wire == [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": '{"temp": 20}'},
        {"role": "assistant", "content": "20 degrees"},
    ]
    assert messages_to_wire(messages) == wire  # same id every time: prompt caches hold


def test_function_results_without_ids_answer_the_open_calls_by_name() -> None:
    messages = [
        Message(
            role="assistant",
            content=[
                ToolCallBlock(id="c1", name="f", input={}),
                ToolCallBlock(id="c2", name="g", input={}),
            ],
        ),
        Message(role="function", name="g", content="from g"),
        Message(role="function", name="f", content="from f"),
    ]
    assert messages_to_wire(messages)[1:] == [
        {"role": "tool", "tool_call_id": "c2", "content": "from g"},
        {"role": "tool", "tool_call_id": "c1", "content": "from f"},
    ]


def test_function_result_answering_no_call_is_sent_as_user_text() -> None:
    messages = [user("q"), Message(role="function", name="lookup", content="42")]
    assert messages_to_wire(messages) == [
        {"role": "user", "content": "q"},
        {"role": "user", "content": "Result of function lookup:\n42"},
    ]


# ---------------------------------------------------------------------------
# images in tool results

PNG = {"type": "base64", "media_type": "image/png", "data": "QUJD"}
PNG_URL = "data:image/png;base64,QUJD"
NOTE = "(image: in the next message)"
TWO_CALLS = Message(
    role="assistant",
    content=[
        ToolCallBlock(id="c1", name="screenshot", input={}),
        ToolCallBlock(id="c2", name="f", input={}),
    ],
)


def image_follow_up(*calls: tuple[str, int]) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    for call_id, count in calls:
        parts.append({"type": "text", "text": f"Image returned by tool call {call_id}:"})
        parts.extend([{"type": "image_url", "image_url": {"url": PNG_URL}}] * count)
    return {"role": "user", "content": parts}


@pytest.mark.parametrize(
    "output",
    [
        ImageBlock(source=PNG),
        {"type": "image", "source": PNG},
        [ImageBlock(source=PNG)],
    ],
)
def test_image_output_of_a_tool_result_follows_the_results(output: Any) -> None:
    messages = [
        TWO_CALLS,
        Message(role="tool", content=[ToolResultBlock(tool_call_id="c1", output=output)]),
        Message(role="tool", content="done", tool_call_id="c2"),
        user("next"),
    ]
    assert messages_to_wire(messages)[1:] == [
        {"role": "tool", "tool_call_id": "c1", "content": "(image: in the next message)"},
        {"role": "tool", "tool_call_id": "c2", "content": "done"},
        image_follow_up(("c1", 1)),
        {"role": "user", "content": "next"},
    ]


def test_text_and_images_of_a_tool_message_are_both_sent() -> None:
    messages = [
        TWO_CALLS,
        Message(
            role="tool",
            tool_call_id="c1",
            content=[TextBlock(text="two shots"), ImageBlock(source=PNG), ImageBlock(source=PNG)],
        ),
        Message(
            role="tool",
            content=[
                ToolResultBlock(
                    tool_call_id="c2", output=[TextBlock(text="one"), ImageBlock(source=PNG)]
                )
            ],
        ),
    ]
    assert messages_to_wire(messages)[1:] == [
        {"role": "tool", "tool_call_id": "c1", "content": f"two shots\n{NOTE}"},
        {"role": "tool", "tool_call_id": "c2", "content": f"one\n{NOTE}"},
        image_follow_up(("c1", 2), ("c2", 1)),
    ]


def test_tool_image_in_an_anthropic_style_user_message_precedes_its_text() -> None:
    messages = [
        TWO_CALLS,
        Message(
            role="user",
            content=[
                ToolResultBlock(tool_call_id="c1", output=ImageBlock(source=PNG)),
                ToolResultBlock(tool_call_id="c2", output="ok"),
                TextBlock(text="what do you see?"),
            ],
        ),
    ]
    assert messages_to_wire(messages)[1:] == [
        {"role": "tool", "tool_call_id": "c1", "content": "(image: in the next message)"},
        {"role": "tool", "tool_call_id": "c2", "content": "ok"},
        image_follow_up(("c1", 1)),
        {"role": "user", "content": "what do you see?"},
    ]


def test_tool_output_blocks_without_an_image_stay_json() -> None:
    output = [TextBlock(text="t"), {"type": "image", "source": {"type": "weird"}}]
    wire = messages_to_wire(
        [Message(role="tool", content=[ToolResultBlock(tool_call_id="c", output=output)])]
    )
    assert wire == [{"role": "tool", "tool_call_id": "c", "content": serialize_tool_output(output)}]


def test_unknown_role_is_conversion_error() -> None:
    with pytest.raises(ConversionError) as info:
        messages_to_wire([user("a"), Message.model_construct(role="robot", content="x")])
    assert info.value.index == 1


def test_bad_content_type_is_conversion_error() -> None:
    with pytest.raises(ConversionError):
        messages_to_wire([Message.model_construct(role="user", content=42)])


# ---------------------------------------------------------------------------
# hostile text


def test_lone_surrogates_are_replaced_and_body_encodes() -> None:
    messages = [
        Message(role="user", content="bad \ud800 pair \ud83d\ude00"),
        Message(role="assistant", content=[ToolCallBlock(id="c", name="f", input={"s": "\udcff"})]),
        Message(role="tool", content=[ToolResultBlock(tool_call_id="c", output="x\udc80y")]),
    ]
    raw = dumps_body({"messages": messages_to_wire(messages)})
    wire = json.loads(raw.decode("utf-8"))["messages"]
    assert wire[0]["content"] == "bad \ufffd pair \U0001f600"
    assert json.loads(wire[1]["tool_calls"][0]["function"]["arguments"]) == {"s": "\ufffd"}
    assert wire[2]["content"] == "x\ufffdy"


def test_dumps_body_survives_surrogates_in_extra_body() -> None:
    raw = dumps_body({"x": "\ud800"})
    assert raw == '{"x":"\ufffd"}'.encode()


def test_dumps_body_is_compact_utf8() -> None:
    assert dumps_body({"a": [1, {"b": "é"}]}) == '{"a":[1,{"b":"é"}]}'.encode()


def test_tool_arguments_json_forms() -> None:
    assert tool_arguments_json({"a": "é"}) == '{"a":"é"}'
    assert tool_arguments_json('{"a": 1}') == '{"a": 1}'
    assert tool_arguments_json("nope") == '"nope"'
    assert tool_arguments_json("") == "{}"
    assert tool_arguments_json(None) == "{}"


def test_large_history_converts_fast() -> None:
    chunk = "x" * 3000
    messages: list[Message] = [Message(role="system", content="s")]
    for i in range(150):
        messages.append(user(chunk))
        messages.append(
            Message(
                role="assistant",
                content=[
                    TextBlock(text=chunk),
                    ToolCallBlock(id=f"c{i}", name="f", input={"p": chunk}),
                ],
            )
        )
        messages.append(
            Message(role="tool", content=[ToolResultBlock(tool_call_id=f"c{i}", output=chunk)])
        )
        messages.append(Message(role="assistant", content=chunk))
    request = ChatRequest(messages=messages)
    start = time.perf_counter()
    raw = dumps_body(build_request_body(request, _cfg(), stream=True))
    elapsed = time.perf_counter() - start
    assert len(raw) > 1_500_000
    assert len(json.loads(raw)["messages"]) == 601
    assert elapsed < 2.0  # generous sanity bound; it takes a few ms


# ---------------------------------------------------------------------------
# build_request_body


def test_minimal_body_non_streaming_is_exact() -> None:
    assert body() == {"model": "cfg-model", "messages": WIRE_HI}


def test_streaming_adds_stream_and_usage_option() -> None:
    assert body(stream=True) == {
        "model": "cfg-model",
        "messages": WIRE_HI,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_every_config_value_is_sent() -> None:
    cfg = _cfg(
        temperature=0.2,
        top_p=0.9,
        max_tokens=512,
        stop=["END"],
        seed=7,
        parallel_tool_calls=False,
        extra_body={"top_k": 20},
    )
    assert body(cfg=cfg, tools=[TOOL]) == {
        "model": "cfg-model",
        "messages": WIRE_HI,
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 512,
        "stop": ["END"],
        "seed": 7,
        "tools": [WIRE_TOOL],
        "parallel_tool_calls": False,
        "top_k": 20,
    }


def test_request_values_override_config() -> None:
    cfg = _cfg(temperature=0.2, top_p=0.9, max_tokens=512, stop=["END"])
    got = body(
        cfg=cfg,
        model="req-model",
        temperature=0.0,
        top_p=0.5,
        max_output_tokens=64,
        stop=["STOP", "HALT"],
        reasoning_effort="high",
    )
    assert got == {
        "model": "req-model",
        "messages": WIRE_HI,
        "temperature": 0.0,
        "top_p": 0.5,
        "max_tokens": 64,
        "stop": ["STOP", "HALT"],
        "reasoning_effort": "high",
    }


def test_empty_stop_falls_back_and_is_omitted_when_empty() -> None:
    assert body(cfg=_cfg(stop=["X"]), stop=[])["stop"] == ["X"]
    assert "stop" not in body(cfg=_cfg(stop=[]), stop=[])


def test_parallel_tool_calls_only_with_tools() -> None:
    assert "parallel_tool_calls" not in body(cfg=_cfg(parallel_tool_calls=True))
    assert body(cfg=_cfg(parallel_tool_calls=True), tools=[TOOL])["parallel_tool_calls"] is True


def test_tool_description_and_parameters_always_sent() -> None:
    tools = [
        ToolSpec(name="bare", parameters={}),
        ToolSpec(
            name="d", description=None, parameters={"type": "object", "properties": {"a": {}}}
        ),
    ]
    assert body(tools=tools)["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "bare",
                "description": "",
                "parameters": {"type": "object", "properties": {}},
            },
        },
        {
            "type": "function",
            "function": {
                "name": "d",
                "description": "",
                "parameters": {"type": "object", "properties": {"a": {}}},
            },
        },
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        ("REQUIRED", "required"),
        ("any", "required"),
        ("get_weather", {"type": "function", "function": {"name": "get_weather"}}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"type": "function", "function": {"name": "get_weather"}},
        ),
        (
            {"type": "tool", "name": "get_weather"},
            {"type": "function", "function": {"name": "get_weather"}},
        ),
        (
            {"type": "function", "name": "get_weather"},
            {"type": "function", "function": {"name": "get_weather"}},
        ),
        ({"custom": 1}, {"custom": 1}),
    ],
)
def test_tool_choice_forms(choice: Any, expected: Any) -> None:
    assert body(tools=[TOOL], tool_choice=choice) == {
        "model": "cfg-model",
        "messages": WIRE_HI,
        "tools": [WIRE_TOOL],
        "tool_choice": expected,
    }


def test_tool_choice_omitted_without_tools_or_when_none() -> None:
    assert body(tool_choice="required") == {"model": "cfg-model", "messages": WIRE_HI}
    assert "tool_choice" not in body(tools=[TOOL])
    assert "tool_choice" not in body(tools=[TOOL], tool_choice="")


def test_response_format_text_omitted() -> None:
    assert body(response_format=ResponseFormatText()) == {"model": "cfg-model", "messages": WIRE_HI}


def test_response_format_json_object() -> None:
    assert body(response_format=ResponseFormatJson())["response_format"] == {"type": "json_object"}


def test_response_format_json_schema_with_title_and_strict() -> None:
    schema = {"title": "Weather Report", "type": "object", "properties": {"t": {"type": "number"}}}
    got = body(response_format=ResponseFormatJsonSchema(json_schema=schema, strict=True))
    assert got["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "Weather_Report", "schema": schema, "strict": True},
    }


def test_response_format_json_schema_without_title_or_strict() -> None:
    schema = {"type": "object"}
    got = body(response_format=ResponseFormatJsonSchema(json_schema=schema))
    assert got["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": {"type": "object"}},
    }


def test_response_format_json_schema_already_wrapped_is_not_nested() -> None:
    wrapped = {"name": "out", "schema": {"type": "object"}, "strict": False}
    got = body(response_format=ResponseFormatJsonSchema(json_schema=wrapped))
    assert got["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": False},
    }


def test_extra_body_merged_last_and_wins() -> None:
    cfg = _cfg(
        temperature=0.3, extra_body={"temperature": 1.5, "stream_options": {"x": 1}, "top_k": 5}
    )
    assert body(stream=True, cfg=cfg) == {
        "model": "cfg-model",
        "messages": WIRE_HI,
        "temperature": 1.5,
        "stream": True,
        "stream_options": {"x": 1},
        "top_k": 5,
    }


def test_seed_omitted_when_none_and_sent_when_zero() -> None:
    assert "seed" not in body()
    assert body(cfg=_cfg(seed=0))["seed"] == 0


def test_model_none_when_nothing_configured() -> None:
    assert body(cfg=_cfg(default_model=None))["model"] is None


def test_body_does_not_mutate_request_or_config() -> None:
    cfg = _cfg(extra_body={"a": 1}, stop=["S"])
    request = ChatRequest(messages=[user("x")], tools=[ToolSpec(name="t", parameters={})])
    before = request.model_dump()
    build_request_body(request, cfg, stream=True)
    assert request.model_dump() == before
    assert cfg.extra_body == {"a": 1}
    assert request.tools is not None and request.tools[0].parameters == {}


def test_full_conversation_body_bytes() -> None:
    request = ChatRequest(
        messages=[
            Message(role="system", content="sys"),
            user("weather?"),
            Message(
                role="assistant",
                content=[ToolCallBlock(id="c1", name="get_weather", input={"city": "Paris"})],
            ),
            Message(role="tool", content=[ToolResultBlock(tool_call_id="c1", output={"temp": 21})]),
        ],
        tools=[TOOL],
        tool_choice="auto",
    )
    raw = dumps_body(build_request_body(request, _cfg(temperature=0.1), stream=True))
    assert raw == (
        b'{"model":"cfg-model","messages":[{"role":"system","content":"sys"},'
        b'{"role":"user","content":"weather?"},'
        b'{"role":"assistant","content":"","tool_calls":[{"id":"c1","type":"function",'
        b'"function":{"name":"get_weather","arguments":"{\\"city\\":\\"Paris\\"}"}}]},'
        b'{"role":"tool","tool_call_id":"c1","content":"{\\"temp\\":21}"}],'
        b'"temperature":0.1,"tools":[{"type":"function","function":{"name":"get_weather",'
        b'"description":"Weather","parameters":{"type":"object"}}}],"tool_choice":"auto",'
        b'"stream":true,"stream_options":{"include_usage":true}}'
    )
