"""Known answers for the report's aggregates, by hand: each table's number from per-prompt or
per-row values whose plausible alternatives (mean for median, prompts for families, pooled for
per-model, NaN as zero) give different answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from calft import metrics
from calft.report import aggregates, tables

# Family values chosen so that every plausible aggregate differs: family means a 0.2 (its inf left out),
# b 0.9, c 0.7, d 0.05 -> median 0.45; mean of family means 0.4625; median of family medians 0.35;
# pooled median 0.4; pooled mean 0.4929; with the inf kept, family a and the mean are infinite.
SCORES = pd.DataFrame(
    {
        "family": ["a", "a", "a", "b", "c", "c", "c", "d"],
        "normalized_w1": [0.1, 0.3, np.inf, 0.9, 0.4, 0.5, 1.2, 0.05],
        "valid_rate": [1.0, 0.0, 0.5, 0.9, 0.2, 0.2, 0.2, 0.6],
    }
)


def test_the_paper_aggregate_is_the_median_across_families_of_within_family_means():
    assert metrics.family_median(SCORES, "normalized_w1") == pytest.approx(0.45)


def test_the_paper_aggregate_is_undefined_when_one_family_has_no_finite_value():
    scores = SCORES.copy()
    scores.loc[scores.family == "b", "normalized_w1"] = np.nan
    assert math.isnan(metrics.family_median(scores, "normalized_w1"))
    assert metrics.family_median(SCORES[SCORES.family != "b"], "normalized_w1") == pytest.approx(0.2)  # a, c, d


def test_families_read_as_categories_count_only_the_families_present():
    # parquet hands the family column back as a category whose categories may outnumber the rows' families
    scores = SCORES.assign(family=pd.Categorical(SCORES.family, categories=["a", "b", "c", "d", "unused"]))
    assert metrics.family_median(scores, "normalized_w1") == pytest.approx(0.45)
    assert metrics.family_mean(scores, "valid_rate") == pytest.approx(0.55)


def test_the_equal_family_mean_weighs_each_family_once_whatever_its_prompt_count():
    # family means a 0.5, b 0.9, c 0.2, d 0.6 -> 0.55; the prompt mean would be 3.6 / 8 = 0.45
    assert metrics.family_mean(SCORES, "valid_rate") == pytest.approx(0.55)


def _per_prompt(method: str, shift: float) -> pd.DataFrame:
    # family means of normalized W1: a 0.2 (inf left out), b 0.9, c 0.7, d 0.05 -> median 0.45
    # (mean of family means 0.4625, pooled median 0.4); valid rate family means 0.5, 0.9, 0.2, 0.6 -> 0.55
    # (prompt mean 0.45); logit KL family means 1, 2, 3, 4 -> 2.5 (prompt mean 2.625)
    return pd.DataFrame(
        {
            "prompt_set": "ood",
            "model": "m",
            "method": method,
            "family": ["a", "a", "a", "b", "c", "c", "c", "d"],
            "normalized_w1": np.array([0.1, 0.3, np.inf, 0.9, 0.4, 0.5, 1.2, 0.05]) + shift,
            "valid_rate": [1.0, 0.0, 0.5, 0.9, 0.2, 0.2, 0.2, 0.6],
            "logit_kl": [1.0, 1.0, 1.0, 2.0, 3.0, 3.0, 3.0, 4.0],
            "logit_kl_exact": np.nan,
        }
    )


def test_summary_takes_the_family_median_of_w1_and_equal_family_means_of_valid_rate_and_logit_kl():
    rows = aggregates.summary(pd.concat([_per_prompt("base", 0.0), _per_prompt("soft", -0.01)], ignore_index=True))
    base, soft = rows.set_index("method").loc["base"], rows.set_index("method").loc["soft"]
    assert base.normalized_w1 == pytest.approx(0.45) and soft.normalized_w1 == pytest.approx(0.44)
    assert base.valid_rate == pytest.approx(0.55) and base.logit_kl == pytest.approx(2.5)
    assert math.isnan(base.logit_kl_exact)
    assert (base.families, base.prompts) == (4, 8)


def test_the_paper_table_puts_each_method_in_its_column_and_leaves_a_missing_one_undefined():
    rows = aggregates.summary(pd.concat([_per_prompt("base", 0.0), _per_prompt("soft", -0.01)], ignore_index=True))
    table = tables.paper_table(rows, "ood")
    assert table.loc["m", ("normalized_w1", "soft")] == pytest.approx(0.44)
    assert math.isnan(table.loc["m", ("normalized_w1", "hard")])


def _method_table(**columns) -> pd.DataFrame:
    """A one-row table: `measure=[base, soft, hard]` per column."""
    names = list(columns)
    values = [value for name in names for value in columns[name]]
    index = pd.MultiIndex.from_product([names, ["base", "soft", "hard"]])
    return pd.DataFrame([values], index=pd.Index(["m"], name="model"), columns=index)


def test_bold_marks_a_best_value_only_where_its_interval_separates_it_from_every_other():
    w1 = tables.Column("w1", "W1", "min")
    table = _method_table(w1=[0.5, 0.2, 0.3], w1_low=[0.4, 0.1, 0.25], w1_high=[0.6, 0.22, 0.35])
    assert tables.best_methods(table.iloc[0], w1, ["base", "soft", "hard"]) == {"soft"}
    assert "| m | 0.500 \\[0.400, 0.600\\] | **0.200 \\[0.100, 0.220\\]** |" in tables.to_markdown(table, "t", [w1])
    overlapping = _method_table(w1=[0.5, 0.2, 0.3], w1_low=[0.4, 0.1, 0.2], w1_high=[0.6, 0.25, 0.35])
    assert tables.best_methods(overlapping.iloc[0], w1, ["base", "soft", "hard"]) == set()  # hard's 0.2 < soft's 0.25
    no_intervals = _method_table(w1=[0.5, 0.2, 0.3])
    assert tables.best_methods(no_intervals.iloc[0], w1, ["base", "soft", "hard"]) == set()
    few = _method_table(w1=[0.5, 0.2, 0.3], w1_low=[0.4, 0.1, 0.25], w1_high=[0.6, 0.22, 0.35], w1_few=[0, 1, 0])
    assert tables.best_methods(few.iloc[0], w1, ["base", "soft", "hard"]) == set()  # soft's rests on few samples
    assert "0.200 \\[0.100, 0.220\\]†" in tables.to_markdown(few, "t", [w1])


def test_bold_is_withheld_where_the_best_value_comes_from_output_that_is_not_an_answer():
    unique = tables.Column("unique", "unique rate", "max", answered="answers")
    prose = _method_table(
        unique=[1.0, 0.6, 0.5], unique_low=[1.0, 0.5, 0.4], unique_high=[1.0, 0.7, 0.55], answers=[0.0, 1.0, 1.0]
    )
    assert tables.best_methods(prose.iloc[0], unique, ["base", "soft", "hard"]) == set()
    answered = prose.copy()
    answered["answers", "base"] = 0.9
    assert tables.best_methods(answered.iloc[0], unique, ["base", "soft", "hard"]) == {"base"}


def test_table2_averages_the_retention_scores_over_task_rows_and_takes_the_pooled_perplexity():
    retention = pd.DataFrame(
        {
            "model": "m",
            "method": ["base"] * 3,
            "task": ["x", "y", "z"],
            "score": [0.2, 0.4, 0.9],
            "gpirt": [0.2, 0.4, 0.9],
        }
    )
    perplexity = pd.DataFrame(
        {"model": "m", "method": "base", "slice": ["s", "t", "all"], "perplexity": [10.0, 30.0, 12.0]}
    )
    table, _ = tables.table2(retention, perplexity, ["m"])
    assert table.loc["m", ("retention", "base")] == pytest.approx(0.5)
    assert table.loc["m", ("perplexity", "base")] == 12.0  # the pooled row, not the slices' mean 20


def test_model_means_leave_a_model_without_the_row_out_of_the_mean():
    # task x: models m1 0.2, m2 0.6 -> 0.4; task y: m1 only, 0.9 -> 0.9 (not (0.9 + 0) / 2)
    rows = pd.DataFrame(
        {"model": ["m1", "m2", "m1"], "method": "base", "task": ["x", "x", "y"], "accuracy": [0.2, 0.6, 0.9]}
    )
    table, _ = tables.model_mean_table(rows, "task", [tables.Column("accuracy", "accuracy", "max")])
    assert table.loc["x", ("accuracy", "base")] == pytest.approx(0.4)
    assert table.loc["y", ("accuracy", "base")] == pytest.approx(0.9)


def test_noveltybench_split_table_averages_over_models_per_split():
    novelty = pd.DataFrame(
        {
            "model": ["m1", "m2", "m1", "m2"],
            "method": "soft",
            "split": ["curated"] * 2 + ["all"] * 2,
            "mean_distinct": [2.0, 4.0, 3.0, 5.0],
            "mean_utility": [1.0, 2.0, 3.0, 7.0],
        }
    )
    table, _ = tables.noveltybench_split_table(novelty, ["m1", "m2"])
    assert table.loc[("all models", "curated"), ("mean_distinct", "soft")] == pytest.approx(3.0)
    assert table.loc[("all models", "all"), ("mean_utility", "soft")] == pytest.approx(5.0)
    assert table.loc[("m2", "all"), ("mean_utility", "soft")] == 7.0


def test_open_ended_counts_compare_each_prompt_with_the_base_model_on_the_same_prompt():
    # support sizes base 2, 3, 5 / soft 4, 3, 1 -> higher 1, equal 1, lower 1; a missing soft value is no pair
    rows = pd.DataFrame(
        {
            "model": "m",
            "method": ["base"] * 4 + ["soft"] * 4,
            "prompt_index": [0, 1, 2, 3] * 2,
            "support_size": [2.0, 3.0, 5.0, 1.0, 4.0, 3.0, 1.0, np.nan],
            "unique_fraction": [0.1, 0.1, 0.1, 0.1, 0.5, 0.5, 0.5, 0.5],
        }
    )
    counts = aggregates.open_ended_counts(rows)
    assert counts.to_dict("records") == [
        {"family": "all", "method": "soft", "measure": "support_size", "pairs": 3, "higher": 1, "equal": 1, "lower": 1},
        {
            "family": "all",
            "method": "soft",
            "measure": "unique_fraction",
            "pairs": 4,
            "higher": 4,
            "equal": 0,
            "lower": 0,
        },
    ]
    alone = aggregates.open_ended_counts(rows[rows.method == "base"])  # no fine-tuned method: no rows, same columns
    assert alone.empty and list(alone.columns) == ["family", "method", "measure", "pairs", "higher", "equal", "lower"]


def test_open_ended_counts_split_by_family_show_each_familys_direction():
    # family q: soft raises both prompts' unique rate; family l: soft lowers its one prompt's
    rows = pd.DataFrame(
        {
            "model": ["q1", "q1", "l1"] * 2,
            "family": ["q", "q", "l"] * 2,
            "method": ["base"] * 3 + ["soft"] * 3,
            "prompt_index": [0, 1, 0] * 2,
            "support_size": 1.0,
            "unique_fraction": [0.2, 0.2, 0.9, 0.5, 0.6, 0.1],
        }
    )
    unique = aggregates.open_ended_counts(rows).query("measure == 'unique_fraction'").set_index("family")
    assert unique[["pairs", "higher", "lower"]].to_dict("index") == {
        "all": {"pairs": 3, "higher": 2, "lower": 1},
        "q": {"pairs": 2, "higher": 2, "lower": 0},
        "l": {"pairs": 1, "higher": 0, "lower": 1},
    }


def test_concentration_is_the_share_of_a_prompts_samples_on_its_most_frequent_answers():
    answers = {0: ["Wed"] * 8 + ["Mon", "Fri"], 1: [f"c{i}" for i in [0, 0, 1, 1, 2, 3, 4, 5, 6, 7]]}
    samples = pd.DataFrame(
        [("m", "base", prompt, answer) for prompt, shown in answers.items() for answer in shown],
        columns=["model", "method", "prompt_index", "normalized"],
    )
    row = aggregates.concentration(samples).iloc[0]
    # top 1: 0.8 and 0.2; top 4: 1.0 and (2 + 2 + 1 + 1) / 10 = 0.6
    assert (row.prompts, row.top1_mean, row.top1_min, row.top4_mean, row.top4_max) == (2, 0.5, 0.2, 0.8, 1.0)


def test_summary_rows_keep_the_order_in_which_their_keys_first_appear():
    rows = aggregates.summary(pd.concat([_per_prompt("soft", -0.01), _per_prompt("base", 0.0)], ignore_index=True))
    assert rows[["prompt_set", "model", "method"]].values.tolist() == [["ood", "m", "soft"], ["ood", "m", "base"]]


def test_retention_means_average_the_task_rows_per_model_and_method():
    retention = pd.DataFrame({"model": ["m2", "m2", "m1"], "method": "soft", "score": [0.2, 0.5, 0.9]})
    assert aggregates.retention_means(retention).to_dict("list") == {
        "model": ["m1", "m2"],
        "method": ["soft", "soft"],
        "retention": [0.9, pytest.approx(0.35)],
        "retention_low": [pytest.approx(np.nan, nan_ok=True)] * 2,
        "retention_high": [pytest.approx(np.nan, nan_ok=True)] * 2,
    }


def test_the_retention_mean_interval_adds_half_widths_in_quadrature_within_zero_and_one():
    """Two tasks of half-widths 0.3 and 0.4: the mean's half-width is sqrt(0.09 + 0.16) / 2 = 0.25;
    a mean of 0.1 reaches 0, not -0.15 (plain sums would give 0.35; no clip, a negative accuracy)."""
    retention = pd.DataFrame({"model": "m", "method": "base", "score": [0.0, 0.2], "half_width": [0.3, 0.4]})
    means = aggregates.retention_means(retention).iloc[0]
    assert means.retention == pytest.approx(0.1)
    assert (means.retention_low, means.retention_high) == (0.0, pytest.approx(0.35))


def test_the_pooled_perplexity_is_the_all_row():
    perplexity = pd.DataFrame(
        {
            "model": "m",
            "method": "base",
            "slice": ["s", "all", "t"],
            "perplexity": [10.0, 12.0, 30.0],
            "bits_per_byte": 1.0,
        }
    )
    assert aggregates.pooled_perplexity(perplexity).to_dict("list") == {
        "model": ["m"],
        "method": ["base"],
        "perplexity": [12.0],
    }


def test_prompt_means_leave_undefined_prompts_out():
    rows = pd.DataFrame({"model": "m", "method": ["base", "base", "base"], "tv": [0.2, np.nan, 0.4]})
    assert aggregates.prompt_means(rows, ["tv"]).to_dict("list") == {
        "model": ["m"],
        "method": ["base"],
        "tv": [pytest.approx(0.3)],
    }


def test_model_means_keep_first_appearance_order_and_pool_as_all_models():
    # rows for task z before task a: the means keep z first (sorted, a would come first)
    rows = pd.DataFrame(
        {"model": ["m1", "m2", "m1"], "method": "base", "task": ["z", "z", "a"], "accuracy": [0.2, 0.6, 0.9]}
    )
    means = aggregates.model_means(rows, "task", ["accuracy"])
    assert means.to_dict("list") == {
        "task": ["z", "a"],
        "method": ["base", "base"],
        "accuracy": [pytest.approx(0.4), 0.9],
    }
    pooled = aggregates.with_model_means(rows, "task", ["accuracy"])
    assert pooled[["model", "task"]].values.tolist() == [
        ["all models", "z"],
        ["all models", "a"],
        ["m1", "z"],
        ["m2", "z"],
        ["m1", "a"],
    ]
    assert list(pooled.index) == list(range(5))


def test_a_per_distribution_w1_bar_knows_the_valid_samples_it_rests_on():
    from calft.report.figures import per_family_values

    per_prompt = pd.DataFrame(
        {
            "prompt_set": "ood",
            "model": "m",
            "method": ["base", "base", "soft", "soft"],
            "family": "a",
            "num_valid": [1, 2, 90, 95],
            "normalized_w1": [5.0, 7.0, 0.1, 0.3],
            "logit_kl": 1.0,
        }
    )
    w1 = per_family_values(per_prompt, "ood", "normalized_w1").set_index("method")
    assert w1.loc["base", "valid"] == 3 and w1.loc["soft", "valid"] == 185  # summed over the family's prompts
    assert w1.loc["base", "normalized_w1"] == 6.0  # the median over the prompts, as before
    assert "valid" not in per_family_values(per_prompt, "ood", "logit_kl")  # logit KL rests on no samples
