"""What the built wheel requires of the kernel, read from its METADATA.

The standalone tool (pip install, uvx) needs amplifier-core installed with it; the host,
which installs this module into its own environment, must keep the kernel it has. See the
comment on [project].dependencies in pyproject.toml.
"""

from __future__ import annotations

import email.parser
import importlib.metadata
import os
import shutil
import subprocess
import zipfile
from email.message import Message
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def metadata(tmp_path_factory: pytest.TempPathFactory) -> Message:
    uv = os.environ.get("UV") or shutil.which("uv")  # `uv run` sets UV
    if uv is None:
        pytest.skip("uv is not on PATH: run the tests with `uv run pytest`")
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [uv, "build", "--wheel", "--out-dir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = out.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.parser.Parser().parsestr(archive.read(name).decode())


def kernel_requirement(metadata: Message) -> Requirement:
    """The unconditional amplifier-core requirement (extras' requirements carry markers)."""
    found = [
        req
        for req in map(Requirement, metadata.get_all("Requires-Dist") or [])
        if req.name == "amplifier-core" and req.marker is None
    ]
    assert len(found) == 1, metadata.get_all("Requires-Dist")
    return found[0]


def test_the_wheel_requires_the_kernel(metadata: Message) -> None:
    # Without it the installed command fails with ModuleNotFoundError: amplifier_core.
    assert kernel_requirement(metadata).specifier


def test_every_2x_kernel_a_host_may_run_is_kept(metadata: Message) -> None:
    """A host kernel outside the range would be replaced by the host's module install."""
    specifier = kernel_requirement(metadata).specifier
    tested = importlib.metadata.version("amplifier-core")
    for version in ("2.0.1", "2.0.2", tested, "2.9.0"):
        assert specifier.contains(version), (str(specifier), version)
    # No upper bound: a host on a newer major keeps its kernel.
    assert specifier.contains("3.0.0"), str(specifier)
    # 1.x lacks what this package was written against.
    assert not specifier.contains("1.6.1"), str(specifier)
