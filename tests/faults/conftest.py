"""Fixtures for the fault, cancellation, hostile-input, secret and TLS tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# The helper module sits next to these tests; make it importable however pytest is run.
sys.path.insert(0, str(Path(__file__).parent))

from faulty_server import FaultyServer, Handler


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: a test that takes tens of seconds by design")


@pytest.fixture
def serve() -> Iterator[Any]:
    """serve(handler) -> a started FaultyServer; stopped (and its handler errors raised) after."""
    servers: list[FaultyServer] = []

    def start(handler: Handler, ssl_context: Any = None) -> FaultyServer:
        server = FaultyServer(handler, ssl_context=ssl_context).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
    for server in servers:
        assert not server.errors, f"the test server's handler failed: {server.errors!r}"
