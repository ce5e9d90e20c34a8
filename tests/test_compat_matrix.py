"""The README's compatibility matrix is generated from tests/compat_matrix.py, and every
test a cell names exists: a cell cannot claim coverage no test gives.

Regenerate the README table with `uv run python tests/test_compat_matrix.py`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from compat_matrix import FEATURES, all_tests, matrix, render

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
START, END = "<!-- compat-matrix:start -->", "<!-- compat-matrix:end -->"


def current_table(text: str) -> str:
    match = re.search(re.escape(START) + r"\n(.*?)\n" + re.escape(END), text, re.S)
    assert match, "README lost its compat-matrix markers"
    return match.group(1)


def collected_node_ids(files: set[str]) -> set[str]:
    # Collection only: nothing is built or started, whatever the skip variables say.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            *sorted(files),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return {line.strip() for line in proc.stdout.splitlines() if "::" in line}


def test_readme_matrix_matches_the_data():
    assert current_table(README.read_text()) == render(), (
        "README compatibility matrix is stale: run `uv run python tests/test_compat_matrix.py`"
    )


def test_every_cell_names_tests_that_exist():
    wanted = all_tests()
    files = {t.split("::", 1)[0] for t in wanted}
    missing = sorted(wanted - collected_node_ids(files))
    assert not missing, f"compatibility matrix names tests that do not exist: {missing}"


def test_every_supported_cell_is_backed_by_a_test():
    for server, row in matrix().items():
        for feature, cell in row.items():
            if cell.status in ("real", "replica"):
                assert cell.tests, f"{server} / {FEATURES[feature]} claims support with no test"
            if cell.status == "real":
                assert any(t.startswith("tests/e2e/") for t in cell.tests), (server, feature)


if __name__ == "__main__":
    text = README.read_text()
    README.write_text(text.replace(current_table(text), render()))
    print("README compatibility matrix updated")
