"""The per-prompt metrics of structured sampling, one registry: how each is named, read and aggregated.

A metric is a column of the per-prompt rows the report reads (the scores and logit-KL files). Its
entry says how the tables head it, which way is better, how a (model, method, prompt set) aggregates
it over prompts and families, and whether the structured-sampling tables (Tables 6-7) and the
per-distribution figures (Figures 4-7) show it. A metric that scoring computes from the samples
brings its function (`from_samples`); calft.evaluation.score calls it for every prompt. Adding a
metric is one `register_metric` call. Cheap to import (the workflow reads it in every job).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

FAMILY_MEDIAN = "family median"  # the paper's W1 aggregate: within-family means, median across families
FAMILY_MEAN = "family mean"  # equal-family mean: within-family means, mean across families


@dataclass(frozen=True)
class Metric:
    name: str  # its column in the per-prompt rows and the summary
    label: str  # as the tables head it
    long_label: str  # as the figures' axes name it
    better: str  # "min" or "max"
    aggregate: str  # over prompts and families: FAMILY_MEDIAN or FAMILY_MEAN
    per_distribution: str  # over one family's prompts, in the figures: "median" or "mean"
    in_tables: bool = True  # a column of Tables 6-7
    in_figures: bool = True  # drawn per distribution (Figures 4-7 and per_family_<set>_<name>.png)
    log_axis: bool = True
    on_valid_samples: bool = False  # from valid samples: marked where few (report.min_valid_samples)
    from_samples: Callable | None = None  # (values, valid, law) -> float, for scoring; None: calft's own

    @property
    def axis_label(self) -> str:
        return f"{self.long_label} ({'lower' if self.better == 'min' else 'higher'} is better)"


METRICS: dict[str, Metric] = {}


def register_metric(metric: Metric) -> Metric:
    if metric.name in METRICS:
        raise ValueError(f"a metric named '{metric.name}' is already registered")
    METRICS[metric.name] = metric
    return metric


for _metric in (
    Metric("normalized_w1", "W1 (norm.)", "normalized W1", "min", FAMILY_MEDIAN, "median", on_valid_samples=True),
    Metric("logit_kl", "logit KL", "logit KL", "min", FAMILY_MEAN, "mean"),
    Metric(
        "logit_kl_exact",
        "exact logit KL",
        "exact logit KL",
        "min",
        FAMILY_MEAN,
        "mean",
        in_tables=False,
        in_figures=False,
    ),
    Metric("valid_rate", "valid rate", "valid rate", "max", FAMILY_MEAN, "mean", in_figures=False, log_axis=False),
):
    register_metric(_metric)


def family_median(scores, column: str) -> float:
    """The paper's aggregate: mean of finite values within each family, median across families;
    NaN (undefined, '—' in the paper's tables) when some family has no finite value. `scores`: a
    data frame with `family` and `column`."""
    import numpy as np

    finite = scores[column].where(np.isfinite(scores[column]))
    per_family = finite.groupby(scores["family"], observed=True).mean()
    if per_family.isna().any() or per_family.empty:
        return float("nan")
    return float(per_family.median())


def family_mean(scores, column: str) -> float:
    """Equal-family-weight mean (the reference's summary for valid rate and logit KL)."""
    return float(scores.groupby("family", observed=True)[column].mean().mean())


OVER_FAMILIES = {FAMILY_MEDIAN: family_median, FAMILY_MEAN: family_mean}


def headline(scores) -> dict[str, float]:
    """Each registered metric of per-prompt rows (a scores or logit-KL table) aggregated over prompts
    and families as the tables aggregate it; undefined ones left out."""
    values = {
        metric.name: OVER_FAMILIES[metric.aggregate](scores, metric.name)
        for metric in METRICS.values()
        if metric.name in scores
    }
    return {name: value for name, value in values.items() if value == value}


def in_tables() -> list[Metric]:
    return [metric for metric in METRICS.values() if metric.in_tables]


def in_figures() -> list[Metric]:
    return [metric for metric in METRICS.values() if metric.in_figures]
