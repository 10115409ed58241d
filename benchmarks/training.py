"""Benchmark: optimizer steps per second of our training step against a naive baseline, same run.

Both sides train the embedded SmolLM2 with the same LoRA, optimizer and batches (8 sequences per
step, one micro-batch) on CPU:
- ours: each micro-batch packed as one token tree (shared chat-template prefix, shared prompts,
  shared digits computed once) with logits only at the target positions;
- naive: every continuation its own sequence (the prompt recomputed for every sample) with
  full-vocabulary logits at every position.
Settings: soft with one path per prompt (the paper's), soft with 4 paths of a prompt sharing its
forward, and hard with 4 completions of a prompt sharing it (the default).

    python benchmarks/training.py --model resources/models/smollm2-135m
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from calft.cli import main as calft
from calft.modeling.chat import ChatFormat, prompt_ids
from calft.modeling.trees import SoftTargets, example_losses, naive_example_losses, pack
from calft.training.data import HardTargets, batches, epoch_items


def build_data(model: str, folder: Path) -> None:
    selection = ["--prompt-set", "train", "--per-family", "2", "--decimals", "5"]
    calft(["discretize", *selection, "--max-bins", "1001", "--output", str(folder / "soft.parquet")])
    calft(["discretize", *selection, "--max-bins", "16384", "--output", str(folder / "hard.parquet")])
    calft(
        [
            "build-tries",
            "--targets",
            str(folder / "soft.parquet"),
            "--tokenizer",
            model,
            "--terminator",
            "<|im_end|>",
            "--output",
            str(folder / "tries.parquet"),
        ]
    )


def steps_per_second(model, step_batches, loss_fn, steps: int) -> float:
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4, weight_decay=0.01)

    def one_step(items):
        losses = loss_fn(items)
        (losses.sum() / len(losses)).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    one_step(step_batches[0])  # warm-up
    start = time.perf_counter()
    for items in step_batches[1 : steps + 1]:
        one_step(items)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resources/models/smollm2-135m-instruct")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per side and setting")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    terminator = tokenizer.convert_tokens_to_ids("<|im_end|>")
    chat = ChatFormat("<|im_end|>")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        build_data(args.model, folder)
        table = pd.read_parquet(folder / "soft.parquet").drop_duplicates("prompt_id")
        families = list(table.family.astype(str))
        rendered = prompt_ids(tokenizer, list(table.prompt.astype(str)), chat)
        soft = SoftTargets(folder / "tries.parquet")
        hard = HardTargets(folder / "hard.parquet", tokenizer, terminator)
        settings = [
            ("soft, 1 path per prompt (paper)", soft, 1),
            ("soft, 4 paths share a prompt", soft, 4),
            ("hard, 4 completions share a prompt", hard, 4),
        ]
        for name, targets, group in settings:
            items = epoch_items(targets, families, group, group, seed=11, epoch=0)
            step_batches = batches(items, 8 // group)
            results = {}
            for side in ("naive", "ours"):
                torch.manual_seed(0)
                model = AutoModelForCausalLM.from_pretrained(
                    args.model, dtype=torch.float32, attn_implementation="sdpa"
                )
                model = get_peft_model(
                    model,
                    LoraConfig(
                        r=16, lora_alpha=32, lora_dropout=0.05, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]
                    ),
                )
                model.train()
                if side == "ours":
                    fn = lambda items: example_losses(model, pack(items, rendered))  # noqa: E731
                else:
                    fn = lambda items: naive_example_losses(model, items, rendered, tokenizer.pad_token_id)  # noqa: E731
                results[side] = steps_per_second(model, step_batches, fn, args.steps)
            rows.append((name, results["naive"], results["ours"], results["ours"] / results["naive"]))
    print(
        f"\n{'setting (8 sequences per step, CPU, ' + str(args.threads) + ' threads)':<46} "
        f"{'naive steps/s':>14} {'ours steps/s':>13} {'speedup':>8}"
    )
    for name, naive, ours, ratio in rows:
        print(f"{name:<46} {naive:>14.3f} {ours:>13.3f} {ratio:>7.2f}x")


if __name__ == "__main__":
    main()
