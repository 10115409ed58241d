"""Index helpers for ragged data stored flat (groups of different sizes, one after another)."""

from __future__ import annotations

import numpy as np


def ragged_positions(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of the index ranges [starts[i], starts[i] + lengths[i])."""
    shift = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return shift + np.arange(int(lengths.sum()))


def ragged_groups(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For groups of the given sizes laid out flat: (group of each element, position within it)."""
    return np.repeat(np.arange(len(counts)), counts), ragged_positions(np.zeros(len(counts), np.int64), counts)
