"""Discretize each prompt's law into canonical numeric strings Y with masses P_Y (reference spec §4).

Pure: numpy and SciPy only. All prompts of one family are evaluated together: quantiles, grid
construction and CDF differences are single vectorized calls over a flat, ragged layout
(`prompt_index` says which prompt each row belongs to).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from calft.errors import UserError
from calft.targets.families import Family, FamilyError, get_family
from calft.targets.prompts import Prompt
from calft.targets.ragged import ragged_groups

QUANTILE_LOW = 0.001
QUANTILE_HIGH = 0.999


@dataclass
class Chunk:
    """The output spaces of a run of prompts of one family, as flat arrays with one row per value."""

    family: str
    decimals: int  # 0 for integer families
    prompt_index: np.ndarray  # int64, index into the prompt list given to `discretize`
    grid_index: np.ndarray  # int64 k: the value is k / 10**decimals
    mass: np.ndarray  # float64, sums to 1 within each prompt

    @property
    def value(self) -> np.ndarray:
        return self.grid_index / 10.0**self.decimals

    @property
    def bin(self) -> np.ndarray:
        """Position of each row within its prompt's output space."""
        counts = np.bincount(self.prompt_index - self.prompt_index[0])  # a chunk's prompts are contiguous
        return ragged_groups(counts)[1]


def _stack_params(family: Family, prompts: list[Prompt]) -> dict[str, np.ndarray]:
    return {name: np.array([p.params[name] for p in prompts]) for name in family.params}


def _bound(value, size: int) -> np.ndarray | None:
    return None if value is None else np.broadcast_to(np.asarray(value, dtype=float), (size,))


def _normalize(mass: np.ndarray, group: np.ndarray, num_groups: int, family: Family, prompts) -> np.ndarray:
    mass = np.clip(mass, 0.0, None)
    totals = np.bincount(group, weights=mass, minlength=num_groups)
    empty = np.flatnonzero(~(totals > 0))
    if len(empty):
        p = prompts[empty[0]]
        shown = ", ".join(f"{k}={v}" for k, v in p.printed.items())
        raise FamilyError(f"family '{family.id}' with {shown}: the output space is empty (no mass)")
    return mass / totals[group]


def _integer_chunk(family, prompts, params, max_bins, q_low, q_high):
    size = len(prompts)
    law = family.frozen(params)
    s_lo, s_hi = (_bound(b, size) for b in family.support(params))
    half = max_bins // 2
    if s_lo is not None:
        lo = np.floor(s_lo)
    else:
        q = law.ppf(q_low)
        lo = np.where(np.isfinite(q), np.floor(q), -half)
    if s_hi is not None:
        hi = np.ceil(s_hi)
    else:
        q = law.ppf(q_high)
        hi = np.where(np.isfinite(q), np.ceil(q), half)
    lo, hi = np.minimum(lo, hi).astype(np.int64), np.maximum(lo, hi).astype(np.int64)
    counts = np.minimum(hi - lo + 1, max_bins)
    group, position = ragged_groups(counts)
    values = lo[group] + position
    row_params = {name: value[group] for name, value in params.items()}
    row_law = family.frozen(row_params)
    mass = row_law.pmf(values)
    if s_hi is None:
        last = np.cumsum(counts) - 1
        mass[last] += np.maximum(0.0, 1.0 - law.cdf(values[last]))
    return group, values, _normalize(mass, group, size, family, prompts)


def _continuous_chunk(family, prompts, params, decimals, max_bins, q_low, q_high):
    size = len(prompts)
    law = family.frozen(params)
    lower, upper = law.ppf(q_low), law.ppf(q_high)
    s_lo, s_hi = (_bound(b, size) for b in family.support(params))
    if s_lo is not None:
        lower = np.maximum(lower, s_lo)
    if s_hi is not None:
        upper = np.minimum(upper, s_hi)
    broken = ~(np.isfinite(lower) & np.isfinite(upper) & (lower < upper))
    lower, upper = np.where(broken, -10.0, lower), np.where(broken, 10.0, upper)

    step = 10.0**-decimals
    if np.max(np.maximum(np.abs(lower), np.abs(upper))) / step >= 2.0**53:
        raise UserError(
            f"decimals={decimals} is too fine for family '{family.id}': its values would need more "
            "significant digits than a float64 holds"
        )
    first = np.ceil(lower / step).astype(np.int64)
    points = np.floor(upper / step).astype(np.int64) - first + 1
    no_point = points <= 0
    first = np.where(no_point, np.rint(np.round((lower + upper) / 2, decimals) / step).astype(np.int64), first)
    points = np.where(no_point, 1, points)
    counts = np.minimum(points, max_bins)
    group, position = ragged_groups(counts)
    capped = points[group] > max_bins
    # Same float arithmetic as numpy.linspace(0, n - 1, max_bins), truncated to integers.
    spacing = (points[group] - 1) / (max_bins - 1)
    kept = np.where(capped, (position * spacing).astype(np.int64), position)
    last = np.cumsum(counts) - 1
    kept[last] = points - 1
    grid_index = first[group] + kept
    centres = grid_index * step

    # Edges per prompt: [lower, midpoints between consecutive centres, upper] (counts + 1 each).
    edge_group, edge_position = ragged_groups(counts + 1)
    edge_row = np.cumsum(counts)[edge_group] - counts[edge_group] + edge_position  # row of the centre right of the edge
    is_first, is_last = edge_position == 0, edge_position == counts[edge_group]
    inner = ~(is_first | is_last)
    edges = np.empty(len(edge_group))
    edges[is_first], edges[is_last] = lower, upper
    edges[inner] = (centres[edge_row[inner] - 1] + centres[edge_row[inner]]) / 2
    row_law = family.frozen({name: value[edge_group] for name, value in params.items()})
    cdf = row_law.cdf(edges)
    mass = np.diff(cdf)[~is_last[:-1]]
    firsts = np.cumsum(counts) - counts
    mass[firsts] += cdf[is_first]
    mass[last] += 1.0 - cdf[is_last]
    return group, grid_index, _normalize(mass, group, size, family, prompts)


def discretize_laws(
    prompts: list[Prompt],
    decimals: int,
    max_bins: int,
    quantile_low: float = QUANTILE_LOW,
    quantile_high: float = QUANTILE_HIGH,
) -> Iterator[Chunk]:
    """Yield the output spaces of `prompts`, one Chunk per run of consecutive same-family prompts."""
    if decimals < 0:
        raise UserError(f"decimals must be >= 0, got {decimals}")
    if max_bins < 2:
        raise UserError(f"max_bins must be >= 2, got {max_bins}")
    if not 0 < quantile_low < quantile_high < 1:
        raise UserError(f"need 0 < quantile_low < quantile_high < 1, got {quantile_low}, {quantile_high}")
    start = 0
    for family_id, run in itertools.groupby(prompts, key=lambda p: p.family):
        run = list(run)
        family = get_family(family_id)
        params = _stack_params(family, run)
        if family.integer:
            group, grid_index, mass = _integer_chunk(family, run, params, max_bins, quantile_low, quantile_high)
            chunk_decimals = 0
        else:
            group, grid_index, mass = _continuous_chunk(
                family, run, params, decimals, max_bins, quantile_low, quantile_high
            )
            chunk_decimals = decimals
        yield Chunk(family_id, chunk_decimals, start + group, grid_index, mass)
        start += len(run)


def format_canonical(grid_index: np.ndarray, decimals: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-point text of grid_index / 10**decimals for every row, without Python string objects.

    Returns (offsets int64 of length n+1, utf-8 bytes) in Arrow's string layout: "-0.12340", "25".
    """
    k = np.asarray(grid_index, dtype=np.int64)
    if not len(k):
        return np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.uint8)
    negative = k < 0
    magnitude = np.abs(k)
    scale = 10**decimals
    whole, fraction = magnitude // scale, magnitude % scale
    whole_digits = 1 + sum((whole >= 10**i).astype(np.int64) for i in range(1, 19))
    lengths = negative + whole_digits + (decimals + 1 if decimals else 0)
    width = int(lengths.max())
    chars = np.zeros((len(k), width), dtype=np.uint8)
    for i in range(decimals):
        chars[:, width - 1 - i] = ord("0") + (fraction // 10**i) % 10
    if decimals:
        chars[:, width - 1 - decimals] = ord(".")
    whole_start = width - decimals - (1 if decimals else 0)
    for i in range(whole_start):
        digit_column = whole_start - 1 - i
        chars[:, digit_column] = np.where(i < whole_digits, ord("0") + (whole // 10**i) % 10, 0)
    sign_column = whole_start - whole_digits - 1
    rows = np.flatnonzero(negative)
    chars[rows, sign_column[rows]] = ord("-")
    keep = np.arange(width)[None, :] >= (width - lengths)[:, None]
    offsets = np.zeros(len(k) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets, chars[keep]
