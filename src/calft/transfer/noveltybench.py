"""NoveltyBench (reference spec §12): several generations per prompt, partitioned into functionally
equivalent groups, rated by a reward model; utility rewards each new group's quality, patience 0.8.

Three stages in one job, each with its own model loaded and released in turn: the evaluated model
(base, or base with its LoRA adapter applied) generates; the similarity classifier partitions (with
the benchmark's lexical short-circuit for short answers); the reward model rates. The benchmark's
prompt files and both evaluator models come from configured paths or hub ids.
"""

from __future__ import annotations

import bisect
import gc
import json
import logging
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

from calft import layout
from calft.errors import UserError
from calft.modeling.chat import prompt_ids
from calft.modeling.generation import SharedPrefix, generate, sample_seed
from calft.modeling.loader import LoadedModel
from calft.modeling.settings import Generation
from calft.progress import progress
from calft.transfer.metrics import lexically_equivalent, novelty_summary, partition
from calft.transfer.settings import NoveltyBench

log = logging.getLogger(__name__).info

PROMPT_COUNTS = {"curated": 100, "wildchat": 1000}
UPSTREAM_FILES = {"curated": "curated.jsonl", "wildchat": "wildchat-1k.jsonl"}  # names in the benchmark's repository
RATING_THRESHOLDS = [-7.71875, -6.28125, -6.0, -5.71875, -5.5, -5.0, -4.375, -3.4375, -2.046875]
SIDE_TOKENS = 128


class Prompt(NamedTuple):
    """A benchmark prompt: its stripped text and its category (curated has one; WildChat has none)."""

    text: str
    category: str | None


def read_prompt_files(
    data_dir: Path, splits: list[str], limit: int | None, url: str | None = None
) -> dict[str, list[Prompt]]:
    """Each split's prompts; the full splits must have the benchmark's counts. Messages name the
    files at `url` when they were just fetched from there."""
    prompts = {}
    for split in splits:
        name, expected = layout.NOVELTY_PROMPT_FILES[split], PROMPT_COUNTS[split]
        path = Path(data_dir) / name
        shown = f"{url.rstrip('/')}/{UPSTREAM_FILES[split]}" if url else path
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise UserError(f"cannot read {shown} ({error})") from None
        records = [_prompt(shown, number, line) for number, line in enumerate(lines, 1) if line.strip()]
        if len(records) != expected:
            raise UserError(f"{shown} has {len(records)} prompts; NoveltyBench's {split} has {expected}")
        prompts[split] = records[:limit]
    return prompts


def _prompt(path, number: int, line: str) -> Prompt:
    """The stripped `prompt` field of one JSON line of a prompt file, and its `category` if any."""
    try:
        record = json.loads(line)
        text, category = record["prompt"], record.get("category")
    except (ValueError, KeyError, TypeError, AttributeError):
        text = category = None
    if not isinstance(text, str):
        raise UserError(f"{path}, line {number}: not a JSON object with a string 'prompt'")
    if category is not None and not isinstance(category, str):
        raise UserError(f"{path}, line {number}: 'category' is not a string")
    return Prompt(text.strip(), category)


def fetch_prompts(base_url: str, output: Path) -> None:
    """The benchmark's prompt files from its data folder at `base_url`, under calft's names."""
    import urllib.request

    for split, upstream in UPSTREAM_FILES.items():
        try:
            with urllib.request.urlopen(base_url + upstream, timeout=120) as response:
                (output / layout.NOVELTY_PROMPT_FILES[split]).write_bytes(response.read())
        except (OSError, ValueError) as error:  # ValueError: not a URL
            raise UserError(
                f"cannot fetch {base_url + upstream} (transfer.noveltybench.prompts_url; {error})"
            ) from None


def rating(reward: float) -> int:
    """1-10: one plus the number of thresholds strictly below the reward."""
    return bisect.bisect_left(RATING_THRESHOLDS, reward) + 1


def generate_answers(loaded: LoadedModel, prompts: dict[str, list[Prompt]], settings: NoveltyBench) -> pd.DataFrame:
    """`generations` samples per prompt at temperature 1 and top-p 1, all of a prompt decoded together;
    each row keeps its prompt's text and category (the qualitative Tables 11-19 show them)."""
    sampling = Generation(
        num_samples=settings.generations,
        max_new_tokens=settings.max_new_tokens,
        temperature=1.0,
        top_p=1.0,
        seed=settings.seed,
        chunk_size=settings.generations,
    )
    rows = []
    for split, split_prompts in prompts.items():
        texts = [prompt.text for prompt in split_prompts]
        rendered = prompt_ids(loaded.tokenizer, texts, loaded.chat)
        prefix = SharedPrefix(loaded.model, rendered)
        for j, ids in progress(enumerate(rendered), total=len(rendered), label=f"noveltybench {split}", unit="prompt"):
            seeds = [sample_seed(settings.seed, f"noveltybench/{split}/{j}", g) for g in range(settings.generations)]
            outputs, _, _ = generate(loaded, ids, seeds, sampling, prefix=prefix)
            rows += [
                {
                    "split": split,
                    "prompt_index": j,
                    "category": split_prompts[j].category,
                    "prompt": texts[j],
                    "generation": g,
                    "seed": seed,
                    "text": text.strip(),
                }
                for g, (seed, text) in enumerate(zip(seeds, outputs))
            ]
        log(f"  generated {split}: {len(texts)} prompts")
    return pd.DataFrame(rows)


def pair_inputs(tokenizer, first: list[int], seconds: list[list[int]], device) -> dict:
    """`[CLS] a [SEP] b [SEP]` for each b, token types 0 up to the first [SEP] and 1 after, padded:
    the classifier's input, built from token ids (each side already truncated)."""
    rows = [
        [tokenizer.cls_token_id, *first, tokenizer.sep_token_id, *second, tokenizer.sep_token_id] for second in seconds
    ]
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    types, mask = torch.zeros_like(ids), torch.zeros_like(ids)
    for row, (tokens, second) in enumerate(zip(rows, seconds)):
        ids[row, : len(tokens)] = torch.tensor(tokens)
        mask[row, : len(tokens)] = 1
        types[row, len(first) + 2 : len(tokens)] = 1
    return {"input_ids": ids.to(device), "token_type_ids": types.to(device), "attention_mask": mask.to(device)}


@torch.no_grad()
def classifier_equivalence(classifier, tokenizer, threshold: float, batch_size: int = 16):
    """equivalent(texts, i, js): the lexical short-circuit, else class-1 probability > threshold on
    `[CLS] a [SEP] b [SEP]`, each side truncated to its first 128 tokens."""
    device = next(classifier.parameters()).device

    def truncated(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False).input_ids[:SIDE_TOKENS]

    def equivalent(texts: list[str], i: int, later: list[int]) -> list[bool]:
        decisions = [lexically_equivalent(texts[i], texts[j]) for j in later]
        pending = [k for k, d in enumerate(decisions) if d is None]
        first = truncated(texts[i])
        for start in range(0, len(pending), batch_size):
            chunk = pending[start : start + batch_size]
            batch = pair_inputs(tokenizer, first, [truncated(texts[later[k]]) for k in chunk], device)
            probability = torch.softmax(classifier(**batch).logits.float(), dim=-1)[:, 1]
            for k, p in zip(chunk, probability.tolist()):
                decisions[k] = p > threshold
        return decisions

    return equivalent


@torch.no_grad()
def rewards(
    reward_model, tokenizer, prompt: str, texts: list[str], add_special_tokens: bool, batch_size: int = 4
) -> list[float]:
    """The reward model's scalar for each [user: prompt, assistant: text] conversation, rendered by
    its chat template (which holds BOS) and tokenized without adding special tokens again (with
    them, as the reference does, when `add_special_tokens`)."""
    device = next(reward_model.parameters()).device
    rendered = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}, {"role": "assistant", "content": text}], tokenize=False
        )
        for text in texts
    ]
    scores = []
    for start in range(0, len(rendered), batch_size):
        batch = tokenizer(
            rendered[start : start + batch_size],
            padding=True,
            truncation=True,
            add_special_tokens=add_special_tokens,
            return_tensors="pt",
        ).to(device)
        scores += reward_model(**batch).logits[:, 0].float().tolist()
    return scores


def _release(model) -> None:
    del model
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def rate_answers(
    generations: pd.DataFrame, settings: NoveltyBench, device: torch.device, folders: dict[str, Path]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Partition and rate the generations (the first of each partition is its representative);
    per-split and overall mean distinct and mean utility. `folders`: each evaluator's model folder."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folders["similarity_tokenizer"])
    classifier = AutoModelForSequenceClassification.from_pretrained(folders["similarity_model"]).to(device).eval()
    equivalent = classifier_equivalence(classifier, tokenizer, settings.similarity_threshold)
    groups = []
    for _, group in generations.groupby(["split", "prompt_index"], sort=False):
        texts = group.text.tolist()
        groups.append(partition(len(texts), lambda i, later, texts=texts: equivalent(texts, i, later)))
    generations = generations.assign(partition=np.concatenate(groups))
    generations["representative"] = ~generations.duplicated(["split", "prompt_index", "partition"])
    _release(classifier)
    log("  partitioned")

    tokenizer = AutoTokenizer.from_pretrained(folders["reward_model"])
    reward_model = (
        AutoModelForSequenceClassification.from_pretrained(  # eager: SDPA drops Gemma-2's soft-capping
            folders["reward_model"], dtype=getattr(torch, settings.reward_dtype), attn_implementation="eager"
        )
        .to(device)
        .eval()
    )
    scores = []
    for _, group in generations.groupby(["split", "prompt_index"], sort=False):
        scores += rewards(
            reward_model, tokenizer, group.prompt.iloc[0], group.text.tolist(), settings.reward_add_special_tokens
        )
    _release(reward_model)
    generations = generations.assign(reward=scores, rating=[rating(r) for r in scores])

    return novelty_summary(generations, settings.patience), generations
