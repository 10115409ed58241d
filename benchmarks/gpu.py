"""Benchmark on an accelerator: calft's sampler, training step, `calft train` and exact logit KL,
each against its baselines in the same run, on random-initialised models (speed does not depend on
the weights; random weights never emit the terminator, so every sample runs to its token limit).

Every figure is the median of 3 timed calls after a warm-up call, with the peak memory of those
calls. FLOPs are counted as the work a method must do: sampling 2 x non-embedding parameters per
generated token; training 4 x non-embedding parameters per token of the packed tree (a frozen base:
forward and input gradients, no weight gradients) plus 6 x LoRA parameters per token. Each case
also gets a torch.profiler summary: wall time, host time in operators, device busy time, top kernels.

Models are built from the embedded model's config (a folder with config.json and SmolLM2's
tokenizer and chat template) at these shapes: `135m` (the embedded model), `1.7b` (SmolLM2-1.7B:
hidden 2048, 24 layers, 32 heads, intermediate 8192) and `tiny` (a CPU check that the script runs).

Printed:
- sampling, for the base model and through a LoRA adapter (as soft and hard sample): calft's sampler
  (the workflow's default chunk: as many rows as fit) against `generate(num_return_sequences=N)`,
  `generate` with a static cache (which transformers compiles on an accelerator) and
  `generate_batch` (continuous batching) where the installed transformers has it; N=1000 x 32 tokens
  and N=250 x 512; how many samples change with a quarter of the chunk;
- training: the packed step against the naive one, soft and hard, 8 and 32 sequences per step;
- `calft train` through the command line against the in-process packed step;
- logit KL: the exact expectation against the 4-path estimate on a few evaluation prompts.

    python benchmarks/gpu.py --config-dir .gpu/tok --shapes 135m,1.7b          # about 8 minutes on an H200
    python benchmarks/gpu.py --config-dir ~/.cache/calft-tests/smollm2-135m-instruct --shapes tiny --samples 16 \\
        --long-samples 4 --long-tokens 16 --steps 2 --kl-prompts 1 --baselines generate   # a CPU check
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
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
    "tiny": dict(
        hidden_size=64,
        intermediate_size=128,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_hidden_layers=2,
        head_dim=16,
    ),
    "135m": {},
    "1.7b": dict(
        hidden_size=2048,
        intermediate_size=8192,
        num_attention_heads=32,
        num_key_value_heads=32,
        num_hidden_layers=24,
        head_dim=64,
    ),
}
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "generation_config.json",
)
PROMPT = (
    "Generate exactly ONE random number from a Gaussian distribution with parameters mu=3.5, sigma=3. "
    "Output ONLY the number."
)
TERMINATOR = "<|im_end|>"
LORA = dict(r=16, lora_alpha=32, lora_dropout=0.05, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
DTYPE = torch.bfloat16 if DEVICE.type == "cuda" else torch.float32
REPEATS = 3


def synchronize() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def measure(function, repeats: int = REPEATS):
    """(median seconds of `repeats` calls after a warm-up call, peak GiB over them, the last result)."""
    function()
    if DEVICE.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    seconds = []
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        result = function()
        synchronize()
        seconds.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**30 if DEVICE.type == "cuda" else float("nan")
    return statistics.median(seconds), peak, result


def profile_summary(label: str, function) -> None:
    """One profiled call: wall, host time in operators, device busy time and the top kernels (CPU ops on CPU)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if DEVICE.type == "cuda" else [])
    synchronize()
    start = time.perf_counter()
    with profile(activities=activities) as profiler:
        function()
        synchronize()
    wall = time.perf_counter() - start
    events = profiler.key_averages()
    device_time = lambda event: getattr(event, "self_device_time_total", 0.0)  # noqa: E731
    host_ms = sum(event.self_cpu_time_total for event in events) / 1e3
    busy_ms = sum(device_time(event) for event in events) / 1e3
    key = device_time if DEVICE.type == "cuda" else (lambda event: event.self_cpu_time_total)
    top = sorted(events, key=key, reverse=True)[:5]
    print(
        f"[profile] {label}: wall {wall * 1e3:.0f} ms (profiled), host ops {host_ms:.0f} ms, device busy "
        f"{busy_ms:.0f} ms, {sum(event.count for event in events)} op calls; top: "
        + "; ".join(f"{event.key[:48]} {key(event) / 1e3:.1f} ms" for event in top),
        flush=True,
    )


def non_embedding_parameters(model) -> int:
    """Parameters outside the input embedding and the output head (one matrix when they are tied)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    embeddings = {id(base.get_input_embeddings().weight), id(base.get_output_embeddings().weight)}
    return sum(p.numel() for name, p in base.named_parameters() if id(p) not in embeddings and "lora_" not in name)


def lora_parameters(model) -> int:
    return sum(p.numel() for name, p in model.named_parameters() if "lora_" in name)


def mfu(flops: float, seconds: float, peak_tflops: float) -> str:
    return f"{100 * flops / seconds / (peak_tflops * 1e12):.2f}%"


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


def load(model_dir: Path, lora: bool = False, random_adapter: bool = False):
    """The model on the device; with a LoRA adapter (random non-zero weights when `random_adapter`,
    as a trained adapter has, unmerged, as the workflow samples)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=DTYPE, attn_implementation="sdpa").to(DEVICE)
    if not lora:
        return model
    torch.manual_seed(0)
    return get_peft_model(model, LoraConfig(**LORA, init_lora_weights=not random_adapter))


def sampling_baselines(model, ids: list[int], n: int, tokens: int, stop: list[int], pad: int, names: list[str]):
    """The baselines a user would compare with, each a zero-argument call."""
    from transformers import GenerationConfig

    prompt = torch.tensor([ids], device=DEVICE)
    common = dict(
        do_sample=True,
        temperature=1.0,
        top_p=1.0,
        top_k=None,
        max_new_tokens=tokens,
        eos_token_id=stop,
        pad_token_id=pad,
    )
    calls = {}
    if "generate" in names:
        calls["generate"] = lambda: model.generate(
            prompt, attention_mask=torch.ones_like(prompt), num_return_sequences=n, **common
        )
    if "static" in names:
        calls["generate, static cache (compiled)"] = lambda: model.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            num_return_sequences=n,
            cache_implementation="static",
            **common,
        )
    if "batch" in names and hasattr(model, "generate_batch"):
        config = GenerationConfig(**common)
        calls["generate_batch"] = lambda: model.generate_batch(
            inputs=[ids] * n, generation_config=config, progress_bar=False
        )
    return calls


@torch.no_grad()
def bench_sampling(model_dir: Path, tokenizer, args) -> None:
    ids = prompt_ids(tokenizer, [PROMPT], ChatFormat(TERMINATOR))[0]
    stop = [tokenizer.convert_tokens_to_ids(TERMINATOR)]
    for adapter in (False, True):
        model = load(model_dir, lora=adapter, random_adapter=True).eval()
        name = f"{model_dir.name}{' + LoRA' if adapter else ''}"
        per_token = 2 * non_embedding_parameters(model) + (2 * lora_parameters(model) if adapter else 0)
        for n, tokens in ((args.samples, args.tokens), (args.long_samples, args.long_tokens)):
            seeds = [sample_seed(11, "bench", i) for i in range(n)]
            ours = lambda: sample(model, ids, seeds, tokens, set(stop))  # noqa: E731
            cases = {
                "calft": ours,
                **sampling_baselines(model, ids, n, tokens, stop, tokenizer.pad_token_id, args.baselines.split(",")),
            }
            results = {}
            for label, call in cases.items():
                try:
                    seconds, peak, output = measure(call)
                except Exception as error:  # a baseline this transformers or device cannot run is reported
                    print(
                        f"[sample] {name} N={n} x {tokens}: {label} unavailable ({type(error).__name__}: "
                        f"{str(error)[:120]})",
                        flush=True,
                    )
                    continue
                results[label] = seconds
                generated = n * tokens
                print(
                    f"[sample] {name} N={n} x {tokens} tokens: {label} {seconds:.3f} s ({n / seconds:.0f} samples/s, "
                    f"{generated / seconds:.0f} tokens/s), MFU {mfu(per_token * generated, seconds, args.peak_tflops)}"
                    f", peak {peak:.2f} GiB",
                    flush=True,
                )
                if label == "calft":
                    quarter = sample(model, ids, seeds, tokens, set(stop), chunk_size=max(1, n // 4))
                    changed = sum(a != b for a, b in zip(output, quarter))
                    print(
                        f"[sample] {name} N={n}: {changed} of {n} samples differ with a quarter of the chunk",
                        flush=True,
                    )
            for label in [label for label in results if label != "calft"]:
                print(
                    f"[sample] {name} N={n} x {tokens}: calft is {results[label] / results['calft']:.2f}x {label}",
                    flush=True,
                )
            if args.profile:
                profile_summary(f"calft sampler, {name}, N={n} x {tokens}", ours)
                if "generate" in cases:
                    profile_summary(f"generate, {name}, N={n} x {tokens}", cases["generate"])


def build_data(model_dir: Path, folder: Path, per_family: int) -> None:
    def discretize(max_bins: int, output: Path) -> None:
        settings = {"prompt_set": "train", "decimals": 5, "max_bins": max_bins, "per_family": per_family}
        assert calft(["discretize", "--settings", json.dumps(settings), "--output", str(output)]) == 0

    discretize(1001, folder / "soft.parquet")
    discretize(16384, folder / "hard.parquet")
    assert (
        calft(
            [
                "build-tries",
                "--settings",
                json.dumps({"terminator": TERMINATOR}),
                "--targets",
                str(folder / "soft.parquet"),
                "--tokenizer",
                str(model_dir),
                "--output",
                str(folder / "tries.parquet"),
            ]
        )
        == 0
    )


def time_steps(
    model_dir: Path,
    step_batches: list,
    rendered: list[list[int]],
    pad_id: int,
    side: str,
    steps: int,
    label: str,
    profile: bool,
) -> tuple[float, float, int, int, int]:
    """Median seconds per optimizer step over `steps` steps after a warm-up step, peak GiB,
    non-embedding and LoRA parameters, tree tokens per step."""
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

    queue = iter(step_batches * (steps + 2))
    seconds, peak, _ = measure(lambda: step(next(queue)), repeats=steps)
    if profile:
        profile_summary(label, lambda: step(next(queue)))
    tree_tokens = sum(pack(items, rendered).tokens for items in step_batches) / len(step_batches)
    return seconds, peak, non_embedding_parameters(model), lora_parameters(model), tree_tokens


def bench_training(model_dir: Path, tokenizer, data: Path, args) -> dict[tuple[str, int], float]:
    """Seconds per step of the packed and the naive step; returns the packed ones by (method, sequences)."""
    table = pd.read_parquet(data / "soft.parquet").drop_duplicates("prompt_id")
    families = list(table.family.astype(str))
    rendered = prompt_ids(tokenizer, list(table.prompt.astype(str)), ChatFormat(TERMINATOR))
    targets = {
        "soft": (SoftTargets(data / "tries.parquet"), 1),
        "hard": (HardTargets(data / "hard.parquet", tokenizer, tokenizer.convert_tokens_to_ids(TERMINATOR)), 4),
    }
    packed = {}
    for sequences in (8, 32):
        for method, (target, group) in targets.items():
            step_batches = batches(epoch_items(target, families, group, group, seed=11, epoch=0), sequences // group)
            label = f"{model_dir.name} {method} {sequences} sequences"
            results = {
                side: time_steps(
                    model_dir,
                    step_batches,
                    rendered,
                    tokenizer.pad_token_id,
                    side,
                    args.steps,
                    f"{side} step, {label}",
                    args.profile and side == "packed",
                )
                for side in ("naive", "packed")
            }
            (naive_s, naive_gib, *_), (packed_s, packed_gib, base, lora, tree) = results["naive"], results["packed"]
            packed[(method, sequences)] = packed_s
            flops = (4 * base + 6 * lora) * tree
            print(
                f"[train] {label} ({tree:.0f} tree tokens per step): naive {naive_s * 1e3:.1f} ms/step "
                f"({naive_gib:.2f} GiB), packed {packed_s * 1e3:.1f} ms/step ({packed_gib:.2f} GiB), packed is "
                f"{naive_s / packed_s:.2f}x naive, MFU {mfu(flops, packed_s, args.peak_tflops)}",
                flush=True,
            )
    return packed


def bench_cli_training(model_dir: Path, data: Path, in_process: dict, folder: Path) -> None:
    """`calft train` (soft, 32 sequences per step) as a user runs it: median seconds per step of its log."""
    training = dict(global_batch_size=32, per_device_batch_size=32, soft_epochs=1, checkpoint_every=10**6)
    model = {
        "source": "embedded",
        "tokenizer": "smollm2",
        "terminator": TERMINATOR,
        "dtype": "bfloat16" if DTYPE == torch.bfloat16 else "float32",
    }
    out = folder / "cli-train"
    command = [
        sys.executable,
        "-m",
        "calft.cli",
        "train",
        "--settings",
        json.dumps({"method": "soft", "model": model, "training": training}),
        "--model-dir",
        str(model_dir),
        "--targets",
        str(data / "soft.parquet"),
        "--tries",
        str(data / "tries.parquet"),
        "--adapter",
        str(out / "adapter"),
        "--train-log",
        str(out / "log.parquet"),
        "--checkpoints",
        str(out / "checkpoints"),
    ]
    subprocess.run(command, check=True, capture_output=True)
    log = pd.read_parquet(out / "log.parquet")
    seconds = log.seconds.iloc[min(2, len(log) - 1) :].median()  # past the warm-up steps
    reference = in_process.get(("soft", 32), float("nan"))
    print(
        f"[cli] {model_dir.name} calft train soft, 32 sequences per step: {seconds * 1e3:.1f} ms/step, in-process "
        f"packed step {reference * 1e3:.1f} ms, ratio {seconds / reference:.2f}x",
        flush=True,
    )


def bench_logit_kl(model_dir: Path, tokenizer, folder: Path, args) -> None:
    settings = {"prompt_set": "ood", "decimals": 5, "max_bins": 16384}
    assert calft(["discretize", "--settings", json.dumps(settings), "--output", str(folder / "ood.parquet")]) == 0
    assert (
        calft(
            [
                "build-tries",
                "--settings",
                json.dumps({"terminator": TERMINATOR}),
                "--targets",
                str(folder / "ood.parquet"),
                "--tokenizer",
                str(model_dir),
                "--output",
                str(folder / "ood-tries.parquet"),
            ]
        )
        == 0
    )
    table = pd.read_parquet(folder / "ood.parquet").drop_duplicates("prompt_id")
    rendered = dict(
        zip(table.prompt_id.astype(str), prompt_ids(tokenizer, list(table.prompt.astype(str)), ChatFormat(TERMINATOR)))
    )
    targets = SoftTargets(folder / "ood-tries.parquet")
    model = load(model_dir).eval()
    totals = {"exact": 0.0, "4-path": 0.0}
    prompts = range(min(args.kl_prompts, len(targets.prompt_ids)))
    for prompt in prompts:
        prompt_id = targets.prompt_ids[prompt]
        totals["4-path"] += measure(lambda: monte_carlo(model, targets, prompt, rendered[prompt_id], prompt_id, 4, 11))[
            0
        ]
        totals["exact"] += measure(lambda: exact(model, targets, prompt, rendered[prompt_id]))[0]
    nodes = int(targets.node_start[len(prompts)] - targets.node_start[0])
    print(
        f"[kl] {model_dir.name} {len(prompts)} evaluation prompts ({nodes} trie nodes): exact {totals['exact']:.2f} s "
        f"({nodes / totals['exact']:.0f} nodes/s), 4-path estimate {totals['4-path']:.2f} s",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--config-dir", type=Path, required=True, help="config.json, tokenizer and chat template of the embedded model"
    )
    parser.add_argument("--shapes", default="135m,1.7b", help=f"comma-separated, of {', '.join(SHAPES)}")
    parser.add_argument("--parts", default="sample,train,cli,kl")
    parser.add_argument(
        "--baselines",
        default="generate,static,batch",
        help="sampling baselines: generate, static (static cache, compiled), batch (generate_batch)",
    )
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--long-samples", type=int, default=250)
    parser.add_argument("--long-tokens", type=int, default=512)
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per side (their median)")
    parser.add_argument("--per-family", type=int, default=8, help="training prompts per family")
    parser.add_argument("--kl-prompts", type=int, default=6)
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak of the device (H200: 989)")
    parser.add_argument("--no-profile", dest="profile", action="store_false", help="skip the profiler summaries")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    from transformers import AutoTokenizer

    print(
        f"device {torch.cuda.get_device_name() if DEVICE.type == 'cuda' else 'cpu'}, {DTYPE}, torch "
        f"{torch.__version__}; medians of {REPEATS} after a warm-up",
        flush=True,
    )
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
                    bench_cli_training(model_dir, data, packed, folder)
            if "kl" in parts:
                bench_logit_kl(model_dir, tokenizer, folder, args)


if __name__ == "__main__":
    main()
