"""The `replica` fixture: start a dialect's replica server for one test.

    async def test_x(replica):
        server = replica("vllm", "tool_call")
        ... point the provider at server.base_url ...
        assert server.chat_requests[0].body["stream"] is True

Each call starts one server (its own thread and asyncio loop, a free port on 127.0.0.1);
all are stopped after the test, and the test fails if a server thread is left running.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .dialects import DIALECTS, Dialect
from .replica import Replica

ReplicaFactory = Callable[..., Replica]

ALL_DIALECTS = sorted(DIALECTS)


@pytest.fixture
def replica() -> Iterator[ReplicaFactory]:
    started: list[Replica] = []

    def start(dialect: Dialect | str, scenario: str = "text", **options: Any) -> Replica:
        server = Replica(dialect, scenario, **options).start()
        started.append(server)
        return server

    yield start
    errors: list[BaseException] = []
    for server in started:
        try:
            server.stop()
        except BaseException as exc:  # keep stopping the others
            errors.append(exc)
    for server in started:
        assert not server.server.running, f"replica {server.dialect.key} thread still alive"
    if errors:
        raise errors[0]


@pytest.fixture(params=ALL_DIALECTS)
def dialect_key(request: pytest.FixtureRequest) -> str:
    """Parametrize a test over every dialect key."""
    return str(request.param)
