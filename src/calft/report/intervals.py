"""Bootstrap intervals of the report's numbers, from the cached parquet alone. Pure numpy and pandas.

A structured-sampling aggregate (calft.report.aggregates: family median or equal-family mean) is
recomputed on resamples that draw prompts with replacement within each family and, for a metric
that scoring resampled (its `<metric>_replicates` column), one of the drawn prompt's sample-level
replicates (calft.evaluation.metrics.bootstrap_replicates). A resample on which the aggregate is
undefined counts as the metric's worst value, so an often-undefined aggregate gets an open bound.
Per-prompt means (transfer) resample prompts. Everything is seeded.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from calft.metrics import FAMILY_MEDIAN, Metric


@dataclass(frozen=True)
class Bootstrap:
    replicates: int = 1000
    level: float = 0.95
    seed: int = 0

    def rng(self, *key: str) -> np.random.Generator:
        """A generator seeded by the seed and a cell's key, so a cell's interval does not depend on the others."""
        return np.random.default_rng([self.seed, zlib.crc32("/".join(map(str, key)).encode())])

    def bounds(self, estimates: np.ndarray) -> tuple[float, float]:
        """The percentile interval of bootstrap estimates (±inf allowed: no interpolation across them)."""
        tail = (1 - self.level) / 2
        return (
            float(np.quantile(estimates, tail, method="lower")),
            float(np.quantile(estimates, 1 - tail, method="higher")),
        )


def _family_values(group: pd.DataFrame, metric: Metric, bootstrap: Bootstrap, rng) -> np.ndarray:
    """(replicates, families): each family's mean of the metric on each resample of its prompts."""
    values = group[metric.name].to_numpy(float)
    replicated = f"{metric.name}_replicates"
    sample_level = np.stack(group[replicated].to_numpy()) if replicated in group else None
    columns = []
    for rows in group.groupby("family", observed=True, sort=False).indices.values():
        drawn = rows[rng.integers(0, len(rows), (bootstrap.replicates, len(rows)))]
        if sample_level is not None and sample_level.shape[1]:
            resampled = sample_level[drawn, rng.integers(0, sample_level.shape[1], drawn.shape)]
        else:
            resampled = values[drawn]
        finite = np.isfinite(resampled)
        with np.errstate(invalid="ignore"):
            columns.append(np.where(finite, resampled, 0).sum(axis=1) / finite.sum(axis=1))
    return np.stack(columns, axis=1)


def aggregate_interval(group: pd.DataFrame, metric: Metric, bootstrap: Bootstrap, key: tuple) -> tuple[float, float]:
    """The bootstrap interval of one (model, method, prompt set)'s aggregate of `metric`."""
    if not np.isfinite(group[metric.name].to_numpy(float)).any():
        return float("nan"), float("nan")
    per_family = _family_values(group, metric, bootstrap, bootstrap.rng(*key, metric.name))
    if metric.aggregate == FAMILY_MEDIAN:
        estimates = np.median(per_family, axis=1)  # NaN when a family is undefined, as the point value
    else:
        with np.errstate(invalid="ignore"):
            estimates = np.nanmean(np.where(np.isfinite(per_family), per_family, np.nan), axis=1)
    worst = np.inf if metric.better == "min" else -np.inf
    return bootstrap.bounds(np.where(np.isfinite(estimates), estimates, worst))


def mean_interval(values: np.ndarray, bootstrap: Bootstrap, key: tuple) -> tuple[float, float]:
    """The bootstrap interval of a mean over prompts (NaN prompts left out, as the point value)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    rng = bootstrap.rng(*key)
    return bootstrap.bounds(values[rng.integers(0, len(values), (bootstrap.replicates, len(values)))].mean(axis=1))


def prompt_mean_intervals(rows: pd.DataFrame, values: list[str], bootstrap: Bootstrap) -> pd.DataFrame:
    """Per (model, method): the bootstrap interval of each value's mean over the rows (prompts), as
    `<value>_low` and `<value>_high`."""
    out = []
    for (model, method), group in rows.groupby(["model", "method"], sort=False):
        row = {"model": model, "method": method}
        for value in values:
            row[f"{value}_low"], row[f"{value}_high"] = mean_interval(group[value], bootstrap, (model, method, value))
        out.append(row)
    return pd.DataFrame(out, columns=["model", "method", *(f"{v}_{end}" for v in values for end in ("low", "high"))])


def mcq_intervals(mcq: pd.DataFrame, bootstrap: Bootstrap) -> pd.DataFrame:
    """Per (model, method): parse rate and TV to uniform on multinomial resamples of its generations
    (unparseable, A, B, C, D), as `<measure>_low` and `<measure>_high`."""
    from calft.transfer.metrics import tv_to_uniform

    options = ["count_A", "count_B", "count_C", "count_D"]
    out = []
    for (model, method), group in mcq.groupby(["model", "method"], sort=False):
        counts = np.array([(group.generations - group.parseable).sum(), *group[options].sum()], dtype=float)
        entry = {"model": model, "method": method}
        if counts.sum() > 0:
            rng = bootstrap.rng(model, method, "mcq")
            drawn = rng.multinomial(int(counts.sum()), counts / counts.sum(), bootstrap.replicates)
            parse = drawn[:, 1:].sum(axis=1) / counts.sum()
            tv = np.array([tv_to_uniform(d[1:]) for d in drawn])
            entry["parse_rate_low"], entry["parse_rate_high"] = bootstrap.bounds(parse)
            entry["tv_low"], entry["tv_high"] = bootstrap.bounds(np.where(np.isfinite(tv), tv, np.inf))
        out.append(entry)
    return pd.DataFrame(out, columns=["model", "method", "parse_rate_low", "parse_rate_high", "tv_low", "tv_high"])
