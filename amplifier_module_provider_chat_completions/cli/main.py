"""Command line: `chat` sends one prompt through the real mount() path.

python -m amplifier_module_provider_chat_completions chat --base-url URL "prompt"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from amplifier_core.llm_errors import LLMError
from amplifier_core.message_models import ChatRequest, Message

from .. import mount
from ..config import ENV_API_KEY, ENV_BASE_URL


class _Hooks:
    """Prints live text deltas; thinking goes to stderr so stdout stays the answer."""

    def __init__(self, show_thinking: bool) -> None:
        self.show_thinking = show_thinking
        self.streamed = False

    async def emit(self, event: str, payload: dict[str, Any]) -> None:
        if event != "llm:stream_block_delta":
            return
        if payload["block_type"] == "text":
            self.streamed = True
            sys.stdout.write(payload["text"])
            sys.stdout.flush()
        elif payload["block_type"] == "thinking" and self.show_thinking:
            sys.stderr.write(payload["text"])
            sys.stderr.flush()


class _Coordinator:
    """The two things mount() needs from a host: a mount point and hooks."""

    def __init__(self, hooks: _Hooks) -> None:
        self.hooks = hooks
        self.providers: dict[str, Any] = {}

    async def mount(self, mount_point: str, module: Any, name: str | None = None) -> None:
        self.providers[name or "default"] = module


def _config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    config: dict[str, Any] = {"base_url": args.base_url}
    if args.api_key:
        config["api_key"] = args.api_key
    if args.model:
        config["default_model"] = args.model
    if args.no_stream:
        config["use_streaming"] = False
    if args.max_tokens:
        config["max_tokens"] = args.max_tokens
    config["max_retries"] = args.max_retries
    return config


async def _chat(args: argparse.Namespace) -> int:
    hooks = _Hooks(show_thinking=args.show_thinking)
    coordinator = _Coordinator(hooks)
    cleanup = await mount(coordinator, _config_from_args(args))
    if cleanup is None:
        print(
            "error: no server URL: pass --base-url or set CHAT_COMPLETIONS_BASE_URL",
            file=sys.stderr,
        )
        return 2
    provider = next(iter(coordinator.providers.values()))
    try:
        request = ChatRequest(messages=[Message(role="user", content=args.prompt)])
        response = await provider.complete(request)
    except LLMError as err:
        print(f"\nerror: {err}", file=sys.stderr)
        return 1
    finally:
        await cleanup()
    if not hooks.streamed:
        sys.stdout.write(getattr(response, "text", "") or "")
    sys.stdout.write("\n")
    for call in response.tool_calls or []:
        print(f"[tool call] {call.name}({call.arguments})")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m amplifier_module_provider_chat_completions",
        description="Talk to an OpenAI Chat Completions compatible server.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    chat = sub.add_parser("chat", help="send one prompt and stream the reply")
    chat.add_argument("prompt")
    chat.add_argument("--base-url", default=None, help="e.g. http://localhost:8080/v1 (or env)")
    chat.add_argument("--api-key", default=None, help="or env CHAT_COMPLETIONS_API_KEY")
    chat.add_argument("--model", default=None)
    chat.add_argument("--max-tokens", type=int, default=None)
    chat.add_argument("--max-retries", type=int, default=1)
    chat.add_argument("--no-stream", action="store_true", help="wait for the whole reply")
    chat.add_argument("--show-thinking", action="store_true", help="print reasoning to stderr")
    doctor = sub.add_parser("doctor", help="probe a server: what works, and how to fix the rest")
    doctor.add_argument("--base-url", default=None, help="e.g. http://localhost:8080/v1 (or env)")
    doctor.add_argument("--api-key", default=None, help="or env CHAT_COMPLETIONS_API_KEY")
    doctor.add_argument("--model", default=None, help="default: the server's first model")
    doctor.add_argument("--timeout", type=float, default=60.0, help="seconds per probe")
    doctor.add_argument("--json", action="store_true", help="machine-readable report")
    return parser


async def _doctor(args: argparse.Namespace) -> int:
    from .doctor import render, run_doctor

    base_url = args.base_url or os.environ.get(ENV_BASE_URL)
    if not base_url:
        print(
            "error: no server URL: pass --base-url or set CHAT_COMPLETIONS_BASE_URL",
            file=sys.stderr,
        )
        return 2
    api_key = args.api_key or os.environ.get(ENV_API_KEY)
    report = await run_doctor(base_url, api_key=api_key, model=args.model, timeout=args.timeout)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(render(report), file=sys.stderr if report.error else sys.stdout)
    return 0 if report.chat_works else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "chat":
            return asyncio.run(_chat(args))
        if args.command == "doctor":
            return asyncio.run(_doctor(args))
    except LLMError as err:  # configuration errors from mount()
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 2
