"""Tables 11-19 (Appendix D.5): qualitative NoveltyBench cases from the generations alone.

Prompts of the curated split (every split when curated was not run) are ranked by prompt-level
utility deltas into three regimes: soft clearly helps (soft minus base), hard is competitive or best
(hard minus the better of base and soft), and fine-tuning hurts (the better fine-tuned method minus
base, most negative first). Each case shows, for every method, the top five partition
representatives ranked by partition score (the representative's rating, which is what its
partition earns), with that method's prompt-level distinct and utility.
"""

from __future__ import annotations

import re

import pandas as pd

from calft.methods import BASE, HARD, SOFT, TRAINED
from calft.report import text
from calft.transfer.metrics import novelty_utility

TOP_PARTITIONS = 5
REGIMES = {  # regime: (first table number, what its cases show)
    "soft_helps": (11, "soft-target fine-tuning clearly improves prompt-level utility"),
    "hard_best": (14, "the hard-target variant is competitive or best on prompt-level utility"),
    "failures": (17, "Calibration Fine-Tuning hurts prompt-level utility"),
}
KEYS = ["model", "split", "prompt_index"]


def prompt_scores(generations: pd.DataFrame, patience: dict[tuple[str, str], float]) -> pd.DataFrame:
    """Per (model, method, split, prompt): category, prompt, distinct and utility; `patience` by
    (model, method), as each run recorded it."""
    rows = []
    for (model, method, split, index), group in generations.groupby(
        ["model", "method", "split", "prompt_index"], sort=False
    ):
        rows.append(
            {
                "model": model,
                "method": method,
                "split": split,
                "prompt_index": index,
                "category": group.category.iloc[0],
                "prompt": group.prompt.iloc[0],
                "distinct": group.partition.nunique(),
                "utility": novelty_utility(group.rating.to_numpy(), group.partition.tolist(), patience[model, method]),
            }
        )
    return pd.DataFrame(rows)


def _deltas(scores: pd.DataFrame, regime: str) -> pd.Series:
    """The regime's ranking value per (model, split, prompt), largest first is the clearest case."""
    utility = scores.pivot_table(index=KEYS, columns="method", values="utility", aggfunc="first")
    tuned = [m for m in TRAINED if m in utility]
    if regime == "soft_helps":
        return utility[SOFT] - utility[BASE]
    if regime == "hard_best":
        return utility[HARD] - utility[[m for m in (BASE, SOFT) if m in utility]].max(axis=1)
    return utility[BASE] - utility[tuned].max(axis=1)


def choose_cases(scores: pd.DataFrame, regime: str, count: int = 3) -> list[tuple]:
    """The regime's `count` clearest (model, split, prompt) cases, one per model while other models
    have one (the paper's three tables show three models), on the curated split when it was run.
    Soft and failure cases need a strictly positive delta; hard's 'competitive' allows a tie."""
    if "curated" in set(scores.split):
        scores = scores[scores.split == "curated"]
    deltas = _deltas(scores, regime).dropna()
    deltas = deltas[deltas >= 0] if regime == "hard_best" else deltas[deltas > 0]
    ranked = list(deltas.sort_values(ascending=False, kind="stable").index)
    chosen, models = [], set()
    for key in ranked:
        if key[0] not in models:
            chosen.append(key)
            models.add(key[0])
    chosen += [key for key in ranked if key not in chosen]
    return chosen[:count]


def case_rows(generations: pd.DataFrame, scores: pd.DataFrame, cases: list[tuple], methods: list[str]) -> pd.DataFrame:
    """A row per (case, method, partition rank): the top partition representatives of each method,
    ranked by rating then order of appearance, with the method's prompt-level distinct and utility."""
    rows = []
    for number, (model, split, index) in enumerate(cases, 1):
        for method in methods:
            score = scores[
                (scores.model == model)
                & (scores.method == method)
                & (scores.split == split)
                & (scores.prompt_index == index)
            ]
            group = generations[
                (generations.model == model)
                & (generations.method == method)
                & (generations.split == split)
                & (generations.prompt_index == index)
            ]
            if score.empty:
                continue
            sizes = group.partition.value_counts()
            top = (
                group[group.representative]
                .sort_values(["rating", "partition"], ascending=[False, True], kind="stable")
                .head(TOP_PARTITIONS)
            )
            for rank, (_, row) in enumerate(top.iterrows(), 1):
                rows.append(
                    {
                        "case": number,
                        "model": model,
                        "split": split,
                        "prompt_index": index,
                        "category": score.category.iloc[0],
                        "prompt": score.prompt.iloc[0],
                        "method": method,
                        "distinct": int(score.distinct.iloc[0]),
                        "utility": float(score.utility.iloc[0]),
                        "rank": rank,
                        "representative": row.text,
                        "rating": int(row.rating),
                        "partition_size": int(sizes[row.partition]),
                    }
                )
    columns = [
        "case",
        "model",
        "split",
        "prompt_index",
        "category",
        "prompt",
        "method",
        "distinct",
        "utility",
        "rank",
        "representative",
        "rating",
        "partition_size",
    ]
    return pd.DataFrame(rows, columns=columns)


def _short(text: str, limit: int = 120) -> str:
    """One line, at most `limit` characters (an ellipsis marks the cut)."""
    text = re.sub(r"\s+", " ", str(text)).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _case_grid(rows: pd.DataFrame) -> tuple[list[str], list[str], list[list[str]]]:
    """One case as the paper lays it out: a column per method, its distinct/utility, then a row per
    partition rank holding that rank's representative (rating, partition size)."""
    methods = list(dict.fromkeys(rows.method))
    first = rows.drop_duplicates("method").set_index("method")
    summary = [f"distinct {first.distinct[m]}, utility {first.utility[m]:.3g}" for m in methods]
    grid = [summary]
    for rank in range(1, rows["rank"].max() + 1):
        cells = []
        for method in methods:
            match = rows[(rows.method == method) & (rows["rank"] == rank)]
            cells.append(
                ""
                if match.empty
                else f"{_short(match.representative.iloc[0])} "
                f"(rating {match.rating.iloc[0]}, ×{match.partition_size.iloc[0]})"
            )
        grid.append(cells)
    return methods, ["prompt", *[str(rank) for rank in range(1, len(grid))]], grid


def _caption(regime: str, number: int, rows: pd.DataFrame) -> str:
    first = rows.iloc[0]
    category = f" ({first.category})" if isinstance(first.category, str) else ""
    return (
        f"Table {REGIMES[regime][0] + number - 1}: {first.model}{category}, {first.split} prompt "
        f"{first.prompt_index}. Prompt: {_short(first.prompt, 300)}"
    )


def to_markdown(cases: pd.DataFrame, regime: str) -> str:
    first_table, shows = REGIMES[regime]
    lines = [
        f"**Tables {first_table}-{first_table + 2}: NoveltyBench cases where {shows}** (top "
        f"{TOP_PARTITIONS} partition representatives per method, by rating; ×n = the partition's size)",
        "",
    ]
    if cases.empty:
        return "\n".join(lines + ["No prompt qualifies in this run.", ""])
    for number, rows in cases.groupby("case", sort=True):
        methods, labels, grid = _case_grid(rows)
        lines += [
            f"*{text.markdown(_caption(regime, number, rows))}*",
            "",
            "| rank | " + " | ".join(map(text.markdown, methods)) + " |",
            "|---|" + "---|" * len(methods),
        ]
        lines += [
            "| " + " | ".join(text.markdown(c) for c in [label, *cells]) + " |" for label, cells in zip(labels, grid)
        ]
        lines.append("")
    return "\n".join(lines)


def to_latex(cases: pd.DataFrame, regime: str) -> str:
    first_table, shows = REGIMES[regime]
    lines = [f"% Tables {first_table}-{first_table + 2}: NoveltyBench cases where {shows}"]
    for number, rows in cases.groupby("case", sort=True):
        methods, labels, grid = _case_grid(rows)
        column = rf"p{{{0.9 / len(methods):.2f}\linewidth}}"
        lines += [
            r"\begin{table}[t]",
            rf"\caption{{{text.latex(_caption(regime, number, rows))}}}",
            rf"\begin{{tabular}}{{r{column * len(methods)}}}",
            r"\toprule",
            " & ".join(["rank", *methods]) + r" \\",
            r"\midrule",
        ]
        lines += [" & ".join(text.latex(c) for c in [label, *cells]) + r" \\" for label, cells in zip(labels, grid)]
        lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"
