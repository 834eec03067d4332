"""The README and docs/ stay readable and true to the code: every flag `--help` shows is
documented on docs/commands.md, every link between the pages resolves (files and
headings), and the README stays a five-minute read."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from keyclass.pipeline.cli import make_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMANDS_PAGE = ROOT / "docs" / "commands.md"


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = make_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {_slug(m) for m in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)}


@pytest.mark.parametrize("command", sorted(_subparsers()))
def test_every_flag_of_every_command_is_on_the_commands_page(command):
    text = COMMANDS_PAGE.read_text()
    assert f"## keyclass {command}" in text, f"docs/commands.md has no section for keyclass {command}"
    missing = [
        opt
        for action in _subparsers()[command]._actions
        for opt in action.option_strings
        if opt.startswith("--") and opt != "--help" and f"`{opt}`" not in text
    ]
    assert not missing, f"keyclass {command}: flags missing from docs/commands.md: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target) or target.startswith("mailto:"):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no file {dest}")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)


def test_the_readme_is_a_five_minute_read():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; move depth to docs/"
    long = [i + 1 for i, line in enumerate(lines) if len(line) > 200]
    assert not long, f"README.md lines over 200 characters: {long}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_page_has_a_wall_of_text(page):
    long = [i + 1 for i, line in enumerate(page.read_text().splitlines()) if len(line) > 600]
    assert not long, f"{page.name}: lines over 600 characters: {long}"


def test_the_readme_links_every_docs_page():
    readme = (ROOT / "README.md").read_text()
    unlinked = [p.name for p in PAGES[1:] if f"docs/{p.name}" not in readme]
    assert not unlinked, f"docs pages the README does not link: {unlinked}"
