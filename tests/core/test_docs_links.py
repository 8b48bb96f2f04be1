"""Paths the documentation points to exist: relative Markdown links and ``docs/...`` mentions in the docs,
the README, the constraints files and the scripts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted([*ROOT.glob("docs/*.md"), ROOT / "README.md", *ROOT.glob("constraints/*.txt"),
                  *ROOT.glob("scripts/*.sh")])
LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")  # [text](target) or [text](target#anchor)
MENTION = re.compile(r"(?<![\w/.])(docs/[\w./-]+)")


def referenced(path: Path) -> list[tuple[str, Path]]:
    text = path.read_text(encoding="utf-8")
    out = []
    for target in LINK.findall(text):
        if "://" not in target and not target.startswith("mailto:"):
            out.append((target, (path.parent / target).resolve()))
    for mention in MENTION.findall(text):
        out.append((mention, ROOT / mention.rstrip(".")))
    return out


def test_the_checker_finds_links_and_mentions(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("See [install](install.md#extras), docs/plugins/ and [site](https://example.org).\n")
    assert [t for t, _ in referenced(page)] == ["install.md", "docs/plugins/"]


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_referenced_path_exists(source):
    missing = [target for target, path in referenced(source) if not path.exists()]
    assert missing == [], f"{source.relative_to(ROOT)} points to missing paths: {missing}"
