"""Validation of a whole workflow config, called by the workflow before any job is planned.

Three layers, each naming the key at fault: the schema (types, ranges, unknown keys; its defaults are
filled in), the cross-key rules of each typed section and between models, and the data that jobs
will read but no rule makes. Cheap to import: every SLURM job parses the workflow again.
"""

from __future__ import annotations

import re
from pathlib import Path

from calft import layout, methods, settings, variants
from calft.artifacts.records import RECORD
from calft.errors import UserError
from calft.evaluation.settings import Sampling
from calft.evaluations import EVALUATIONS, optional
from calft.modeling import ssot
from calft.retention.settings import Perplexity, Retention
from calft.retention.suites import SUITES
from calft.settings import SettingsError
from calft.targets import declared, families
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


def family_problems(config: dict) -> list[str]:
    """Declared families (calft.targets.declared) that can be registered, which they then are; the
    families to train on are seen ones."""
    problems = declared.problems(config["families"])
    if problems:
        return problems
    declared.register(config["families"])
    for name in config["prompts"]["train_families"] or []:
        if name not in families.SEEN:
            kind = "held out" if name in families.HELD_OUT else "unknown"
            problems.append(
                f"prompts.train_families: '{name}' is {kind}; the seen families are {', '.join(families.SEEN)}"
            )
    return problems


def adapter_problems(config: dict) -> list[str]:
    """Each declared adapter: a new method name, a defined base model, one source that exists or is
    pinned, and trusted by the config (calft did not train it)."""
    problems = []
    for name, adapter in config["adapters"].items():
        key = f"adapters.{name}"
        known = methods.METHODS.get(name)
        if known is not None and known.model is None:
            problems.append(
                f"{key}: '{name}' is a built-in method's name ({', '.join(methods.METHODS)}); choose another"
            )
        if adapter["model"] not in config["models"]:
            problems.append(
                f"{key}.model: unknown model '{adapter['model']}'; defined models: {', '.join(config['models'])}"
            )
        if (adapter["path"] is None) == (adapter["hub"] is None):
            problems.append(f"{key}: give exactly one of path (a local folder) and hub (a repository id)")
        elif adapter["path"] is not None and not Path(adapter["path"]).is_dir():
            problems.append(f"{key}.path: folder '{adapter['path']}' does not exist")
        elif adapter["hub"] is not None and adapter["revision"] is None:
            problems.append(f"{key}.revision: a hub adapter is loaded at a pinned commit (40 hex digits); give one")
        if not adapter["trust"]:
            problems.append(
                f"{key}.trust: calft did not train this adapter, so it is loaded only when trusted; set "
                f"{key}.trust: true (it is still checked: safetensors only, finite weights, its target modules "
                "and base model, every weight loaded)"
            )
    return problems


def model_problems(config: dict) -> list[str]:
    """Run models must be defined, local folders must exist, models sharing tries share a terminator."""
    models, problems = config["models"], []
    for name, model in models.items():
        if model["name"] not in (None, name):
            problems.append(f"models.{name}.name: '{model['name']}' is not the model's key (leave it out)")
        model["name"] = name  # what the model's results record
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


def ssot_problems(config: dict) -> list[str]:
    """Every SSOT instruction file the config names can be read and is not empty."""
    problems = []
    for name, path in config["transfer"]["ssot"]["instructions"].items():
        if path is not None:
            try:
                ssot.read(path, name)
            except UserError as error:
                problems.append(f"transfer.ssot.instructions.{name}: {error}")
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


def duplicate_keys(paths) -> list[str]:
    """A key written twice in one mapping of a YAML config file (YAML keeps the last silently)."""
    import yaml

    problems = []

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, (str, int, float, bool)) and key in seen:
                    line = key_node.start_mark.line + 1
                    problems.append(f"{path}, line {line}: the key '{key}' appears twice in one mapping")
                seen.add(key)
            return super().construct_mapping(node, deep)

    for path in paths:
        try:
            yaml.load(Path(path).read_text(encoding="utf-8"), Loader=Loader)  # noqa: S506 - a SafeLoader
        except (OSError, yaml.YAMLError):
            continue  # Snakemake reports a file it cannot read
    return problems


PERIODIC = re.compile(r"(.+)\1{19,}$")  # what Snakemake's planner takes for an endless wildcard recursion


def name_problems(config: dict) -> list[str]:
    """Names that become wildcard values must not end in 20 repeats of one piece (Snakemake refuses them)."""
    named = [(f"models.{name}", name) for name in config["models"]]
    named += [(f"models.{name}.tokenizer", model["tokenizer"]) for name, model in config["models"].items()]
    named += [(f"ablations.variants.{name}", name) for name in config["ablations"]["variants"]]
    return [
        f"{key}: '{value}' ends in 20 or more repeats of '{PERIODIC.search(value).group(1)}', which Snakemake's "
        "planner refuses as a wildcard value: choose another name"
        for key, value in named
        if PERIODIC.search(value)
    ]


def validate(config: dict, files=()) -> None:
    """Check a workflow config (read from the YAML `files`) and fill in the schema's defaults in
    place; raise ConfigError with every problem found."""
    problems = duplicate_keys(files) + settings.schema_problems(config)
    if not problems:
        for label, section in SECTIONS.items():
            problems += section(**_section_value(config, label)).problems()
        problems += (
            family_problems(config)
            + method_problems(config)
            + adapter_problems(config)
            + model_problems(config)
            + name_problems(config)
            + data_problems(config)
        )
        problems += ssot_problems(config)
        problems += variant_problems(config) if not problems else []
    if problems:
        raise ConfigError(problems)
