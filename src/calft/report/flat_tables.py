"""Tables with a row per item and plain columns (the ablation, settings and cost tables), as csv, md
and tex: numbers to four significant digits, the lowest finite value of each W1 column in bold, and
the final or reference row starred.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from calft.report import text

FINAL = "final"  # the label of each method's top-level setting among its variants


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


def _rows(table: pd.DataFrame, bold, marked, escape) -> list[list[str]]:
    """Each row's cells as text, escaped for the format; the best value bold, a marked row marked."""
    best = _best(table)
    rows = []
    for _, row in table.iterrows():
        cells = [escape(_text(row[c])) for c in table.columns]
        cells = [bold(cell) if c in best and row[c] == best[c] else cell for c, cell in zip(table.columns, cells)]
        if row.get("variant") == FINAL or row.get("row"):
            cells[0] = marked(cells[0])
        rows.append(cells)
    return rows


def to_markdown(table: pd.DataFrame, title: str, note: str = "") -> str:
    lines = [
        f"**{title}**" + (f" ({note})" if note else ""),
        "",
        "| " + " | ".join(map(text.markdown, table.columns)) + " |",
        "|" + "---|" * len(table.columns),
    ]
    rows = _rows(table, lambda t: f"**{t}**", lambda t: f"{t} ★", text.markdown)
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines) + "\n"


def to_latex(table: pd.DataFrame, title: str, note: str = "") -> str:
    lines = [
        rf"% {title}" + (f" ({note})" if note else ""),
        rf"\begin{{tabular}}{{{'l' + 'c' * (len(table.columns) - 1)}}}",
        r"\toprule",
        " & ".join(map(text.latex, table.columns)) + r" \\",
        r"\midrule",
    ]
    lines += [
        " & ".join(cells) + r" \\"
        for cells in _rows(table, lambda t: rf"\textbf{{{t}}}", lambda t: rf"\rowcolor{{green!15}}{t}", text.latex)
    ]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"
