"""Distribution families declared in a config's `families` section, beside the 30 built-in ones.

A declaration names a SciPy law, the parameters the prompt prints (each mapped to a SciPy keyword),
the support (discrete or continuous, with bounds that are numbers or parameter names), a training
grid (a family without one is held out, like the paper's OOD families) and the parameters of its
evaluation prompts. Registered, a declared family is discretized, tried, trained on, evaluated and
reported exactly like the built-in ones; its validity comes from the declared support and its
normalized W1 from the law's quantiles. Pure: no torch, no I/O.
"""

from __future__ import annotations

import math

import numpy as np

from calft.targets import families, prompts
from calft.targets.families import Family

TIER = "declared"
QUANTILES = (1e-3, 1 - 1e-3)  # a law whose quantiles here coincide is degenerate (the discretization's range)


def _law(scipy_name: str):
    from scipy import stats

    law = getattr(stats, scipy_name, None)
    return law if isinstance(law, (stats.rv_continuous, stats.rv_discrete)) else None


def _keywords(law) -> list[str]:
    """The keywords a SciPy law takes: its shapes, loc, and scale for a continuous law."""
    from scipy import stats

    shapes = [name.strip() for name in (law.shapes or "").split(",") if name.strip()]
    return shapes + ["loc"] + (["scale"] if isinstance(law, stats.rv_continuous) else [])


def _bound(bound):
    """A support bound as a function of a prompt's parameters: a number, a parameter's value, or none."""
    if bound is None:
        return lambda params: None
    if isinstance(bound, str):
        return lambda params: params[bound]
    return lambda params: bound


def family(family_id: str, spec: dict) -> Family:
    """The Family of a declaration (already checked by `problems`)."""
    mapping = dict(spec["parameters"])
    low, high = _bound(spec["support"]["low"]), _bound(spec["support"]["high"])
    return Family(
        family_id,
        spec["display"],
        TIER,
        spec["support"]["type"] == "discrete",
        spec["scipy"],
        tuple(mapping),
        lambda params: {keyword: params[name] for name, keyword in mapping.items()},
        lambda params: (low(params), high(params)),
        (),
        held_out=spec["train"] is None,
    )


def grid(axes: dict) -> dict:
    """A declared training grid in calft.targets.prompts' form: a list of values, or (kind, start, stop, num)."""
    return {
        name: axis if isinstance(axis, list) else (next(iter(axis)), *next(iter(axis.values())))
        for name, axis in axes.items()
    }


def register(declarations: dict) -> None:
    """Add the declared families to the registries of calft.targets (again: nothing changes)."""
    for family_id, spec in declarations.items():
        if family_id in families.FAMILIES:
            if families.FAMILIES[family_id].tier != TIER:
                raise families.FamilyError(f"families.{family_id}: a built-in family has that name")
            continue
        declared = family(family_id, spec)
        families.FAMILIES[family_id] = declared
        (families.HELD_OUT if declared.held_out else families.SEEN).append(family_id)
        if spec["train"] is not None:
            prompts.TRAIN_GRIDS[family_id] = grid(spec["train"])
        prompts.SELECTED[family_id] = [dict(row) for row in spec["test"]]


def _rows(spec: dict) -> list[tuple[str, dict]]:
    """Every parameter row of a declaration, with where it comes from."""
    rows = [(f"test[{i}]", dict(row)) for i, row in enumerate(spec["test"])]
    if spec["train"] is not None:
        rows += [("train", row) for row in prompts._grid_rows(grid(spec["train"]))]
    return rows


def problems(declarations: dict) -> list[str]:
    """Why declarations cannot be registered, each naming its key: a built-in family's name, an unknown
    SciPy law, a parameter the law does not take, a bound naming no parameter, rows with other
    parameters than declared, a degenerate or invalid law at a row, or a support that does not hold
    the law's."""
    found = []
    for family_id, spec in declarations.items():
        key = f"families.{family_id}"
        if family_id in families.FAMILIES and families.FAMILIES[family_id].tier != TIER:
            found.append(f"{key}: '{family_id}' is a built-in family; choose another name")
            continue
        law = _law(spec["scipy"])
        if law is None:
            found.append(f"{key}.scipy: '{spec['scipy']}' is not a distribution of scipy.stats")
            continue
        takes = _keywords(law)
        wrong = [keyword for keyword in spec["parameters"].values() if keyword not in takes]
        if wrong:
            found.append(f"{key}.parameters: scipy.stats.{spec['scipy']} does not take '{wrong[0]}' (it takes {takes})")
            continue
        required = [name for name in takes if name not in ("loc", "scale")]
        missing = [name for name in required if name not in spec["parameters"].values()]
        if missing:
            found.append(f"{key}.parameters: scipy.stats.{spec['scipy']} needs '{missing[0]}'; map a parameter to it")
            continue
        for side in ("low", "high"):
            bound = spec["support"][side]
            if isinstance(bound, str) and bound not in spec["parameters"]:
                found.append(f"{key}.support.{side}: '{bound}' is not one of the parameters {list(spec['parameters'])}")
        if found and found[-1].startswith(f"{key}.support"):
            continue
        found += _row_problems(key, family_id, spec)
    return found


def _shown(bound, unbounded: str) -> str:
    return unbounded if bound is None else f"{bound:g}"


def _row_problems(key: str, family_id: str, spec: dict) -> list[str]:
    from scipy import stats

    declared = family(family_id, spec)
    if declared.integer != isinstance(_law(spec["scipy"]), stats.rv_discrete):
        kind = "discrete" if not declared.integer else "continuous"
        return [f"{key}.support.type: scipy.stats.{spec['scipy']} is {kind}"]
    for where, row in _rows(spec):
        if set(row) != set(declared.params):
            return [f"{key}.{where}: parameters {sorted(row)}, not the declared {list(declared.params)}"]
        shown = ", ".join(f"{name}={row[name]:g}" for name in declared.params)
        with np.errstate(all="ignore"):
            law = declared.frozen(row)
            low, high = (float(q) for q in law.ppf(QUANTILES))
            support = tuple(float(s) for s in law.support())
        if not (math.isfinite(low) and math.isfinite(high)):
            return [f"{key}.{where}: scipy.stats.{spec['scipy']} is not a valid law at {shown}"]
        if not high > low:
            return [f"{key}.{where}: the law at {shown} is degenerate (its {QUANTILES} quantiles are both {low:g})"]
        bounds = declared.support(row)
        if (bounds[0] is not None and support[0] < bounds[0]) or (bounds[1] is not None and support[1] > bounds[1]):
            return [
                f"{key}.support: at {shown} the law's support is [{support[0]:g}, {support[1]:g}], beyond the declared "
                f"[{_shown(bounds[0], '-inf')}, {_shown(bounds[1], 'inf')}]"
            ]
    return []
