"""The 30 distribution families: names, parameters, SciPy laws, supports and domains (a config may
declare more: calft.targets.declared).

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
class Rule:
    """A parameter's domain: above `low` (or at least `low`, when `low_closed`), at most `high`, and a
    whole number when `whole`. A bound is a number or the name of another parameter."""

    name: str
    low: float | str | None = None
    low_closed: bool = False
    high: float | str | None = None
    whole: bool = False

    def holds(self, params: Params) -> bool:
        value = params[self.name]
        low, high = (params[b] if isinstance(b, str) else b for b in (self.low, self.high))
        if self.whole and float(value) != round(float(value)):
            return False
        if low is not None and not (value >= low if self.low_closed else value > low):
            return False
        return high is None or value <= high

    def __str__(self) -> str:
        if self.whole:
            return f"{self.name} is a whole number >= {self.low}"
        if self.low is None:
            return f"{self.name} <= {self.high}"
        above = f"{self.name} {'>=' if self.low_closed else '>'} {self.low}"
        if self.high is None:
            return above
        return f"{self.low} {'<=' if self.low_closed else '<'} {self.name} <= {self.high}"


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
    domain: tuple[Rule, ...]
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
        for rule in self.domain:
            if not rule.holds(params):
                shown = ", ".join(f"{k}={params[k]}" for k in self.params)
                raise FamilyError(f"family '{self.id}': parameter '{rule.name}' must satisfy {rule} (got {shown})")


def _rounded(x):
    return np.rint(x).astype(np.int64)


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
            (Rule("b", low="a"),),
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
            (Rule("sigma", low=0),),
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
            (Rule("p", low=0, low_closed=True, high=1),),
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
            (Rule("alpha", low=0), Rule("beta", low=0)),
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
            (Rule("n", low=0, low_closed=True, whole=True), Rule("p", low=0, low_closed=True, high=1)),
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
            (Rule("lambda", low=0),),
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
            (Rule("lambda", low=0),),
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
            (Rule("p", low=0, high=1),),
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
            (Rule("r", low=1, low_closed=True, whole=True), Rule("p", low=0, high=1)),
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
            (Rule("sigma", low=0),),
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
                Rule("b", low="a"),
                Rule("c", low="a", low_closed=True, high="b"),
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
            (Rule("sigma", low=0),),
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
            (Rule("scale", low=0),),
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
            (Rule("sigma", low=0), Rule("upper", low="lower")),
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
            (Rule("gamma", low=0),),
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
            (Rule("nu", low=0),),
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
            (Rule("nu", low=0),),
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
            (Rule("d1", low=0), Rule("d2", low=0)),
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
            (Rule("alpha", low=0), Rule("beta", low=0)),
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
            (Rule("k", low=0), Rule("lambda", low=0)),
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
            (Rule("b", low=0),),
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
            (Rule("s", low=0),),
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
            (Rule("alpha", low=0), Rule("xm", low=0)),
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
                Rule("M", low=1, low_closed=True, whole=True),
                Rule("K", low=0, low_closed=True, whole=True),
                Rule("N", low=0, low_closed=True, whole=True),
                Rule("K", high="M"),
                Rule("N", high="M"),
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
            (Rule("beta", low=0),),
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
            (Rule("mu1", low=0), Rule("mu2", low=0)),
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
            (Rule("n", low=0, low_closed=True, whole=True), Rule("alpha", low=0), Rule("beta", low=0)),
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
            (Rule("alpha", low=0), Rule("lambda", low=0)),
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
            (Rule("mu", low=0), Rule("lambda", low=0)),
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
            (Rule("df", low=0),),
            held_out=True,
        ),
    ]
}

SEEN = [f for f in FAMILIES if not FAMILIES[f].held_out]  # grow with declared families (calft.targets.declared)
HELD_OUT = [f for f in FAMILIES if FAMILIES[f].held_out]


def get_family(family_id: str) -> Family:
    try:
        return FAMILIES[family_id]
    except KeyError:
        raise FamilyError(f"unknown family '{family_id}'; known families: {', '.join(FAMILIES)}") from None
