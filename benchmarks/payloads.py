"""Pre-built server responses, shared by the server and the runner (which needs the counts).

Scenario names carry their sizes (`text-20000`, `tools-20000`, `big-20000000`), so the
server needs no configuration and the client picks a scenario through its base_url.
Chunks are shaped like vLLM's (id, object, created, model, logprobs), the common case.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

MODEL = "bench"
_HEAD = '{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1,"model":"bench",'
_WORDS = (" the", " quick", " brown", " fox", " jumps", " over", " lazy", " dog", "s", ",")
# Arguments the tool-call stream writes, in fragments, per call.
_ARG_TEXT = 'def f(x):\n    return "x" * 2  # ünïcode\n'


def _event(payload: str) -> bytes:
    return b"data: " + payload.encode() + b"\n\n"


def text_chunk(text: str) -> bytes:
    delta = json.dumps({"content": text}, ensure_ascii=False, separators=(",", ":"))
    return _event(
        _HEAD + f'"choices":[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":null}}]}}'
    )


def _finish(reason: str) -> Iterator[bytes]:
    yield _event(
        _HEAD + '"choices":[{"index":0,"delta":{},"logprobs":null,'
        f'"finish_reason":"{reason}"}}]}}'
    )
    yield _event(
        _HEAD + '"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":20,'
        '"total_tokens":30}}'
    )
    yield b"data: [DONE]\n\n"


def text_events(n: int, word_len: int = 0) -> Iterator[bytes]:
    """n content chunks (realistic 1-6 character tokens, or `word_len` characters each)."""
    for i in range(n):
        word = _WORDS[i % len(_WORDS)]
        yield text_chunk(word if not word_len else (word * word_len)[:word_len])
    yield from _finish("stop")


def tool_events(n: int) -> Iterator[bytes]:
    """About n chunks of streamed tool calls: a call per 1000 chunks, ~5-character pieces."""
    calls = max(1, n // 1000)
    per_call = max(2, n // calls)
    for k in range(calls):
        args = json.dumps({"path": f"/tmp/f{k}.py", "content": _ARG_TEXT * max(1, per_call // 8)})
        start = {"index": k, "id": f"call_{k}", "type": "function"}
        start["function"] = {"name": "write_file", "arguments": ""}
        yield _tool_chunk(start)
        step = -(-len(args) // (per_call - 1))  # ceil: per_call - 1 argument pieces
        for pos in range(0, len(args), step):
            yield _tool_chunk({"index": k, "function": {"arguments": args[pos : pos + step]}})
    yield from _finish("tool_calls")


def _tool_chunk(call: dict[str, object]) -> bytes:
    delta = json.dumps({"tool_calls": [call]}, ensure_ascii=False, separators=(",", ":"))
    return _event(
        _HEAD + f'"choices":[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":null}}]}}'
    )


def big_events(size: int) -> Iterator[bytes]:
    """A text stream of about `size` bytes on the wire, 24-character tokens."""
    sent = 0
    one = len(text_chunk("x" * 24))
    for _ in range(size // one):
        chunk = text_chunk("lorem ipsum dolor sit am")
        sent += len(chunk)
        yield chunk
    yield from _finish("stop")


def stream_events(scenario: str) -> list[bytes]:
    """The SSE events of a streaming scenario, pre-built."""
    kind, _, size = scenario.partition("-")
    builders = {"text": text_events, "tools": tool_events, "big": big_events}
    return list(builders[kind](int(size)))


def chunk_count(scenario: str) -> int:
    """Data events in a scenario's stream, [DONE] excluded: the unit of "per chunk"."""
    return len(stream_events(scenario)) - 1


def reply_body() -> bytes:
    """A tiny non-streaming answer."""
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "ok"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 500000, "completion_tokens": 1, "total_tokens": 500001},
        }
    ).encode()
