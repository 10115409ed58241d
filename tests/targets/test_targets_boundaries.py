"""The targets stage at its edges: domain boundaries, dtypes, float64 limits, empty and degenerate inputs.

Each test pins a boundary where a plausible slip (< for <=, a lost dtype, a shifted offset) gives
another answer; the known-answer tests pin the numbers in the middle of the range.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from trie_reference import assert_equals_pure_python, padded

from calft.errors import UserError
from calft.targets.discretize import _normalize, discretize_laws, format_canonical
from calft.targets.families import FAMILIES, FamilyError, get_family
from calft.targets.prompts import evenly_spaced, make_prompt, render_number
from calft.targets.tries import _ranked, build_trie_forest


@pytest.mark.parametrize(
    "family_id, valid, invalid, name, rule",
    [
        ("gaussian", {"mu": 0, "sigma": 1e-300}, {"mu": 0, "sigma": 0}, "sigma", "sigma > 0"),
        ("bernoulli", {"p": 0}, {"p": -1e-12}, "p", "0 <= p <= 1"),
        ("bernoulli", {"p": 1}, {"p": 1.0000001}, "p", "0 <= p <= 1"),
        ("geometric", {"p": 1}, {"p": 0}, "p", "0 < p <= 1"),
        ("geometric", {"p": 1e-9}, {"p": 1.5}, "p", "0 < p <= 1"),
        ("binomial", {"n": 0, "p": 0.5}, {"n": -1, "p": 0.5}, "n", "n is a whole number >= 0"),
        ("binomial", {"n": 3, "p": 0.5}, {"n": 2.5, "p": 0.5}, "n", "n is a whole number >= 0"),
        ("negative_binomial", {"r": 1, "p": 0.5}, {"r": 0, "p": 0.5}, "r", "r is a whole number >= 1"),
        ("uniform", {"a": 0, "b": 1e-9}, {"a": 0, "b": 0}, "b", "b > a"),
        ("triangular", {"a": 0, "c": 0, "b": 1}, {"a": 0, "c": -0.1, "b": 1}, "c", "a <= c <= b"),
        ("triangular", {"a": 0, "c": 1, "b": 1}, {"a": 0, "c": 1.1, "b": 1}, "c", "a <= c <= b"),
        ("hypergeometric", {"M": 1, "K": 1, "N": 1}, {"M": 0, "K": 0, "N": 0}, "M", "M is a whole number >= 1"),
        ("hypergeometric", {"M": 5, "K": 5, "N": 2}, {"M": 5, "K": 6, "N": 2}, "K", "K <= M"),
        ("hypergeometric", {"M": 5, "K": 2, "N": 5}, {"M": 5, "K": 2, "N": 6}, "N", "N <= M"),
        ("truncnorm", {"mu": 0, "sigma": 1, "lower": 0, "upper": 1e-6}, None, None, None),
    ],
)
def test_a_domain_admits_its_boundary_and_refuses_the_value_just_beyond(family_id, valid, invalid, name, rule):
    family = get_family(family_id)
    family.check({key: float(value) for key, value in valid.items()})
    if invalid is None:
        return
    params = {key: float(value) for key, value in invalid.items()}
    shown = ", ".join(f"{key}={params[key]}" for key in family.params)
    with pytest.raises(FamilyError) as error:
        family.check(params)
    assert str(error.value) == f"family '{family_id}': parameter '{name}' must satisfy {rule} (got {shown})"


def test_a_truncation_whose_upper_bound_is_not_above_its_lower_is_refused():
    with pytest.raises(FamilyError, match=r"parameter 'upper' must satisfy upper > lower \(got "):
        get_family("truncnorm").check({"mu": 0.0, "sigma": 1.0, "lower": 1.0, "upper": 1.0})


def test_every_domain_rule_names_a_parameter_of_its_family():
    for family in FAMILIES.values():
        for rule in family.domain:
            bounds = [bound for bound in (rule.low, rule.high) if isinstance(bound, str)]
            assert {rule.name, *bounds} <= set(family.params), family.id


def test_an_unknown_family_lists_the_known_ones():
    with pytest.raises(FamilyError) as error:
        get_family("zipf")
    assert str(error.value) == f"unknown family 'zipf'; known families: {', '.join(FAMILIES)}"


def test_integer_parameters_reach_scipy_as_integers_one_prompt_or_many():
    binomial = get_family("binomial")
    assert binomial.to_scipy({"n": np.array([2.5, 3.5, 4.4]), "p": 0.5})["n"].tolist() == [2, 4, 4]
    assert binomial.to_scipy({"n": np.array([9.6]), "p": 0.5})["n"].dtype == np.int64
    assert binomial.support({"n": 9.6, "p": 0.5}) == (0, 10)


def test_render_number_prints_four_significant_digits_by_default():
    assert render_number(0.123456) == "0.1235"
    assert render_number(-12345.6) == "-12350"


def test_thinning_to_as_many_rows_as_there_are_keeps_them_all():
    assert evenly_spaced(list("abcd"), 4) == list("abcd")
    assert evenly_spaced(list("abcd"), 3) == ["a", "b", "d"]


def test_prompt_ids_print_whole_numbers_without_a_decimal_point():
    assert make_prompt("binomial", {"n": 10, "p": 0.5}, "x").prompt_id == "binomial_n_10_p_0p5"


# --- discretization ---------------------------------------------------------------------------------


def test_prompts_of_interleaved_families_keep_their_positions_in_the_list():
    prompts = [
        make_prompt("gaussian", {"mu": 0, "sigma": 1}, "x"),
        make_prompt("gaussian", {"mu": 5, "sigma": 1}, "x"),
        make_prompt("poisson", {"lambda": 3}, "x"),
        make_prompt("gaussian", {"mu": 9, "sigma": 1}, "x"),
    ]
    chunks = list(discretize_laws(prompts, 1, 50))
    assert [chunk.family for chunk in chunks] == ["gaussian", "poisson", "gaussian"]
    assert [sorted(set(chunk.prompt_index.tolist())) for chunk in chunks] == [[0, 1], [2], [3]]
    for chunk in chunks:
        assert chunk.prompt_index.dtype == np.int64 and chunk.grid_index.dtype == np.int64


def test_decimals_zero_are_allowed_for_a_continuous_family():
    (chunk,) = discretize_laws([make_prompt("uniform", {"a": 0, "b": 10}, "x")], 0, 100)
    assert chunk.value.tolist() == list(range(1, 10))  # [0.01, 9.99] holds the whole numbers 1 to 9


def test_quantiles_outside_the_open_unit_interval_are_refused_by_name():
    prompt = [make_prompt("gaussian", {"mu": 0, "sigma": 1}, "x")]
    with pytest.raises(UserError) as error:
        list(discretize_laws(prompt, 1, 10, 0.001, 1.5))
    assert str(error.value) == "need 0 < quantile_low < quantile_high < 1, got 0.001, 1.5"


def test_an_interval_without_a_grid_point_is_centred_on_its_rounded_midpoint_as_an_integer_index():
    # Uniform(0.33, 0.39) at d=1: [0.33006, 0.38994] holds no multiple of 0.1; midpoint 0.36 rounds to 0.4
    (chunk,) = discretize_laws([make_prompt("uniform", {"a": 0.33, "b": 0.39}, "x")], 1, 100)
    assert chunk.grid_index.tolist() == [4] and chunk.grid_index.dtype == np.int64
    assert chunk.mass.tolist() == [1.0]


@pytest.mark.parametrize("mu, decimals, fits", [(10, 15, False), (5, 15, True), (0, 17, False)])
def test_a_grid_finer_than_float64_resolves_is_refused_by_name(mu, decimals, fits):
    # N(mu, 1) reaches mu + 3.09 at q 0.999: 13.09 / 1e-15 = 1.3e16 >= 2**53, while 8.09 / 1e-15 < 2**53
    prompt = [make_prompt("gaussian", {"mu": mu, "sigma": 1}, "x")]
    if fits:
        (chunk,) = discretize_laws(prompt, decimals, 10)
        assert len(chunk.mass) == 10
        return
    with pytest.raises(UserError) as error:
        list(discretize_laws(prompt, decimals, 10))
    assert str(error.value) == (
        f"decimals={decimals} is too fine for family 'gaussian': its values would need more significant digits "
        "than a float64 holds"
    )


def test_normalization_drops_negative_rounding_noise_and_names_a_prompt_left_without_mass():
    prompts = [make_prompt("poisson", {"lambda": 1}, "x"), make_prompt("poisson", {"lambda": 2}, "x")]
    mass = _normalize(np.array([0.5, -1e-17, 0.5, 2.0]), np.array([0, 0, 0, 1]), 2, get_family("poisson"), prompts)
    assert mass.tolist() == [0.5, 0.0, 0.5, 1.0]
    with pytest.raises(FamilyError) as error:
        _normalize(np.array([0.5, 0.5]), np.array([0, 0]), 2, get_family("poisson"), prompts)
    assert str(error.value) == "family 'poisson' with lambda=2: the output space is empty (no mass)"


def test_canonical_text_keeps_every_digit_beyond_float64_precision():
    # 2**53 + 1 and 18 decimals: dividing as floats would print ...992 and lose the last digits
    offsets, data = format_canonical(np.array([9_007_199_254_740_993, -5]), 0)
    assert bytes(data).decode() == "9007199254740993-5" and offsets.tolist() == [0, 16, 18]
    offsets, data = format_canonical(np.array([987_654_321_987_654_321]), 18)
    assert bytes(data).decode() == "0.987654321987654321"


def test_canonical_text_of_a_narrow_integer_array_is_computed_in_64_bits():
    offsets, data = format_canonical(np.array([-5, 12345], dtype=np.int32), 12)
    assert bytes(data).decode() == "-0.0000000000050.000000012345"


def test_no_values_format_to_arrow_typed_empty_columns():
    offsets, data = format_canonical(np.empty(0, dtype=np.int64), 2)
    assert offsets.dtype == np.int64 and data.dtype == np.uint8


# --- tries ------------------------------------------------------------------------------------------


def _forest(rows: list[tuple[int, tuple[int, ...]]]):
    sequences = padded([tokens for _, tokens in rows])
    prompt_index = np.array([prompt for prompt, _ in rows])
    mass = np.ones(len(rows))
    for prompt in set(prompt_index.tolist()):
        mass[prompt_index == prompt] /= (prompt_index == prompt).sum()
    return prompt_index, sequences, mass


@pytest.mark.parametrize("vocabulary", [4, 8, 255, 256])
def test_a_power_of_two_of_distinct_tokens_still_sorts_and_ranks_exactly(vocabulary):
    # 2**k distinct tokens need k + 1 bits per column (ranks 1..2**k, PAD 0), and 256 need more than a byte
    rng = np.random.default_rng(vocabulary)
    rows = []
    for prompt in range(3):
        outputs = {(int(t),) for t in rng.permutation(vocabulary)}
        outputs |= {tuple(int(t) for t in rng.integers(0, vocabulary, 3)) + (vocabulary - 1,) for _ in range(40)}
        outputs = {o for o in outputs if not any(o != p and p[: len(o)] == o for p in outputs)}  # prefix-free
        rows += [(prompt, output) for output in sorted(outputs)]
    rows = [rows[i] for i in rng.permutation(len(rows))]
    prompt_index, sequences, mass = _forest(rows)
    assert len(np.unique(sequences[sequences >= 0])) == vocabulary
    trie = build_trie_forest(prompt_index, np.arange(len(rows)), sequences, mass)
    assert_equals_pure_python(trie, prompt_index, sequences, mass)


def test_ranks_take_one_byte_up_to_256_distinct_values_with_pad():
    ranked, distinct = _ranked(np.array([[0, 254, -1]]).repeat(1, axis=0) + np.zeros((1, 3), dtype=np.int64))
    assert distinct == 3 and ranked.dtype == np.uint8 and ranked.tolist() == [[1, 2, 0]]
    sequences = np.arange(255)[None, :]
    assert _ranked(sequences)[1] == 256 and _ranked(sequences)[0].dtype == np.uint8
    sequences = np.arange(256)[None, :]
    ranked, distinct = _ranked(sequences)
    assert distinct == 257 and ranked.dtype == np.int32 and ranked[0, -1] == 256


def test_forest_columns_have_their_documented_types_and_roots_their_markers():
    prompt_index, sequences, mass = _forest([(0, (1, 9)), (0, (2, 9)), (1, (3, 9))])
    trie = build_trie_forest(prompt_index, np.arange(3), sequences, mass)
    assert [trie.prompt_index.dtype, trie.node.dtype, trie.parent.dtype, trie.token.dtype] == [np.int32] * 4
    assert trie.depth.dtype == np.int16 and trie.canonical_index.dtype == np.int32
    roots = trie.depth == 0
    assert trie.parent[roots].tolist() == [-1, -1] and trie.token[roots].tolist() == [-1, -1]
    assert trie.q[roots].tolist() == [1.0, 1.0]


def test_a_prompt_whose_outputs_end_earlier_than_another_s_gets_its_own_shallower_trie():
    prompt_index, sequences, mass = _forest([(0, (1, 2, 3, 9)), (0, (1, 2, 4, 9)), (1, (5, 9)), (1, (6, 9))])
    trie = build_trie_forest(prompt_index, np.arange(4), sequences, mass)
    assert trie.depth[trie.prompt_index == 1].max() == 2 and trie.depth[trie.prompt_index == 0].max() == 4


def test_no_outputs_make_an_empty_forest():
    trie = build_trie_forest(np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros((0, 3), dtype=np.int64), np.zeros(0))
    assert len(trie.node) == 0


@pytest.mark.parametrize(
    "rows, message",
    [
        ([(0, (1, 9)), (0, (1, 9)), (0, (2, 9))], "two canonical outputs of one prompt tokenize to the same sequence"),
        ([(0, (1, 1, 1, 1)), (0, (1, 2)), (0, (1, 2, 3))], "token sequences are not prefix-free"),
        ([(0, ()), (0, (1, 9))], "token sequences are not prefix-free"),
    ],
)
def test_duplicates_and_prefixes_are_refused_wherever_they_sit(rows, message):
    prompt_index, sequences, mass = _forest(rows)
    with pytest.raises(UserError, match=f"^{message}"):
        build_trie_forest(prompt_index, np.arange(len(rows)), sequences, mass)


def test_a_law_whose_upper_quantile_overflows_falls_back_to_minus_ten_to_ten():
    # Pareto(alpha=0.001): Q(0.999) = 0.001**-1000 overflows to inf, so the reference's fallback interval
    # [-10, 10] (spec §4.2) replaces [Q(0.001), inf]; masses are cdf differences between midpoints, tails folded
    law = stats.pareto(b=0.001, scale=1.0)
    (chunk,) = discretize_laws([make_prompt("pareto", {"alpha": 0.001, "xm": 1}, "x")], 1, 1001)
    centres = np.round(np.arange(-100, 101) / 10, 1)
    np.testing.assert_allclose(chunk.value, centres)
    edges = law.cdf(np.concatenate([[-10.0], (centres[:-1] + centres[1:]) / 2, [10.0]]))
    expected = np.diff(edges)
    expected[0] += edges[0]
    expected[-1] += 1 - edges[-1]
    np.testing.assert_allclose(chunk.mass, expected / expected.sum(), rtol=1e-12, atol=1e-15)


def test_a_grid_that_renders_two_rows_alike_is_refused_by_name(monkeypatch):
    from calft.targets import prompts as prompt_module

    rows = [{"mu": 0.12341, "sigma": 1.0}, {"mu": 0.12342, "sigma": 1.0}]  # both print as mu=0.1234
    monkeypatch.setitem(prompt_module.SELECTED, "gaussian", rows)
    with pytest.raises(FamilyError) as error:
        prompt_module.prompt_set("unseen", families=["gaussian"])
    assert str(error.value) == "prompt set 'unseen' renders two prompts to the same id"


def test_a_rule_prints_as_its_error_message_names_it():
    from calft.targets.families import Rule

    assert str(Rule("x", low=0, low_closed=True)) == "x >= 0"
    assert str(Rule("x", low=0)) == "x > 0"
    assert str(Rule("x", low="a", low_closed=True, high="b")) == "a <= x <= b"
