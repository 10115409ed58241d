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
TRACKING = "logs/tracking"  # the trackers' own files (calft.tracking): TensorBoard events, W&B offline runs

TARGETS = "results/targets/{prompt_set}/d{decimals}_b{bins}.parquet"
TRIES = "results/tries/{tokenizer}/{prompt_set}/d{decimals}_b{bins}.parquet"
ADAPTER = "results/{model}/{method}{variant}/adapter"
RELEASE = "results/release/{model}/{method}{variant}"  # an adapter with its evaluated model card
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
HUB_ADAPTER_MARKER = "resources/adapters/{adapter}.json"  # the same, for a declared hub adapter
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
    keyed by (model, method[, prompt set]): the results of each evaluation (calft.evaluations) that
    the method runs and the selection covers, every method's OOD samples for Figures 3 and 8, and the
    main methods' open-ended samples (Figure 10) and NoveltyBench generations (Tables 11-19)."""
    from calft.evaluations import EVALUATIONS

    raw = {
        "open_ended": ("open_ended_samples", OPEN_ENDED_SAMPLES),
        "noveltybench": ("noveltybench_generations", NOVELTY_GENERATIONS),
    }
    inputs: dict[str, dict[tuple, Path]] = {
        kind: {} for kind in [*EVALUATIONS, "ood_samples", "train_log", *(k for k, _ in raw.values())]
    }
    for model, name in selection.cells():
        method = METHODS[name]
        keys = dict(model=model, method=name, variant="")
        for evaluation in EVALUATIONS.values():
            if not (method.runs(evaluation.name) and selection.runs(evaluation.name)):
                continue
            if evaluation.per_prompt_set:
                for prompt_set in selection.prompt_sets:
                    key = (model, name, prompt_set)
                    inputs[evaluation.name][key] = under(results, evaluation.results, **keys, prompt_set=prompt_set)
            else:
                inputs[evaluation.name][model, name] = under(results, evaluation.results, **keys)
            if evaluation.name in raw and method.main:
                kind, template = raw[evaluation.name]
                inputs[kind][model, name] = under(results, template, **keys)
        if "ood" in selection.prompt_sets:  # Figures 3 and 8
            inputs["ood_samples"][model, name] = under(results, SAMPLES, **keys, prompt_set="ood")
        if method.training:  # Tables 3-4 and the training cost read what the training log records
            inputs["train_log"][model, name] = under(results, TRAIN_LOG, **keys)
    return inputs


def ablation_inputs(selection, results: str | Path = RESULTS) -> dict[str, dict[tuple, Path]]:
    """Every file the ablation report reads (calft.report.settings.AblationSelection), keyed by
    (model, method, variant[, prompt set]): each run's scores and training log (what it was trained
    with) and, for Figure 14, the OOD samples of the soft runs."""
    inputs: dict[str, dict[tuple, Path]] = {"scores": {}, "logit_kl": {}, "ood_samples": {}, "train_log": {}}
    for run in selection.rows:
        suffix = f"{SEPARATOR}{run.variant}" if run.variant else ""
        for model in run.models:
            keys = dict(model=model, method=run.method, variant=suffix)
            inputs["train_log"][model, run.method, run.variant] = under(results, TRAIN_LOG, **keys)
            for prompt_set in selection.prompt_sets:
                inputs["scores"][model, run.method, run.variant, prompt_set] = under(
                    results, SCORES, **keys, prompt_set=prompt_set
                )
            if run.method == SOFT and "ood" in selection.prompt_sets:  # Figure 14
                inputs["ood_samples"][model, run.method, run.variant] = under(
                    results, SAMPLES, **keys, prompt_set="ood"
                )
    return inputs
