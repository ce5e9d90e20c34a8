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
    """What mount() needs from the host: a mount point, hooks and contributor channels.

    Contributions are collected by the kernel's own helper (amplifier_core._collect_helper,
    which the Rust coordinator delegates to), over the channel layout it reads.
    """

    def __init__(self) -> None:
        self.hooks = RecordingHooks()
        self.mounted: dict[str, dict[str, Any]] = {}
        self.channels: dict[str, list[dict[str, Any]]] = {}

    async def mount(self, mount_point: str, module: Any, name: str | None = None) -> None:
        self.mounted.setdefault(mount_point, {})[name or ""] = module

    def register_contributor(self, channel: str, name: str, callback: Any) -> None:
        self.channels.setdefault(channel, []).append({"name": name, "callback": callback})

    async def collect_contributions(self, channel: str) -> list[Any]:
        from amplifier_core._collect_helper import collect_contributions

        return await collect_contributions(self.channels, channel)


@pytest.fixture
def coordinator() -> FakeCoordinator:
    return FakeCoordinator()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's shell must not leak into config tests.
    monkeypatch.delenv("CHAT_COMPLETIONS_BASE_URL", raising=False)
    monkeypatch.delenv("CHAT_COMPLETIONS_API_KEY", raising=False)


# ---------------------------------------------------------------------------------------
# Compatibility matrix: after a run, say which README cells passing tests backed.
_outcomes: dict[str, str] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or report.outcome != "passed":
        previous = _outcomes.get(report.nodeid)
        if previous in (None, "passed"):
            _outcomes[report.nodeid] = report.outcome


def pytest_terminal_summary(terminalreporter: Any) -> None:
    from compat_matrix import FEATURES, matrix

    cells = [
        (server, feature, cell)
        for server, row in matrix().items()
        for feature, cell in row.items()
        if cell.tests
    ]
    if not any(t in _outcomes for _, _, cell in cells for t in cell.tests):
        return  # no matrix test ran in this session
    backed, unexercised, contradicted = [], [], []
    for server, feature, cell in cells:
        # A "real" cell stands on its real-server tests; the replica ones are extra.
        deciding = [t for t in cell.tests if cell.status != "real" or t.startswith("tests/e2e/")]
        results = [_outcomes.get(t) for t in deciding]
        name = f"{server} / {FEATURES[feature]}"
        if "failed" in results:
            contradicted.append(name)
        elif all(r == "passed" for r in results):
            backed.append(name)
        else:
            unexercised.append(name)
    tr = terminalreporter
    tr.section("compatibility matrix")
    tr.write_line(
        f"{len(backed)} of {len(cells)} cells backed by passing tests in this run; "
        f"{len(unexercised)} not exercised (skipped or deselected); "
        f"{len(contradicted)} contradicted by failures"
    )
    for name in contradicted:
        tr.write_line(f"  FAILED: {name}")
