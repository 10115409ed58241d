"""Where every file lives: one layout for the workflow (common.smk) and the report.

Templates are paths relative to the workflow's working directory, with Snakemake wildcards in
braces. Per-model outputs sit under results/<model>/<method><variant>/ (a method of calft.methods;
the variant empty for the final setting, ~<name> for a training variant of calft.variants); shared
targets under results/targets/,
tries per tokenizer under results/tries/<tokenizer>/; prepared models and data under resources/.
`report_inputs` is the exact list of files the tables and figures are made of: the aggregate rule
depends on it and the report reads it, so neither can miss a file the other expects. What the report
writes is calft.report.items'.
"""

from __future__ import annotations

from pathlib import Path

from calft.methods import METHODS, SOFT
from calft.variants import SEPARATOR

RESULTS = "results"

TARGETS = "results/targets/{prompt_set}/d{decimals}_b{bins}.parquet"
TRIES = "results/tries/{tokenizer}/{prompt_set}/d{decimals}_b{bins}.parquet"
ADAPTER = "results/{model}/{method}{variant}/adapter"
TRAIN_LOG = "results/{model}/{method}{variant}/train_log.parquet"
CHECKPOINTS = "results/{model}/{method}{variant}/checkpoints"
SAMPLES = "results/{model}/{method}{variant}/samples/{prompt_set}.parquet"
SCORES = "results/{model}/{method}{variant}/scores/{prompt_set}.parquet"
LOGIT_KL = "results/{model}/{method}{variant}/logit_kl/{prompt_set}.parquet"
RETENTION = "results/{model}/{method}{variant}/retention.parquet"
RETENTION_EXAMPLES = "results/{model}/{method}{variant}/retention_examples.parquet"
PERPLEXITY = "results/{model}/{method}{variant}/perplexity.parquet"
OPEN_ENDED = "results/{model}/{method}{variant}/transfer/open_ended.parquet"
OPEN_ENDED_SAMPLES = "results/{model}/{method}{variant}/transfer/open_ended_samples.parquet"
MCQ = "results/{model}/{method}{variant}/transfer/mcq.parquet"
MCQ_SAMPLES = "results/{model}/{method}{variant}/transfer/mcq_samples.parquet"
NOVELTY = "results/{model}/{method}{variant}/transfer/noveltybench.parquet"
NOVELTY_GENERATIONS = "results/{model}/{method}{variant}/transfer/noveltybench_generations.parquet"
TABLES = "results/tables"
FIGURES = "results/figures"
ABLATIONS = "results/ablations"  # Tables 24-26 and Figure 14
CONSTRUCTION_COST = "results/targets/construction_cost.parquet"  # Table 24's measurements

EMBEDDED_MODEL = "resources/models/{model}"  # a converted safetensors folder
HUB_MODEL_MARKER = "resources/models/{model}.json"  # names the snapshot in the Hugging Face cache
RETENTION_DATA = "resources/retention/{suite}"  # <task>.parquet per task of the suite
IRT_PARAMETERS = "resources/retention/tinyBenchmarks.npz"
PALOMA = "resources/paloma"
PALOMA_OFFLINE = "resources/paloma-offline"
NOVELTY_EVALUATOR_MARKER = "resources/noveltybench/{evaluator}.json"
NOVELTY_PROMPTS = "resources/noveltybench/prompts"
NOVELTY_PROMPT_FILES = {"curated": "curated.jsonl", "wildchat": "wildchat_1k.jsonl"}


def paloma_files(data_dir: str | Path, slice_name: str, split: str) -> list[Path]:
    """A PALOMA slice's documents: <data_dir>/<slice>/<split>/*.jsonl[.gz]."""
    return sorted((Path(data_dir) / slice_name / split).glob("*.jsonl*"))


def under(results: str | Path, template: str, **keys) -> Path:
    """A results template's path for `keys`, inside another results folder than results/."""
    return Path(results) / template.format(**keys).removeprefix(f"{RESULTS}/")


def report_inputs(selection, results: str | Path = RESULTS) -> dict[str, dict[tuple, Path]]:
    """Every file the report reads for a selection (calft.report.settings.ReportSelection), by kind,
    keyed by (model, method[, prompt set]): each method's evaluations (calft.methods) among those the
    selection covers, and every method's OOD samples for Figures 3 and 8."""
    per_set = {"scores": SCORES, "logit_kl": LOGIT_KL}
    per_model = {
        "retention": RETENTION,
        "perplexity": PERPLEXITY,
        "open_ended": OPEN_ENDED,
        "mcq": MCQ,
        "noveltybench": NOVELTY,
    }
    inputs: dict[str, dict[tuple, Path]] = {
        kind: {}
        for kind in [*per_set, "ood_samples", *per_model, "train_log", "open_ended_samples", "noveltybench_generations"]
    }
    for model in selection.models:
        for name in selection.methods:
            method = METHODS[name]
            for prompt_set in selection.prompt_sets:
                keys = dict(model=model, method=name, variant="", prompt_set=prompt_set)
                for kind in [kind for kind in per_set if kind in method.evaluations]:
                    inputs[kind][model, name, prompt_set] = under(results, per_set[kind], **keys)
                if prompt_set == "ood":  # Figures 3 and 8
                    inputs["ood_samples"][model, name] = under(results, SAMPLES, **keys)
            if "open_ended" in method.evaluations and method.main and selection.open_ended:  # Figure 10
                inputs["open_ended_samples"][model, name] = under(
                    results, OPEN_ENDED_SAMPLES, model=model, method=name, variant=""
                )
            if "noveltybench" in method.evaluations and method.main and selection.noveltybench:  # Tables 11-19
                inputs["noveltybench_generations"][model, name] = under(
                    results, NOVELTY_GENERATIONS, model=model, method=name, variant=""
                )
            if method.adapter:  # Tables 3-4 and the training cost read what the training log records
                inputs["train_log"][model, name] = under(results, TRAIN_LOG, model=model, method=name, variant="")
            for kind in [kind for kind in per_model if kind in method.evaluations]:
                if getattr(selection, kind):
                    inputs[kind][model, name] = under(results, per_model[kind], model=model, method=name, variant="")
    return inputs


def ablation_inputs(selection, results: str | Path = RESULTS) -> dict[str, dict[tuple, Path]]:
    """Every file the ablation report reads (calft.report.settings.AblationSelection), keyed by
    (model, method, variant[, prompt set]): each run's scores and, for Figure 14, the OOD samples
    of the soft runs."""
    inputs: dict[str, dict[tuple, Path]] = {"scores": {}, "logit_kl": {}, "ood_samples": {}}
    for run in selection.rows:
        suffix = f"{SEPARATOR}{run.variant}" if run.variant else ""
        for model in run.models:
            keys = dict(model=model, method=run.method, variant=suffix)
            for prompt_set in selection.prompt_sets:
                inputs["scores"][model, run.method, run.variant, prompt_set] = under(
                    results, SCORES, **keys, prompt_set=prompt_set
                )
            if run.method == SOFT and "ood" in selection.prompt_sets:  # Figure 14
                inputs["ood_samples"][model, run.method, run.variant] = under(
                    results, SAMPLES, **keys, prompt_set="ood"
                )
    return inputs
