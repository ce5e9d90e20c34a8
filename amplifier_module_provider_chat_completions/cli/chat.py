"""`chat`: one prompt through the real mount() path, the reply streamed to stdout.

stdout carries only the answer; progress (retries), reasoning (--show-thinking) and errors go
to stderr, each error as one line.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from amplifier_core.llm_errors import LLMError
from amplifier_core.message_models import ChatRequest, Message

from .. import mount
from ..config import ENV_BASE_URL
from ..events import PROVIDER_RETRY

__all__ = ["CliError", "chat_config", "read_prompt", "run_chat", "say"]


class CliError(Exception):
    """A problem the command line reports as one `error:` line, with its exit code."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def say(line: str) -> None:
    """One line on stderr (progress or an error), never split."""
    sys.stderr.write(" ".join(line.split()) + "\n")
    sys.stderr.flush()


class _Hooks:
    """Live text deltas to stdout; thinking and retries to stderr."""

    def __init__(self, show_thinking: bool) -> None:
        self.show_thinking = show_thinking
        self.streamed = False
        self.line_open = False  # stdout ends mid-line: end it before a stderr line

    async def emit(self, event: str, payload: dict[str, Any]) -> None:
        if event == PROVIDER_RETRY:
            self.end_line()
            say(retry_line(payload))
        elif event == "llm:stream_block_delta":
            if payload["block_type"] == "text":
                self.streamed = True
                self.write(payload["text"])
            elif payload["block_type"] == "thinking" and self.show_thinking:
                sys.stderr.write(payload["text"])
                sys.stderr.flush()

    def write(self, text: str) -> None:
        if text:
            sys.stdout.write(text)
            sys.stdout.flush()
            self.line_open = not text.endswith("\n")

    def end_line(self) -> None:
        if self.line_open:
            self.write("\n")


def retry_line(payload: dict[str, Any]) -> str:
    """`retrying in 2.0 s, attempt 2 of 4: <why>` from a provider:retry event."""
    attempt, total = payload["attempt"] + 1, payload["max_retries"] + 1
    return f"retrying in {payload['delay']:.1f} s, attempt {attempt} of {total}: " + str(
        payload["error_message"]
    )


class _Coordinator:
    """The two things mount() needs from a host: a mount point and hooks."""

    def __init__(self, hooks: _Hooks) -> None:
        self.hooks = hooks
        self.providers: dict[str, Any] = {}

    async def mount(self, mount_point: str, module: Any, name: str | None = None) -> None:
        self.providers[name or "default"] = module


def chat_config(args: argparse.Namespace) -> dict[str, Any]:
    """The provider config the options ask for; what they leave unset keeps its default."""
    config: dict[str, Any] = {"base_url": args.base_url}
    if args.api_key:
        config["api_key"] = args.api_key
    if args.model:
        config["default_model"] = args.model
    if args.no_stream:
        config["use_streaming"] = False
    if args.max_tokens:
        config["max_tokens"] = args.max_tokens
    if args.max_retries is not None:
        config["max_retries"] = args.max_retries
    if args.temperature is not None:
        config["temperature"] = args.temperature
    return config


def read_prompt(prompt: str) -> str:
    """The prompt, or all of standard input for `-`."""
    if prompt != "-":
        return prompt
    text = sys.stdin.read().strip()
    if not text:
        raise CliError("no prompt on standard input (`chat -` reads it from there)")
    return text


async def run_chat(args: argparse.Namespace, prompt: str) -> int:
    hooks = _Hooks(show_thinking=args.show_thinking)
    coordinator = _Coordinator(hooks)
    cleanup = await mount(coordinator, chat_config(args))
    if cleanup is None:
        raise CliError(f"no server URL: pass --base-url, set {ENV_BASE_URL}, or use --local")
    provider = next(iter(coordinator.providers.values()))
    try:
        response = await provider.complete(
            ChatRequest(messages=[Message(role="user", content=prompt)])
        )
    except LLMError as err:
        hooks.end_line()
        raise CliError(str(err), code=1) from err
    finally:
        await cleanup()
    if not hooks.streamed:
        hooks.write(getattr(response, "text", "") or "")
    hooks.end_line()
    for call in response.tool_calls or []:
        print(f"[tool call] {call.name}({call.arguments})")
    return 0
