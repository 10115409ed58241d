"""The paper's ablations (Appendix E) from cached parquet: Table 24 (what the output space and the trie
cost to build over the precision grid), Tables 25-26 (soft and hard training variants, family-median
normalized W1 per model and split against the one evaluation reference) and the rows' marks (the
final setting; the best value per model and split in bold).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from calft.report.tables import SET_TITLES

FINAL = "final"  # the label of each method's top-level setting among its variants
MIB = 2**20


def construction_cost_table(cost: pd.DataFrame, reference: tuple[int, int]) -> pd.DataFrame:
    """Table 24: per grid point, mean output-space and trie construction time per prompt and the
    worst per-prompt tracemalloc peak of each; the evaluation reference's row marked."""
    grouped = cost.groupby(["decimals", "max_bins"], sort=True)
    table = pd.DataFrame({
        "prompts": grouped.size(),
        "mean outputs": grouped.outputs.mean().round(1),
        "mean trie nodes": grouped.trie_nodes.mean().round(1),
        "output space ms/prompt": (1000 * grouped.space_seconds.mean()).round(3),
        "trie ms/prompt": (1000 * grouped.trie_seconds.mean()).round(3),
        "output space peak MiB": (grouped.space_peak_bytes.max() / MIB).round(2),
        "trie peak MiB": (grouped.trie_peak_bytes.max() / MIB).round(2),
    })
    table["row"] = ["evaluation reference" if key == reference else "" for key in table.index]
    return table.reset_index()


def variant_table(summary: pd.DataFrame, runs: list, method: str, models: list[str],
                  prompt_sets: list[str]) -> pd.DataFrame:
    """Table 25 (soft) or 26 (hard): a row per run of `method` (its settings), a column per model and
    prompt set with the family-median normalized W1; '' marks no run of that model."""
    draws = "samples/prompt/epoch" if method == "hard" else "paths/prompt/epoch"
    rows = []
    for run in (run for run in runs if run.method == method):
        row = {"variant": run.variant or FINAL, "d": run.decimals, "max bins": run.max_bins,
               draws: run.draws_per_prompt, "epochs": run.epochs, "total draws": run.draws_per_prompt * run.epochs}
        for model in models:
            for prompt_set in prompt_sets:
                match = summary[(summary.model == model) & (summary.method == method)
                                & (summary.variant == run.variant) & (summary.prompt_set == prompt_set)]
                row[f"{model} {prompt_set} W1"] = match.normalized_w1.iloc[0] if len(match) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _value_columns(table: pd.DataFrame) -> list[str]:
    return [column for column in table.columns if column.endswith(" W1")]


def _best(table: pd.DataFrame) -> dict[str, float]:
    """The lowest finite W1 of each value column (a column of one finite value has no best)."""
    best = {}
    for column in _value_columns(table):
        finite = table[column][np.isfinite(table[column].astype(float))]
        if len(finite) > 1 and (finite == finite.min()).sum() < len(finite):
            best[column] = finite.min()
    return best


def _text(value) -> str:
    """Four significant digits (W1 as the paper prints it), whole numbers as integers."""
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            return "—"
        return str(int(value)) if float(value).is_integer() else f"{value:.4g}"
    return str(value)


def _rows(table: pd.DataFrame, bold, marked: str) -> list[list[str]]:
    best = _best(table)
    rows = []
    for _, row in table.iterrows():
        cells = [bold(_text(row[c])) if c in best and row[c] == best[c] else _text(row[c]) for c in table.columns]
        if row.get("variant") == FINAL or row.get("row"):
            cells[0] = marked(cells[0])
        rows.append(cells)
    return rows


def to_markdown(table: pd.DataFrame, title: str, note: str) -> str:
    lines = [f"**{title}** ({note})", "", "| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cells) + " |" for cells in _rows(table, lambda t: f"**{t}**", lambda t: f"{t} ★")]
    return "\n".join(lines) + "\n"


def to_latex(table: pd.DataFrame, title: str, note: str) -> str:
    escape = lambda text: text.replace("—", "--").replace("_", r"\_").replace("%", r"\%")  # noqa: E731
    lines = [rf"% {title} ({note})", rf"\begin{{tabular}}{{{'l' + 'c' * (len(table.columns) - 1)}}}", r"\toprule",
             " & ".join(escape(c) for c in table.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(escape(c) for c in cells) + r" \\"
              for cells in _rows(table, lambda t: rf"\textbf{{{t}}}", lambda t: rf"\rowcolor{{green!15}}{t}")]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def variant_title(method: str, table_number: int, prompt_sets: list[str], reference: str) -> str:
    sets = ", ".join(SET_TITLES.get(s, s) for s in prompt_sets)
    return (f"Table {table_number}: {method}-target training variants, family-median normalized W1 "
            f"({sets}) against the evaluation reference {reference}")
