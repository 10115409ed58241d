"""Open-ended random generation (reference spec §10), for base, each adapter, and SSOT prompting of
the base model.

Generations come from calft's sampler (per-sample seeds, shared prompt prefill), so they depend on
their seeds only. 102 "[Verb] a random [category]" prompts; the top-p support size of
the first generated token from the model's probabilities (not under SSOT: its first token is the
seed protocol's), the unique-output fraction under the reference normalization and a case- and
punctuation-insensitive one, and how many generations are answers (ended by a stop token, not cut
at max_new_tokens, with a non-empty answer).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch

from calft.modeling.answers import extract_ssot_answer
from calft.modeling.chat import prompt_ids, ssot_format
from calft.modeling.generation import SharedPrefix, generate, sample_seed
from calft.modeling.loader import LoadedModel
from calft.progress import progress
from calft.transfer.metrics import top_p_support, unique_fraction
from calft.transfer.parse import normalize_open_answer
from calft.transfer.prompts import CATEGORIES, open_ended_prompts, prompt_subset
from calft.transfer.settings import OpenEnded

log = logging.getLogger(__name__).info

THRESHOLDS = np.array([0.01, *np.round(np.arange(0.05, 0.951, 0.05), 2), 0.99])
PRIMARY_THRESHOLD = 0.9


@torch.no_grad()
def first_token_probabilities(model, ids: list[int]) -> np.ndarray:
    """The model's next-token distribution after a rendered prompt, over the full vocabulary."""
    device = next(model.parameters()).device
    logits = model(input_ids=torch.tensor([ids], device=device), logits_to_keep=1).logits[0, -1]
    return torch.softmax(logits.float(), dim=-1).cpu().numpy()


def evaluate_open_ended(
    loaded: LoadedModel, settings: OpenEnded, ssot: str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-prompt support sizes and unique fractions, and every sample with its normalizations;
    `ssot` is a String Seed of Thought instruction, or None for direct prompting."""
    indices = prompt_subset(settings.max_prompts)
    every_prompt = open_ended_prompts()
    prompts = [every_prompt[k] for k in indices]
    chat = ssot_format(loaded.chat) if ssot else loaded.chat
    rendered = prompt_ids(loaded.tokenizer, prompts, chat, ssot)
    prefix = SharedPrefix(loaded.model, rendered)
    rows, samples = [], []
    for k, prompt, ids in progress(
        zip(indices, prompts, rendered), total=len(rendered), label="open-ended", unit="prompt"
    ):
        seeds = [sample_seed(settings.seed, f"open_ended/{k:03d}", i) for i in range(settings.num_samples)]
        texts, _, stopped = generate(loaded, ids, seeds, settings, prefix=prefix)
        answers = [extract_ssot_answer(t, harmony=chat.chat_protocol == "harmony") for t in texts] if ssot else texts
        normalized = [normalize_open_answer(a) for a in answers]
        insensitive = [normalize_open_answer(a, insensitive=True) for a in answers]
        sizes = None if ssot else top_p_support(first_token_probabilities(loaded.model, ids)[None], THRESHOLDS)[0]
        rows.append(
            {
                "prompt_index": k,
                "category": CATEGORIES[k],
                "prompt": prompt,
                "support_size": None if sizes is None else int(sizes[np.isclose(THRESHOLDS, PRIMARY_THRESHOLD)][0]),
                "support_sizes": None if sizes is None else sizes.tolist(),
                "samples": len(texts),
                "empty": sum(not a for a in normalized),
                "answers": sum(bool(a) and ended for a, ended in zip(normalized, stopped)),
                "unique_fraction": unique_fraction(normalized),
                "unique_fraction_insensitive": unique_fraction(insensitive),
            }
        )
        samples.append(
            pd.DataFrame(
                {
                    "prompt_index": k,
                    "sample_idx": np.arange(len(texts)),
                    "seed": seeds,
                    "text": texts,
                    "answer": answers,
                    "normalized": normalized,
                    "normalized_insensitive": insensitive,
                }
            )
        )
        log(f"  {prompt}: support {rows[-1]['support_size']}, unique {rows[-1]['unique_fraction']:.2f}")
    return pd.DataFrame(rows), pd.concat(samples, ignore_index=True)
