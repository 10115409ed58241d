"""Family-balanced training orders. Pure numpy.

* balanced (calft; fixes reference spec §18.13: balance in every batch, not only at the start of an
  epoch): each family's items are shuffled, and item k of a family with n items is placed at the
  fractional position (k + u) / n, with u a random offset per family; sorting all items by that
  position interleaves the families in proportion to their sizes all through the epoch, so every
  window of consecutive items, hence every batch, holds each family's share to within a few items.
* reference (spec §7.3): each family's items are shuffled, then taken in rounds, one item of every
  family that still has one per round, the families of a round in a random order. Balanced at the
  start of an epoch only: its last batches hold the largest families alone. The same algorithm as
  the reference, not the same random draws.
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


def reference_order(families: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """A permutation of the items for one epoch, in the reference implementation's rounds."""
    families = np.asarray(families)
    rng = np.random.default_rng([seed, epoch])
    _, family_of = np.unique(families, return_inverse=True)  # families in sorted order, as the reference keeps them
    queues = [rng.permutation(np.flatnonzero(family_of == family)) for family in range(family_of.max() + 1)]
    order = []
    for position in range(max(len(queue) for queue in queues)):
        present = [family for family, queue in enumerate(queues) if position < len(queue)]
        if len(present) > 1:
            present = [present[i] for i in rng.permutation(len(present))]
        order += [queues[family][position] for family in present]
    return np.array(order, dtype=np.int64)


ORDERS = {"balanced": balanced_order, "reference": reference_order}
