"""The report's aggregates: how per-prompt, per-task, per-slice and per-model rows become the numbers
the tables print (paper §4.2 and Appendix D). Per (model, method, prompt set): normalized W1 as the
paper's family median (the reference lacks it, spec §18.1: the finite values averaged within each
family, the median across families, undefined when a family has no finite value), logit KL and
valid rate as equal-family means; retention as the mean over task rows; perplexity as the pooled 'all' slice;
transfer measures as means over prompts; cross-model rows as means over the models that have them.
Pure pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd

from calft.methods import BASE, TRAINED
from calft.metrics import METRICS, OVER_FAMILIES


def summary(per_prompt: pd.DataFrame, bootstrap=None, min_valid_samples: int = 1) -> pd.DataFrame:
    """One row per (prompt set, model, method[, variant]) with each metric's aggregate (calft.metrics),
    what it rests on (prompts, samples, valid samples, the fewest valid samples of any family) and,
    given a calft.report.intervals.Bootstrap, each metric's interval (`<metric>_low`, `<metric>_high`).
    `<metric>_few` marks a metric computed from valid samples that some family has fewer than
    `min_valid_samples` of."""
    from calft.report.intervals import aggregate_interval

    keys = ["prompt_set", "model", "method"] + (["variant"] if "variant" in per_prompt else [])
    rows = []
    counted = {"num_samples", "num_valid"} <= set(per_prompt)
    for values, group in per_prompt.groupby(keys, sort=False):
        row = {**dict(zip(keys, values)), "families": group["family"].nunique(), "prompts": len(group)}
        if counted:
            row["samples"], row["valid_samples"] = int(group.num_samples.sum()), int(group.num_valid.sum())
            row["fewest_family_valid_samples"] = int(group.groupby("family", observed=True).num_valid.sum().min())
        for metric in METRICS.values():
            if metric.name not in group:
                continue
            row[metric.name] = OVER_FAMILIES[metric.aggregate](group, metric.name)
            if metric.on_valid_samples and counted:
                row[f"{metric.name}_few"] = row["fewest_family_valid_samples"] < min_valid_samples
            if bootstrap is not None:
                low, high = aggregate_interval(group, metric, bootstrap, values)
                row[f"{metric.name}_low"], row[f"{metric.name}_high"] = low, high
        rows.append(row)
    return pd.DataFrame(rows)


def retention_means(retention: pd.DataFrame) -> pd.DataFrame:
    """Per (model, method): the mean score over the task rows, as `retention`, with the interval of
    independent task errors (`retention_low`, `retention_high`: the tasks' `half_width` in quadrature,
    over their number), within [0, 1] like every score."""
    half = retention.half_width if "half_width" in retention else np.nan
    grouped = retention.assign(half_squared=half**2).groupby(["model", "method"], as_index=False)
    means = grouped.agg(
        retention=("score", "mean"),
        half_squared=("half_squared", lambda h: h.sum(skipna=False)),
        tasks=("score", "size"),
    )
    half = np.sqrt(means.half_squared) / means.tasks
    low, high = (means.retention - half).clip(0, 1), (means.retention + half).clip(0, 1)
    return means.assign(retention_low=low, retention_high=high)[
        ["model", "method", "retention", "retention_low", "retention_high"]
    ]


def pooled_perplexity(perplexity: pd.DataFrame) -> pd.DataFrame:
    """Per (model, method): the perplexity of the 'all' row, which pools every slice's tokens."""
    return perplexity[perplexity.slice == "all"][["model", "method", "perplexity"]]


def prompt_means(rows: pd.DataFrame, values: list[str]) -> pd.DataFrame:
    """Per (model, method): each value averaged over the rows (prompts); NaN rows left out."""
    return rows.groupby(["model", "method"], as_index=False)[values].mean()


def model_means(rows: pd.DataFrame, key: str, values: list[str]) -> pd.DataFrame:
    """Per `key` (task, slice) and method: each value averaged over the models that have the row."""
    return rows.groupby([key, "method"], sort=False, as_index=False)[values].mean()


def with_model_means(rows: pd.DataFrame, key: str, values: list[str]) -> pd.DataFrame:
    """`rows` after their means over the models per `key` and method, as the model 'all models'."""
    pooled = model_means(rows, key, values).assign(model="all models")
    return pd.concat([pooled, rows[pooled.columns]], ignore_index=True)


def open_ended_counts(rows: pd.DataFrame) -> pd.DataFrame:
    """Appendix D.4: for each fine-tuned method and measure, how many (prompt, model) pairs it
    raised, kept or lowered against the base model (e.g. the paper's 1101 of 1224), over all models
    (family "all") and, where the rows name each model's family, per family (the paper's per-family
    direction)."""
    groups = [("all", rows)]
    if "family" in rows:
        groups += list(rows.groupby("family", sort=False))
    counts = []
    for family, group in groups:
        base = group[group.method == BASE].set_index(["model", "prompt_index"])
        for method in [m for m in TRAINED if m in set(group.method)]:
            tuned = group[group.method == method].set_index(["model", "prompt_index"])
            for measure in ("support_size", "unique_fraction"):
                pairs = pd.concat(
                    [base[measure].rename("base"), tuned[measure].rename("tuned")], axis=1, join="inner"
                ).dropna()
                counts.append(
                    {
                        "family": family,
                        "method": method,
                        "measure": measure,
                        "pairs": len(pairs),
                        "higher": int((pairs.tuned > pairs.base).sum()),
                        "equal": int((pairs.tuned == pairs.base).sum()),
                        "lower": int((pairs.tuned < pairs.base).sum()),
                    }
                )
    return pd.DataFrame(counts, columns=["family", "method", "measure", "pairs", "higher", "equal", "lower"])


def concentration(samples: pd.DataFrame, tops: tuple[int, ...] = (1, 4)) -> pd.DataFrame:
    """Appendix D.4's concentration: per (model, method), the share of a prompt's samples on its k most
    frequent answers (the paper's "80% on Wednesday", "74% on its top four cities"), as the mean, min
    and max over prompts, for each k of `tops`."""
    per_prompt = []
    for (model, method, prompt), group in samples.groupby(["model", "method", "prompt_index"], sort=False):
        frequencies = group.normalized.value_counts().to_numpy() / len(group)
        per_prompt.append({"model": model, "method": method, **{k: frequencies[:k].sum() for k in tops}})
    shares = pd.DataFrame(per_prompt, columns=["model", "method", *tops])
    grouped = shares.groupby(["model", "method"], sort=False)
    columns = {f"top{k}_{stat}": (k, stat) for k in tops for stat in ("mean", "min", "max")}
    return grouped.agg(prompts=(tops[0], "size"), **columns).reset_index().round(3)
