"""Sample-level metrics (paper eq. 5; reference spec §8.2).

Pure numpy and SciPy laws. W1 compares the sorted valid samples x_(1..N) with the target's
quantiles at (i - 0.5) / N; normalized W1 divides it by the target's Q95 - Q05. The aggregates over
prompts and families are the report's (calft.report.aggregates), and so are their intervals, which
resample prompts and, through each prompt's bootstrap replicates here, its samples.
"""

from __future__ import annotations

import zlib

import numpy as np

from calft.targets.families import get_family

BOOTSTRAP_REPLICATES = 200  # per prompt, stored with its scores
BOOTSTRAP_SEED = 20260511


def matched_quantiles(law, n: int) -> np.ndarray:
    """The target quantiles that W1 pairs with n sorted samples: at (i - 0.5) / n."""
    return law.ppf((np.arange(1, n + 1) - 0.5) / n)


def _w1_sorted(x: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """W1 of each row of sorted samples `x` (..., n) against `quantiles` (n); NaN where no pair is finite."""
    both = np.isfinite(x) & np.isfinite(quantiles)
    distances = np.where(both, np.abs(np.where(both, x, 0) - np.where(both, quantiles, 0)), 0.0)
    with np.errstate(invalid="ignore"):
        return distances.sum(axis=-1) / both.sum(axis=-1)


def wasserstein_to_law(values: np.ndarray, law) -> float:
    """W1 between the empirical law of `values` and `law` (a frozen SciPy law); NaN without values."""
    x = np.sort(np.asarray(values, dtype=float))
    if len(x) == 0:
        return float("nan")
    return float(_w1_sorted(x, matched_quantiles(law, len(x))))


def bootstrap_replicates(
    prompt_id: str, values: np.ndarray, valid: np.ndarray, law, spread: float, replicates: int = BOOTSTRAP_REPLICATES
) -> dict[str, np.ndarray]:
    """A prompt's valid rate and normalized W1 on `replicates` resamples of its samples, seeded by the
    prompt id: the valid rate resamples every sample; W1 resamples the valid ones, keeping their
    count (W1 is defined on valid samples), so its target quantiles are computed once."""
    rng = np.random.default_rng([BOOTSTRAP_SEED, zlib.crc32(prompt_id.encode())])
    n, x = len(valid), np.asarray(values, dtype=float)[valid]
    rate = valid[rng.integers(0, n, (replicates, n))].mean(axis=1) if n else np.full(replicates, np.nan)
    if len(x) == 0:
        return {"valid_rate": rate, "normalized_w1": np.full(replicates, np.nan)}
    resampled = np.sort(x[rng.integers(0, len(x), (replicates, len(x)))], axis=1)
    return {"valid_rate": rate, "normalized_w1": _w1_sorted(resampled, matched_quantiles(law, len(x))) / spread}


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
