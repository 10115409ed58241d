"""Benchmark: the sampler's time per generated token as the generation grows, with the preallocated
key/value cache written in place (calft's) against transformers' growing `DynamicCache`, which
concatenates a copy of the whole cache at every step. Same run, same model, same seeds; the two
must give the same samples (checked).

Random-initialised models of the embedded model's config (its tokenizer, a long position range), at
the `tiny` replica shape and the embedded `135m` shape; a random model never emits its stop token,
so every row runs to the token limit. CPU, the default (shared-history) strategy.

    python benchmarks/cache.py --config-dir ~/.cache/calft-tests/smollm2-135m-instruct
    python benchmarks/cache.py --config-dir ... --shapes 135m --rows 4 --repeats 1
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from unittest import mock

import torch
from transformers import AutoTokenizer
from transformers.cache_utils import DynamicCache

from calft.modeling import generation
from calft.modeling.chat import ChatFormat, prompt_ids
from calft.modeling.generation import sample, sample_seed

SHAPES = {
    "tiny": dict(
        hidden_size=64,
        intermediate_size=128,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_hidden_layers=2,
        head_dim=16,
    ),
    "135m": {},
}
PROMPT = "Generate exactly ONE random number from a Gaussian distribution with parameters mu=3.5, sigma=3."


def build(config_dir: Path, shape: str):
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(config_dir)
    for key, value in SHAPES[shape].items():
        setattr(config, key, value)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()


def timed(model, ids, seeds, tokens, growing: bool) -> tuple[float, list]:
    """Seconds for one sampler call; `growing`: with transformers' DynamicCache in place of ours."""
    replacement = (
        mock.patch.object(generation, "preallocated_cache", lambda model, capacity: DynamicCache())
        if growing
        else mock.patch.object(generation, "preallocated_cache", generation.preallocated_cache)
    )
    with replacement:
        start = time.perf_counter()
        result = sample(model, ids, seeds, tokens, set())
        return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--config-dir", type=Path, required=True, help="a folder with the embedded model's config and tokenizer"
    )
    parser.add_argument("--shapes", default="tiny,135m")
    parser.add_argument("--lengths", default="64,512,2048", help="new tokens per sample")
    parser.add_argument("--rows", type=int, default=8, help="samples per call")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per figure (the median), after a warm-up")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(args.config_dir)
    ids = prompt_ids(tokenizer, [PROMPT], ChatFormat("<|im_end|>"))[0]
    seeds = [sample_seed(11, "cache-bench", i) for i in range(args.rows)]
    print(f"{args.rows} rows, prompt {len(ids)} tokens, {args.threads} threads, median of {args.repeats}")
    print("shape | new tokens | growing ms/token | preallocated ms/token | speed-up | same samples")
    for shape in args.shapes.split(","):
        model = build(args.config_dir, shape)
        timed(model, ids, seeds, 8, False), timed(model, ids, seeds, 8, True)  # warm-up
        for tokens in map(int, args.lengths.split(",")):
            runs = {
                growing: [timed(model, ids, seeds, tokens, growing) for _ in range(args.repeats)]
                for growing in (True, False)
            }
            per_token = {growing: 1000 * statistics.median(s for s, _ in r) / tokens for growing, r in runs.items()}
            same = runs[True][0][1] == runs[False][0][1]
            print(
                f"{shape} | {tokens} | {per_token[True]:.2f} | {per_token[False]:.2f} | "
                f"{per_token[True] / per_token[False]:.2f}x | {same}",
                flush=True,
            )


if __name__ == "__main__":
    main()
