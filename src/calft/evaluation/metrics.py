"""Sample-level metrics (paper eq. 5; reference spec §8.2).

Pure numpy and SciPy laws. W1 compares the sorted valid samples x_(1..N) with the target's
quantiles at (i - 0.5) / N; normalized W1 divides it by the target's Q95 - Q05. The aggregates over
prompts and families are the report's (calft.report.aggregates).
"""

from __future__ import annotations

import numpy as np

from calft.targets.families import get_family


def wasserstein_to_law(values: np.ndarray, law) -> float:
    """W1 between the empirical law of `values` and `law` (a frozen SciPy law); NaN without values."""
    x = np.sort(np.asarray(values, dtype=float))
    n = len(x)
    if n == 0:
        return float("nan")
    quantiles = law.ppf((np.arange(1, n + 1) - 0.5) / n)
    both = np.isfinite(x) & np.isfinite(quantiles)
    return float(np.mean(np.abs(x[both] - quantiles[both]))) if both.any() else float("nan")


def target_spread(family_id: str, params: dict) -> float:
    """Q95 - Q05 of the target law, the scale that normalizes W1."""
    law = get_family(family_id).frozen(params)
    return float(law.ppf(0.95) - law.ppf(0.05))


def prompt_scores(values: np.ndarray, valid: np.ndarray, family_id: str, params: dict) -> dict:
    """Per-prompt scores: valid rate, W1 and normalized W1 over the valid samples."""
    law = get_family(family_id).frozen(params)
    w1 = wasserstein_to_law(values[valid], law)
    return {
        "valid_rate": float(np.mean(valid)) if len(valid) else float("nan"),
        "num_valid": int(np.sum(valid)),
        "w1": w1,
        "normalized_w1": w1 / target_spread(family_id, params),
    }
