"""The reference implementation's construction of an output space and its trie, restated so that
Table 24 can measure the algorithm the paper measured (reference spec §4 and §5.1) beside calft's.

One prompt at a time: every point of the decimal grid between the law's quantile bounds is
materialized as a float array and only then thinned to the bin cap; each kept centre is formatted
by Python and adjacent duplicates are merged in a loop; the trie is a dict of Python dicts keyed by
token tuples. Deliberately not vectorized: it is a baseline to measure, never a training input.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable

import numpy as np

from calft.targets.discretize import QUANTILE_HIGH, QUANTILE_LOW
from calft.targets.families import get_family


def _normalized(masses) -> np.ndarray:
    masses = np.clip(np.asarray(masses, dtype=float), 0.0, None)
    return masses / masses.sum()


def _integer_space(law, low, high, max_bins: int) -> tuple[list[str], list[float]]:
    def bound(given, quantile, rounding, fallback):
        if given is not None:
            return rounding(given)
        value = float(law.ppf(quantile))
        return rounding(value) if math.isfinite(value) else fallback

    first = bound(low, QUANTILE_LOW, math.floor, -max_bins // 2)
    last = bound(high, QUANTILE_HIGH, math.ceil, max_bins // 2)
    first, last = min(first, last), max(first, last)
    values = np.arange(first, last + 1)[:max_bins]
    masses = np.asarray(law.pmf(values), dtype=float)
    if high is None:
        masses[-1] += max(0.0, 1.0 - float(law.cdf(values[-1])))
    return [str(int(value)) for value in values.tolist()], _normalized(masses).tolist()


def _interval(prompt) -> tuple[float, float]:
    """A continuous law's quantile interval, cut to its support."""
    family = get_family(prompt.family)
    law = family.frozen(prompt.params)
    low, high = family.support(prompt.params)
    lower, upper = float(law.ppf(QUANTILE_LOW)), float(law.ppf(QUANTILE_HIGH))
    lower = lower if low is None else max(lower, float(low))
    upper = upper if high is None else min(upper, float(high))
    if not (math.isfinite(lower) and math.isfinite(upper) and lower < upper):
        return -10.0, 10.0
    return lower, upper


def grid_points(prompt, decimals: int) -> int:
    """How many decimal grid points `output_space` materializes for a continuous prompt (0 for an
    integer one): its memory is eight bytes each."""
    if get_family(prompt.family).integer:
        return 0
    lower, upper = _interval(prompt)
    step = 10.0**-decimals
    return max(0, math.floor(upper / step) - math.ceil(lower / step) + 1)


def output_space(prompt, decimals: int, max_bins: int) -> tuple[list[str], list[float]]:
    """The canonical strings of one prompt and their masses, built as the reference builds them."""
    family = get_family(prompt.family)
    law = family.frozen(prompt.params)
    if family.integer:
        return _integer_space(law, *family.support(prompt.params), max_bins)
    lower, upper = _interval(prompt)
    step = 10.0**-decimals
    first, last = math.ceil(lower / step), math.floor(upper / step)
    if first > last:
        centres = np.array([round((lower + upper) / 2, decimals)])
    else:
        centres = np.arange(first, last + 1, dtype=float) * step  # the whole grid, before the cap
        if len(centres) > max_bins:
            centres = centres[np.linspace(0, len(centres) - 1, max_bins).astype(int)]
    edges = np.concatenate(([lower], (centres[:-1] + centres[1:]) / 2, [upper]))
    cdf = np.asarray(law.cdf(edges), dtype=float)
    masses = np.diff(cdf)
    masses[0] += max(0.0, float(cdf[0]))
    masses[-1] += max(0.0, 1.0 - float(cdf[-1]))
    strings, merged = [], []
    for centre, mass in zip(centres.tolist(), _normalized(masses).tolist()):
        text = f"{centre:.{decimals}f}"
        if strings and strings[-1] == text:
            merged[-1] += mass
        else:
            strings.append(text)
            merged.append(mass)
    return strings, _normalized(merged).tolist()


def trie(
    strings: list[str], masses: list[float], encode: Callable[[str], list[int]], terminator: int
) -> dict[tuple[int, ...], tuple[tuple[int, ...], tuple[float, ...]]]:
    """Every proper prefix of every string's tokens (terminator appended): its children's tokens
    and probabilities given the prefix, summed output by output."""
    sequences = [(*encode(text), terminator) for text in strings]
    prefix_mass = defaultdict(float)
    next_mass = defaultdict(lambda: defaultdict(float))
    for sequence, mass in zip(sequences, masses):
        for length, token in enumerate(sequence):
            prefix = sequence[:length]
            prefix_mass[prefix] += mass
            next_mass[prefix][token] += mass
    return {
        prefix: (tuple(children), tuple(m / prefix_mass[prefix] for m in children.values()))
        for prefix, children in next_mass.items()
    }
