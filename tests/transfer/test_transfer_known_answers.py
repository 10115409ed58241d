"""Known answers for the transfer metrics (spec §10-12), by hand: top-p support, unique rates, TV to
uniform, NoveltyBench's lexical rule, greedy partitions, utility and the means over prompts."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from calft.transfer import metrics


def test_top_p_support_is_the_fewest_most_probable_tokens_reaching_each_threshold():
    # sorted 0.4, 0.3, 0.2, 0.1: cumulative 0.4, 0.7, 0.9, 1.0; a threshold reached exactly counts as reached
    probabilities = np.array([[0.1, 0.4, 0.2, 0.3], [0.97, 0.01, 0.01, 0.01]])
    sizes = metrics.top_p_support(probabilities, np.array([0.35, 0.7, 0.75, 0.99]))
    np.testing.assert_array_equal(sizes, [[1, 2, 3, 4], [1, 1, 1, 3]])
    never = metrics.top_p_support(np.array([[0.2, 0.2]]), np.array([0.5, 0.9]))  # mass 0.4 never reaches them
    np.testing.assert_array_equal(never, [[2, 2]])


def test_unique_rate_counts_distinct_non_empty_answers_over_all_answers():
    assert metrics.unique_fraction(["7", "7", "", "3", "", "x"]) == pytest.approx(3 / 6)
    assert math.isnan(metrics.unique_fraction([]))


@pytest.mark.parametrize(
    "counts, tv",
    [
        ([5, 5, 5, 5], 0.0),
        ([1, 0, 0, 0], 0.75),
        ([6, 2, 2, 0], 0.5 * (0.35 + 0.05 + 0.05 + 0.25)),
    ],
)
def test_tv_to_uniform_is_half_the_l1_distance_of_the_frequencies(counts, tv):
    assert metrics.tv_to_uniform(np.array(counts)) == pytest.approx(tv)


def test_tv_to_uniform_is_undefined_without_answers():
    assert math.isnan(metrics.tv_to_uniform(np.zeros(4)))


@pytest.mark.parametrize(
    "a, b, same",
    [
        ("a b c", "a x y", False),  # 2 x 1 shared < 3 tokens
        ("a b c d", "a b x y", True),  # 2 x 2 >= 4
        ("a b c d e", "a b c x y", True),  # five tokens are still short: 2 x 3 >= 5
        ("a b c d e f", "a b c d e f", None),  # six are for the classifier
    ],
)
def test_lexical_equivalence_of_short_answers_by_shared_tokens(a, b, same):
    assert metrics.lexically_equivalent(a, b) is same


def test_greedy_partition_assigns_each_answer_once_to_the_first_partition_that_takes_it():
    # equivalences 0~2, 1~2, 1~3, 4 alone: 2 joins 0's partition and stays there although 1 would take it too
    pairs = {(0, 2), (1, 2), (1, 3)}
    ids = metrics.partition(5, lambda i, later: [(i, j) in pairs for j in later])
    assert ids == [0, 1, 0, 1, 2]


def test_novelty_summary_averages_over_prompts_within_each_split_and_over_all_prompts():
    # wildchat (first): three prompts of one partition, rating 4 then repeats -> distinct 1, utility 4 / 1.75 at
    # patience 0.5 (discounts 1, 0.5, 0.25); curated: one prompt, 3 partitions rated 8 -> distinct 3, utility 8
    # all: distinct (1 + 1 + 1 + 3) / 4 = 1.5 (the mean of the split means would be 2); splits in order of appearance
    rows = [("wildchat", prompt, 0, 4) for prompt in range(3) for _ in range(3)]
    rows += [("curated", 0, p, 8) for p in range(3)]
    generations = pd.DataFrame(rows, columns=["split", "prompt_index", "partition", "rating"])
    summary = metrics.novelty_summary(generations, 0.5)
    assert summary.split.tolist() == ["wildchat", "curated", "all"] and list(summary.columns) == [
        "split",
        "prompts",
        "mean_distinct",
        "mean_utility",
    ]
    assert summary.prompts.tolist() == [3, 1, 4]
    np.testing.assert_allclose(summary.mean_distinct, [1, 3, 1.5])
    np.testing.assert_allclose(summary.mean_utility, [4 / 1.75, 8, (3 * 4 / 1.75 + 8) / 4])
