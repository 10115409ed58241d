"""Scoring: per-prompt valid rate, W1 and normalized W1 from the samples (reference spec §8.2).

CPU only, from parquet: the samples of one (model, method, prompt set) and the prompts' laws.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from calft.evaluation.metrics import bootstrap_replicates, prompt_scores, target_spread
from calft.metrics import METRICS
from calft.targets.families import get_family


def score_samples(samples: pd.DataFrame, prompts: pd.DataFrame) -> pd.DataFrame:
    """One row per prompt of `prompts` (prompt_id, family, split, params), with the bootstrap
    replicates of its valid rate and normalized W1; a prompt without samples scores NaN rather than
    disappearing."""
    rows = []
    registered = [metric for metric in METRICS.values() if metric.from_samples]
    grouped = {key: group for key, group in samples.groupby("prompt_id", observed=True)}
    for prompt in prompts.itertuples():
        params = json.loads(prompt.params)
        group = grouped.get(prompt.prompt_id)
        values = group["value"].to_numpy(float) if group is not None else np.empty(0)
        valid = group["valid"].to_numpy(bool) if group is not None else np.empty(0, dtype=bool)
        scores = prompt_scores(values, valid, prompt.family, params)
        law, spread = get_family(prompt.family).frozen(params), target_spread(prompt.family, params)
        replicates = bootstrap_replicates(prompt.prompt_id, values, valid, law, spread)
        rows.append(
            {
                "prompt_id": prompt.prompt_id,
                "family": prompt.family,
                "split": prompt.split,
                "params": prompt.params,
                "num_samples": len(valid),
                "num_valid": scores["num_valid"],
                "valid_rate": scores["valid_rate"],
                "w1": scores["w1"],
                "spread": spread,
                "normalized_w1": scores["normalized_w1"],
                **{f"{name}_replicates": list(values) for name, values in replicates.items()},
                **{m.name: m.from_samples(values, valid, law) for m in registered},
            }
        )
    return pd.DataFrame(rows)
