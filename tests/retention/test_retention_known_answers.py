"""Known answers for retention's numbers: gp-IRT (spec §13), per-document scores of the task kinds,
and PALOMA's per-slice and pooled perplexity and bits per byte (spec §14), all by hand. The
fixtures make the plausible mistakes visible: balance weights dropped, a mean of per-slice
perplexities for the pooled one, accuracy for the length-normalized one."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from calft.retention import irt, scoring
from calft.retention.perplexity import with_pooled_measures


def _bundle() -> irt.Bundle:
    """One scenario of 6 items: subscenario a holds items 0-4, b item 5; items 0 and 5 are seen.
    A = 1, B = 0, so the MLE theta makes p = mean(responses) = 0.5 on every item."""
    return irt.Bundle.from_release({
        "seen_examples": [0, 5], "examples_weights": {"s": [0.7, 0.3]},
        "irt_parameters": {"A": np.ones((1, 1, 6)), "B": np.zeros((1, 1, 6))},
        "optimal_lambdas": {"s": 0.4}, "scenarios_position": {"s": list(range(6))},
        "subscenarios_position": {"s": {"a": [0, 1, 2, 3, 4], "b": [5]}}})


def test_gp_irt_weighs_seen_and_unseen_items_by_subscenario_balance():
    # balance weights: a 6 / (2 x 5) = 0.6, b 6 / (2 x 1) = 3; the unseen items 1-4 are all in a (mean weight 0.6)
    # IRT = 0.7 x 1 + 0.3 x 0 = 0.7; lambda = 2 / 6
    # p-IRT = 1/3 x mean(0.6 x 1, 3 x 0) + 2/3 x mean(0.6 x 0.5 x 4 items) = 0.1 + 0.2 = 0.3
    #   (unseen weights dropped: 0.1 + 1/3 = 0.4333; seen weights dropped: 1/6 + 0.2 = 0.3667)
    # gp-IRT = 0.4 x 0.7 + 0.6 x 0.3 = 0.46
    bundle = _bundle()
    np.testing.assert_allclose(irt.balance_weights(bundle), [0.6] * 5 + [3.0])
    estimates = irt.estimate(bundle, "s", np.array([1.0, 0.0]))
    assert estimates["irt"] == pytest.approx(0.7)
    assert estimates["pirt"] == pytest.approx(0.3, abs=1e-6)
    assert estimates["gpirt"] == pytest.approx(0.46, abs=1e-6)


def test_item_probabilities_sum_clipped_dimension_logits_through_a_sigmoid():
    # two dimensions, theta = (1, -2); item 0: a = (1, 1), b = (0, 0) -> logit -1; item 1: a = (40, 0),
    # b = (0, 0) -> 40 clipped to 30, plus 0
    A = np.array([[[1.0, 40.0], [1.0, 0.0]]])
    B = np.zeros((1, 2, 2))
    p = irt.item_probabilities(np.array([1.0, -2.0]), A, B)
    np.testing.assert_allclose(p, [1 / (1 + math.e), 1 / (1 + math.exp(-30))], rtol=1e-12)


def test_theta_is_the_maximum_likelihood_ability():
    # one dimension, items with a = 1 and b = 0, 1: responses (1, 0) -> p0 = s(t), p1 = s(t - 1); the
    # likelihood's derivative (1 - p0) - p1 = 0 gives t = 0.5
    A, B = np.ones((1, 1, 2)), np.array([[[0.0, 1.0]]])
    assert irt.fit_theta(np.array([1.0, 0.0]), A, B)[0] == pytest.approx(0.5, abs=1e-4)


def test_accuracy_is_the_mean_score_and_gp_irt_needs_all_100_items():
    examples = pd.DataFrame({"task": "arc", "kind": "mmlu", "metric": "acc", "doc_id": range(4),
                             "score": [1.0, 0.0, 0.0, 1.0]})
    (row,) = scoring.summarize(examples, {}).to_dict("records")
    assert row["accuracy"] == 0.5 and row["items"] == 4 and math.isnan(row["gpirt"])


def test_hellaswag_picks_the_ending_of_highest_log_likelihood_per_character():
    # endings of 4, 12 and 2 characters: per character -1.0, -0.5, -2.0 -> the second; the raw
    # log-likelihoods (-4, -6, -4) would pick the first
    doc = {"endings": ["abcd", "abcdefghijkl", "ab"], "gold": 1}
    assert scoring.hellaswag_scores(doc, [(-4.0, False), (-6.0, False), (-4.0, False)]) == {"acc_norm": 1.0}


def test_truthfulqa_mc2_is_the_normalized_probability_of_the_true_answers():
    # probabilities 0.5, 0.3, 0.2 (log-likelihoods shifted by a constant); answers 0 and 2 true -> 0.7
    doc = {"mc2_targets": {"labels": [1, 0, 1]}}
    results = [(math.log(0.5) - 3, False), (math.log(0.3) - 3, False), (math.log(0.2) - 3, False)]
    assert scoring.truthfulqa_mc2(doc, results)["acc"] == pytest.approx(0.7)


def test_gsm8k_scores_strict_and_flexible_matches_against_the_gold_after_the_last_marker():
    doc = {"answer": "Work: 3 #### 1,200"}
    assert scoring.gsm8k_scores(doc, ["so 7 #### 1200.0\nthen 5"]) == {"strict": 1.0, "flexible": 0.0}
    assert scoring.gsm8k_scores(doc, ["#### 3 or 4, finally 1200"]) == {"strict": 0.0, "flexible": 1.0}


def test_pooled_perplexity_and_bits_per_byte_sum_the_counts_over_slices():
    # slice a: nll 20 over 10 tokens and 40 bytes; slice b: nll 90 over 30 tokens and 60 bytes
    # pooled: exp(110 / 40) (the mean of the slices' perplexities would be (e^2 + e^3) / 2) and
    # 110 / (ln 2 x 100) bits per byte
    table = with_pooled_measures(pd.DataFrame({"slice": ["a", "b"], "documents": [2, 3], "tokens": [10, 30],
                                               "bytes": [40, 60], "nll": [20.0, 90.0]}))
    rows = table.set_index("slice")
    assert list(rows.index) == ["a", "b", "all"]
    assert rows.loc["all", ["documents", "tokens", "bytes"]].tolist() == [5, 40, 100]
    np.testing.assert_allclose(rows.perplexity, [math.exp(2), math.exp(3), math.exp(2.75)], rtol=1e-12)
    np.testing.assert_allclose(rows.bits_per_byte, [20 / (math.log(2) * 40), 90 / (math.log(2) * 60),
                                                    110 / (math.log(2) * 100)], rtol=1e-12)
