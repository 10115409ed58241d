"""The report's bootstrap intervals: prompts resampled within families, samples within prompts through
the replicates scoring stores, an undefined resample counted as the worst value, seeded."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from calft import metrics
from calft.evaluation.metrics import bootstrap_replicates, wasserstein_to_law
from calft.metrics import METRICS
from calft.report import aggregates
from calft.report.intervals import Bootstrap, aggregate_interval, mean_interval

W1, VALID_RATE = METRICS["normalized_w1"], METRICS["valid_rate"]


def _prompts(family_values: dict[str, list[float]], replicates=None) -> pd.DataFrame:
    rows = [(family, value) for family, values in family_values.items() for value in values]
    frame = pd.DataFrame(rows, columns=["family", "normalized_w1"])
    if replicates is not None:
        frame["normalized_w1_replicates"] = replicates
    return frame


def test_prompts_are_resampled_within_their_families():
    # every family's prompts agree, so the family median is 3 on every resample that keeps families
    # apart; pooling prompts across families would move it
    group = _prompts({"a": [1, 1, 1], "b": [3, 3, 3], "c": [5, 5, 5]})
    assert aggregate_interval(group, W1, Bootstrap(replicates=500), ("m",)) == (3.0, 3.0)


def test_one_family_of_two_prompts_spans_both_values():
    # the mean of two draws from {0, 1} is 0, 0.5 or 1 with chances 1/4, 1/2, 1/4: the 95% interval is [0, 1]
    assert aggregate_interval(_prompts({"a": [0.0, 1.0]}), W1, Bootstrap(), ("m",)) == (0.0, 1.0)
    assert mean_interval(np.array([0.0, 1.0]), Bootstrap(), ("m",)) == (0.0, 1.0)


def test_a_prompts_sample_level_replicates_widen_the_interval():
    fixed = _prompts({"a": [2.0], "b": [2.0]}, replicates=[[2.0] * 50, [2.0] * 50])
    assert aggregate_interval(fixed, W1, Bootstrap(), ("m",)) == (2.0, 2.0)
    spread = _prompts({"a": [2.0], "b": [2.0]}, replicates=[list(np.linspace(1, 3, 50))] * 2)
    low, high = aggregate_interval(spread, W1, Bootstrap(), ("m",))
    assert 1.0 <= low < 1.5 and 2.5 < high <= 3.0  # the median of two families: the mean of two draws


def test_a_resample_with_an_undefined_family_counts_as_the_worst_value():
    # family b is undefined whenever its one NaN prompt is drawn twice (chance 1/4): W1's upper bound is open
    group = _prompts({"a": [1.0, 1.0], "b": [2.0, np.nan]})
    assert metrics.family_median(group, "normalized_w1") == pytest.approx(1.5)
    low, high = aggregate_interval(group, W1, Bootstrap(), ("m",))
    assert low == pytest.approx(1.5) and high == np.inf
    valid = group.rename(columns={"normalized_w1": "valid_rate"})
    assert aggregate_interval(valid.fillna({"valid_rate": 0.5}), VALID_RATE, Bootstrap(), ("m",))[0] < 1.5


def test_intervals_are_seeded_per_cell():
    group = _prompts({"a": list(np.linspace(0, 1, 7)), "b": list(np.linspace(1, 4, 5))})
    first = aggregate_interval(group, W1, Bootstrap(seed=3), ("m", "soft"))
    assert aggregate_interval(group, W1, Bootstrap(seed=3), ("m", "soft")) == first
    assert aggregate_interval(group, W1, Bootstrap(seed=4), ("m", "soft")) != first


def test_summary_records_the_counts_and_marks_w1_resting_on_few_valid_samples():
    per_prompt = pd.DataFrame(
        {
            "prompt_set": "ood",
            "model": "m",
            "method": "base",
            "family": ["a", "a", "b"],
            "num_samples": 100,
            "num_valid": [4, 3, 90],
            "normalized_w1": [0.1, 0.2, 0.3],
            "valid_rate": [0.04, 0.03, 0.9],
        }
    )
    row = aggregates.summary(per_prompt, Bootstrap(replicates=200), min_valid_samples=10).iloc[0]
    assert (row.prompts, row.samples, row.valid_samples, row.fewest_family_valid_samples) == (3, 300, 97, 7)
    assert row.normalized_w1_few and row.normalized_w1_low <= row.normalized_w1 <= row.normalized_w1_high
    assert not aggregates.summary(per_prompt, None, min_valid_samples=7).iloc[0].normalized_w1_few


def test_scoring_replicates_resample_the_valid_samples_and_all_samples_for_the_valid_rate():
    from scipy import stats

    law = stats.norm(0, 1)
    values = np.array([-1.0, 0.0, 1.0, 5.0, 0.5])
    valid = np.array([True, True, True, False, True])
    replicates = bootstrap_replicates("p1", values, valid, law, 2.0, 400)
    assert replicates["valid_rate"].mean() == pytest.approx(0.8, abs=0.03)
    assert set(np.round(replicates["valid_rate"] * 5)) <= set(range(6))
    point = wasserstein_to_law(values[valid], law) / 2.0
    assert replicates["normalized_w1"].min() <= point < np.quantile(replicates["normalized_w1"], 0.95)
    same = bootstrap_replicates("p1", np.full(5, 0.25), valid, law, 1.0, 50)["normalized_w1"]
    assert same == pytest.approx(np.full(50, wasserstein_to_law(np.full(4, 0.25), law)))  # nothing to resample
    assert np.array_equal(
        bootstrap_replicates("p1", values, valid, law, 2.0, 400)["normalized_w1"], replicates["normalized_w1"]
    )
    assert not np.array_equal(
        bootstrap_replicates("p2", values, valid, law, 2.0, 400)["normalized_w1"], replicates["normalized_w1"]
    )
    none_valid = bootstrap_replicates("p3", values, np.zeros(5, bool), law, 1.0, 10)
    assert np.all(none_valid["valid_rate"] == 0) and np.all(np.isnan(none_valid["normalized_w1"]))
