"""The README's configuration table is generated from config.CONFIG_KEYS: it cannot drift.

Regenerate it with `uv run python tests/test_readme.py`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from amplifier_module_provider_chat_completions.config import CONFIG_KEYS

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- config-table:start -->", "<!-- config-table:end -->"


def render_config_table() -> str:
    rows = ["| key | default | env | meaning |", "|---|---|---|---|"]
    for key in CONFIG_KEYS:
        default = "(none)" if key.default is None else f"`{json.dumps(key.default)}`"
        env = f"`{key.env}`" if key.env else ""
        rows.append(f"| `{key.name}` | {default} | {env} | {key.description} |")
    return "\n".join(rows)


def current_table(text: str) -> str:
    match = re.search(re.escape(START) + r"\n(.*?)\n" + re.escape(END), text, re.S)
    assert match, "README lost its config-table markers"
    return match.group(1)


def test_readme_config_table_matches_code():
    assert current_table(README.read_text()) == render_config_table(), (
        "README configuration table is stale: run `uv run python tests/test_readme.py`"
    )


def test_readme_names_the_test_command_ci_runs():
    ci = (README.parent / ".ci" / "run").read_text()
    assert "uv run pytest" in README.read_text()
    assert re.search(r"^uv run pytest$", ci, re.M)


if __name__ == "__main__":
    text = README.read_text()
    new = text.replace(current_table(text), render_config_table())
    README.write_text(new)
    print("README configuration table updated")
