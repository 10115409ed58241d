"""The transfer metrics (reference spec §10-12): top-p support size, unique-output fraction, TV
distance to uniform, NoveltyBench partitions, utility and their means. Pure numpy and pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd


def top_p_support(probabilities: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(rows, thresholds): the smallest number of most probable tokens whose mass reaches each
    threshold (all tokens when it is never reached)."""
    cumulative = np.cumsum(-np.sort(-np.asarray(probabilities, dtype=np.float64), axis=-1), axis=-1)
    reached = cumulative[:, :, None] >= np.asarray(thresholds)[None, None, :]
    return np.where(reached.any(axis=1), reached.argmax(axis=1) + 1, cumulative.shape[1])


def unique_fraction(normalized: list[str]) -> float:
    """Distinct non-empty answers over all answers (empties count in the denominator)."""
    return len({a for a in normalized if a}) / len(normalized) if normalized else float("nan")


def tv_to_uniform(counts: np.ndarray) -> float:
    """Total variation between the empirical frequencies and the uniform law; NaN without counts."""
    counts = np.asarray(counts, dtype=float)
    total = counts.sum()
    return float(0.5 * np.abs(counts / total - 1 / len(counts)).sum()) if total > 0 else float("nan")


def lexically_equivalent(a: str, b: str) -> bool | None:
    """NoveltyBench's short-circuit: for short answers (the longer has at most 5 lower-cased
    whitespace tokens) equivalence is decided by token overlap; None means 'ask the classifier'."""
    tokens_a, tokens_b = a.lower().split(), b.lower().split()
    longest = max(len(tokens_a), len(tokens_b))
    if longest > 5:
        return None
    return 2 * len(set(tokens_a) & set(tokens_b)) >= longest


def partition(count: int, equivalent) -> list[int]:
    """Greedy partition ids of `count` responses in order: an unassigned response opens a partition
    and takes every later unassigned response that `equivalent(i, [j, ...])` (a boolean per j) accepts."""
    ids = [-1] * count
    next_id = 0
    for i in range(count):
        if ids[i] >= 0:
            continue
        ids[i] = next_id
        later = [j for j in range(i + 1, count) if ids[j] < 0]
        for j, same in zip(later, equivalent(i, later) if later else []):
            if same:
                ids[j] = next_id
        next_id += 1
    return ids


def novelty_utility(ratings: np.ndarray, partition_ids: list[int], patience: float = 0.8) -> float:
    """NoveltyBench utility: generation g earns its rating when it opens a new partition, else 0,
    discounted by patience**g and normalized by the sum of the discounts."""
    seen, earned = set(), []
    for rating, group in zip(ratings, partition_ids):
        earned.append(0.0 if group in seen else float(rating))
        seen.add(group)
    discounts = patience ** np.arange(len(earned))
    return float(np.dot(earned, discounts) / discounts.sum())


def novelty_summary(generations: pd.DataFrame, patience: float) -> pd.DataFrame:
    """Per split and for all prompts together: the prompts, their mean distinct partitions and mean
    utility, from one row per generation (split, prompt_index, partition, rating, in order)."""
    per_prompt = (
        generations.groupby(["split", "prompt_index"], sort=False)
        .apply(
            lambda g: pd.Series(
                {
                    "distinct": g.partition.nunique(),
                    "utility": novelty_utility(g.rating.to_numpy(), g.partition.tolist(), patience),
                }
            ),
            include_groups=False,
        )
        .reset_index()
    )
    rows = [
        {"split": split, "prompts": len(g), "mean_distinct": g.distinct.mean(), "mean_utility": g.utility.mean()}
        for split, g in per_prompt.groupby("split", sort=False)
    ]
    rows.append(
        {
            "split": "all",
            "prompts": len(per_prompt),
            "mean_distinct": per_prompt.distinct.mean(),
            "mean_utility": per_prompt.utility.mean(),
        }
    )
    return pd.DataFrame(rows)
