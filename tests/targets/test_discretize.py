import numpy as np
import pytest

from calft.errors import UserError
from calft.targets.discretize import discretize_laws, format_canonical
from calft.targets.families import FamilyError, get_family
from calft.targets.prompts import make_prompt, prompt_set

ALL_SETS = ["train", "unseen", "ood", "unseen-full", "ood-full"]


def output_spaces(prompts, decimals: int, max_bins: int) -> list[tuple[list[str], np.ndarray]]:
    """Per prompt: (canonical strings, masses)."""
    prompts = list(prompts)
    result = []
    for chunk in discretize_laws(prompts, decimals, max_bins):
        offsets, data = format_canonical(chunk.grid_index, chunk.decimals)
        text = data.tobytes().decode()
        strings = [text[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
        for index in np.unique(chunk.prompt_index):
            rows = np.flatnonzero(chunk.prompt_index == index)
            result.append(([strings[r] for r in rows], chunk.mass[rows]))
    return result


def _rows(prompts, decimals, max_bins):
    """Per prompt: (canonical strings, masses)."""
    return list(zip(prompts, output_spaces(prompts, decimals, max_bins)))


@pytest.mark.parametrize("name", ALL_SETS)
@pytest.mark.parametrize("decimals, max_bins", [(5, 1001), (2, 1001), (1, 64)])
def test_masses_sum_to_one_and_strings_parse_into_support(name, decimals, max_bins):
    for prompt, (strings, mass) in _rows(prompt_set(name), decimals, max_bins):
        family = get_family(prompt.family)
        assert abs(mass.sum() - 1) < 1e-9, prompt.prompt_id
        assert (mass >= 0).all()
        assert 0 < len(strings) <= max_bins and len(set(strings)) == len(strings)
        values = np.array([float(s) for s in strings])
        assert (np.diff(values) > 0).all(), prompt.prompt_id
        low, high = family.support(prompt.params)
        if low is not None:
            assert values.min() >= low - 10.0**-decimals / 2
        if high is not None:
            assert values.max() <= high + 10.0**-decimals / 2
        if family.integer:
            assert all(s.lstrip("-").isdigit() for s in strings)
        else:
            assert all(len(s.split(".")[1]) == decimals for s in strings) if decimals else True
            assert not any(s.startswith("-0.") and set(s[3:]) == {"0"} for s in strings)


def test_paper_evaluation_targets_at_16384_bins():
    sizes = {p.prompt_id: len(s) for p, (s, _) in _rows(prompt_set("unseen") + prompt_set("ood"), 5, 16384)}
    assert sizes["binomial_n_25_p_0p5"] == 26
    assert sizes["geometric_p_0p125"] == 52
    assert sizes["negative_binomial_r_15_p_0p15"] == 177
    assert sizes["skellam_mu1_10p5_mu2_10p5"] == 29
    assert sizes["poisson_lambda_12"] == 25
    assert sizes["gaussian_mu_3p5_sigma_3"] == 16384 and sizes["cauchy_x0_3p5_gamma_3"] == 16384


def test_output_space_details_match_the_reference_rules():
    ((strings, mass),) = output_spaces(prompt_set("unseen")[:1], 5, 16384)
    assert (strings[0], strings[-1]) == ("3.50700", "10.49300")
    assert mass[0] == pytest.approx(1.03e-3, rel=1e-3) and mass[100] == pytest.approx(6.07e-5, rel=1e-2)
    lognormal = next(r for p, r in _rows(prompt_set("unseen"), 5, 1001) if p.family == "lognormal")
    assert lognormal[0][1] == "5.91197" and lognormal[1][0] == pytest.approx(0.240, abs=1e-3)


def test_training_totals():
    for max_bins, total in [(1001, 1_653_918), (16384, 26_974_336)]:
        assert sum(len(c.mass) for c in discretize_laws(prompt_set("train"), 5, max_bins)) == total


def test_cap_keeps_numpy_linspace_positions():
    prompt = make_prompt("gaussian", {"mu": 0, "sigma": 1}, "custom")
    chunk = next(discretize_laws([prompt], 3, 100))
    law = get_family("gaussian").frozen(prompt.params)
    first = int(np.ceil(law.ppf(0.001) / 1e-3))
    points = int(np.floor(law.ppf(0.999) / 1e-3)) - first + 1
    expected = first + np.linspace(0, points - 1, 100).astype(int)
    assert (chunk.grid_index == expected).all()


@pytest.mark.parametrize(
    "family, params",
    [
        ("gaussian", {"mu": 0.3, "sigma": 0.7}),
        ("beta", {"alpha": 2, "beta": 5}),
        ("gamma", {"alpha": 3, "beta": 0.5}),
        ("uniform", {"a": -1, "b": 2}),
        ("binomial", {"n": 20, "p": 0.3}),
        ("poisson", {"lambda": 4}),
    ],
)
def test_discretized_mean_approaches_scipy_mean(family, params):
    prompt = make_prompt(family, params, "custom")
    law = get_family(family).frozen(prompt.params)
    errors = []
    for bins in (16, 128, 4096):
        ((strings, mass),) = output_spaces([prompt], 5, bins)
        errors.append(abs(np.dot([float(s) for s in strings], mass) - law.mean()))
    assert errors[-1] <= errors[0] + 1e-12 and errors[-1] < 0.01 * law.std()


def test_format_canonical_matches_python_formatting():
    rng = np.random.default_rng(1)
    k = np.r_[0, -1, 1, -99999, 100000, -100000, rng.integers(-(10**10), 10**10, 2000)]
    for decimals in (0, 1, 5):
        offsets, data = format_canonical(k, decimals)
        text = data.tobytes().decode()
        got = [text[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
        if decimals:
            from decimal import Decimal

            expected = [f"{Decimal(int(x)).scaleb(-decimals):.{decimals}f}" for x in k]
        else:
            expected = [str(int(x)) for x in k]
        assert got == expected


def test_empty_output_space_names_the_family():
    prompt = make_prompt("binomial", {"n": 1_000_000, "p": 0.5}, "custom")  # lowest 16 values underflow
    with pytest.raises(FamilyError, match="family 'binomial' with n=1000000, p=0.5: the output space is empty"):
        list(discretize_laws([prompt], 5, 16))


def test_bad_settings():
    with pytest.raises(UserError, match="max_bins"):
        list(discretize_laws(prompt_set("unseen")[:1], 5, 1))
    with pytest.raises(UserError, match="decimals"):
        list(discretize_laws(prompt_set("unseen")[:1], -1, 100))
