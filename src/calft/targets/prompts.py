"""Prompt sets: the parameter grids of the paper, prompt text, number rendering and prompt ids.

Pure: no torch, no I/O. A prompt's law always uses exactly the parameter values printed in its text.
Two renderings exist: "clean" (ours: integers without ".0", 4 significant digits, no float artefacts)
and "reference" (Python's float repr of the raw grid values, as the reference implementation prints
them, e.g. "n=25.0", "a=-2.9000000000000004").
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from calft.errors import UserError
from calft.targets.families import HELD_OUT, SEEN, FamilyError, get_family

TEMPLATE = (
    "Generate exactly ONE random number from a {display} distribution with parameters {params}. Output ONLY the number."
)
NUMBER_FORMATS = ("clean", "reference")
PROMPT_SETS = {
    "train": "train",
    "unseen": "unseen",
    "ood": "ood",
    "unseen-full": "unseen",
    "ood-full": "ood",
    "probe": "probe",
}


def lin(start, stop, num):
    return np.linspace(start, stop, num)


def geo(start, stop, num):
    return np.geomspace(start, stop, num)


_P11 = [0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8]
_LOC, _SCALE = ("lin", -2, 2, 11), ("geo", 0.5, 2, 11)
_LOC_TEST, _SCALE_TEST = ("lin", 2.5, 4, 6), ("geo", 2.25, 3.5, 6)

# Grid axes in product order (first axis slowest). An axis is a list of values or
# ("lin"|"geo", start, stop, num). Axis names are grid names, turned into prompt parameters by
# _grid_to_params. SELECTED holds the paper's hand-picked evaluation rows, in grid names.
TRAIN_GRIDS = {
    "uniform": {"a": ("lin", -5, 2, 11), "width": ("lin", 1, 5, 11)},
    "gaussian": {"mu": _LOC, "sigma": _SCALE},
    "beta": {"alpha": ("geo", 0.5, 5, 11), "beta": ("geo", 0.5, 5, 11)},
    "binomial": {"n": [5, 10, 15, 20], "p": _P11},
    "exponential": {"lambda": ("geo", 0.5, 5, 25)},
    "geometric": {"p": [0.2, 0.225, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.65, 0.7, 0.75, 0.775, 0.8]},
    "negative_binomial": {"r": [3, 5, 8, 12], "p": _P11},
    "lognormal": {"mu": ("lin", -1, 1.5, 11), "sigma": ("geo", 0.25, 1.25, 11)},
    "triangular": {
        "a": ("lin", -3, 1, 5),
        "width": ("lin", 1, 5, 5),
        "mode_fraction": [0.1, 0.3, 0.5, 0.7, 0.9],
    },
    "rayleigh": {"sigma": ("geo", 0.5, 2, 25)},
    "cauchy": {"x0": _LOC, "gamma": _SCALE},
    "student_t": {"nu": [2.5, 2.75, 3, 3.5, 4, 4.5, 5, 6, 7, 8, 9, 10]},
    "chi_square": {"nu": [2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 18, 20]},
    "f_distribution": {"d1": [3, 5, 7, 10], "d2": [5, 10, 15, 20]},
    "gamma": {"alpha": ("geo", 1, 5, 11), "beta": ("geo", 1, 5, 11)},
    "laplace": {"mu": _LOC, "b": _SCALE},
    "logistic": {"mu": _LOC, "s": _SCALE},
    "pareto": {"alpha": [2, 2.25, 2.5, 2.75, 3, 3.5, 4, 4.5, 5], "xm": ("geo", 0.5, 2, 11)},
    "hypergeometric": {"M": [30, 50, 80], "N": [5, 10, 15], "success_fraction": [0.2, 0.35, 0.5, 0.65, 0.8]},
    "gumbel": {"mu": _LOC, "beta": _SCALE},
    "skellam": {"mu1": ("geo", 1, 8, 11), "mu2": ("geo", 1, 8, 11)},
    "beta_binomial": {"n": [10, 20, 30], "alpha": ("geo", 0.5, 5, 5), "beta": ("geo", 0.5, 5, 5)},
    "lomax": {"alpha": ("geo", 1.5, 4, 11), "lambda": ("geo", 0.5, 3, 11)},
    "inverse_gaussian": {"mu": ("geo", 0.5, 3, 11), "lambda": ("geo", 0.5, 5, 11)},
}

TEST_GRIDS = {
    "uniform": {"a": ("lin", 2.5, 4.5, 6), "width": ("lin", 5.5, 8, 6)},
    "gaussian": {"mu": _LOC_TEST, "sigma": _SCALE_TEST},
    "beta": {"alpha": ("geo", 5.5, 8, 6), "beta": ("geo", 5.5, 8, 6)},
    "binomial": {"n": [25, 30], "p": [0.25, 0.4, 0.5, 0.6, 0.75]},
    "exponential": {"lambda": ("geo", 5.5, 8, 12)},
    "geometric": {"p": [0.05, 0.075, 0.1, 0.125, 0.15, 0.85, 0.875, 0.9, 0.925, 0.95]},
    "negative_binomial": {"r": [15, 20], "p": [0.1, 0.15, 0.2, 0.8, 0.85, 0.9]},
    "lognormal": {"mu": ("lin", 1.75, 3, 6), "sigma": ("geo", 1.5, 2.25, 6)},
    "triangular": {"a": ("lin", 1.5, 3.5, 3), "width": ("lin", 5.5, 8, 3), "mode_fraction": [0.1, 0.5, 0.9]},
    "rayleigh": {"sigma": ("geo", 2.25, 3.5, 12)},
    "cauchy": {"x0": _LOC_TEST, "gamma": _SCALE_TEST},
    "student_t": {"nu": [10.5, 12, 14, 16, 18, 20]},
    "chi_square": {"nu": [21, 24, 28, 32, 36, 40]},
    "f_distribution": {"d1": [12, 15], "d2": [24, 30]},
    "gamma": {"alpha": ("geo", 5.5, 8, 6), "beta": ("geo", 5.5, 8, 6)},
    "laplace": {"mu": _LOC_TEST, "b": _SCALE_TEST},
    "logistic": {"mu": _LOC_TEST, "s": _SCALE_TEST},
    "pareto": {"alpha": [5.5, 6, 6.5, 7, 8], "xm": ("geo", 2.5, 4, 6)},
    "hypergeometric": {"M": [100, 120], "N": [20, 25], "success_fraction": [0.2, 0.5, 0.8]},
    "gumbel": {"mu": _LOC_TEST, "beta": _SCALE_TEST},
    "skellam": {"mu1": ("geo", 8.5, 12, 6), "mu2": ("geo", 8.5, 12, 6)},
    "beta_binomial": {"n": [40, 50], "alpha": ("geo", 5.5, 8, 3), "beta": ("geo", 5.5, 8, 3)},
    "lomax": {"alpha": ("geo", 4.5, 7, 6), "lambda": ("geo", 3.5, 5, 6)},
    "inverse_gaussian": {"mu": ("geo", 3.5, 6, 6), "lambda": ("geo", 5.5, 8, 6)},
    "bernoulli": {"p": [0.1, 0.3, 0.5, 0.7, 0.9]},
    "poisson": {"lambda": ("geo", 1, 12, 17)},
    "maxwell": {"scale": [0.75, 1, 1.5, 2, 2.5, 3, 3.5, 4, 5]},
    "truncnorm": {"mu": [0, 1], "sigma": [1, 1.5], "lower": [-2, -1], "upper": [1, 2]},
    "chi": {"df": [1.5, 2, 3, 4, 5, 7, 10, 14, 20]},
    "weibull": {"k": ("geo", 0.5, 3, 6), "lambda": ("geo", 0.5, 3, 6)},
}

SELECTED = {
    "uniform": [{"a": 3.5, "width": 7}],
    "gaussian": [{"mu": 3.5, "sigma": 3.0}],
    "beta": [{"alpha": 7.0, "beta": 7.0}],
    "binomial": [{"n": 25, "p": 0.5}],
    "exponential": [{"lambda": 7.0}],
    "geometric": [{"p": 0.125}],
    "negative_binomial": [{"r": 15, "p": 0.15}],
    "lognormal": [{"mu": 2.5, "sigma": 2.0}],
    "triangular": [{"a": 2.5, "width": 7, "mode_fraction": 0.5}],
    "rayleigh": [{"sigma": 3.0}],
    "cauchy": [{"x0": 3.5, "gamma": 3.0}],
    "student_t": [{"nu": 16.0}],
    "chi_square": [{"nu": 32.0}],
    "f_distribution": [{"d1": 12, "d2": 24}],
    "gamma": [{"alpha": 7.0, "beta": 7.0}],
    "laplace": [{"mu": 3.5, "b": 3.0}],
    "logistic": [{"mu": 3.5, "s": 3.0}],
    "pareto": [{"alpha": 6.5, "xm": 3.5}],
    "hypergeometric": [{"M": 100, "N": 20, "success_fraction": 0.5}],
    "gumbel": [{"mu": 3.5, "beta": 3.0}],
    "skellam": [{"mu1": 10.5, "mu2": 10.5}],
    "beta_binomial": [{"n": 40, "alpha": 6.5, "beta": 6.5}],
    "lomax": [{"alpha": 6.0, "lambda": 4.5}],
    "inverse_gaussian": [{"mu": 5.0, "lambda": 7.0}],
    "bernoulli": [{"p": 0.1}, {"p": 0.5}, {"p": 0.9}],
    "poisson": [{"lambda": 1.0}, {"lambda": 4.0}, {"lambda": 12.0}],
    "weibull": [{"k": 0.5, "lambda": 0.5}, {"k": 1.5, "lambda": 1.5}, {"k": 3.0, "lambda": 3.0}],
    "maxwell": [{"scale": 0.75}, {"scale": 1.5}, {"scale": 2.5}],
    "chi": [{"df": 2.0}, {"df": 5.0}, {"df": 10.0}],
    "truncnorm": [
        {"mu": 0.0, "sigma": 1.0, "lower": -1.0, "upper": 1.0},
        {"mu": 0.0, "sigma": 1.0, "lower": -2.0, "upper": 2.0},
        {"mu": 1.0, "sigma": 1.5, "lower": -1.0, "upper": 2.0},
    ],
}


# The reference's granularity probe (the prompts of the paper's Table 24): three laws each of eight
# families, seen and held-out alike, from narrow to wide or light to heavy, in grid names.
PROBE = {
    "uniform": [{"a": -5.0, "width": 1.0}, {"a": -1.0, "width": 4.0}, {"a": 2.5, "width": 8.0}],
    "gaussian": [{"mu": 0.0, "sigma": 0.5}, {"mu": 0.0, "sigma": 2.0}, {"mu": 2.0, "sigma": 4.0}],
    "beta": [{"alpha": 0.5, "beta": 0.5}, {"alpha": 2.0, "beta": 5.0}, {"alpha": 7.0, "beta": 7.0}],
    "gamma": [{"alpha": 1.0, "beta": 1.0}, {"alpha": 3.0, "beta": 1.5}, {"alpha": 8.0, "beta": 2.0}],
    "lognormal": [{"mu": 0.0, "sigma": 0.5}, {"mu": 0.5, "sigma": 1.0}, {"mu": 1.0, "sigma": 1.5}],
    "cauchy": [{"x0": 0.0, "gamma": 0.5}, {"x0": 0.0, "gamma": 2.0}, {"x0": 2.0, "gamma": 5.0}],
    "weibull": [{"k": 0.5, "lambda": 0.5}, {"k": 1.5, "lambda": 1.5}, {"k": 3.0, "lambda": 3.0}],
    "poisson": [{"lambda": 1.0}, {"lambda": 4.0}, {"lambda": 10.0}],
}


@dataclass(frozen=True)
class Prompt:
    prompt_id: str
    family: str
    split: str
    printed: dict[str, str]  # printed parameter name -> value exactly as printed
    text: str

    @property
    def params(self) -> dict[str, float]:
        """The law's parameters: the printed values, parsed."""
        return {name: float(value) for name, value in self.printed.items()}


def _axis_values(axis) -> np.ndarray:
    if isinstance(axis, tuple):
        kind, start, stop, num = axis
        return lin(start, stop, num) if kind == "lin" else geo(start, stop, num)
    return np.asarray(axis)


def _grid_rows(grid: dict) -> list[dict[str, float]]:
    names = list(grid)
    axes = [_axis_values(grid[name]) for name in names]
    return [dict(zip(names, map(float, row))) for row in itertools.product(*axes)]


def _grid_to_params(family: str, row: dict[str, float]) -> dict[str, float]:
    """Apply the reference implementation's grid -> prompt parameter transforms."""
    if family == "uniform":
        return {"a": row["a"], "b": row["a"] + row["width"]}
    if family == "triangular":
        return {
            "a": row["a"],
            "c": row["a"] + row["width"] * row["mode_fraction"],
            "b": row["a"] + row["width"],
        }
    if family in ("binomial", "beta_binomial"):
        return {**row, "n": float(round(row["n"]))}
    if family == "negative_binomial":
        return {**row, "r": float(round(row["r"]))}
    if family == "hypergeometric":
        M = row["M"]
        K = min(M, max(0, round(M * row["success_fraction"])))
        return {"M": float(M), "K": float(K), "N": float(min(row["N"], M))}
    return dict(row)


def render_number(value: float, number_format: str = "clean") -> str:
    """Print a parameter value: 'clean' = at most 4 significant digits, integers without '.0';
    'reference' = Python's float repr, exactly as the reference implementation prints."""
    if number_format == "reference":
        return str(float(value))
    if number_format != "clean":
        raise UserError(f"number_format must be one of {NUMBER_FORMATS}, got '{number_format}'")
    rounded = float(f"{value:.4g}")
    if rounded == 0:
        return "0"
    if rounded.is_integer():
        return str(int(rounded))
    return np.format_float_positional(rounded)


def _slug(value: float) -> str:
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text.replace("-", "m").replace(".", "p")


def make_prompt(family_id: str, params: dict[str, float], split: str, number_format: str = "clean") -> Prompt:
    """Render one prompt; raises FamilyError for an unknown family or an invalid parameter."""
    family = get_family(family_id)
    family.check(params)
    printed = {name: render_number(params[name], number_format) for name in family.params}
    family.check({name: float(value) for name, value in printed.items()})
    prompt_id = "_".join([family.id] + [f"{name}_{_slug(float(printed[name]))}" for name in family.params])
    text = TEMPLATE.format(
        display=family.display, params=", ".join(f"{name}={printed[name]}" for name in family.params)
    )
    return Prompt(prompt_id, family.id, split, printed, text)


def evenly_spaced(rows: list, count: int | None) -> list:
    """`count` evenly spaced items of `rows`, in order (all of them for None)."""
    if count is None or count >= len(rows):
        return rows
    return [rows[i] for i in np.linspace(0, len(rows) - 1, count).astype(int)]


def prompt_set(
    name: str,
    number_format: str = "clean",
    families: list[str] | None = None,
    per_family: int | None = None,
) -> list[Prompt]:
    """The prompts of one named set, optionally restricted to some families and thinned to
    `per_family` evenly spaced grid rows per family (for scaled-down local runs)."""
    if name not in PROMPT_SETS:
        raise UserError(f"unknown prompt set '{name}'; choose from {', '.join(PROMPT_SETS)}")
    split = PROMPT_SETS[name]
    if name == "probe":
        return [make_prompt(f, _grid_to_params(f, row), split, number_format) for f in PROBE for row in PROBE[f]]
    pool = SEEN if split in ("train", "unseen") else HELD_OUT
    for family_id in families or ():
        get_family(family_id)
        if family_id not in pool:
            kind = "seen" if pool is SEEN else "held-out"
            raise FamilyError(f"family '{family_id}' is not in prompt set '{name}', which has only the {kind} families")
    prompts = []
    for family_id in pool:
        if families is not None and family_id not in families:
            continue
        if name == "train":
            rows = _grid_rows(TRAIN_GRIDS[family_id])
        elif name.endswith("-full") and family_id in TEST_GRIDS:  # a declared family has its evaluation rows only
            rows = _grid_rows(TEST_GRIDS[family_id])
        else:
            rows = SELECTED[family_id]
        for row in evenly_spaced(rows, per_family):
            prompts.append(make_prompt(family_id, _grid_to_params(family_id, row), split, number_format))
    ids = [p.prompt_id for p in prompts]
    if len(set(ids)) != len(ids):
        raise FamilyError(f"prompt set '{name}' renders two prompts to the same id")
    return prompts
