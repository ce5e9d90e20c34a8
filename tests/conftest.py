"""Shared fixtures: a host-like coordinator that records mounts and events."""

from __future__ import annotations

from typing import Any

import pytest


class RecordingHooks:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    async def emit(self, name: str, payload: dict[str, Any]) -> None:
        self.events.append((name, dict(payload)))

    def named(self, name: str) -> list[dict[str, Any]]:
        return [p for n, p in self.events if n == name]

    def names(self, prefix: str = "") -> list[str]:
        return [n for n, _ in self.events if n.startswith(prefix)]


class FakeCoordinator:
    """What mount() needs from the host: a mount point and hooks."""

    def __init__(self) -> None:
        self.hooks = RecordingHooks()
        self.mounted: dict[str, dict[str, Any]] = {}

    async def mount(self, mount_point: str, module: Any, name: str | None = None) -> None:
        self.mounted.setdefault(mount_point, {})[name or ""] = module


@pytest.fixture
def coordinator() -> FakeCoordinator:
    return FakeCoordinator()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's shell must not leak into config tests.
    monkeypatch.delenv("CHAT_COMPLETIONS_BASE_URL", raising=False)
    monkeypatch.delenv("CHAT_COMPLETIONS_API_KEY", raising=False)
