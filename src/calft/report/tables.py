"""The paper's tables from parquet only, CPU, no model: structured sampling (Tables 6-7), retention
and perplexity (Tables 2, 21-23), transfer (Table 1) and SSOT (Tables 8-9).

The inputs are exactly the files of `calft.report.items.report_inputs`, the same list the aggregate rule
depends on; a missing one is an error that names it. The numbers are calft.report.aggregates'; this
module reads the files and lays the numbers out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from calft import artifacts, metrics
from calft.errors import UserError
from calft.methods import MAIN, SSOT_COMPARISON
from calft.report import aggregates, text

SET_TITLES = {
    "ood": "held-out (OOD) families",
    "unseen": "unseen parameters of seen families",
    "ood-full": "held-out families, full grid",
    "unseen-full": "unseen parameters, full grid",
}


def metric_columns() -> list[tuple[str, str, str]]:
    """The columns of Tables 6-7: (name, label, better) of each metric the tables show (calft.metrics)."""
    return [(metric.name, metric.label, metric.better) for metric in metrics.in_tables()]


def read(path: Path, kind: str) -> pd.DataFrame:
    """A report input, a `kind` artifact; missing, it is an error that names it (never a silently
    missing row)."""
    if not Path(path).exists():
        raise UserError(f"{path} does not exist: the report needs it (run the workflow to make it)")
    return artifacts.read_table(path, kind).to_pandas()


def reference_label(reference: dict) -> str:
    """An evaluation reference as the tables name it."""
    return f"d={reference['decimals']}, {reference['max_bins']} bins"


def _reference(path: Path) -> str:
    return reference_label(artifacts.recorded_reference(path))


def check_one_reference(frames: dict[Path, str]) -> str:
    """The one evaluation reference of a table's files (path -> reference); two of them are an error
    naming a file of each."""
    found = {}
    for path, reference in frames.items():
        found.setdefault(reference, path)
    if len(found) > 1:
        (first, one), (second, other) = list(found.items())[:2]
        raise UserError(
            f"{one} was measured against the reference {first} but {other} against {second}: "
            "their numbers cannot share a table (set targets.eval_decimals and eval_max_bins to one "
            "reference and rerun the evaluations)"
        )
    return next(iter(found), "")


def _snapshots(config) -> list[tuple[str, str]]:
    """(model id, commit) of every hub snapshot a provenance config records as loaded, nested
    records (a score's samples) included."""
    if isinstance(config, dict):
        loaded = config.get("loaded")
        here = [(loaded["model_id"], loaded["commit"])] if isinstance(loaded, dict) and loaded.get("commit") else []
        return here + [found for value in config.values() for found in _snapshots(value)]
    if isinstance(config, list):
        return [found for value in config for found in _snapshots(value)]
    return []


def recorded_family(path: Path, model: str) -> str:
    """A result's model family as its provenance records it: the model's tokenizer (models that
    share one are one family); the model's name where the record has none."""
    recorded = artifacts.read_provenance(path)["config"].get("model")
    return recorded.get("tokenizer", model) if isinstance(recorded, dict) else model


def check_one_snapshot(inputs: dict) -> None:
    """Every result of a model was computed with one snapshot of its weights: two commits of one
    model are an error naming a file of each."""
    found = {}
    for paths in inputs.values():
        for key, path in paths.items():
            for model_id, commit in _snapshots(artifacts.read_provenance(path)["config"]):
                found.setdefault((key[0], model_id), {}).setdefault(commit, path)
    for (model, model_id), commits in found.items():
        if len(commits) > 1:
            (first, one), (second, other) = list(commits.items())[:2]
            raise UserError(
                f"{one} was computed with {model_id} at commit {first} but {other} at {second}: the results "
                f"of {model} cannot share a table (rerun the older ones with the revision the config pins)"
            )


def load(inputs: dict) -> pd.DataFrame:
    """Per-prompt rows of every (model, method[, variant], prompt set) of the inputs: scores joined
    with logit KL (SSOT has no logit KL: NaN), all measured against one evaluation reference."""
    frames, references = [], {}
    for key, path in inputs["scores"].items():
        frame = read(path, "scores").assign(logit_kl=np.nan, logit_kl_exact=np.nan)
        references[path] = _reference(path)
        kl = inputs["logit_kl"].get(key)
        if kl is not None:
            frame = frame.drop(columns=["logit_kl", "logit_kl_exact"]).merge(
                read(kl, "logit_kl")[["prompt_id", "logit_kl", "logit_kl_exact"]], on="prompt_id", how="left"
            )
            references[kl] = _reference(kl)
        model, method, *variant, prompt_set = key
        frames.append(
            frame.assign(
                model=model, method=method, prompt_set=prompt_set, **({"variant": variant[0]} if variant else {})
            )
        )
    reference = check_one_reference(references)
    return pd.concat(frames, ignore_index=True).assign(reference=reference)


def paper_table(summary_rows: pd.DataFrame, prompt_set: str) -> pd.DataFrame:
    """Tables 6/7 shape: a row per model, a column per (metric, method); NaN means undefined."""
    subset = summary_rows[summary_rows.prompt_set == prompt_set]
    names = [name for name, _, _ in metric_columns()]
    wide = subset.pivot(index="model", columns="method", values=names)
    wide = wide.reindex(columns=pd.MultiIndex.from_product([names, MAIN]))
    return wide.reindex(subset.model.unique())


def _methods(table: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(table.columns.get_level_values(1)))


def _cells(table: pd.DataFrame, columns, bold, escape) -> list[list[str]]:
    """Formatted cells, escaped for the format, the best method of each metric in each row marked
    with `bold`."""
    methods = _methods(table)
    rows = []
    for key, row in table.iterrows():
        cells = [escape(" / ".join(map(str, key)) if isinstance(key, tuple) else str(key))]
        for column, _, best in columns:
            values = row[column]
            finite = values[np.isfinite(values.astype(float))]
            target = None if finite.empty else (finite.min() if best == "min" else finite.max())
            winners = set(finite.index[finite == target])
            distinct = len(winners) < len(finite)  # bold only where the best stands out (ties all bold)
            for method in methods:
                value = values[method]
                shown = escape("—" if not np.isfinite(value) else f"{value:.3f}")
                cells.append(bold(shown) if method in winners and distinct else shown)
        rows.append(cells)
    return rows


def _headers(table: pd.DataFrame, columns) -> list[str]:
    names = table.index.names if isinstance(table.index, pd.MultiIndex) else [table.index.name or "model"]
    return [" / ".join(names)] + [f"{label} {method}" for _, label, _ in columns for method in _methods(table)]


def to_markdown(table: pd.DataFrame, title: str, columns) -> str:
    headers = _headers(table, columns)
    lines = [
        f"**{title}** (best per row in bold; — = undefined)",
        "",
        "| " + " | ".join(map(text.markdown, headers)) + " |",
        "|" + "---|" * len(headers),
    ]
    lines += ["| " + " | ".join(cells) + " |" for cells in _cells(table, columns, lambda t: f"**{t}**", text.markdown)]
    return "\n".join(lines) + "\n"


def to_latex(table: pd.DataFrame, title: str, columns) -> str:
    methods = _methods(table)
    spec = "l" + "c" * len(methods) * len(columns)
    groups = " & ".join(rf"\multicolumn{{{len(methods)}}}{{c}}{{{text.latex(label)}}}" for _, label, _ in columns)
    lines = [
        rf"% {title}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        rf"{text.latex(_headers(table, columns)[0])} & {groups} \\",
        " & " + " & ".join(map(text.latex, methods * len(columns))) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(cells) + r" \\" for cells in _cells(table, columns, lambda t: rf"\textbf{{{t}}}", text.latex)]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def per_method(inputs: dict, kind: str) -> pd.DataFrame:
    """The rows of each (model, method)'s `kind` file, with those two columns."""
    return pd.concat(
        [read(path, kind).assign(model=model, method=method) for (model, method), path in inputs[kind].items()],
        ignore_index=True,
    )


def load_retention(inputs: dict) -> pd.DataFrame:
    """Per-task retention rows; `score` is gp-IRT where it exists, else accuracy."""
    table = per_method(inputs, "retention")
    table["score"] = table.gpirt.fillna(table.accuracy)
    table["task"] = np.where(table.kind == "gsm8k", table.task + " " + table.metric, table.task)
    return table


def load_perplexity(inputs: dict) -> pd.DataFrame:
    return per_method(inputs, "perplexity")


def wide(
    rows: pd.DataFrame, index: list[str], values: list[str], order: list, methods: tuple[str, ...] = MAIN
) -> pd.DataFrame:
    wide = rows.pivot_table(index=index, columns="method", values=values, aggfunc="first", dropna=False)
    wide = wide.reindex(columns=pd.MultiIndex.from_product([values, methods]))
    return wide.reindex(order)


def retention_score_label(retention: pd.DataFrame) -> str:
    return "gp-IRT" if retention.gpirt.notna().all() else "mean accuracy"


def table2(retention: pd.DataFrame | None, perplexity: pd.DataFrame | None, models: list[str]):
    """Paper Table 2 shape: per model, the retention aggregate (mean over the task rows of gp-IRT,
    or of accuracy when the suite has no IRT parameters) and the pooled PALOMA perplexity."""
    rows, columns = [], []
    if retention is not None:
        rows.append(aggregates.retention_means(retention))
        columns.append(("retention", retention_score_label(retention), "max"))
    if perplexity is not None:
        rows.append(aggregates.pooled_perplexity(perplexity))
        columns.append(("perplexity", "PALOMA ppl", "min"))
    merged = rows[0] if len(rows) == 1 else rows[0].merge(rows[1], on=["model", "method"], how="outer")
    present = [m for m in models if m in set(merged.model)]
    return wide(merged, ["model"], [c for c, _, _ in columns], present), columns


def task_table(retention: pd.DataFrame, models: list[str]):
    """Paper Table 21 shape: per model and task, gp-IRT (when every task has it) and accuracy."""
    tasks = list(dict.fromkeys(retention.task))
    order = [(m, t) for m in models for t in tasks if ((retention.model == m) & (retention.task == t)).any()]
    columns = [("accuracy", "accuracy", "max")]
    if retention_score_label(retention) == "gp-IRT":
        columns.insert(0, ("gpirt", "gp-IRT", "max"))
    return wide(
        retention,
        ["model", "task"],
        [c for c, _, _ in columns],
        pd.MultiIndex.from_tuples(order, names=["model", "task"]),
    ), columns


SLICE_COLUMNS = [("perplexity", "perplexity", "min"), ("bits_per_byte", "bits/byte", "min")]


def slice_table(perplexity: pd.DataFrame, models: list[str]):
    """Paper Tables 22-23 shape: per model and slice, perplexity and bits per byte."""
    slices = list(dict.fromkeys(perplexity.slice))
    order = [(m, s) for m in models for s in slices if ((perplexity.model == m) & (perplexity.slice == s)).any()]
    return wide(
        perplexity,
        ["model", "slice"],
        ["perplexity", "bits_per_byte"],
        pd.MultiIndex.from_tuples(order, names=["model", "slice"]),
    ), SLICE_COLUMNS


def model_mean_table(rows: pd.DataFrame, key: str, columns):
    """Paper Tables 21 (right) and 23 shape: per task or slice, each measure averaged over the models
    (a model without the row is left out of its mean)."""
    values = [c for c, _, _ in columns]
    return wide(aggregates.model_means(rows, key, values), [key], values, list(dict.fromkeys(rows[key]))), columns


def load_noveltybench(inputs: dict) -> pd.DataFrame:
    return per_method(inputs, "noveltybench")


NOVELTY_COLUMNS = [("mean_distinct", "distinct", "max"), ("mean_utility", "utility", "max")]


def noveltybench_split_table(novelty: pd.DataFrame, models: list[str]):
    """Paper Table 10 shape: per split (curated, WildChat, and both), distinct and utility averaged
    over the models, then per model and split."""
    splits = list(dict.fromkeys(novelty.split))
    rows = aggregates.with_model_means(novelty, "split", ["mean_distinct", "mean_utility"])
    order = [(m, s) for m in ["all models", *models] for s in splits if ((rows.model == m) & (rows.split == s)).any()]
    return wide(
        rows,
        ["model", "split"],
        ["mean_distinct", "mean_utility"],
        pd.MultiIndex.from_tuples(order, names=["model", "split"]),
    ), NOVELTY_COLUMNS


def load_transfer(inputs: dict) -> pd.DataFrame | None:
    """Per (model, method): mean open-ended support size and unique fractions (over the prompts that
    got an answer: a prompt without one has no rate, where the reference counts 0), MCQ parse rate
    and TV, NoveltyBench utility; for the evaluations of the inputs (SSOT included)."""
    parts = []
    if inputs["open_ended"]:
        rates = ["unique_fraction", "unique_fraction_insensitive"]
        open_ended = per_method(inputs, "open_ended")
        open_ended.loc[open_ended["empty"] >= open_ended.samples, rates] = np.nan  # no answer: no rate (not 0)
        parts.append(aggregates.prompt_means(open_ended, ["support_size", *rates]))
    if inputs["mcq"]:
        parts.append(aggregates.prompt_means(per_method(inputs, "mcq"), ["parse_rate", "tv"]))
    if inputs["noveltybench"]:
        novelty = per_method(inputs, "noveltybench")
        parts.append(novelty[novelty.split == "all"][["model", "method", "mean_distinct", "mean_utility"]])
    if not parts:
        return None
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.merge(part, on=["model", "method"], how="outer")
    return merged


TRANSFER_COLUMNS = [
    ("support_size", "top-90% support", "max"),
    ("unique_fraction", "unique rate", "max"),
    ("unique_fraction_insensitive", "unique rate (case/punct.)", "max"),
    ("tv", "MCQ TV", "min"),
    ("parse_rate", "MCQ parse rate", "max"),
    ("mean_utility", "NoveltyBench utility", "max"),
]


def transfer_table(transfer: pd.DataFrame, models: list[str]):
    """Paper Table 1 shape: per model, base / soft / hard open-ended support size and unique rate
    (means over prompts), MCQ TV and parse rate, NoveltyBench utility (the columns that exist)."""
    columns = [c for c in TRANSFER_COLUMNS if c[0] in transfer]
    present = [m for m in models if m in set(transfer.model)]
    return wide(transfer[transfer.method.isin(MAIN)], ["model"], [c for c, _, _ in columns], present), columns


def ssot_table(summary_rows: pd.DataFrame, transfer: pd.DataFrame | None, prompt_set: str, models: list[str]):
    """Paper Tables 8-9 shape: base, soft and SSOT family-median normalized W1 and valid rate on a
    prompt set, with the open-ended unique rate where it was measured."""
    rows = summary_rows[summary_rows.prompt_set == prompt_set][["model", "method", "normalized_w1", "valid_rate"]]
    columns = [("normalized_w1", "W1 (norm.)", "min"), ("valid_rate", "valid rate", "max")]
    if transfer is not None and "unique_fraction" in transfer:
        rows = rows.merge(transfer[["model", "method", "unique_fraction"]], on=["model", "method"], how="left")
        columns.append(("unique_fraction", "open-ended unique rate", "max"))
    present = [m for m in models if m in set(rows.model)]
    return wide(rows, ["model"], [c for c, _, _ in columns], present, SSOT_COMPARISON), columns
