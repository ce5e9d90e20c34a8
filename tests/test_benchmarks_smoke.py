"""The benchmark runs end to end with tiny sizes, so it cannot rot (no timing asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_benchmark_runs_with_tiny_sizes() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    for figure in (
        "stream/text",
        "stream/tools",
        "request",
        "latency/median",
        "latency/p99",
        "concurrency/",
        "memory",
        "scaling",
        "import+mount",
        "first request",
    ):
        assert figure in done.stdout, done.stdout
    assert "errors 0" in done.stdout
