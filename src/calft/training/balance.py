"""Family-balanced training order (fixes reference spec §18.13: balance in every batch, not only
at the start of an epoch).

Pure numpy. Each family's items are shuffled, and item k of a family with n items is placed at the
fractional position (k + u) / n, with u a random offset per family; sorting all items by that
position interleaves the families in proportion to their sizes all through the epoch, so every
window of consecutive items, hence every batch, holds each family's share to within a few items.
"""

from __future__ import annotations

import numpy as np


def balanced_order(families: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """A permutation of the items (given by their family labels) for one epoch."""
    families = np.asarray(families)
    rng = np.random.default_rng([seed, epoch])
    labels, family_of = np.unique(families, return_inverse=True)
    position = np.empty(len(families))
    for family in range(len(labels)):
        members = np.flatnonzero(family_of == family)
        rank = rng.permutation(len(members))
        position[members] = (rank + rng.random()) / len(members)
    return np.lexsort((rng.random(len(families)), position))
