"""The README and docs/: every relative link resolves (files and headings), the README is a short
guide whose first commands are the two that CI runs, and what it states matches the workflow."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    found = set()
    for heading in re.findall(r"^#+ (.+)$", FENCE.sub("", page.read_text()), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text())
    return [a or b for a, b in LINK.findall(text)]


def test_every_relative_link_of_the_readme_and_docs_resolves():
    checked = 0
    for page in PAGES:
        for target in links(page):
            if re.match(r"[a-z]+:", target):
                continue  # a web address
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            assert resolved.exists(), f"{page.relative_to(ROOT)}: {target} does not exist"
            if anchor:
                assert anchor in anchors(resolved), (
                    f"{page.relative_to(ROOT)}: no heading #{anchor} in {path or page.name}"
                )
            checked += 1
    assert checked > 20


def test_the_link_check_catches_a_broken_file_or_heading(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Top\n\n## A heading, with punctuation\n\n[ok](#a-heading-with-punctuation) [bad](#nowhere)\n")
    assert anchors(page) == {"top", "a-heading-with-punctuation"}
    assert links(page) == ["#a-heading-with-punctuation", "#nowhere"]


def test_the_readme_is_a_short_guide_that_starts_with_the_two_commands_ci_runs():
    readme = (ROOT / "README.md").read_text()
    lines = readme.splitlines()
    assert len(lines) <= 260
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    main, tests = blocks[0], blocks[1]
    assert main == "python3 -m venv .venv && . .venv/bin/activate && pip install -e . && snakemake --cores 2"
    assert tests == 'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[test]" && pytest'
    assert tests in (ROOT / ".ci" / "run").read_text()
    first_screen = "\n".join(lines[:30])
    for what in ("results/tables/index.md", "figure2_family_median_w1.png", "minutes"):
        assert what in first_screen, what


def test_every_docs_page_is_linked_from_the_readme():
    readme_links = set(links(ROOT / "README.md"))
    for page in PAGES[1:]:
        assert f"docs/{page.name}" in readme_links, page.name


def test_the_readme_expected_results_are_the_local_defaults_tables():
    """The README's table of expected results states what the local default's report prints: each
    cell is one of the values (rounded) that `structured_<set>.md` of a README run holds, checked on
    the artifact-independent parts: the methods, prompt sets and columns the local config runs."""
    import yaml

    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| (OOD|unseen) \| (\w+) \|", readme, re.M)
    sets = {"OOD": "ood", "unseen": "unseen"}
    assert {(sets[s], m) for s, m in rows} == {
        (s, m) for s in config["prompts"]["evaluation"] for m in config["methods"]
    }
    assert config["sampling"]["num_samples"] == int(re.search(r"(\d+) samples per prompt", readme).group(1))
