"""The paper's tables from parquet only, CPU, no model: structured sampling (Tables 6-7), retention
and perplexity (Tables 2, 21-23), transfer (Table 1) and SSOT (Tables 8-9).

The inputs are exactly the files of `calft.report.items.report_inputs`, the same list the aggregate rule
depends on; a missing one is an error that names it. The numbers are calft.report.aggregates'; this
module reads the files and lays the numbers out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from calft import artifacts, metrics
from calft.errors import UserError
from calft.methods import MAIN, SSOT_COMPARISON, shown
from calft.report import aggregates, intervals, text

SET_TITLES = {
    "ood": "held-out (OOD) families",
    "unseen": "unseen parameters of seen families",
    "ood-full": "held-out families, full grid",
    "unseen-full": "unseen parameters, full grid",
}


@dataclass(frozen=True)
class Column:
    """A measure a table shows per method, and the rule that bolds its best value: the best in its
    direction, and only where the values are distinguishable (its interval, `<name>_low` to
    `<name>_high`, disjoint from every other method's), where the cell rests on enough samples (no
    `<name>_few` mark) and where the method's output is an answer (`answered`: the column holding the
    share of its generations that ended as answers, at least half)."""

    name: str
    label: str
    better: str  # "min" or "max"
    answered: str | None = None

    @property
    def few(self) -> str:
        return f"{self.name}_few"

    @property
    def bounds(self) -> tuple[str, str]:
        return f"{self.name}_low", f"{self.name}_high"

    def companions(self, rows: pd.DataFrame) -> list[str]:
        """The columns of `rows` a table carries beside the value: its bounds, its mark, its answered share."""
        return [name for name in (*self.bounds, self.few, self.answered) if name and name in rows]


def metric_columns() -> list[Column]:
    """The columns of Tables 6-7: each metric the tables show (calft.metrics)."""
    return [Column(metric.name, metric.label, metric.better) for metric in metrics.in_tables()]


def carried(rows: pd.DataFrame, columns: list[Column]) -> list[str]:
    """The value columns of a wide table: each column's value and its companions."""
    return list(dict.fromkeys(name for column in columns for name in (column.name, *column.companions(rows))))


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


def recorded_source(path: Path) -> str | None:
    """The model source (hub id, or "embedded") a result's provenance records, nested records included."""

    def find(config):
        if isinstance(config, dict):
            model = config.get("model")
            if isinstance(model, dict) and isinstance(model.get("source"), str):
                return model["source"]
            return next((found for value in config.values() if (found := find(value))), None)
        return None

    return find(artifacts.read_provenance(path)["config"])


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


COUNTS = ("prompts", "valid_samples", "fewest_family_valid_samples")  # what a cell rests on, in the csv files


def paper_table(summary_rows: pd.DataFrame, prompt_set: str) -> pd.DataFrame:
    """Tables 6/7 shape: a row per model, a column per (metric, method); NaN means undefined."""
    subset = summary_rows[summary_rows.prompt_set == prompt_set]
    names = carried(subset, metric_columns()) + [name for name in COUNTS if name in subset]
    wide = subset.pivot(index="model", columns="method", values=names)
    wide = wide.reindex(columns=pd.MultiIndex.from_product([names, shown(subset.method)]))
    return wide.reindex(subset.model.unique())


def _methods(table: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(table.columns.get_level_values(1)))


def number(value: float) -> str:
    """A value as the tables print it: three decimals, or three significant digits beyond them."""
    if not np.isfinite(value):
        return "∞" if value == np.inf else "-∞" if value == -np.inf else "—"
    return f"{value:.3f}" if value == 0 or 1e-3 <= abs(value) < 1e4 else f"{value:.2e}"


def _get(row: pd.Series, name: str | None, method: str, default=np.nan):
    return row[name, method] if name and (name, method) in row.index else default


def best_methods(row: pd.Series, column: Column, methods: list[str]) -> set[str]:
    """The methods whose `column` value the table bolds in `row` (Column's rule): at most one."""
    values = {m: float(_get(row, column.name, m)) for m in methods}
    finite = {m: v for m, v in values.items() if np.isfinite(v)}
    if len(finite) < 2:
        return set()
    pick = min if column.better == "min" else max
    best = pick(finite, key=finite.get)
    if sum(v == finite[best] for v in finite.values()) > 1:
        return set()
    low, high = (float(_get(row, bound, best)) for bound in column.bounds)
    if not (np.isfinite(low) and np.isfinite(high)) or bool(_get(row, column.few, best, False)):
        return set()
    if column.answered and not float(_get(row, column.answered, best, 0.0)) >= 0.5:
        return set()
    for other in finite.keys() - {best}:
        other_low, other_high = (float(_get(row, bound, other)) for bound in column.bounds)
        separated = other_low > high if column.better == "min" else other_high < low
        if not separated:  # a NaN bound separates nothing
            return set()
    return {best}


def _cells(table: pd.DataFrame, columns: list[Column], style) -> list[list[str]]:
    """Formatted cells, in a format's `style` (markdown or latex): value, interval, mark, bold."""
    methods = _methods(table)
    rows = []
    for key, row in table.iterrows():
        cells = [style.escape(" / ".join(map(str, key)) if isinstance(key, tuple) else str(key))]
        for column in columns:
            winners = best_methods(row, column, methods)
            for method in methods:
                value = float(row[column.name, method])
                shown = style.escape(number(value))
                low, high = (float(_get(row, bound, method)) for bound in column.bounds)
                if np.isfinite(value) and not (np.isnan(low) or np.isnan(high)):
                    shown += style.interval(style.escape(f"[{number(low)}, {number(high)}]"))
                if np.isfinite(value) and bool(_get(row, column.few, method, False)):
                    shown += style.mark
                cells.append(style.bold(shown) if method in winners else shown)
        rows.append(cells)
    return rows


@dataclass(frozen=True)
class Style:
    escape: object
    bold: object
    interval: object
    mark: str


MARKDOWN = Style(text.markdown, lambda t: f"**{t}**", lambda t: f" {t}", "†")
LATEX = Style(text.latex, lambda t: rf"\textbf{{{t}}}", lambda t: rf"\,\mbox{{\scriptsize {t}}}", r"$^\dagger$")


def legend(bootstrap=None, min_valid_samples: int | None = None) -> str:
    """What a method table's marks mean, for its caption."""
    parts = ["— = undefined"]
    if bootstrap is not None:
        source = (
            f"bootstrap of {bootstrap.replicates} resamples, seed {bootstrap.seed}: prompts within families, "
            "samples within prompts; retention: lm-eval's stderr"
        )
        parts.append(f"[low, high] = {bootstrap.level:.0%} interval ({source})")
    if min_valid_samples is not None:
        parts.append(f"† = some family has fewer than {min_valid_samples} valid samples (value kept)")
    parts.append(
        "bold = best value whose interval is disjoint from every other method's (none where intervals are "
        "missing), not marked †, and from generations at least half of which are answers"
    )
    return "; ".join(parts)


def _headers(table: pd.DataFrame, columns: list[Column]) -> list[str]:
    names = table.index.names if isinstance(table.index, pd.MultiIndex) else [table.index.name or "model"]
    return [" / ".join(names)] + [f"{column.label} {method}" for column in columns for method in _methods(table)]


def to_markdown(table: pd.DataFrame, title: str, columns: list[Column], note: str = "") -> str:
    headers = _headers(table, columns)
    lines = [
        f"**{title}** ({note or legend()})",
        "",
        "| " + " | ".join(map(text.markdown, headers)) + " |",
        "|" + "---|" * len(headers),
    ]
    lines += ["| " + " | ".join(cells) + " |" for cells in _cells(table, columns, MARKDOWN)]
    return "\n".join(lines) + "\n"


def to_latex(table: pd.DataFrame, title: str, columns: list[Column], note: str = "") -> str:
    methods = _methods(table)
    spec = "l" + "c" * len(methods) * len(columns)
    groups = " & ".join(rf"\multicolumn{{{len(methods)}}}{{c}}{{{text.latex(column.label)}}}" for column in columns)
    lines = [
        rf"% {title}",
        rf"% {note or legend()}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        rf"{text.latex(_headers(table, columns)[0])} & {groups} \\",
        " & " + " & ".join(map(text.latex, methods * len(columns))) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(cells) + r" \\" for cells in _cells(table, columns, LATEX)]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def per_method(inputs: dict, kind: str) -> pd.DataFrame:
    """The rows of each (model, method)'s `kind` file, with those two columns."""
    return pd.concat(
        [read(path, kind).assign(model=model, method=method) for (model, method), path in inputs[kind].items()],
        ignore_index=True,
    )


def load_retention(inputs: dict, level: float = 0.95) -> pd.DataFrame:
    """Per-task retention rows; `score` is gp-IRT where it exists, else accuracy. `stderr` is the
    standard error lm-eval reports for the accuracy of the items the task scored, sqrt(p(1-p)/(n-1));
    the accuracy, gp-IRT and score intervals are the normal ones it gives at `level`, within [0, 1]."""
    from scipy.stats import norm

    table = per_method(inputs, "retention")
    table["score"] = table.gpirt.fillna(table.accuracy)
    table["task"] = np.where(table.kind == "gsm8k", table.task + " " + table.metric, table.task)
    with np.errstate(invalid="ignore", divide="ignore"):
        table["stderr"] = np.sqrt(table.accuracy * (1 - table.accuracy) / (table["items"] - 1))
    table["half_width"] = half = norm.ppf(0.5 + level / 2) * table.stderr
    for name in ("accuracy", "gpirt", "score"):
        table[f"{name}_low"], table[f"{name}_high"] = (table[name] - half).clip(0, 1), (table[name] + half).clip(0, 1)
    return table


def load_perplexity(inputs: dict) -> pd.DataFrame:
    return per_method(inputs, "perplexity")


def wide(
    rows: pd.DataFrame, index: list[str], values: list[str], order: list, methods: list[str] | None = None
) -> pd.DataFrame:
    """A column per value and method (by default the main methods the rows hold), a row per `index`."""
    methods = methods or shown(rows.method)
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
        columns.append(Column("retention", retention_score_label(retention), "max"))
    if perplexity is not None:
        rows.append(aggregates.pooled_perplexity(perplexity))
        columns.append(Column("perplexity", "PALOMA ppl", "min"))
    merged = rows[0] if len(rows) == 1 else rows[0].merge(rows[1], on=["model", "method"], how="outer")
    present = [m for m in models if m in set(merged.model)]
    return wide(merged, ["model"], carried(merged, columns), present), columns


def task_table(retention: pd.DataFrame, models: list[str]):
    """Paper Table 21 shape: per model and task, gp-IRT (when every task has it) and accuracy."""
    tasks = list(dict.fromkeys(retention.task))
    order = [(m, t) for m in models for t in tasks if ((retention.model == m) & (retention.task == t)).any()]
    columns = [Column("accuracy", "accuracy", "max")]
    if retention_score_label(retention) == "gp-IRT":
        columns.insert(0, Column("gpirt", "gp-IRT", "max"))
    return wide(
        retention,
        ["model", "task"],
        carried(retention, columns),
        pd.MultiIndex.from_tuples(order, names=["model", "task"]),
    ), columns


SLICE_COLUMNS = [Column("perplexity", "perplexity", "min"), Column("bits_per_byte", "bits/byte", "min")]


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
    values = [column.name for column in columns]
    return wide(aggregates.model_means(rows, key, values), [key], values, list(dict.fromkeys(rows[key]))), columns


def load_noveltybench(inputs: dict) -> pd.DataFrame:
    return per_method(inputs, "noveltybench")


NOVELTY_COLUMNS = [Column("mean_distinct", "distinct", "max"), Column("mean_utility", "utility", "max")]


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


def load_transfer(inputs: dict, bootstrap=None) -> pd.DataFrame | None:
    """Per (model, method): mean open-ended support size and unique fractions (over the prompts that
    got an answer: a prompt without one has no rate, where the reference counts 0) and the share of
    generations that are answers, MCQ parse rate and TV, NoveltyBench utility; for the evaluations
    of the inputs (SSOT included). Given a calft.report.intervals.Bootstrap, each measure's interval:
    prompts resampled (open-ended, NoveltyBench), generations resampled from their counts (MCQ)."""
    parts = []
    if inputs["open_ended"]:
        rates = ["unique_fraction", "unique_fraction_insensitive"]
        open_ended = per_method(inputs, "open_ended")
        open_ended.loc[open_ended["empty"] >= open_ended.samples, rates] = np.nan  # no answer: no rate (not 0)
        open_ended["answer_share"] = open_ended.answers / open_ended.samples
        parts.append(aggregates.prompt_means(open_ended, ["support_size", *rates, "answer_share"]))
        if bootstrap is not None:
            parts.append(intervals.prompt_mean_intervals(open_ended, ["support_size", *rates], bootstrap))
    if inputs["mcq"]:
        mcq = per_method(inputs, "mcq")
        parts.append(aggregates.prompt_means(mcq, ["parse_rate", "tv"]))
        if bootstrap is not None:
            parts.append(intervals.mcq_intervals(mcq, bootstrap))
    if inputs["noveltybench"]:
        novelty = per_method(inputs, "noveltybench")
        parts.append(novelty[novelty.split == "all"][["model", "method", "mean_distinct", "mean_utility"]])
        if bootstrap is not None and inputs["noveltybench_generations"]:
            scores = novelty_prompt_scores(inputs, novelty_generations(inputs))
            scores = scores.rename(columns={"distinct": "mean_distinct", "utility": "mean_utility"})
            parts.append(intervals.prompt_mean_intervals(scores, ["mean_distinct", "mean_utility"], bootstrap))
    if not parts:
        return None
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.merge(part, on=["model", "method"], how="outer")
    return merged


def novelty_generations(inputs: dict) -> pd.DataFrame:
    """Every NoveltyBench generation of the main methods, with its model and method."""
    paths = inputs["noveltybench_generations"]
    return pd.concat(
        [
            read(path, "noveltybench_generations").assign(model=model, method=method)
            for (model, method), path in paths.items()
        ],
        ignore_index=True,
    )


def novelty_prompt_scores(inputs: dict, generations: pd.DataFrame) -> pd.DataFrame:
    """Per (model, method, split, prompt): NoveltyBench's distinct partitions and utility, from the
    generations (novelty_generations) with the patience each run recorded."""
    from calft.report import novelty_cases

    paths = inputs["noveltybench_generations"]
    patience = {key: artifacts.read_provenance(path)["config"]["settings"]["patience"] for key, path in paths.items()}
    return novelty_cases.prompt_scores(generations, patience)


TRANSFER_COLUMNS = [
    Column("support_size", "top-90% support", "max"),
    Column("unique_fraction", "unique rate", "max", answered="answer_share"),
    Column("unique_fraction_insensitive", "unique rate (case/punct.)", "max", answered="answer_share"),
    Column("tv", "MCQ TV", "min", answered="parse_rate"),
    Column("parse_rate", "MCQ parse rate", "max"),
    Column("mean_utility", "NoveltyBench utility", "max"),
]


def transfer_table(transfer: pd.DataFrame, models: list[str]):
    """Paper Table 1 shape: per model, base / soft / hard open-ended support size and unique rate
    (means over prompts), MCQ TV and parse rate, NoveltyBench utility (the columns that exist)."""
    columns = [c for c in TRANSFER_COLUMNS if c.name in transfer]
    present = [m for m in models if m in set(transfer.model)]
    return wide(transfer[transfer.method.isin(MAIN)], ["model"], carried(transfer, columns), present), columns


def ssot_table(summary_rows: pd.DataFrame, transfer: pd.DataFrame | None, prompt_set: str, models: list[str]):
    """Paper Tables 8-9 shape: base, soft and SSOT family-median normalized W1 and valid rate on a
    prompt set, with the open-ended unique rate where it was measured."""
    rows = summary_rows[summary_rows.prompt_set == prompt_set]
    columns = [column for column in metric_columns() if column.name in ("normalized_w1", "valid_rate")]
    rows = rows[["model", "method", *carried(rows, columns), *(name for name in COUNTS if name in rows)]]
    if transfer is not None and "unique_fraction" in transfer:
        unique = Column("unique_fraction", "open-ended unique rate", "max", answered="answer_share")
        measured = transfer[["model", "method", *carried(transfer, [unique])]]
        rows = rows.merge(measured, on=["model", "method"], how="left")
        columns.append(unique)
    present = [m for m in models if m in set(rows.model)]
    values = carried(rows, columns) + [name for name in COUNTS if name in rows]
    return wide(rows, ["model"], values, present, SSOT_COMPARISON), columns
