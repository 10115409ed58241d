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
from calft.retention.scoring import with_pooled_measures


def _bundle() -> irt.Bundle:
    """One scenario of 6 items: subscenario a holds items 0-4, b item 5; items 0 and 5 are seen.
    A = 1, B = 0, so the MLE theta makes p = mean(responses) = 0.5 on every item."""
    return irt.Bundle.from_release(
        {
            "seen_examples": [0, 5],
            "examples_weights": {"s": [0.7, 0.3]},
            "irt_parameters": {"A": np.ones((1, 1, 6)), "B": np.zeros((1, 1, 6))},
            "optimal_lambdas": {"s": 0.4},
            "scenarios_position": {"s": list(range(6))},
            "subscenarios_position": {"s": {"a": [0, 1, 2, 3, 4], "b": [5]}},
        }
    )


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


def test_each_scenario_takes_its_own_slice_of_the_seen_items():
    bundle = irt.Bundle.from_release(
        {
            "seen_examples": [0, 1, 4, 5],
            "examples_weights": {"s": [0.5, 0.5], "t": [0.5, 0.5]},
            "irt_parameters": {"A": np.ones((1, 1, 8)), "B": np.zeros((1, 1, 8))},
            "optimal_lambdas": {"s": 1, "t": 1},
            "scenarios_position": {"s": [0, 1, 2, 3], "t": [4, 5, 6, 7]},
            "subscenarios_position": {"s": {"x": [0, 1, 2, 3]}, "t": {"y": [4, 5, 6, 7]}},
        }
    )
    np.testing.assert_array_equal(bundle.seen_of("s", 2), [0, 1])
    np.testing.assert_array_equal(bundle.seen_of("t", 2), [4, 5])


def test_item_probabilities_sum_clipped_dimension_logits_through_a_sigmoid():
    # two dimensions, theta = (1, -2); item 0: a = (1, 1) -> logit 1 - 2 = -1; item 1: a = (40, 0) -> 40 clipped
    # to 30; item 2: a = (-40, 0) -> -40 clipped to -30 (each dimension is clipped before the sum)
    A = np.array([[[1.0, 40.0, -40.0], [1.0, 0.0, 0.0]]])
    p = irt.item_probabilities(np.array([1.0, -2.0]), A, np.zeros((1, 2, 3)))
    sigmoid = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    np.testing.assert_allclose(p, [sigmoid(-1), sigmoid(30), sigmoid(-30)], rtol=1e-12)
    assert 1 - p[1] == pytest.approx(sigmoid(-30), rel=1e-2, abs=0)


def test_theta_is_the_maximum_likelihood_ability():
    # one dimension, items with a = 1 and b = 0, 1: responses (1, 0) -> p0 = s(t), p1 = s(t - 1); the
    # likelihood's derivative (1 - p0) - p1 = 0 gives t = 0.5
    A, B = np.ones((1, 1, 2)), np.array([[[0.0, 1.0]]])
    assert irt.fit_theta(np.array([1.0, 0.0]), A, B)[0] == pytest.approx(0.5, abs=1e-4)


def test_theta_has_one_ability_per_dimension():
    # items 0-1 load on dimension 0 only (responses 1, 0 -> s(t0) = 1/2), items 2-4 on dimension 1 only
    # (responses 1, 1, 0 -> s(t1) = 2/3): theta = (0, ln 2)
    A = np.array([[[1.0, 1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0, 1.0]]])
    theta = irt.fit_theta(np.array([1.0, 0.0, 1.0, 1.0, 0.0]), A, np.zeros((1, 2, 5)))
    np.testing.assert_allclose(theta, [0.0, math.log(2)], atol=1e-4)


@pytest.mark.parametrize("response", [0.0, 1.0])
def test_an_all_wrong_or_all_right_scenario_gets_a_finite_extreme_ability(response):
    # the likelihood has no maximum; the epsilon inside both logarithms keeps the fit finite and decided
    theta = irt.fit_theta(np.full(3, response), np.ones((1, 1, 3)), np.zeros((1, 1, 3)))
    p = irt.item_probabilities(theta, np.ones((1, 1, 1)), np.zeros((1, 1, 1)))[0]
    assert np.isfinite(theta).all() and abs(p - response) < 0.01


def test_accuracy_is_the_mean_score_per_task_and_metric_in_order_and_gp_irt_needs_all_100_items():
    examples = pd.DataFrame(
        {
            "task": ["z", "z", "a", "a"],
            "kind": ["gsm8k", "gsm8k", "mmlu", "mmlu"],
            "metric": ["strict", "strict", "acc", "acc"],
            "doc_id": [0, 1, 0, 1],
            "score": [1.0, 0.0, 0.0, 0.0],
        }
    )
    rows = scoring.summarize(examples, {}).to_dict("records")
    nan = {
        "irt": pytest.approx(np.nan, nan_ok=True),
        "pirt": pytest.approx(np.nan, nan_ok=True),
        "gpirt": pytest.approx(np.nan, nan_ok=True),
    }
    assert rows == [
        {"task": "z", "kind": "gsm8k", "metric": "strict", "items": 2, "accuracy": 0.5, **nan},
        {"task": "a", "kind": "mmlu", "metric": "acc", "items": 2, "accuracy": 0.0, **nan},
    ]


def test_hellaswag_picks_the_ending_of_highest_log_likelihood_per_character():
    # endings of 4, 12 and 2 characters: per character -1.0, -0.5, -2.0 -> the second; the raw
    # log-likelihoods (-4, -6, -4) would pick the first
    doc = {"endings": ["abcd", "abcdefghijkl", "ab"], "gold": 1}
    assert scoring.hellaswag_scores(doc, [(-4.0, False), (-6.0, False), (-4.0, False)]) == {"acc_norm": 1.0}


def test_hellaswag_counts_an_empty_ending_as_one_character():
    # "" at -1.5 is -1.5 per character (not -0.75 over 2), "ab" at -2 is -1.0 per character: "ab" wins
    doc = {"endings": ["", "ab"], "gold": 1}
    assert scoring.hellaswag_scores(doc, [(-1.5, False), (-2.0, False)]) == {"acc_norm": 1.0}


def test_hellaswag_endings_are_cleaned_of_bracketed_markers_and_double_spaces():
    # " [title]" becomes ". ", other [markers] go, and each run of two spaces becomes one, left to right
    assert scoring.clean_hellaswag("  A man [title] walks.  [header] Then [step] runs  ") == "A man. walks.  Then runs"
    assert scoring.clean_hellaswag("Stir [a note\nover two lines] well.") == "Stir well."  # a marker may span lines


def test_truthfulqa_mc2_is_the_normalized_probability_of_the_true_answers():
    # probabilities 0.5, 0.3, 0.2 (log-likelihoods shifted by a constant); answers 0 and 2 true -> 0.7
    doc = {"mc2_targets": {"labels": [1, 0, 1]}}
    results = [(math.log(0.5) - 3, False), (math.log(0.3) - 3, False), (math.log(0.2) - 3, False)]
    assert scoring.truthfulqa_mc2(doc, results)["acc"] == pytest.approx(0.7)
    far = [(ll - 800, done) for ll, done in results]  # log-likelihoods of long answers: exp() alone underflows
    assert scoring.truthfulqa_mc2(doc, far)["acc"] == pytest.approx(0.7)


@pytest.mark.parametrize(
    "prompt, continuation, spaced",
    [
        ("Q:", "A", " A"),
        ("Q: ", "A", "A"),
        ("Q:\n", "A", "A"),
        ("Q:\t", "A", "A"),
        ("Q:", " A", " A"),
        ("Q:", "\nA", "\nA"),
        ("Q:\u00a0", "A", " A"),  # only space, newline and tab count, as in the reference
    ],
)
def test_a_continuation_gets_a_space_unless_one_side_already_has_whitespace(prompt, continuation, spaced):
    assert scoring.spaced(prompt, continuation) == spaced


def test_winogrande_splits_its_sentence_at_the_first_blank():
    doc = {"option1": "x", "option2": "y", "sentence": "A _ then _ end.", "input_formatted": "A"}
    assert scoring.winogrande_continuation(doc) == "then _ end."
    assert scoring.winogrande_options(doc) == ["A x", "A y"]


def test_winogrande_cuts_the_longer_option_the_prompt_ends_with_or_falls_back_to_the_sentence():
    # the prompt ends with both options: the longer one, "a cup" (not "cup", first in reverse alphabetical order)
    doc = {"option1": "cup", "option2": "a cup", "sentence": "He saw _ fall.", "input_formatted": "I saw a cup"}
    assert scoring.winogrande_options(doc) == ["I saw cup", "I saw a cup"]
    neither = doc | {"input_formatted": "I saw it"}
    assert scoring.winogrande_options(neither) == ["He saw cup", "He saw a cup"]


@pytest.mark.parametrize(
    "text, value",
    [
        ("1.50", "1.5"),
        ("1e2", "100"),
        ("0.0000001", "0.0000001"),
        ("-0.5", "-0.5"),
        ("1,234", "1234"),
        ("12 apples", None),
    ],
)
def test_numbers_are_compared_as_exact_decimals_written_out(text, value):
    assert scoring.normalize_number(text) == value


def test_gsm8k_gold_is_the_number_after_the_last_marker_however_it_is_spaced():
    assert scoring.gsm8k_gold("3 + 4 = 7\n####-3") == "-3"


def test_gsm8k_strict_reads_the_line_of_the_first_marker_and_needs_one_number_there():
    assert scoring.gsm8k_strict("#### 5\n#### 6") == "5"
    assert scoring.gsm8k_strict("#### 5\nthen 7\nend") == "5"
    assert scoring.gsm8k_strict("#### 5 or #### 6") is None  # two numbers on the marker's line


def test_gsm8k_scores_strict_and_flexible_matches_against_the_gold_after_the_last_marker():
    doc = {"answer": "Work: 3 #### 1,200"}
    assert scoring.gsm8k_scores(doc, ["so 7 #### 1200.0\nthen 5"]) == {"strict": 1.0, "flexible": 0.0}
    assert scoring.gsm8k_scores(doc, ["#### 3 or 4, finally 1200"]) == {"strict": 0.0, "flexible": 1.0}


def test_pooled_perplexity_and_bits_per_byte_sum_the_counts_over_slices():
    # slice a: nll 20 over 10 tokens and 40 bytes; slice b: nll 90 over 30 tokens and 60 bytes
    # pooled: exp(110 / 40) (the mean of the slices' perplexities would be (e^2 + e^3) / 2) and
    # 110 / (ln 2 x 100) bits per byte
    table = with_pooled_measures(
        pd.DataFrame(
            {"slice": ["a", "b"], "documents": [2, 3], "tokens": [10, 30], "bytes": [40, 60], "nll": [20.0, 90.0]}
        )
    )
    assert list(table.index) == [0, 1, 2]
    rows = table.set_index("slice")
    assert list(rows.index) == ["a", "b", "all"]
    assert rows.loc["all", ["documents", "tokens", "bytes"]].tolist() == [5, 40, 100]
    np.testing.assert_allclose(rows.perplexity, [math.exp(2), math.exp(3), math.exp(2.75)], rtol=1e-12)
    np.testing.assert_allclose(
        rows.bits_per_byte, [20 / (math.log(2) * 40), 90 / (math.log(2) * 60), 110 / (math.log(2) * 100)], rtol=1e-12
    )
