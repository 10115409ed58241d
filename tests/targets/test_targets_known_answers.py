"""Known answers for the targets: every family's law against textbook moments, and output-space
masses computed by hand from the reference's rules (spec §1.1, §4). Each fixture is chosen so that
the plausible mistakes (tail dropped instead of folded, exclusive bounds, floor for ceil, a rate
for a scale) give different numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from trie_reference import assert_equals_pure_python, padded

from calft.errors import UserError
from calft.targets.discretize import discretize_laws, format_canonical
from calft.targets.families import FamilyError, get_family
from calft.targets.prompts import _grid_to_params, make_prompt, prompt_set, render_number
from calft.targets.tries import build_trie_forest

EULER_GAMMA = 0.5772156649015329


def _truncnorm_mean(mu, sigma, lower, upper):
    a, b = (lower - mu) / sigma, (upper - mu) / sigma
    pdf = lambda x: math.exp(-x * x / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))  # noqa: E731
    return mu + sigma * (pdf(a) - pdf(b)) / (cdf(b) - cdf(a))


# family, parameters, (mean, variance) from the textbook parameterisation the prompt names, support
TEXTBOOK = [
    ("uniform", {"a": 1, "b": 4}, (2.5, 0.75), (1, 4)),
    ("gaussian", {"mu": 2, "sigma": 3}, (2, 9), (None, None)),
    ("bernoulli", {"p": 0.3}, (0.3, 0.21), (0, 1)),
    ("beta", {"alpha": 2, "beta": 5}, (2 / 7, 10 / (49 * 8)), (0, 1)),
    ("binomial", {"n": 10, "p": 0.3}, (3, 2.1), (0, 10)),
    ("poisson", {"lambda": 4}, (4, 4), (0, None)),
    ("exponential", {"lambda": 2}, (0.5, 0.25), (0, None)),  # a rate
    ("geometric", {"p": 0.25}, (4, 12), (1, None)),  # trials to the first success
    ("negative_binomial", {"r": 3, "p": 0.4}, (4.5, 11.25), (0, None)),  # failures before the r-th success
    ("lognormal", {"mu": 0.5, "sigma": 0.4}, (math.exp(0.58), (math.exp(0.16) - 1) * math.exp(1.16)), (0, None)),
    ("triangular", {"a": 1, "c": 2, "b": 5}, (8 / 3, (1 + 25 + 4 - 5 - 2 - 10) / 18), (1, 5)),
    ("rayleigh", {"sigma": 2}, (2 * math.sqrt(math.pi / 2), (4 - math.pi) / 2 * 4), (0, None)),
    ("maxwell", {"scale": 2}, (4 * math.sqrt(2 / math.pi), 4 * (3 * math.pi - 8) / math.pi), (0, None)),
    ("truncnorm", {"mu": 0.5, "sigma": 1, "lower": -1, "upper": 2}, (_truncnorm_mean(0.5, 1, -1, 2), None), (-1, 2)),
    ("student_t", {"nu": 5}, (0, 5 / 3), (None, None)),
    ("chi_square", {"nu": 4}, (4, 8), (0, None)),
    ("f_distribution", {"d1": 5, "d2": 10}, (1.25, 2 * 100 * 13 / (5 * 64 * 6)), (0, None)),
    ("gamma", {"alpha": 3, "beta": 2}, (6, 12), (0, None)),  # beta is a scale
    ("weibull", {"k": 2, "lambda": 3}, (3 * math.gamma(1.5), 9 * (math.gamma(2) - math.gamma(1.5) ** 2)), (0, None)),
    ("laplace", {"mu": 1, "b": 2}, (1, 8), (None, None)),
    ("logistic", {"mu": 1, "s": 2}, (1, 4 * math.pi**2 / 3), (None, None)),
    ("pareto", {"alpha": 3, "xm": 2}, (3, 3), (2, None)),
    (
        "hypergeometric",
        {"M": 20, "K": 7, "N": 15},
        (15 * 7 / 20, 15 * 7 / 20 * 13 / 20 * 5 / 19),
        (2, 7),
    ),  # support [max(0, N-(M-K)), min(N, K)]
    ("gumbel", {"mu": 1, "beta": 2}, (1 + 2 * EULER_GAMMA, math.pi**2 * 4 / 6), (None, None)),
    ("skellam", {"mu1": 3, "mu2": 1}, (2, 4), (None, None)),
    ("beta_binomial", {"n": 10, "alpha": 2, "beta": 3}, (4, 6), (0, 10)),
    ("lomax", {"alpha": 4, "lambda": 2}, (2 / 3, 16 / 18), (0, None)),
    ("inverse_gaussian", {"mu": 2, "lambda": 3}, (2, 8 / 3), (0, None)),
    ("chi", {"df": 3}, (math.sqrt(2) / math.gamma(1.5), 3 - 2 / math.gamma(1.5) ** 2), (0, None)),
]


@pytest.mark.parametrize("family_id, params, moments, support", TEXTBOOK, ids=[row[0] for row in TEXTBOOK])
def test_every_family_has_its_textbook_moments_and_support(family_id, params, moments, support):
    family = get_family(family_id)
    law = family.frozen(params)
    mean, variance = moments
    assert law.mean() == pytest.approx(mean, rel=1e-9, abs=1e-12)
    if variance is not None:
        assert law.var() == pytest.approx(variance, rel=1e-9)
    assert tuple(family.support(params)) == support


def test_cauchy_has_its_location_as_median_and_twice_its_scale_as_interquartile_range():
    law = get_family("cauchy").frozen({"x0": 1, "gamma": 2})
    assert law.median() == pytest.approx(1) and law.ppf(0.75) - law.ppf(0.25) == pytest.approx(4)
    assert get_family("cauchy").support({"x0": 1, "gamma": 2}) == (None, None)


def _one(prompt, decimals, max_bins):
    (chunk,) = discretize_laws([prompt], decimals, max_bins)
    return chunk.value, chunk.mass


def test_an_unbounded_integer_law_folds_its_upper_tail_into_the_last_value():
    # Poisson(4): values 0 .. ceil(Q(0.999)) = 11; pmf on each, the last takes P(X >= 11) (spec §4.1.5)
    values, mass = _one(make_prompt("poisson", {"lambda": 4}, "custom"), 5, 1001)
    law = stats.poisson(4)
    assert law.ppf(0.999) == 11
    np.testing.assert_array_equal(values, np.arange(12))
    np.testing.assert_allclose(mass, np.r_[law.pmf(np.arange(11)), law.sf(10)], rtol=1e-12)


def test_a_capped_unbounded_integer_law_keeps_its_lowest_values_and_folds_the_rest_into_the_last():
    # Poisson(4) at 5 bins: 0..4; the last holds P(X >= 4) = 0.566, dropped it would be renormalized away
    values, mass = _one(make_prompt("poisson", {"lambda": 4}, "custom"), 5, 5)
    law = stats.poisson(4)
    np.testing.assert_array_equal(values, np.arange(5))
    np.testing.assert_allclose(mass, np.r_[law.pmf(np.arange(4)), law.sf(3)], rtol=1e-12)


def test_a_bounded_integer_law_cut_by_the_cap_loses_its_upper_values_and_renormalizes():
    # Binomial(20, 0.5) at 8 bins: values 0..7 (the lowest), pmf renormalized, no tail folded (spec §4.1.3)
    values, mass = _one(make_prompt("binomial", {"n": 20, "p": 0.5}, "custom"), 5, 8)
    pmf = stats.binom(20, 0.5).pmf(np.arange(8))
    np.testing.assert_array_equal(values, np.arange(8))
    np.testing.assert_allclose(mass, pmf / pmf.sum(), rtol=1e-12)


def test_an_integer_law_unbounded_below_loses_its_lower_tail_and_starts_at_the_floor_of_q001():
    # Skellam(3, 1): from floor(Q(0.001)) to ceil(Q(0.999)); the lower tail is lost, the upper folded
    law = stats.skellam(3, 1)
    low, high = int(np.floor(law.ppf(0.001))), int(np.ceil(law.ppf(0.999)))
    values, mass = _one(make_prompt("skellam", {"mu1": 3, "mu2": 1}, "custom"), 5, 1001)
    expected = np.r_[law.pmf(np.arange(low, high)), law.sf(high - 1)]
    np.testing.assert_array_equal(values, np.arange(low, high + 1))
    np.testing.assert_allclose(mass, expected / expected.sum(), rtol=1e-12)


def test_continuous_masses_are_cdf_differences_between_midpoints_with_both_tails_folded():
    # Exponential(1) at d=1: Q(0.001) = 0.0010005, Q(0.999) = 6.9078; centres 0.1 .. 6.9 (ceil, floor),
    # edges [Q(0.001), 0.15, 0.25, ..., 6.85, Q(0.999)]; the first bin takes F(Q(0.001)), the last 0.001
    values, mass = _one(make_prompt("exponential", {"lambda": 1}, "custom"), 1, 1001)
    np.testing.assert_allclose(values, np.arange(1, 70) / 10)
    cdf = stats.expon.cdf(np.r_[np.arange(1, 69) / 10 + 0.05])
    expected = np.diff(np.r_[0.0, cdf, 1.0])
    np.testing.assert_allclose(mass, expected, rtol=1e-9)


def test_a_uniform_law_gets_equal_bins_once_its_tails_are_folded_into_the_edge_bins():
    # Uniform(0.25, 0.75) at d=1: interval [Q(0.001), Q(0.999)] = [0.2505, 0.7495], centres 0.3 .. 0.7,
    # edges [0.2505, 0.35, ..., 0.65, 0.7495]; the edge bins get F(0.35) = 0.2 and 1 - F(0.65) = 0.2
    # (without the tails they would hold 0.199, renormalized 0.1994)
    values, mass = _one(make_prompt("uniform", {"a": 0.25, "b": 0.75}, "custom"), 1, 1001)
    np.testing.assert_allclose(values, [0.3, 0.4, 0.5, 0.6, 0.7])
    np.testing.assert_allclose(mass, [0.2] * 5, rtol=1e-9)


def test_an_interval_without_a_grid_point_gets_one_centre_at_its_rounded_midpoint():
    # Uniform(0.12, 0.14) at d=1: no multiple of 0.1 in [0.12002, 0.13998]; one centre round(0.13, 1) = 0.1
    values, mass = _one(make_prompt("uniform", {"a": 0.12, "b": 0.14}, "custom"), 1, 1001)
    np.testing.assert_allclose(values, [0.1])
    np.testing.assert_allclose(mass, [1.0])


def test_trie_targets_are_prefix_masses_over_parent_masses():
    # one prompt, outputs "1" (0.5), "12" (0.3), "13" (0.2) as tokens 1, 1 2, 1 3 with the terminator 9:
    # the terminator competes with the digits after 1 (q 0.5, 0.3, 0.2), and ends 12 and 13 with q 1
    sequences = np.array([[1, 9, -1], [1, 2, 9], [1, 3, 9]])
    trie = build_trie_forest(np.zeros(3, dtype=np.int64), np.arange(3), sequences, np.array([0.5, 0.3, 0.2]))
    paths = {}
    for row in np.argsort(trie.depth, kind="stable"):
        parent = [r for r in range(len(trie.node)) if trie.node[r] == trie.parent[row]]
        paths[row] = paths[parent[0]] + (int(trie.token[row]),) if parent else ()
    found = {paths[row]: (trie.mass[row], trie.q[row], trie.canonical_index[row]) for row in paths}
    assert found == {
        (): (1.0, 1.0, -1),
        (1,): (1.0, 1.0, -1),
        (1, 9): (0.5, 0.5, 0),
        (1, 2): (0.3, 0.3, -1),
        (1, 3): (0.2, 0.2, -1),
        (1, 2, 9): (0.3, 1.0, 1),
        (1, 3, 9): (0.2, 1.0, 2),
    }


@pytest.mark.parametrize("vocabulary, longest, seed", [(12, 4, 0), (12, 4, 1), (600, 4, 2), (600, 4, 3), (600, 9, 4)])
def test_tries_of_shuffled_rows_of_several_prompts_equal_a_pure_python_trie(vocabulary, longest, seed):
    # prompts whose tokens interleave, rows in random order, more than 256 distinct tokens in some cases, and
    # sequences long enough that their sort keys need more than one 64-bit word in the last
    rng = np.random.default_rng(seed)
    rows = []
    for prompt in range(4):
        outputs = {tuple(rng.integers(0, vocabulary, rng.integers(1, longest + 1))) + (vocabulary,) for _ in range(25)}
        rows += [(prompt, output) for output in outputs]
    rows = [rows[i] for i in rng.permutation(len(rows))]
    sequences = padded([output for _, output in rows])
    prompt_index = np.array([prompt for prompt, _ in rows])
    mass = rng.random(len(rows))
    for prompt in range(4):
        mass[prompt_index == prompt] /= mass[prompt_index == prompt].sum()
    trie = build_trie_forest(prompt_index, np.arange(len(rows)), sequences, mass)
    assert_equals_pure_python(trie, prompt_index, sequences, mass)


def test_outputs_that_tokenize_alike_or_prefix_one_another_are_refused_by_name():
    one = np.zeros(2, dtype=np.int64)
    with pytest.raises(UserError, match=r"^two canonical outputs of one prompt tokenize to the same sequence$"):
        build_trie_forest(one, np.arange(2), np.array([[1, 9], [1, 9]]), np.array([0.5, 0.5]))
    with pytest.raises(UserError, match=r"^token sequences are not prefix-free; is the terminator appended\?$"):
        build_trie_forest(one, np.arange(2), np.array([[1, -1], [1, 2]]), np.array([0.5, 0.5]))
    # the same sequences in two prompts are two tries, not a duplicate
    trie = build_trie_forest(np.arange(2), np.arange(2), np.array([[1, 9], [1, 9]]), np.array([1.0, 1.0]))
    assert trie.prompt_index.tolist() == [0, 1, 0, 1, 0, 1]


def test_no_values_format_to_no_text():
    offsets, data = format_canonical(np.empty(0, dtype=np.int64), 3)
    assert offsets.tolist() == [0] and data.size == 0


@pytest.mark.parametrize(
    "family_id, row, params",
    [  # the reference's grid transforms (spec §1.4)
        ("binomial", {"n": 10.4, "p": 0.3}, {"n": 10.0, "p": 0.3}),
        ("beta_binomial", {"n": 9.6, "alpha": 2, "beta": 3}, {"n": 10.0, "alpha": 2, "beta": 3}),
        ("negative_binomial", {"r": 2.5, "p": 0.5}, {"r": 2.0, "p": 0.5}),  # Python's round: ties to even
        ("hypergeometric", {"M": 30, "N": 5, "success_fraction": 0.35}, {"M": 30.0, "K": 10.0, "N": 5.0}),  # 10.5
        ("hypergeometric", {"M": 30, "N": 5, "success_fraction": 0.65}, {"M": 30.0, "K": 20.0, "N": 5.0}),  # 19.5
        ("hypergeometric", {"M": 50, "N": 60, "success_fraction": 0.35}, {"M": 50.0, "K": 18.0, "N": 50.0}),  # 17.5
        ("hypergeometric", {"M": 30, "N": 5, "success_fraction": 0.01}, {"M": 30.0, "K": 0.0, "N": 5.0}),
        ("uniform", {"a": 1.5, "width": 2}, {"a": 1.5, "b": 3.5}),
        ("triangular", {"a": 1, "width": 4, "mode_fraction": 0.25}, {"a": 1, "c": 2.0, "b": 5}),
    ],
)
def test_grid_rows_become_the_prompt_parameters_as_the_reference_transforms_them(family_id, row, params):
    assert _grid_to_params(family_id, row) == params


def test_prompt_ids_spell_negatives_and_decimal_points_out():
    assert make_prompt("gaussian", {"mu": -0.25, "sigma": 3}, "x").prompt_id == "gaussian_mu_m0p25_sigma_3"


@pytest.mark.parametrize("name", ["train", "unseen", "ood", "unseen-full", "ood-full"])
def test_every_prompt_of_a_set_records_the_sets_split(name):
    split = {"unseen-full": "unseen", "ood-full": "ood"}.get(name, name)
    assert {prompt.split for prompt in prompt_set(name)} == {split}


def test_a_set_names_the_families_it_lacks_and_the_sets_it_knows():
    with pytest.raises(
        FamilyError,
        match=r"^family 'poisson' is not in prompt set 'train', which has only the seen "
        r"families$",
    ):
        prompt_set("train", families=["poisson"])
    with pytest.raises(
        FamilyError,
        match=r"^family 'gaussian' is not in prompt set 'ood', which has only the "
        r"held-out families$",
    ):
        prompt_set("ood", families=["gaussian"])
    with pytest.raises(
        UserError,
        match=r"^unknown prompt set 'nope'; choose from train, unseen, ood, unseen-full, "
        r"ood-full, probe$",
    ):
        prompt_set("nope")


def test_the_coarsest_settings_are_allowed_and_the_first_invalid_ones_refused():
    # decimals 0 and 2 bins: N(0, 1) becomes -3 and 3 (the cap keeps both ends), half the mass each
    values, mass = _one(make_prompt("gaussian", {"mu": 0, "sigma": 1}, "custom"), 0, 2)
    assert values.tolist() == [-3.0, 3.0] and mass.tolist() == pytest.approx([0.5, 0.5])
    prompt = [make_prompt("gaussian", {"mu": 0, "sigma": 1}, "custom")]
    for decimals, max_bins, low, high, message in [
        (-1, 10, 0.001, 0.999, "^decimals must be >= 0, got -1$"),
        (1, 1, 0.001, 0.999, "^max_bins must be >= 2, got 1$"),
        (1, 10, 0.0, 0.999, r"^need 0 < quantile_low < quantile_high < 1"),
        (1, 10, 0.5, 0.5, r"^need 0 < quantile_low < quantile_high < 1"),
        (1, 10, 0.001, 1.0, r"^need 0 < quantile_low < quantile_high < 1"),
    ]:
        with pytest.raises(UserError, match=message):
            list(discretize_laws(prompt, decimals, max_bins, low, high))
    values, _ = _one(make_prompt("gaussian", {"mu": 0, "sigma": 1}, "custom"), 1, 10)
    assert len(values) == 10


def test_a_parameter_outside_its_domain_and_an_unknown_number_format_are_named_whole():
    with pytest.raises(
        FamilyError,
        match=r"^family 'gaussian': parameter 'sigma' must satisfy sigma > 0 "
        r"\(got mu=0\.0, sigma=-1\.0\)$",
    ):
        get_family("gaussian").check({"mu": 0.0, "sigma": -1.0})
    with pytest.raises(UserError, match=r"^number_format must be one of \('clean', 'reference'\), got 'fancy'$"):
        render_number(1.0, "fancy")
