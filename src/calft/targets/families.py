"""The 30 distribution families: names, parameters, SciPy laws, supports and domains.

Pure math: no torch, no I/O. Parameters are always given by their printed names (the order in which
the prompt prints them). Every mapping function accepts scalars or numpy arrays, so one family's
prompts can be evaluated in a single vectorized SciPy call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from calft.errors import UserError

Params = Mapping[str, float | np.ndarray]


class FamilyError(UserError):
    """An unknown family or a parameter outside its family's domain."""


@dataclass(frozen=True)
class Family:
    id: str
    display: str
    tier: str
    integer: bool
    scipy_name: str
    params: tuple[str, ...]
    to_scipy: Callable[[Params], dict]
    support: Callable[[Params], tuple]
    domain: tuple[tuple[str, str, Callable[[Params], bool]], ...]
    held_out: bool = False

    @property
    def law(self):
        from scipy import stats  # imported on first use: the workflow parses without it

        return getattr(stats, self.scipy_name)

    def frozen(self, params: Params):
        """The SciPy law for one prompt (or, with array parameters, for many at once)."""
        return self.law(**self.to_scipy(params))

    def check(self, params: Mapping[str, float]) -> None:
        """Raise FamilyError naming the family and parameter if `params` is not a valid law."""
        missing = [name for name in self.params if name not in params]
        extra = [name for name in params if name not in self.params]
        if missing or extra:
            raise FamilyError(
                f"family '{self.id}' takes parameters {list(self.params)}; missing {missing}, unexpected {extra}"
            )
        for name in self.params:
            value = params[name]
            if not np.isfinite(value):
                raise FamilyError(f"family '{self.id}': parameter '{name}'={value} is not finite")
        for name, rule, holds in self.domain:
            if not holds(params):
                shown = ", ".join(f"{k}={params[k]}" for k in self.params)
                raise FamilyError(f"family '{self.id}': parameter '{name}' must satisfy {rule} (got {shown})")


def _positive(name: str):
    return (name, f"{name} > 0", lambda p: p[name] > 0)


def _probability(name: str, open_low: bool = False):
    if open_low:
        return (name, f"0 < {name} <= 1", lambda p: 0 < p[name] <= 1)
    return (name, f"0 <= {name} <= 1", lambda p: 0 <= p[name] <= 1)


def _whole(name: str, minimum: int = 0):
    return (
        name,
        f"{name} is a whole number >= {minimum}",
        lambda p: float(p[name]) == round(float(p[name])) and p[name] >= minimum,
    )


def _rounded(x):
    return np.rint(x).astype(np.int64) if isinstance(x, np.ndarray) else int(round(x))


NONE = None


def _hypergeometric_support(p):
    M, K, N = p["M"], p["K"], p["N"]
    return np.maximum(0, N - (M - K)), np.minimum(N, K)


FAMILIES: dict[str, Family] = {
    f.id: f
    for f in [
        Family(
            "uniform",
            "Uniform",
            "I",
            False,
            "uniform",
            ("a", "b"),
            lambda p: {"loc": p["a"], "scale": p["b"] - p["a"]},
            lambda p: (p["a"], p["b"]),
            (("b", "b > a", lambda p: p["b"] > p["a"]),),
        ),
        Family(
            "gaussian",
            "Gaussian",
            "I",
            False,
            "norm",
            ("mu", "sigma"),
            lambda p: {"loc": p["mu"], "scale": p["sigma"]},
            lambda p: (NONE, NONE),
            (_positive("sigma"),),
        ),
        Family(
            "bernoulli",
            "Bernoulli",
            "I",
            True,
            "bernoulli",
            ("p",),
            lambda p: {"p": p["p"]},
            lambda p: (0, 1),
            (_probability("p"),),
            held_out=True,
        ),
        Family(
            "beta",
            "Beta",
            "II",
            False,
            "beta",
            ("alpha", "beta"),
            lambda p: {"a": p["alpha"], "b": p["beta"]},
            lambda p: (0, 1),
            (_positive("alpha"), _positive("beta")),
        ),
        Family(
            "binomial",
            "Binomial",
            "II",
            True,
            "binom",
            ("n", "p"),
            lambda p: {"n": _rounded(p["n"]), "p": p["p"]},
            lambda p: (0, _rounded(p["n"])),
            (_whole("n"), _probability("p")),
        ),
        Family(
            "poisson",
            "Poisson",
            "II",
            True,
            "poisson",
            ("lambda",),
            lambda p: {"mu": p["lambda"]},
            lambda p: (0, NONE),
            (_positive("lambda"),),
            held_out=True,
        ),
        Family(
            "exponential",
            "Exponential",
            "II",
            False,
            "expon",
            ("lambda",),
            lambda p: {"scale": 1.0 / p["lambda"]},
            lambda p: (0, NONE),
            (_positive("lambda"),),
        ),
        Family(
            "geometric",
            "Geometric",
            "II",
            True,
            "geom",
            ("p",),
            lambda p: {"p": p["p"]},
            lambda p: (1, NONE),
            (_probability("p", open_low=True),),
        ),
        Family(
            "negative_binomial",
            "Negative Binomial",
            "II",
            True,
            "nbinom",
            ("r", "p"),
            lambda p: {"n": _rounded(p["r"]), "p": p["p"]},
            lambda p: (0, NONE),
            (_whole("r", 1), _probability("p", open_low=True)),
        ),
        Family(
            "lognormal",
            "LogNormal",
            "II",
            False,
            "lognorm",
            ("mu", "sigma"),
            lambda p: {"s": p["sigma"], "scale": np.exp(p["mu"])},
            lambda p: (0, NONE),
            (_positive("sigma"),),
        ),
        Family(
            "triangular",
            "Triangular",
            "II",
            False,
            "triang",
            ("a", "c", "b"),
            lambda p: {"c": (p["c"] - p["a"]) / (p["b"] - p["a"]), "loc": p["a"], "scale": p["b"] - p["a"]},
            lambda p: (p["a"], p["b"]),
            (
                ("b", "b > a", lambda p: p["b"] > p["a"]),
                ("c", "a <= c <= b", lambda p: p["a"] <= p["c"] <= p["b"]),
            ),
        ),
        Family(
            "rayleigh",
            "Rayleigh",
            "II",
            False,
            "rayleigh",
            ("sigma",),
            lambda p: {"scale": p["sigma"]},
            lambda p: (0, NONE),
            (_positive("sigma"),),
        ),
        Family(
            "maxwell",
            "Maxwell",
            "II",
            False,
            "maxwell",
            ("scale",),
            lambda p: {"scale": p["scale"]},
            lambda p: (0, NONE),
            (_positive("scale"),),
            held_out=True,
        ),
        Family(
            "truncnorm",
            "TruncNorm",
            "II",
            False,
            "truncnorm",
            ("mu", "sigma", "lower", "upper"),
            lambda p: {
                "a": (p["lower"] - p["mu"]) / p["sigma"],
                "b": (p["upper"] - p["mu"]) / p["sigma"],
                "loc": p["mu"],
                "scale": p["sigma"],
            },
            lambda p: (p["lower"], p["upper"]),
            (_positive("sigma"), ("upper", "upper > lower", lambda p: p["upper"] > p["lower"])),
            held_out=True,
        ),
        Family(
            "cauchy",
            "Cauchy",
            "III",
            False,
            "cauchy",
            ("x0", "gamma"),
            lambda p: {"loc": p["x0"], "scale": p["gamma"]},
            lambda p: (NONE, NONE),
            (_positive("gamma"),),
        ),
        Family(
            "student_t",
            "Student's t",
            "III",
            False,
            "t",
            ("nu",),
            lambda p: {"df": p["nu"]},
            lambda p: (NONE, NONE),
            (_positive("nu"),),
        ),
        Family(
            "chi_square",
            "Chi-Square",
            "III",
            False,
            "chi2",
            ("nu",),
            lambda p: {"df": p["nu"]},
            lambda p: (0, NONE),
            (_positive("nu"),),
        ),
        Family(
            "f_distribution",
            "F-Distribution",
            "III",
            False,
            "f",
            ("d1", "d2"),
            lambda p: {"dfn": p["d1"], "dfd": p["d2"]},
            lambda p: (0, NONE),
            (_positive("d1"), _positive("d2")),
        ),
        Family(
            "gamma",
            "Gamma",
            "III",
            False,
            "gamma",
            ("alpha", "beta"),
            lambda p: {"a": p["alpha"], "scale": p["beta"]},
            lambda p: (0, NONE),
            (_positive("alpha"), _positive("beta")),
        ),
        Family(
            "weibull",
            "Weibull",
            "III",
            False,
            "weibull_min",
            ("k", "lambda"),
            lambda p: {"c": p["k"], "scale": p["lambda"]},
            lambda p: (0, NONE),
            (_positive("k"), _positive("lambda")),
            held_out=True,
        ),
        Family(
            "laplace",
            "Laplace",
            "III",
            False,
            "laplace",
            ("mu", "b"),
            lambda p: {"loc": p["mu"], "scale": p["b"]},
            lambda p: (NONE, NONE),
            (_positive("b"),),
        ),
        Family(
            "logistic",
            "Logistic",
            "III",
            False,
            "logistic",
            ("mu", "s"),
            lambda p: {"loc": p["mu"], "scale": p["s"]},
            lambda p: (NONE, NONE),
            (_positive("s"),),
        ),
        Family(
            "pareto",
            "Pareto",
            "III",
            False,
            "pareto",
            ("alpha", "xm"),
            lambda p: {"b": p["alpha"], "scale": p["xm"]},
            lambda p: (p["xm"], NONE),
            (_positive("alpha"), _positive("xm")),
        ),
        Family(
            "hypergeometric",
            "Hypergeometric",
            "III",
            True,
            "hypergeom",
            ("M", "K", "N"),
            lambda p: {"M": _rounded(p["M"]), "n": _rounded(p["K"]), "N": _rounded(p["N"])},
            _hypergeometric_support,
            (
                _whole("M", 1),
                _whole("K"),
                _whole("N"),
                ("K", "K <= M", lambda p: p["K"] <= p["M"]),
                ("N", "N <= M", lambda p: p["N"] <= p["M"]),
            ),
        ),
        Family(
            "gumbel",
            "Gumbel",
            "III",
            False,
            "gumbel_r",
            ("mu", "beta"),
            lambda p: {"loc": p["mu"], "scale": p["beta"]},
            lambda p: (NONE, NONE),
            (_positive("beta"),),
        ),
        Family(
            "skellam",
            "Skellam",
            "III",
            True,
            "skellam",
            ("mu1", "mu2"),
            lambda p: {"mu1": p["mu1"], "mu2": p["mu2"]},
            lambda p: (NONE, NONE),
            (_positive("mu1"), _positive("mu2")),
        ),
        Family(
            "beta_binomial",
            "Beta-Binomial",
            "III",
            True,
            "betabinom",
            ("n", "alpha", "beta"),
            lambda p: {"n": _rounded(p["n"]), "a": p["alpha"], "b": p["beta"]},
            lambda p: (0, _rounded(p["n"])),
            (_whole("n"), _positive("alpha"), _positive("beta")),
        ),
        Family(
            "lomax",
            "Lomax",
            "III",
            False,
            "lomax",
            ("alpha", "lambda"),
            lambda p: {"c": p["alpha"], "scale": p["lambda"]},
            lambda p: (0, NONE),
            (_positive("alpha"), _positive("lambda")),
        ),
        Family(
            "inverse_gaussian",
            "Inverse Gaussian",
            "III",
            False,
            "invgauss",
            ("mu", "lambda"),
            lambda p: {"mu": p["mu"] / p["lambda"], "scale": p["lambda"]},
            lambda p: (0, NONE),
            (_positive("mu"), _positive("lambda")),
        ),
        Family(
            "chi",
            "Chi",
            "III",
            False,
            "chi",
            ("df",),
            lambda p: {"df": p["df"]},
            lambda p: (0, NONE),
            (_positive("df"),),
            held_out=True,
        ),
    ]
}

SEEN = tuple(f for f in FAMILIES if not FAMILIES[f].held_out)
HELD_OUT = tuple(f for f in FAMILIES if FAMILIES[f].held_out)


def get_family(family_id: str) -> Family:
    try:
        return FAMILIES[family_id]
    except KeyError:
        raise FamilyError(f"unknown family '{family_id}'; known families: {', '.join(FAMILIES)}") from None
