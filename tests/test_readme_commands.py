"""The README's commands are real: each parses with the CLI's own parser, the Quick start
begins with the command that needs no server, and no URL is a placeholder."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from amplifier_module_provider_chat_completions.cli.main import _parser

README = Path(__file__).resolve().parent.parent / "README.md"
TEXT = README.read_text()
COMMAND = "amplifier-chat-completions"


def code_lines() -> list[str]:
    """The lines of the README's shell code blocks."""
    lines: list[str] = []
    fence: str | None = None  # the open block's language
    for line in TEXT.splitlines():
        if line.startswith("```"):
            fence = None if fence is not None else line[3:].strip()
        elif fence in ("bash", "sh"):
            lines.append(line)
    return lines


def cli_commands() -> list[list[str]]:
    """The README's command lines of this CLI, as argument lists (optional [..] parts out)."""
    found = []
    for line in code_lines():
        if f"{COMMAND} " in line:
            args = shlex.split(re.sub(r"\[[^\]]*\]", "", line.split(f"{COMMAND} ", 1)[1]))
            found.append(args)
    return found


def test_the_quick_start_begins_with_the_local_command():
    quick_start = TEXT.split("## Quick start", 1)[1]
    first_block = re.search(r"```bash\n(.*?)```", quick_start, re.S)
    assert first_block is not None
    assert first_block.group(1).strip() == f'uv run {COMMAND} chat --local "What is 2+2?"'


@pytest.mark.parametrize("args", cli_commands(), ids=" ".join)
def test_each_readme_command_parses(args):
    parsed = _parser().parse_args(args)
    assert parsed.command == args[0]


def test_the_readme_shows_each_command():
    assert {args[0] for args in cli_commands()} == {"chat", "serve", "doctor"}


def test_no_placeholder_urls():
    urls = re.findall(r"(?:https?|git\+\w+|file)://[^\s)`'\"]+", TEXT)
    assert urls
    placeholders = [u for u in urls if re.search(r"[<>{}]|example\.com|your-?(?:org|user)", u)]
    assert placeholders == []
