import numpy as np
import pytest

from calft.targets.families import FAMILIES, HELD_OUT, SEEN, FamilyError, get_family
from calft.targets.prompts import make_prompt


def test_registry_has_30_families_with_the_paper_split():
    assert len(FAMILIES) == 30 and len(SEEN) == 24
    assert set(HELD_OUT) == {"bernoulli", "poisson", "maxwell", "truncnorm", "chi", "weibull"}
    tiers = [f.tier for f in FAMILIES.values()]
    assert (tiers.count("I"), tiers.count("II"), tiers.count("III")) == (3, 11, 16)
    integer = {f.id for f in FAMILIES.values() if f.integer}
    assert integer == {
        "bernoulli",
        "binomial",
        "poisson",
        "geometric",
        "negative_binomial",
        "hypergeometric",
        "skellam",
        "beta_binomial",
    }


@pytest.mark.parametrize(
    "family, params, mean",
    [
        ("gamma", {"alpha": 7, "beta": 7}, 49.0),  # beta is a scale
        ("exponential", {"lambda": 4}, 0.25),  # lambda is a rate
        ("inverse_gaussian", {"mu": 5, "lambda": 7}, 5.0),  # mu is the mean
        ("triangular", {"a": 2.5, "c": 6, "b": 9.5}, 6.0),
        ("geometric", {"p": 0.25}, 4.0),  # trials to first success
        ("negative_binomial", {"r": 15, "p": 0.15}, 15 * 0.85 / 0.15),  # failures before r-th success
        ("lognormal", {"mu": 0.5, "sigma": 1.0}, np.exp(1.0)),
        ("hypergeometric", {"M": 100, "K": 50, "N": 20}, 10.0),
        ("truncnorm", {"mu": 0, "sigma": 1, "lower": -1, "upper": 1}, 0.0),
        ("pareto", {"alpha": 3, "xm": 2}, 3.0),
    ],
)
def test_parameter_conventions(family, params, mean):
    assert get_family(family).frozen(params).mean() == pytest.approx(mean)


def test_support_bounds():
    assert get_family("pareto").support({"alpha": 3, "xm": 2}) == (2, None)
    assert get_family("binomial").support({"n": 25, "p": 0.5}) == (0, 25)
    assert tuple(map(int, get_family("hypergeometric").support({"M": 30, "K": 10, "N": 25}))) == (5, 10)


def test_unknown_family_is_named():
    with pytest.raises(FamilyError, match="unknown family 'gausian'"):
        make_prompt("gausian", {"mu": 0, "sigma": 1}, "train")


@pytest.mark.parametrize(
    "family, params, parameter",
    [
        ("gaussian", {"mu": 0, "sigma": 0}, "sigma"),
        ("gaussian", {"mu": 0, "sigma": -1}, "sigma"),
        ("bernoulli", {"p": 1.5}, "p"),
        ("binomial", {"n": 10, "p": -0.1}, "p"),
        ("binomial", {"n": 2.5, "p": 0.5}, "n"),
        ("uniform", {"a": 2, "b": 2}, "b"),
        ("uniform", {"a": 3, "b": 1}, "b"),
        ("triangular", {"a": 0, "c": 5, "b": 4}, "c"),
        ("truncnorm", {"mu": 0, "sigma": 1, "lower": 1, "upper": -1}, "upper"),
        ("hypergeometric", {"M": 10, "K": 12, "N": 3}, "K"),
        ("geometric", {"p": 0}, "p"),
        ("weibull", {"k": 1, "lambda": 0}, "lambda"),
        ("gaussian", {"mu": float("nan"), "sigma": 1}, "mu"),
    ],
)
def test_parameter_outside_domain_names_family_and_parameter(family, params, parameter):
    with pytest.raises(FamilyError) as error:
        make_prompt(family, params, "train")
    assert f"family '{family}'" in str(error.value) and f"'{parameter}'" in str(error.value)


def test_missing_and_extra_parameters():
    with pytest.raises(FamilyError, match="missing \\['sigma'\\]"):
        make_prompt("gaussian", {"mu": 0}, "train")
    with pytest.raises(FamilyError, match="unexpected \\['scale'\\]"):
        make_prompt("gaussian", {"mu": 0, "sigma": 1, "scale": 2}, "train")
