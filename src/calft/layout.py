"""Where every file lives: one layout for the workflow (common.smk) and the report.

Templates are paths relative to the workflow's working directory, with Snakemake wildcards in
braces. Per-model outputs sit under results/<model>/<method><variant>/ (a method of calft.methods;
the variant empty for the final setting, ~<name> for a training variant of calft.variants); shared
targets under results/targets/,
tries per tokenizer under results/tries/<tokenizer>/; prepared models and data under resources/.
`report_inputs` is the exact list of files the tables and figures are made of: the aggregate rule
depends on it and the report reads it, so neither can miss a file the other expects.
"""

from __future__ import annotations

from pathlib import Path

from calft.methods import METHODS
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
    selection covers, and the OOD samples of the main methods and SSOT for Figures 3 and 8."""
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
                if prompt_set == "ood" and (method.main or name == "ssot"):  # Figures 3 and 8
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
            if run.method == "soft" and "ood" in selection.prompt_sets:
                inputs["ood_samples"][model, run.method, run.variant] = under(
                    results, SAMPLES, **keys, prompt_set="ood"
                )
    return inputs


def ablation_outputs(selection, folder: str | Path = ABLATIONS) -> list[Path]:
    """Every table and figure the ablation report writes."""
    names = ["table24_construction_cost"] + [f"table{TABLE_OF_METHOD[m]}_{m}_ablation" for m in selection.methods]
    outputs = _tables(names, folder)
    if "soft" in selection.methods and "ood" in selection.prompt_sets:
        outputs += [Path(folder) / f"figure14_ood_samples_by_decimals_{model}.png" for model in selection.soft_models]
    return outputs


TABLE_OF_METHOD = {"soft": 25, "hard": 26}  # the paper's ablation table of each trained method


def novelty_case_tables(methods: list[str]) -> dict[str, str]:
    """Tables 11-19 (Appendix D.5): the file of each regime of NoveltyBench cases the methods allow."""
    tables = {}
    if "base" in methods and "soft" in methods:
        tables["soft_helps"] = "table11_13_noveltybench_soft_helps"
    if "base" in methods and "hard" in methods:
        tables["hard_best"] = "table14_16_noveltybench_hard_best"
    if "base" in methods and ("soft" in methods or "hard" in methods):
        tables["failures"] = "table17_19_noveltybench_failures"
    return tables


def _tables(names: list[str], tables: str | Path) -> list[Path]:
    return [Path(tables) / f"{name}.{suffix}" for name in names for suffix in ("csv", "md", "tex")]


def report_outputs(selection, tables: str | Path = TABLES, figures: str | Path = FIGURES) -> list[Path]:
    """Every table and figure the report writes; summary.csv first, the figures last."""
    sets = selection.prompt_sets
    outputs = [Path(tables) / "summary.csv", Path(tables) / "per_prompt.csv"]
    outputs += _tables([f"structured_{s}" for s in sets], tables)
    outputs += _tables(
        (["retention_perplexity"] if selection.retention or selection.perplexity else [])
        + (["retention_tasks", "table21_retention_tasks_model_mean"] if selection.retention else [])
        + (["perplexity_slices", "table23_perplexity_slices_model_mean"] if selection.perplexity else []),
        tables,
    )
    outputs += _tables(
        (["transfer"] if selection.transfer else [])
        + (
            ["table10_noveltybench_splits", *novelty_case_tables(selection.methods).values()]
            if selection.noveltybench
            else []
        )
        + [f"{baseline}_{s}" for baseline in selection.baselines for s in sets],
        tables,
    )
    trained = any(METHODS[name].adapter for name in selection.methods)
    outputs.append(Path(tables) / "index.md")
    outputs += _tables(
        (
            ["table3_shared_hyperparameters", "table4_method_hyperparameters", "appendix_b1_training_cost"]
            if trained
            else []
        )
        + ["table5_families", "appendix_b1_stage_wallclock"],
        tables,
    )
    outputs += [
        Path(figures) / f"per_family_{s}_{metric}.png" for s in sets for metric in ("normalized_w1", "logit_kl")
    ]
    outputs.append(Path(figures) / "figure2_family_median_w1.png")
    if "ood" in sets:
        outputs += [Path(figures) / f"figure3_ood_samples_{model}.png" for model in selection.models]
        if "ssot" in selection.methods:
            outputs += [Path(figures) / f"figure8_ood_samples_ssot_{model}.png" for model in selection.models]
    if selection.open_ended and trained:
        outputs += _tables(["appendix_d4_open_ended_counts"], tables)
        outputs.append(Path(figures) / "figure9_open_ended_per_prompt.png")
    if selection.open_ended:
        outputs += [Path(figures) / f"figure10_open_ended_frequencies_{model}.png" for model in selection.models]
    if selection.retention:
        outputs.append(Path(figures) / "figure11_retention_per_task.png")
    if selection.perplexity:
        outputs += [
            Path(figures) / "figure12_paloma_perplexity.png",
            Path(figures) / "figure13_paloma_bits_per_byte.png",
        ]
    return outputs
