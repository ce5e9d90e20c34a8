"""Run one real Amplifier session with this provider and print a JSON report.

Run by tests/e2e/test_real_host.py with the Python named by CHAT_COMPLETIONS_HOST_PYTHON:
an environment where amplifier-core, the orchestrators (loop-streaming, loop-basic), the
context manager context-simple and this package are installed (the host's modules are
public repositories, not on PyPI: install them yourself; nothing of theirs is in this
repository). Standard library and amplifier_core only, so it runs in that environment.

    python host_session.py --orchestrator loop-streaming --base-url URL --model M "prompt"

The session mounts a `get_weather` tool of its own, so no tool module is needed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import warnings
from typing import Any

PROVIDER_EVENTS = (
    "llm:request",
    "llm:response",
    "llm:stream_block_start",
    "llm:stream_block_delta",
    "llm:stream_block_end",
    "llm:stream_aborted",
    "provider:retry",
    "provider:tool_sequence_repaired",
)


class WeatherTool:
    """A harmless tool: every call answers the same forecast."""

    name = "get_weather"
    description = "The weather forecast for a city."
    input_schema: dict[str, Any] = {  # noqa: RUF012
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    }

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def execute(self, input: dict[str, Any]) -> Any:
        from amplifier_core.models import ToolResult

        self.calls.append(dict(input))
        return ToolResult(success=True, output={"forecast": "sunny", "celsius": 21})


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.warnings: list[str] = []
        self.budget: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = f"{record.levelname} {record.name}: {record.getMessage()}"
        if record.levelno >= logging.WARNING:
            self.warnings.append(text)
        if record.name.startswith("amplifier_module_context_simple") and "Budget" in text:
            self.budget.append(text)


def mount_plan(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "session": {
            # Bounded, so a model that never stops calling tools fails instead of hanging.
            "orchestrator": {"module": args.orchestrator, "config": {"max_iterations": 8}},
            "context": {"module": "context-simple", "config": {}},
        },
        "providers": [
            {
                "module": "provider-chat-completions",
                "config": {
                    "base_url": args.base_url,
                    "default_model": args.model,
                    "max_tokens": args.max_tokens,
                },
            }
        ],
        "tools": [],
        "hooks": [],
    }


async def run(args: argparse.Namespace, records: Records) -> dict[str, Any]:
    from amplifier_core import AmplifierSession
    from amplifier_core.models import HookResult

    events: list[tuple[str, dict[str, Any]]] = []

    async def record(event: str, data: dict[str, Any]) -> HookResult:
        events.append((event, dict(data or {})))
        return HookResult(action="continue")

    session = AmplifierSession(mount_plan(args))
    for name in PROVIDER_EVENTS:
        session.coordinator.hooks.register(name, record, priority=1000, name="host-session")
    tool = WeatherTool()
    report: dict[str, Any] = {"orchestrator": args.orchestrator, "error": None}
    try:
        await session.initialize()
        await session.coordinator.mount("tools", tool, name=tool.name)
        report["answer"] = await session.execute(args.prompt)
        context = session.coordinator.get("context")
        report["messages"] = await context.get_messages()
    except Exception as exc:  # reported, the test decides
        report["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        await session.cleanup()
    report["tool_calls"] = tool.calls
    report["events"] = [{"event": n, **_public(d)} for n, d in events]
    return report


def _public(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in ("raw", "session_id", "parent_id")}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orchestrator", default="loop-streaming")
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--model", default="default")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("prompt")
    args = parser.parse_args()
    records = Records()
    logging.basicConfig(level=logging.INFO, handlers=[records])
    logging.captureWarnings(True)
    warnings.simplefilter("always")
    report = asyncio.run(run(args, records))
    report["warnings"] = records.warnings
    report["budget"] = records.budget
    json.dump(report, sys.stdout, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
