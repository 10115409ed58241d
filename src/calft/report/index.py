"""The paper index (results/tables/index.md): every table and figure of the paper (calft.report.items),
with the files that reproduce it in this configuration or why it is absent, naming the config keys
that turn it on. Pure: it reads no file, it names those the report and the ablations target write."""

from __future__ import annotations

from pathlib import Path

from calft.report.items import ITEMS, NO_CONFIG, evaluation_items, item_files

ABLATIONS_TARGET = "made by `snakemake ablations` (not part of `all`)"


def entries(selection, tables: str | Path, figures: str | Path, ablations: str | Path) -> list[dict]:
    """A row per paper item: its readable files (markdown tables, png figures), and, when it has none,
    why (the keys that turn it on); then calft's own outputs that this selection writes or a config
    key turns on, and the further evaluations."""
    rows = []
    own = [item for item in ITEMS if not item.label]
    for item in [item for item in ITEMS if item.label] + own + evaluation_items():
        files = [
            path
            for path in item_files(item, selection, tables, figures, ablations)
            if path.suffix in (".md", ".png") or item in own
        ]
        if files:
            note = ABLATIONS_TARGET if item.ablation else ""
        elif item in own and not item.needs:
            continue  # an output of other prompt sets or metrics than this selection has
        else:
            note = NO_CONFIG if item.needs == NO_CONFIG else f"off in this configuration; turn on: {item.needs}"
        section = "paper" if item.label else "own" if item in own else "evaluation"
        rows.append({"item": item.label, "shows": item.shows, "files": files, "note": note, "section": section})
    return rows


def to_markdown(rows: list[dict]) -> str:
    lines = [
        "**The paper's tables and figures, and the files that reproduce them** (paths from the workflow "
        "directory; an absent item names the config key that turns it on)",
        "",
        "| paper item | what it shows | file | note |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {row['item']} | {row['shows']} | {_files(row)} | {row['note']} |"
        for row in rows
        if row["section"] == "paper"
    ]
    for section, heading in (("own", "calft's own outputs"), ("evaluation", "Further evaluations (calft.evaluations)")):
        further = [row for row in rows if row["section"] == section]
        if further:
            lines += ["", f"**{heading}**", "", "| what it shows | file | note |", "|---|---|---|"]
            lines += [f"| {row['shows']} | {_files(row)} | {row['note']} |" for row in further]
    return "\n".join(lines) + "\n"


def _files(row: dict) -> str:
    return "<br>".join(f"`{path}`" for path in row["files"]) or "—"
