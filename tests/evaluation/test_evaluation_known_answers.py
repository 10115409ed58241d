"""Known answers for scoring and logit KL (paper eq. 5, §4.2; spec §8.2), computed by hand. Each fixture
gives different numbers under the plausible mistakes: parsed samples for all samples, exclusive bounds,
an unsorted sample, an unweighted mean over paths."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from table_model import TokenTableModel

from calft import artifacts
from calft.evaluation.logit_kl import exact, logit_kl_table, monte_carlo
from calft.evaluation.metrics import prompt_scores, target_spread, wasserstein_to_law
from calft.evaluation.parse import judge
from calft.modeling.generation import sample_seed
from calft.modeling.trees import SoftTargets
from calft.targets.families import get_family


def test_the_valid_rate_counts_every_sample_in_its_denominator():
    # 6 samples: 2 valid, 1 unparseable, 1 below the support, 1 not an integer, 1 empty -> 2/6 (not 2/4 of the
    # parsed ones, nor 2/5 of the non-empty ones)
    texts = ["3", "twelve", "-1", "2.5", "", "7"]
    values, valid = judge(texts, "poisson", {"lambda": 4})
    assert list(valid) == [True, False, False, False, False, True]
    scores = prompt_scores(values, valid, "poisson", {"lambda": 4})
    assert scores["valid_rate"] == pytest.approx(2 / 6) and scores["num_valid"] == 2


@pytest.mark.parametrize(
    "family_id, params, inside, outside",
    [
        ("uniform", {"a": 1, "b": 4}, ["1", "4", "2.5"], ["0.999", "4.001"]),
        ("geometric", {"p": 0.5}, ["1", "1000"], ["0", "-1", "1.5"]),
        ("binomial", {"n": 10, "p": 0.3}, ["0", "10", "10.0"], ["11", "-1", "0.5"]),
        ("truncnorm", {"mu": 0, "sigma": 1, "lower": -1, "upper": 2}, ["-1", "2", "-1.00"], ["-1.0001", "2.0001"]),
        ("pareto", {"alpha": 3, "xm": 2}, ["2", "1e6"], ["1.999"]),
    ],
)
def test_support_bounds_are_inclusive_and_integers_must_be_whole(family_id, params, inside, outside):
    _, valid = judge(inside + outside, family_id, params)
    assert list(valid) == [True] * len(inside) + [False] * len(outside)


def test_an_integer_family_accepts_values_within_1e_9_of_an_integer_the_tolerance_included():
    # 1e-9 is exactly the tolerance; 2.9999999995 is 5e-10 (to float precision) below 3
    _, valid = judge(["0.000000001", "0.0000000011", "2.9999999995", "2.9999999985"], "poisson", {"lambda": 4})
    assert list(valid) == [True, False, True, False]


def test_without_valid_samples_the_scores_are_undefined_but_the_rate_is_zero():
    empty = prompt_scores(np.empty(0), np.empty(0, dtype=bool), "gaussian", {"mu": 0, "sigma": 1})
    assert math.isnan(empty["valid_rate"]) and math.isnan(empty["w1"]) and empty["num_valid"] == 0
    none = prompt_scores(np.array([np.nan, 5.0]), np.array([False, False]), "gaussian", {"mu": 0, "sigma": 1})
    assert none["valid_rate"] == 0.0 and math.isnan(none["w1"]) and math.isnan(none["normalized_w1"])
    law = get_family("gaussian").frozen({"mu": 0, "sigma": 1})
    assert math.isnan(wasserstein_to_law(np.array([np.inf]), law))  # no pair with both ends finite


def test_w1_by_hand_against_exponential_quantiles_and_its_normalization():
    # N = 4 valid values, given unsorted; quantiles at (i - 0.5)/4 of Exponential(1): -ln(1 - u)
    values = np.array([2.0, 0.0, 1.0, 0.5, 99.0])
    valid = np.array([True, True, True, True, False])
    quantiles = [-math.log(1 - u) for u in (0.125, 0.375, 0.625, 0.875)]
    w1 = np.mean(np.abs(np.array([0.0, 0.5, 1.0, 2.0]) - quantiles))
    spread = math.log(20) - math.log(20 / 19)  # Q95 - Q05 = ln(20) - ln(1/0.95)
    scores = prompt_scores(values, valid, "exponential", {"lambda": 1})
    assert scores["w1"] == pytest.approx(w1, rel=1e-12)
    assert target_spread("exponential", {"lambda": 1}) == pytest.approx(spread, rel=1e-12)
    assert scores["normalized_w1"] == pytest.approx(w1 / spread, rel=1e-12)
    assert scores["valid_rate"] == pytest.approx(0.8)


def test_w1_averages_only_the_pairs_where_both_the_value_and_the_quantile_are_finite():
    # [0, inf] against N(0, 1) at u = 0.25, 0.75: only the pair (0, Q(0.25)) is finite
    law = get_family("gaussian").frozen({"mu": 0, "sigma": 1})
    assert wasserstein_to_law(np.array([0.0]), law) == 0.0  # the median of N(0, 1)
    assert wasserstein_to_law(np.array([np.inf, 0.0]), law) == pytest.approx(abs(0.0 - law.ppf(0.25)))


@pytest.mark.parametrize(
    "family_id, params, spread",
    [  # spec §1.5's Q95 - Q05, to its printed precision
        ("gaussian", {"mu": 3.5, "sigma": 3.0}, 9.8691),
        ("uniform", {"a": 3.5, "b": 10.5}, 6.3),
        ("poisson", {"lambda": 4}, 7.0),
    ],
)
def test_target_spread_is_the_90_percent_interquantile_range(family_id, params, spread):
    assert target_spread(family_id, params) == pytest.approx(spread, abs=1e-4)


# -- logit KL --------------------------------------------------------------------------------


# Two prompts' tries over tokens 1-4 with terminator 5. Prompt "p": outputs "1" (0.5), "2 3" (0.3), "2 4" (0.2);
# prompt "q": the single output "3". Rows: prompt, node, parent, depth, token, mass, q, canonical index.
TRIES = [
    ("p", 0, -1, 0, -1, 1.0, 1.0, -1),
    ("p", 1, 0, 1, 1, 0.5, 0.5, -1),
    ("p", 2, 0, 1, 2, 0.5, 0.5, -1),
    ("p", 3, 1, 2, 5, 0.5, 1.0, 0),
    ("p", 4, 2, 2, 3, 0.3, 0.6, -1),
    ("p", 5, 2, 2, 4, 0.2, 0.4, -1),
    ("p", 6, 4, 3, 5, 0.3, 1.0, 1),
    ("p", 7, 5, 3, 5, 0.2, 1.0, 2),
    ("q", 0, -1, 0, -1, 1.0, 1.0, -1),
    ("q", 1, 0, 1, 3, 1.0, 1.0, -1),
    ("q", 2, 1, 2, 5, 1.0, 1.0, 0),
]


@pytest.fixture(scope="module")
def table_model_and_tries(tmp_path_factory):
    path = tmp_path_factory.mktemp("tries") / "tries.parquet"
    frame = pd.DataFrame(TRIES, columns=artifacts.TRIE_COLUMNS)
    artifacts.write_frame(frame, path, artifacts.provenance("tries", {}))
    return TokenTableModel(6), SoftTargets(path)


def test_exact_logit_kl_is_the_mass_weighted_mean_over_paths_of_their_mean_prefix_kl(table_model_and_tries):
    # the prompt is the single token 0; each prefix's distribution is the stand-in's after prompt and prefix
    model, targets = table_model_and_tries
    root, after_1 = model.kl([0], {1: 0.5, 2: 0.5}), model.kl([0, 1], {5: 1.0})
    after_2, after_23, after_24 = (
        model.kl([0, 2], {3: 0.6, 4: 0.4}),
        model.kl([0, 2, 3], {5: 1.0}),
        model.kl([0, 2, 4], {5: 1.0}),
    )
    expected = (
        0.5 * (root + after_1) / 2 + 0.3 * (root + after_2 + after_23) / 3 + 0.2 * (root + after_2 + after_24) / 3
    )
    assert exact(model, targets, targets.prompt_ids.index("p"), [0]) == pytest.approx(expected, rel=1e-5)
    assert exact(model, targets, targets.prompt_ids.index("p"), [0], chunk_nodes=1) == pytest.approx(expected, rel=1e-5)


def test_exact_logit_kl_of_a_prompt_whose_nodes_come_after_another_prompts(table_model_and_tries):
    model, targets = table_model_and_tries
    expected = (model.kl([4], {3: 1.0}) + model.kl([4, 3], {5: 1.0})) / 2
    assert exact(model, targets, targets.prompt_ids.index("q"), [4]) == pytest.approx(expected, rel=1e-5)


def test_sampled_logit_kl_of_a_single_output_is_its_path_loss(table_model_and_tries):
    model, targets = table_model_and_tries
    expected = (model.kl([0], {3: 1.0}) + model.kl([0, 3], {5: 1.0})) / 2
    sampled = monte_carlo(model, targets, targets.prompt_ids.index("q"), [0], "q", paths=4, seed=11)
    assert sampled == pytest.approx(expected, rel=1e-5)


def _path_losses(model) -> dict[str, float]:
    root = model.kl([0], {1: 0.5, 2: 0.5})
    return {
        "1": (root + model.kl([0, 1], {5: 1.0})) / 2,
        "2 3": (root + model.kl([0, 2], {3: 0.6, 4: 0.4}) + model.kl([0, 2, 3], {5: 1.0})) / 3,
        "2 4": (root + model.kl([0, 2], {3: 0.6, 4: 0.4}) + model.kl([0, 2, 4], {5: 1.0})) / 3,
    }


def test_sampled_logit_kl_draws_path_j_of_a_prompt_from_its_own_seed(table_model_and_tries):
    # path j of prompt p: the output whose cumulative mass (0.5, 0.8, 1.0 for "1", "2 3", "2 4") first
    # exceeds default_rng(sample_seed(seed, "p", j)).random()
    model, targets = table_model_and_tries
    losses = _path_losses(model)
    draws = [np.random.default_rng(sample_seed(11, "p", j)).random() for j in range(6)]
    chosen = ["1" if u < 0.5 else "2 3" if u < 0.8 else "2 4" for u in draws]
    assert len(set(chosen)) > 1
    expected = np.mean([losses[c] for c in chosen])
    sampled = monte_carlo(model, targets, targets.prompt_ids.index("p"), [0], "p", paths=6, seed=11)
    assert sampled == pytest.approx(expected, rel=1e-5)


def test_the_logit_kl_table_has_a_row_per_prompt_with_both_estimates(table_model_and_tries):
    model, targets = table_model_and_tries
    prompts = pd.DataFrame({"prompt_id": ["q", "p"], "family": ["a", "b"], "split": "ood"})
    table = logit_kl_table(model, targets, prompts, [[0], [0]], paths=6, seed=11, with_exact=True)
    losses = _path_losses(model)
    assert table[["prompt_id", "family", "split"]].values.tolist() == [["q", "a", "ood"], ["p", "b", "ood"]]
    assert table.logit_kl_exact.tolist() == pytest.approx(
        [
            (model.kl([0], {3: 1.0}) + model.kl([0, 3], {5: 1.0})) / 2,
            0.5 * losses["1"] + 0.3 * losses["2 3"] + 0.2 * losses["2 4"],
        ],
        rel=1e-5,
    )
    assert table.logit_kl.iloc[1] == pytest.approx(
        monte_carlo(model, targets, targets.prompt_ids.index("p"), [0], "p", paths=6, seed=11)
    )
    without = logit_kl_table(model, targets, prompts, [[0], [0]], paths=6, seed=11, with_exact=False)
    assert without.logit_kl_exact.isna().all() and without.logit_kl.tolist() == table.logit_kl.tolist()
