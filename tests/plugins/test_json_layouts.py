"""The `--json` layouts documented in docs/plugins.md § JSON output are the real ones, key for key."""

from __future__ import annotations

import json
import re
from pathlib import Path

from specmatch.core.kinds import KINDS
from specmatch.testing import invoke_cli

DOC = (Path(__file__).resolve().parents[2] / "docs" / "plugins.md").read_text(encoding="utf-8")
SECTION = DOC.split("## JSON output", 1)[1].split("\n## ", 1)[0]


def table_after(marker: str) -> dict[str, str]:
    """First column (each backticked key of it) -> second column, of the first table after ``marker``."""
    text = SECTION.split(marker, 1)[1]
    rows = {}
    for line in text.split("\n\n", 2)[1].splitlines()[2:]:
        first, second = [c.strip() for c in line.strip("|").split("|", 1)]
        for key in re.findall(r"`([^`]+)`", first):
            rows[key] = second
    return rows


def stdout_json(*args):
    result = invoke_cli(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_components_list_keys_are_the_documented_ones():
    rows = stdout_json("components", "list")
    documented = set(table_after("`specmatch components list --json`"))
    assert rows and all(set(row) == documented for row in rows)


def test_components_info_keys_facts_and_params_are_the_documented_ones():
    documented = set(table_after("`specmatch components info KIND NAME --json`"))
    facts_by_kind = {kind: set(re.findall(r"`([a-z_]+)` \(", cell))
                     for kind, cell in table_after("`facts` keys per kind").items()}
    param_keys = set(table_after("Each object of `params`"))
    seen_params = 0
    for row in stdout_json("components", "list"):
        info = stdout_json("components", "info", row["kind"], row["name"])
        assert set(info) == documented, row["name"]
        assert set(info["facts"]) == facts_by_kind.get(row["kind"], set()), row["name"]
        for param in info["params"]:
            assert set(param) == param_keys, (row["name"], param)
            seen_params += 1
    assert seen_params > 0
    assert set(facts_by_kind) <= set(KINDS)


def test_plugins_list_keys_are_the_documented_ones(write_plugin):
    broken = write_plugin("no_hooks", "import attrs\n")
    rows = stdout_json("--plugin-file", str(broken), "plugins", "list")
    documented = set(table_after("`specmatch plugins list --json`"))
    assert {row["status"] for row in rows} >= {"active", "broken"}
    assert all(set(row) == documented for row in rows)
