"""Validation of a whole workflow config, called by the workflow before any job is planned.

Three layers, each naming the key at fault: the schema (types, ranges, unknown keys; its defaults are
filled in), the cross-key rules of each typed section and between models, and the data that jobs
will read but no rule makes. Cheap to import: every SLURM job parses the workflow again.
"""

from __future__ import annotations

from pathlib import Path

from calft import layout, methods, settings, variants
from calft.artifacts.records import RECORD
from calft.evaluation.settings import Sampling
from calft.evaluations import EVALUATIONS, optional
from calft.retention.settings import Perplexity, Retention
from calft.retention.suites import SUITES
from calft.settings import SettingsError
from calft.training.settings import Training
from calft.transfer.settings import Mcq, NoveltyBench, OpenEnded

SECTIONS = {
    section.LABEL: section for section in (Training, Sampling, OpenEnded, Mcq, NoveltyBench, Retention, Perplexity)
}


class ConfigError(SettingsError):
    def __str__(self) -> str:
        return "invalid calft config:\n  " + "\n  ".join(self.problems)


def _section_value(config: dict, label: str):
    node = config
    for key in label.split("."):
        node = node[key]
    return node


def method_problems(config: dict) -> list[str]:
    """`methods` names main methods of calft.methods (a baseline has its own switch)."""
    return [
        f"methods: '{name}' is not a main method ({', '.join(methods.MAIN)})"
        for name in config["methods"]
        if name not in methods.MAIN
    ]


def model_problems(config: dict) -> list[str]:
    """Run models must be defined, local folders must exist, models sharing tries share a terminator."""
    models, problems = config["models"], []
    for name in config["run_models"] or []:
        if name not in models:
            problems.append(f"run_models: unknown model '{name}'; defined models: {', '.join(models)}")
    for name, model in models.items():
        if model["path"] and not Path(model["path"]).is_dir():
            problems.append(f"models.{name}.path: folder '{model['path']}' does not exist")
    first_of_tokenizer = {}
    for name, model in models.items():
        first, terminator = first_of_tokenizer.setdefault(model["tokenizer"], (name, model["terminator"]))
        if terminator != model["terminator"]:
            problems.append(
                f"models.{name}.terminator: '{model['terminator']}' differs from '{terminator}' of model "
                f"'{first}', which shares tokenizer '{model['tokenizer']}'"
            )
    return problems


def _untrusted(section: dict, label: str) -> list[str]:
    """A data_dir that calft did not prepare is read only when the config trusts it."""
    folder = Path(section["data_dir"])
    if folder.is_dir() and not (folder / RECORD).exists() and not section["trust_data_dir"]:
        return [
            f"{label}.data_dir: '{folder}' has no {RECORD} (calft did not prepare it), so changed files would "
            f"pass unnoticed: unset it to let the workflow prepare the data, or set {label}.trust_data_dir: true"
        ]
    return []


def data_problems(config: dict) -> list[str]:
    """Data that the retention, perplexity and NoveltyBench jobs read but no rule makes must exist,
    and be either prepared by calft or trusted."""
    problems = []
    retention, perplexity = config["retention"], config["perplexity"]
    if retention["enabled"] and retention["data_dir"]:
        for task in SUITES[retention["suite"]]:
            if not (Path(retention["data_dir"]) / f"{task}.parquet").is_file():
                problems.append(
                    f"retention.data_dir: '{retention['data_dir']}' has no {task}.parquet (suite {retention['suite']})"
                )
        problems += _untrusted(retention, "retention")
    if perplexity["enabled"] and not perplexity["offline"] and perplexity["data_dir"]:
        for name in perplexity["slices"]:
            if not layout.paloma_files(perplexity["data_dir"], name, perplexity["split"]):
                folder = Path(perplexity["data_dir"]) / name / perplexity["split"]
                problems.append(
                    f"perplexity.data_dir: no PALOMA files {folder}/*.jsonl.gz for slice '{name}' "
                    "(unset it to let the workflow fetch PALOMA, or set perplexity.offline)"
                )
        problems += _untrusted(perplexity, "perplexity")
    novelty = config["transfer"]["noveltybench"]
    if novelty["enabled"] and novelty["data_dir"]:
        for split in novelty["splits"]:
            name = layout.NOVELTY_PROMPT_FILES[split]
            if not (Path(novelty["data_dir"]) / name).is_file():
                problems.append(
                    f"transfer.noveltybench.data_dir: no {name} in '{novelty['data_dir']}' "
                    "(unset it to let the workflow fetch them, or set transfer.noveltybench.enabled: false)"
                )
        problems += _untrusted(novelty, "transfer.noveltybench")
    return problems


def variant_problems(config: dict) -> list[str]:
    """The ablations' variants (calft.variants), each with a training schedule that works."""
    problems = variants.problems(config)
    for name, variant in variants.declared(config).items():
        key = f"ablations.variants.{name}"
        problems += [f"{key}: {problem}" for problem in Training(**variant.training(config["training"])).problems()]
        for evaluation in variant.evaluations:
            if evaluation not in [known.name for known in optional()]:
                known = ", ".join(known.name for known in optional())
                problems.append(f"{key}.evaluations: unknown evaluation '{evaluation}' ({known})")
            elif not EVALUATIONS[evaluation].enabled(config):
                problems.append(f"{key}.evaluations: '{evaluation}' is disabled in this config")
    return problems


def validate(config: dict) -> None:
    """Check a workflow config and fill in the schema's defaults in place; raise ConfigError with
    every problem found."""
    problems = settings.schema_problems(config)
    if not problems:
        for label, section in SECTIONS.items():
            problems += section(**_section_value(config, label)).problems()
        problems += method_problems(config) + model_problems(config) + data_problems(config)
        problems += variant_problems(config) if not problems else []
    if problems:
        raise ConfigError(problems)
