"""The user's guide: the README stays a short guide whose commands are CI's, its links and those of docs/, studies/
and config/ resolve, and config/README.md's reference is the schema's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ganablate.study.config_docs import BEGIN, END, reference_markdown
from tests.conftest import REPO

PAGES = sorted([REPO / "README.md", REPO / "CHANGELOG.md", REPO / "config/README.md", *REPO.glob("docs/*.md")])
PAGES += sorted(REPO.glob("studies/*.md"))
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")  # [text](target) and ![image](target)


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def broken_links(page: Path) -> list[str]:
    """Links of a page to files of this repository (and their #anchors) that do not resolve; web links are left out
    (CI has no network), as are links outside the repository."""
    broken = []
    for match in LINK.finditer(page.read_text()):
        target = match.group(1)
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.is_relative_to(REPO):
            broken.append(f"{target} (outside the repository)")
        elif not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(f"{target} (no such heading)")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_link_of_the_guide_resolves_in_the_repository(page):
    assert broken_links(page) == []


def test_the_link_check_finds_a_missing_file_a_missing_heading_and_a_link_outside(tmp_path, monkeypatch):
    monkeypatch.setattr("tests.test_docs.REPO", tmp_path)
    (tmp_path / "there.md").write_text("# A heading\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](there.md) [ok](there.md#a-heading) [web](https://example.org) ![img](gone.png)\n"
        "[gone](gone.md) [anchor](there.md#nothing) [out](../elsewhere.md)\n"
    )
    assert broken_links(page) == [
        "gone.png",
        "gone.md",
        "there.md#nothing (no such heading)",
        "../elsewhere.md (outside the repository)",
    ]


def test_the_readme_is_a_short_guide_whose_two_commands_are_the_makefiles_and_cis():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^(make \w+)", quick_start, flags=re.M)
    assert commands[:2] == ["make study", "make test"]
    targets = re.findall(r"^(\w+):", (REPO / "Makefile").read_text(), flags=re.M)
    assert {"study", "test"} <= set(targets)
    ci = (REPO / ".ci/run").read_text()
    assert re.search(r"^make test\b", ci, flags=re.M) and "--durations=15" in ci


def test_config_readme_carries_the_schemas_reference_as_config_docs_prints_it():
    page = (REPO / "config/README.md").read_text()
    assert BEGIN in page and END in page
    generated = page[page.index(BEGIN) : page.index(END) + len(END)] + "\n"
    assert generated == reference_markdown(), "config/README.md is stale: regenerate it with `ganablate config-docs`"


def test_every_schema_key_has_a_row_in_the_reference():
    from ganablate.study.config import schema

    reference = reference_markdown()
    for section, spec in schema()["properties"].items():
        for key in spec["properties"]:
            assert f"| `{section}.{key}` |" in reference, f"{section}.{key}"
