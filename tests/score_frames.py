"""A scores artifact's rows for report tests: two families of two prompts, every sample valid."""

from __future__ import annotations

import pandas as pd


def scores_frame(w1: list[float], samples: int) -> pd.DataFrame:
    """Prompts a1, a2 (family a) and b1, b2 (family b) with normalized W1 `w1` (spread 1), and
    sample-level replicates that all equal their prompt's value."""
    return pd.DataFrame(
        {
            "prompt_id": ["a1", "a2", "b1", "b2"],
            "family": ["a", "a", "b", "b"],
            "split": "ood",
            "params": "{}",
            "num_samples": samples,
            "num_valid": samples,
            "valid_rate": 1.0,
            "w1": w1,
            "spread": 1.0,
            "normalized_w1": w1,
            "valid_rate_replicates": [[1.0] * 3] * 4,
            "normalized_w1_replicates": [[w] * 3 for w in w1],
        }
    )
