"""Sampling an evaluation prompt set: N answers per prompt (calft.modeling.generation), parsed and
judged against the prompt's family (reference spec §8.1)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd

from calft.evaluation.parse import judge, may_become_number
from calft.evaluation.settings import Sampling
from calft.modeling.answers import extract_ssot_answer
from calft.modeling.chat import prompt_ids, ssot_format
from calft.modeling.generation import SharedPrefix, generate, sample_seed
from calft.modeling.loader import LoadedModel
from calft.progress import progress

log = logging.getLogger(__name__).info


def sample_prompt_set(
    loaded: LoadedModel, prompts: pd.DataFrame, settings: Sampling, ssot: str | None = None
) -> pd.DataFrame:
    """Sample every prompt (rows of a targets file: prompt_id, family, split, params, prompt); one row
    per sample, parsed and judged. With `ssot` (a String Seed of Thought instruction), the
    instruction comes first and the answer is judged from its <answer> tag; without it,
    `settings.stop_invalid` ends each generation once it can no longer be a number."""
    chat = ssot_format(loaded.chat) if ssot else loaded.chat
    rendered = prompt_ids(loaded.tokenizer, list(prompts.prompt), chat, ssot)
    harmony = chat.chat_protocol == "harmony"
    viable = may_become_number if settings.stop_invalid and not ssot else None
    n = settings.num_samples
    prefix = SharedPrefix(loaded.model, rendered)
    frames = []
    shown = progress(zip(prompts.itertuples(), rendered), total=len(rendered), label="sample", unit="prompt")
    for prompt, ids in shown:
        seeds = [sample_seed(settings.seed, prompt.prompt_id, i) for i in range(n)]
        texts, num_tokens, stopped = generate(loaded, ids, seeds, settings, viable, prefix)
        answers = [extract_ssot_answer(text, harmony=harmony) for text in texts] if ssot else texts
        values, valid = judge(answers, prompt.family, json.loads(prompt.params))
        frames.append(
            pd.DataFrame(
                {
                    "prompt_id": prompt.prompt_id,
                    "family": prompt.family,
                    "split": prompt.split,
                    "sample_idx": np.arange(n, dtype=np.int32),
                    "seed": np.array(seeds, dtype=np.int64),
                    "text": texts,
                    "num_tokens": np.array(num_tokens, dtype=np.int32),
                    "stopped": stopped,
                    "value": values,
                    "valid": valid,
                }
            )
        )
        log(f"  {prompt.prompt_id}: {n} samples, valid rate {valid.mean():.3f}")
    return pd.concat(frames, ignore_index=True)
