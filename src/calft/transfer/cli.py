"""The transfer stage's commands: open-ended, mcq, noveltybench, fetch-noveltybench."""

from __future__ import annotations

from calft.command import command, input_path, model_paths, output_path
from calft.jobs import Job
from calft.transfer.settings import EVALUATORS, McqSettings, NoveltyBench, NoveltyBenchSettings, OpenEndedSettings


def add_commands(sub) -> None:
    _open_ended(sub)
    _mcq(sub)
    _noveltybench(sub)
    _fetch_noveltybench(sub)


def _open_ended(sub) -> None:
    oe = command(
        sub,
        "open-ended",
        "calft.transfer.commands:open_ended",
        OpenEndedSettings,
        "JSON: model (the model's config entry), open_ended (the config's transfer.open_ended) and "
        "prompting (direct or ssot)",
        offline=True,
        job=Job("open_ended", ("model", "method"), ("model", "method")),
        help="open-ended random generation (102 prompts)",
        description="Top-p first-token support sizes and unique-output fractions of the 102 "
        "'[Verb] a random [category]' prompts.",
    )
    model_paths(oe)
    input_path(
        oe,
        "--ssot-instruction",
        help="text file of the String Seed of Thought instruction (ssot prompting only; transfer.ssot.instructions)",
    )
    output_path(oe, "--samples", "open_ended_samples", required=True, help="parquet file of every generation")
    output_path(oe, "--output", "open_ended", required=True, help="per-prompt parquet file")


def _mcq(sub) -> None:
    mc = command(
        sub,
        "mcq",
        "calft.transfer.commands:mcq",
        McqSettings,
        "JSON: model (the model's config entry) and mcq (the config's transfer.mcq)",
        offline=True,
        job=Job("mcq", ("model",), ("model",)),
        help="MCQ answer-position balance",
        description="Generated medical multiple-choice questions, strictly parsed: parse rate and TV "
        "distance of the correct-answer letters to uniform.",
    )
    model_paths(mc)
    output_path(mc, "--samples", "mcq_samples", required=True, help="parquet file of every generation")
    output_path(mc, "--output", "mcq", required=True, help="one-row summary parquet file")


def _noveltybench(sub) -> None:
    nb = command(
        sub,
        "noveltybench",
        "calft.transfer.commands:noveltybench",
        NoveltyBenchSettings,
        "JSON: model (the model's config entry) and noveltybench (the config's transfer.noveltybench)",
        offline=True,
        job=Job("noveltybench", ("model",), ("model",)),
        help="NoveltyBench: distinct and utility",
        description="Generations per prompt, partitioned by the similarity classifier and rated by the "
        "reward model; mean distinct and mean utility (patience 0.8) per split and overall.",
    )
    model_paths(nb)
    input_path(nb, "--data-dir", required=True, help="folder with curated.jsonl and wildchat_1k.jsonl")
    for evaluator in EVALUATORS:
        input_path(
            nb,
            f"--{evaluator.replace('_', '-')}",
            default=None,
            help=f"folder or download marker of the {evaluator.replace('_', ' ')} (default: the setting's folder)",
        )
    output_path(
        nb,
        "--generations",
        "noveltybench_generations",
        required=True,
        help="parquet file of every generation, partition and rating",
    )
    output_path(nb, "--output", "noveltybench", required=True, help="per-split summary parquet file")


def _fetch_noveltybench(sub) -> None:
    fn = command(
        sub,
        "fetch-noveltybench",
        "calft.transfer.commands:fetch_noveltybench",
        NoveltyBench,
        "JSON of the config's transfer.noveltybench section",
        job=Job("fetch_noveltybench_prompts"),
        help="download NoveltyBench's prompt files (head node)",
        description="Writes curated.jsonl and wildchat_1k.jsonl from the configured prompts_url, with "
        "their checksums in the folder's calft_provenance.json.",
    )
    output_path(fn, "--output", "eval_data/noveltybench", required=True, help="folder to write")
