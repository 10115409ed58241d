"""Benchmark on an accelerator: calft's sampler, training step, `calft train` and exact logit KL,
each against its baseline in the same run, on random-initialised models (speed does not depend on
the weights; random weights never emit the terminator, so every sample runs to its token limit).

Models are built from the embedded model's config (a folder with config.json and SmolLM2's
tokenizer and chat template) at these shapes: `135m` (the embedded model), `1.7b` (SmolLM2-1.7B:
hidden 2048, 24 layers, 32 heads, intermediate 8192) and `tiny` (a CPU check that the script runs).

Printed side by side:
- sampling: calft's sampler against `generate(num_return_sequences=N)`, N=1000 with 32 tokens and
  a long case (N=250, 512 tokens), and how many samples change between two chunk sizes;
- training: the packed step against the naive one, soft and hard, 8 and 32 sequences per step,
  ms/step, 6N-MFU (against --peak-tflops) and peak memory;
- `calft train` through the command line: seconds per step from its log, against the in-process
  packed step of the same batch size;
- logit KL: the exact expectation against the 4-path estimate on a few evaluation prompts.

    python benchmarks/gpu.py --config-dir .gpu/tok --shapes 135m,1.7b          # about 5 minutes on an H200
    python benchmarks/gpu.py --config-dir resources/models/smollm2-135m-instruct --shapes tiny --samples 64 \\
        --long-samples 8 --long-tokens 16 --steps 2 --kl-prompts 1                # a CPU check
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from calft.cli import main as calft
from calft.evaluation.logit_kl import exact, monte_carlo
from calft.modeling.chat import ChatFormat, prompt_ids
from calft.modeling.generation import sample, sample_seed
from calft.modeling.trees import SoftTargets, example_losses, naive_example_losses, pack
from calft.training.data import HardTargets, batches, epoch_items

SHAPES = {
    "tiny": dict(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2,
                 num_hidden_layers=2, head_dim=16),
    "135m": {},
    "1.7b": dict(hidden_size=2048, intermediate_size=8192, num_attention_heads=32, num_key_value_heads=32,
                 num_hidden_layers=24, head_dim=64),
}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                   "generation_config.json")
PROMPT = ("Generate exactly ONE random number from a Gaussian distribution with parameters mu=3.5, sigma=3. "
          "Output ONLY the number.")
TERMINATOR = "<|im_end|>"
LORA = dict(r=16, lora_alpha=32, lora_dropout=0.05, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
DTYPE = torch.bfloat16 if DEVICE.type == "cuda" else torch.float32


def synchronize() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def peak_memory_gib() -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if DEVICE.type == "cuda" else float("nan")


def reset_peak_memory() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def timed(function):
    synchronize()
    start = time.perf_counter()
    result = function()
    synchronize()
    return result, time.perf_counter() - start


def build_model(config_dir: Path, shape: str, folder: Path) -> Path:
    """A random-initialised model of `shape` saved with the tokenizer files of `config_dir`."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(config_dir)
    for key, value in SHAPES[shape].items():
        setattr(config, key, value)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=DTYPE)
    out = folder / shape
    model.save_pretrained(out)
    for name in TOKENIZER_FILES:
        if (config_dir / name).exists():
            shutil.copy(config_dir / name, out / name)
    return out


def load(model_dir: Path, lora: bool = False):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=DTYPE, attn_implementation="sdpa").to(DEVICE)
    return get_peft_model(model, LoraConfig(**LORA)) if lora else model


def bench_sampling(model_dir: Path, tokenizer, args) -> None:
    model = load(model_dir).eval()
    ids = prompt_ids(tokenizer, [PROMPT], ChatFormat(TERMINATOR))[0]
    stop = {tokenizer.convert_tokens_to_ids(TERMINATOR)}
    sample(model, ids, [sample_seed(1, "warm-up", i) for i in range(8)], 4, stop)
    for n, tokens in ((args.samples, args.tokens), (args.long_samples, args.long_tokens)):
        seeds = [sample_seed(11, "bench", i) for i in range(n)]
        ours, ours_s = timed(lambda: sample(model, ids, seeds, tokens, stop, chunk_size=n))
        quarter, _ = timed(lambda: sample(model, ids, seeds, tokens, stop, chunk_size=max(1, n // 4)))
        with torch.no_grad():
            _, generate_s = timed(lambda: model.generate(
                torch.tensor([ids], device=DEVICE), attention_mask=torch.ones(1, len(ids), dtype=torch.long, device=DEVICE),
                do_sample=True, temperature=1.0, top_p=1.0, top_k=None, max_new_tokens=tokens,
                num_return_sequences=n, eos_token_id=sorted(stop), pad_token_id=tokenizer.pad_token_id))
        changed = sum(a != b for a, b in zip(ours, quarter))
        print(f"[sample] {model_dir.name} N={n} x {tokens} tokens: calft {ours_s:.2f} s ({n / ours_s:.0f}/s), "
              f"generate {generate_s:.2f} s ({n / generate_s:.0f}/s), speedup {generate_s / ours_s:.2f}x; "
              f"{changed} of {n} samples differ between chunk {n} and chunk {max(1, n // 4)}", flush=True)


def build_data(model_dir: Path, folder: Path, per_family: int) -> None:
    selection = ["--prompt-set", "train", "--per-family", str(per_family), "--decimals", "5"]
    calft(["discretize", *selection, "--max-bins", "1001", "--output", str(folder / "soft.parquet")])
    calft(["discretize", *selection, "--max-bins", "16384", "--output", str(folder / "hard.parquet")])
    calft(["build-tries", "--targets", str(folder / "soft.parquet"), "--tokenizer", str(model_dir),
           "--terminator", TERMINATOR, "--output", str(folder / "tries.parquet")])


def time_steps(model_dir: Path, step_batches: list, rendered: list[list[int]], pad_id: int, side: str,
               steps: int) -> tuple[float, float, int, float]:
    """Seconds per optimizer step (after two warm-up steps), peak GiB, parameters, sequence tokens per step."""
    torch.manual_seed(0)
    model = load(model_dir, lora=True).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)

    def step(items):
        if side == "packed":
            losses = example_losses(model, pack(items, rendered))
        else:
            losses = naive_example_losses(model, items, rendered, pad_id)
        (losses.sum() / len(losses)).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for items in step_batches[:2]:
        step(items)
    timed_batches = step_batches[2 : 2 + steps]
    tokens = sum(len(rendered[item.prompt]) + len(c.tokens) for items in timed_batches
                 for item in items for c in item.continuations) / len(timed_batches)
    reset_peak_memory()
    _, seconds = timed(lambda: [step(items) for items in timed_batches])
    return seconds / len(timed_batches), peak_memory_gib(), sum(p.numel() for p in model.parameters()), tokens


def bench_training(model_dir: Path, tokenizer, data: Path, args) -> dict[tuple[str, int], float]:
    """ms/step of the packed and the naive step; returns the packed seconds per step by (method, sequences)."""
    table = pd.read_parquet(data / "soft.parquet").drop_duplicates("prompt_id")
    families = list(table.family.astype(str))
    rendered = prompt_ids(tokenizer, list(table.prompt.astype(str)), ChatFormat(TERMINATOR))
    targets = {"soft": (SoftTargets(data / "tries.parquet"), 1),
               "hard": (HardTargets(data / "hard.parquet", tokenizer, tokenizer.convert_tokens_to_ids(TERMINATOR)), 4)}
    packed = {}
    for sequences in (8, 32):
        for method, (target, group) in targets.items():
            step_batches = batches(epoch_items(target, families, group, group, seed=11, epoch=0), sequences // group)
            if len(step_batches) < 3:
                print(f"[train] {method} {sequences} sequences: skipped, only {len(step_batches)} batches "
                      "(raise --per-family)", flush=True)
                continue
            results = {side: time_steps(model_dir, step_batches, rendered, tokenizer.pad_token_id, side, args.steps)
                       for side in ("naive", "packed")}
            (naive_s, naive_gib, _, _), (packed_s, packed_gib, parameters, tokens) = results["naive"], results["packed"]
            packed[(method, sequences)] = packed_s
            mfu = 6 * parameters * tokens / packed_s / (args.peak_tflops * 1e12)
            print(f"[train] {model_dir.name} {method} {sequences} sequences ({tokens:.0f} sequence tokens): "
                  f"naive {naive_s * 1e3:.0f} ms/step ({naive_gib:.1f} GiB), packed {packed_s * 1e3:.0f} ms/step "
                  f"({packed_gib:.1f} GiB), speedup {naive_s / packed_s:.2f}x, 6N-MFU {100 * mfu:.1f}%", flush=True)
    return packed


def bench_cli_training(model_dir: Path, data: Path, in_process: dict, folder: Path, args) -> None:
    """`calft train` (soft, 32 sequences per step) as a user runs it: median seconds per step of its log."""
    settings = dict(global_batch_size=32, per_device_batch_size=32, soft_epochs=1, checkpoint_every=10**6)
    entry = {"source": "embedded", "tokenizer": "smollm2", "terminator": TERMINATOR,
             "dtype": "bfloat16" if DTYPE == torch.bfloat16 else "float32"}
    out = folder / "cli-train"
    command = [sys.executable, "-m", "calft.cli", "train", "--method", "soft", "--model-dir", str(model_dir),
               "--model-config", json.dumps(entry), "--training", json.dumps(settings),
               "--targets", str(data / "soft.parquet"), "--tries", str(data / "tries.parquet"),
               "--adapter", str(out / "adapter"), "--train-log", str(out / "log.parquet"),
               "--checkpoints", str(out / "checkpoints")]
    subprocess.run(command, check=True, capture_output=True)
    log = pd.read_parquet(out / "log.parquet")
    seconds = log.seconds.iloc[min(2, len(log) - 1) :].median()  # past the warm-up steps
    reference = in_process.get(("soft", 32), float("nan"))
    print(f"[cli] {model_dir.name} calft train soft, 32 sequences per step: {seconds * 1e3:.0f} ms/step "
          f"({1 / seconds:.2f} steps/s), in-process packed step {reference * 1e3:.0f} ms, ratio "
          f"{seconds / reference:.2f}x", flush=True)


def bench_logit_kl(model_dir: Path, tokenizer, folder: Path, args) -> None:
    calft(["discretize", "--prompt-set", "ood", "--decimals", "5", "--max-bins", "16384",
           "--output", str(folder / "ood.parquet")])
    calft(["build-tries", "--targets", str(folder / "ood.parquet"), "--tokenizer", str(model_dir),
           "--terminator", TERMINATOR, "--output", str(folder / "ood-tries.parquet")])
    table = pd.read_parquet(folder / "ood.parquet").drop_duplicates("prompt_id")
    rendered = dict(zip(table.prompt_id.astype(str), prompt_ids(tokenizer, list(table.prompt.astype(str)),
                                                                  ChatFormat(TERMINATOR))))
    targets = SoftTargets(folder / "ood-tries.parquet")
    model = load(model_dir).eval()
    totals = {"exact": 0.0, "4-path": 0.0}
    prompts = range(min(args.kl_prompts, len(targets.prompt_ids)))
    for prompt in prompts:
        prompt_id = targets.prompt_ids[prompt]
        totals["4-path"] += timed(lambda: monte_carlo(model, targets, prompt, rendered[prompt_id], prompt_id, 4, 11))[1]
        totals["exact"] += timed(lambda: exact(model, targets, prompt, rendered[prompt_id]))[1]
    nodes = int(targets.node_start[len(prompts)] - targets.node_start[0])
    print(f"[kl] {model_dir.name} {len(prompts)} evaluation prompts ({nodes} trie nodes): exact {totals['exact']:.2f} s "
          f"({nodes / totals['exact']:.0f} nodes/s), 4-path estimate {totals['4-path']:.2f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-dir", type=Path, required=True,
                        help="config.json, tokenizer and chat template of the embedded model")
    parser.add_argument("--shapes", default="135m,1.7b", help=f"comma-separated, of {', '.join(SHAPES)}")
    parser.add_argument("--parts", default="sample,train,cli,kl")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--long-samples", type=int, default=250)
    parser.add_argument("--long-tokens", type=int, default=512)
    parser.add_argument("--steps", type=int, default=8, help="timed training steps per side")
    parser.add_argument("--per-family", type=int, default=8, help="training prompts per family")
    parser.add_argument("--kl-prompts", type=int, default=6)
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak of the device (H200: 989)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    from transformers import AutoTokenizer

    print(f"device {torch.cuda.get_device_name() if DEVICE.type == 'cuda' else 'cpu'}, {DTYPE}, torch "
          f"{torch.__version__}", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for shape in args.shapes.split(","):
            model_dir = build_model(args.config_dir, shape, folder)
            tokenizer = AutoTokenizer.from_pretrained(model_dir)
            if "sample" in parts:
                bench_sampling(model_dir, tokenizer, args)
            if parts & {"train", "cli"}:
                data = folder / "data"
                if not data.exists():
                    build_data(model_dir, data, args.per_family)
                packed = bench_training(model_dir, tokenizer, data, args)
                if "cli" in parts:
                    bench_cli_training(model_dir, data, packed, folder, args)
            if "kl" in parts:
                bench_logit_kl(model_dir, tokenizer, folder, args)


if __name__ == "__main__":
    main()
