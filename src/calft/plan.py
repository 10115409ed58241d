"""What a run costs before it runs: `calft plan-cost` asks Snakemake for the plan of a target (a dry
run, nothing executed) and prints its jobs per rule, the A100 GPU-hours estimated from the paper's own
Appendix B.1 figures, and the disk its models, adapters and results take.

GPU-hours: Appendix B.1 reports, for the paper's twelve models, the A100 GPU-hours of training and the
summed wall-clock hours of each evaluation (one GPU per job). Each figure is divided by the number of
jobs the paper's plan (config.paper.yaml) has for its rules, and multiplied by this plan's:
    hours(rule) = B.1 hours of its stage x jobs(rule, this plan) / jobs(stage's rules, paper plan)
so the paper config's plan prints B.1's own figures, and a plan with other models or variants scales
them per job. Logit KL and the CPU rules have no B.1 figure and are left out."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from calft.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
PAPER_CONFIG = ROOT / "config.paper.yaml"

# Appendix B.1: stage -> (its rules, A100 GPU-hours over the paper's twelve models, the paper's words)
APPENDIX_B1 = {
    "soft training": (("train_soft",), 2.6, "2.6 A100 GPU-hours total across 12 models"),
    "hard training": (("train_hard",), 26.7, "26.7 A100 GPU-hours total"),
    "structured sampling": (("sample",), 4.5, "4.5h for structured sampling"),
    "open-ended generation": (("open_ended",), 3.1, "3.1h for open-ended random generation"),
    "MCQ": (("mcq",), 17.6, "17.6h for MCQ generation"),
    "TinyBenchmarks": (("retention",), 4.8, "4.8h for TinyBenchmarks"),
    "PALOMA": (("perplexity",), 11.5, "11.5h for PALOMA"),
    "NoveltyBench": (("noveltybench",), 194.0, "194.0h for NoveltyBench"),
}

# Download sizes: the model cards' parameter counts x 2 bytes (bf16 safetensors); gpt-oss-20b ships its
# experts in MXFP4 (4.25 bits a weight), about 13 GB. Hub id -> billions of parameters, bytes each.
HUB_WEIGHTS = {
    "Qwen/Qwen3-0.6B": (0.75, 2),
    "Qwen/Qwen3-1.7B": (2.0, 2),
    "Qwen/Qwen3-4B": (4.0, 2),
    "Qwen/Qwen3-8B": (8.2, 2),
    "Qwen/Qwen3-14B": (14.8, 2),
    "google/gemma-3-1b-it": (1.0, 2),
    "google/gemma-3-4b-it": (4.3, 2),
    "google/gemma-3-12b-it": (12.2, 2),
    "google/gemma-3-27b-it": (27.4, 2),
    "meta-llama/Llama-3.2-1B-Instruct": (1.24, 2),
    "meta-llama/Llama-3.2-3B-Instruct": (3.21, 2),
    "openai/gpt-oss-20b": (21.0, 0.62),
    "yimingzhang/deberta-v3-large-generation-similarity": (0.44, 4),
    "microsoft/deberta-v3-large": (0.0, 0),  # the tokenizer only
    "Skywork/Skywork-Reward-Gemma-2-27B-v0.2": (27.2, 2),
}
# LoRA on q, k, v, o: per layer r x (4 hidden + 2 query width + 2 key/value width) float32 weights.
# Hub id -> (layers, hidden size, query width, key/value width), from the models' config.json.
ATTENTION_SHAPES = {
    "Qwen/Qwen3-0.6B": (28, 1024, 2048, 1024),
    "Qwen/Qwen3-1.7B": (28, 2048, 2048, 1024),
    "Qwen/Qwen3-4B": (36, 2560, 4096, 1024),
    "Qwen/Qwen3-8B": (36, 4096, 4096, 1024),
    "Qwen/Qwen3-14B": (40, 5120, 5120, 1024),
    "google/gemma-3-1b-it": (26, 1152, 1024, 256),
    "google/gemma-3-4b-it": (34, 2560, 2048, 1024),
    "google/gemma-3-12b-it": (48, 3840, 4096, 2048),
    "google/gemma-3-27b-it": (62, 5376, 4096, 2048),
    "meta-llama/Llama-3.2-1B-Instruct": (16, 2048, 2048, 512),
    "meta-llama/Llama-3.2-3B-Instruct": (28, 3072, 3072, 1024),
    "openai/gpt-oss-20b": (24, 2880, 4096, 512),
}
BYTES_PER_ANSWER = 100  # a stored sample of <= 32 tokens with its parse (parquet, compressed)
BYTES_PER_LONG_GENERATION = 2000  # a NoveltyBench or SSOT generation of up to 512 or 2048 tokens


def planned_jobs(config: Path, target: str) -> dict[str, int]:
    """rule -> jobs of `target` under `config` alone (Snakemake's dry run, every job forced)."""
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(ROOT / "Snakefile"),
        target,
        "-n",
        "--forceall",
        "--quiet",
        "rules",
        "--configfile",
        str(config),
        "--replace-workflow-config",
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=os.environ)
    if result.returncode != 0:
        last = (result.stdout + result.stderr).strip().splitlines()[-3:]
        raise UserError(f"Snakemake cannot plan {target} with {config}: {' '.join(last)}")
    stats = (result.stdout + result.stderr).split("Job stats:")[-1]
    return {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)$", stats, re.M) if rule != "total"}


def gpu_hours(jobs: dict[str, int], paper_jobs: dict[str, int]) -> list[tuple[str, int, float, str]]:
    """(stage, jobs, estimated A100 GPU-hours, the B.1 figure it scales) per stage with a B.1 figure."""
    rows = []
    for stage, (rules, hours, quote) in APPENDIX_B1.items():
        paper = sum(paper_jobs.get(rule, 0) for rule in rules)
        mine = sum(jobs.get(rule, 0) for rule in rules)
        if mine:
            rows.append((stage, mine, hours * mine / paper if paper else float("nan"), quote))
    return rows


def disk_gigabytes(config: dict, jobs: dict[str, int]) -> dict[str, float]:
    """Estimated GB of the hub models downloaded, the adapters trained and the results stored, for a
    validated config (calft.config.validate: the schema's defaults filled in)."""
    models = config["models"]
    run = config["run_models"] or list(models)
    sources = {models[name]["source"] for name in run} - {"embedded"}
    novelty = config["transfer"]["noveltybench"]
    if jobs.get("download_noveltybench_model"):
        sources |= {novelty["similarity_model"], novelty["reward_model"]}
    weights = sum(billions * size for billions, size in (HUB_WEIGHTS.get(source, (0, 0)) for source in sources))
    rank = config["training"]["lora_r"]
    per_model = {
        name: layers * rank * (4 * hidden + 2 * query + 2 * key_value) * 4 / 1e9
        for name in run
        for layers, hidden, query, key_value in [ATTENTION_SHAPES.get(models[name]["source"], (0, 0, 0, 0))]
    }
    trainings = jobs.get("train_soft", 0) + jobs.get("train_hard", 0)
    adapters = 2 * trainings * (sum(per_model.values()) / max(len(per_model), 1))  # the adapter and its checkpoint
    samples = config["sampling"]["num_samples"]
    answers = jobs.get("sample", 0) * 21 * samples * BYTES_PER_ANSWER  # 21 prompts: the mean prompt set
    long = jobs.get("noveltybench", 0) * 1100 * novelty["generations"] * BYTES_PER_LONG_GENERATION
    return {"hub models": weights, "adapters and checkpoints": adapters, "results": (answers + long) / 1e9}


def plan_cost(config: str, goal: str) -> None:
    import yaml

    from calft.config import ConfigError, validate

    path = Path(config)
    if not path.is_file():
        raise UserError(f"no config file {config}")
    jobs = planned_jobs(path.resolve(), goal)
    paper_plan = path.resolve() == PAPER_CONFIG and goal == "all"
    paper_jobs = jobs if paper_plan else planned_jobs(PAPER_CONFIG, "all")  # what B.1's figures cover
    print(f"Plan of `snakemake {goal}` with {config} (a dry run: nothing ran)\n")
    print("jobs per rule:")
    for rule, count in sorted(jobs.items(), key=lambda item: -item[1]):
        print(f"  {rule:<28}{count:>6}")
    print(f"  {'total':<28}{sum(jobs.values()):>6}\n")
    print("A100 GPU-hours, from the paper's Appendix B.1 (hours x jobs here / jobs of the paper's plan):")
    rows = gpu_hours(jobs, paper_jobs)
    for stage, count, hours, quote in rows:
        print(f"  {stage:<24}{count:>5} jobs {hours:>8.1f} h   (B.1: {quote})")
    print(f"  {'total':<24}{'':>10}{sum(hours for _, _, hours, _ in rows):>8.1f} h   (logit KL: no B.1 figure)\n")
    print("disk, estimated (GB):")
    settings = yaml.safe_load(path.read_text())
    try:
        validate(settings, [path])
    except ConfigError as error:
        raise UserError(str(error)) from None
    for what, gigabytes in disk_gigabytes(settings, jobs).items():
        print(f"  {what:<28}{gigabytes:>8.1f}")
    print(
        "  (models: parameters x bytes each, from the model cards; adapters: LoRA r x (4 hidden + 2 query +"
        f" 2 key/value) x layers float32, twice for the checkpoint; results: {BYTES_PER_ANSWER} B an answer,"
        f" {BYTES_PER_LONG_GENERATION} B a NoveltyBench generation)"
    )


def add_commands(sub) -> None:
    from calft.command import command

    cost = command(
        sub,
        "plan-cost",
        "calft.plan:plan_cost",
        help="print a run's jobs per rule, GPU-hours (from the paper's Appendix B.1) and disk, running nothing",
        description="A Snakemake dry run of the target under the config alone (as profiles/slurm runs it), "
        "its jobs per rule, the A100 GPU-hours each stage costs scaled per job from Appendix B.1, and "
        "the disk of its models, adapters and results.",
    )
    cost.add_argument("--config", default=str(PAPER_CONFIG), help="config file (default: config.paper.yaml)")
    cost.add_argument("--target", dest="goal", default="all", help="Snakemake target: all (default) or ablations")
