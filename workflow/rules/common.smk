# Config validation, paths and input functions. Parse-time code only: cheap imports, no torch
# (every SLURM job parses the workflow again). Paths come from calft.layout, the one results layout
# that the report reads too; validation is calft.config, the same checks the commands run.
#
# Threads: model jobs declare one thread. Locally two one-thread jobs on two cores compute about
# 1.5 times what one job on both does (small matrices scale poorly), so `--cores N` runs N of them;
# a cluster profile sets its own (`set-threads`). The rules on the critical path (targets, tries,
# training) have priority, so that training starts first and everything else fills the other cores.

import json
import re
import shlex
from pathlib import Path

from calft import layout
from calft.config import ConfigError, validate

try:
    validate(config)  # fills in the schema's defaults
except ConfigError as error:
    raise WorkflowError(str(error))


MODELS = config["models"]
RUN_MODELS = config["run_models"] or list(MODELS)
TARGETS = config["targets"]
PROMPTS = config["prompts"]
TRAINING = config["training"]
SAMPLING = config["sampling"]
RETENTION = config["retention"]
PERPLEXITY = config["perplexity"]
TRANSFER = config["transfer"]
NOVELTY = TRANSFER["noveltybench"]

RETENTION_DATA = RETENTION["data_dir"] or layout.RETENTION_DATA.format(suite=RETENTION["suite"])
PERPLEXITY_DATA = layout.PALOMA_OFFLINE if PERPLEXITY["offline"] else PERPLEXITY["data_dir"] or layout.PALOMA
NOVELTY_DATA = NOVELTY["data_dir"] or layout.NOVELTY_PROMPTS
USE_IRT = RETENTION["suite"] == "tinybenchmarks" and bool(RETENTION["irt_parameters"])
REPORT = layout.ReportSelection(
    models=tuple(RUN_MODELS),
    methods=tuple(method for method in layout.EVALUATED_METHODS if method in config["methods"]),
    prompt_sets=tuple(PROMPTS["evaluation"]),
    retention=RETENTION["enabled"],
    perplexity=PERPLEXITY["enabled"],
    open_ended=TRANSFER["open_ended"]["enabled"],
    mcq=TRANSFER["mcq"]["enabled"],
    noveltybench=NOVELTY["enabled"],
    ssot=TRANSFER["ssot"]["enabled"],
)


def _alternatives(names):
    return "|".join(sorted(map(re.escape, names))) or "(?!)"


wildcard_constraints:
    model=_alternatives(MODELS),
    embedded_model=_alternatives([m for m in MODELS if MODELS[m]["source"] == "embedded"]),
    hub_model=_alternatives([m for m in MODELS if MODELS[m]["source"] != "embedded"]),
    tokenizer=_alternatives({m["tokenizer"] for m in MODELS.values()}),
    prompt_set="train|unseen|ood|unseen-full|ood-full",
    method="base|soft|hard|ssot",
    decimals=r"\d+",
    bins=r"\d+",


def targets_file(prompt_set, bins):
    return layout.TARGETS.format(prompt_set=prompt_set, decimals=TARGETS["decimals"], bins=bins)


def tries_file(tokenizer, prompt_set, bins):
    return layout.TRIES.format(tokenizer=tokenizer, prompt_set=prompt_set, decimals=TARGETS["decimals"], bins=bins)


def model_inputs(name):
    """What must exist before a job can load the model: the converted embedded folder, the
    download marker of a hub model, or nothing for a local folder given in config."""
    model = MODELS[name]
    if model["path"]:
        return []
    if model["source"] == "embedded":
        return [layout.EMBEDDED_MODEL.format(model=name)]
    return [layout.HUB_MODEL_MARKER.format(model=name)]


def model_source(name):
    """How a job names the model to transformers: a folder, or a hub id resolved offline from the cache."""
    model = MODELS[name]
    if model["path"]:
        return model["path"]
    if model["source"] == "embedded":
        return layout.EMBEDDED_MODEL.format(model=name)
    return model["source"]


def adapter_option(wildcards, input):
    return f"--adapter {shlex.quote(input.adapter)}" if wildcards.method in ("soft", "hard") else ""


# The params of the rules that load a model (`params: **MODEL_PARAMS`); those that evaluate one
# also take the adapter of soft and hard (`**EVALUATED_MODEL_PARAMS`).
MODEL_PARAMS = dict(
    model_dir=lambda wildcards: model_source(wildcards.model),
    model_config=lambda wildcards: json.dumps(MODELS[wildcards.model]),
)
EVALUATED_MODEL_PARAMS = MODEL_PARAMS | dict(adapter=adapter_option)


def tokenizer_users(tokenizer):
    """The run models that use this tokenizer; the first one's files build the shared tries."""
    return [name for name in RUN_MODELS if MODELS[name]["tokenizer"] == tokenizer]


def same_tokenizer_options(wildcards):
    """build-tries checks that every other model sharing the tokenizer really has the same one."""
    others = tokenizer_users(wildcards.tokenizer)[1:]
    return " ".join(f"--same-tokenizer {shlex.quote(model_source(name))}" for name in others)


def discretize_selection(wildcards):
    """CLI options choosing the prompts of a prompt set."""
    options = f"--number-format {shlex.quote(PROMPTS['number_format'])}"
    if wildcards.prompt_set == "train":
        if PROMPTS["train_families"]:
            options += f" --families {shlex.quote(','.join(PROMPTS['train_families']))}"
        if PROMPTS["train_per_family"]:
            options += f" --per-family {PROMPTS['train_per_family']}"
    return options


def tries_inputs(wildcards):
    return {
        "targets": layout.TARGETS.format(**wildcards),
        "models": [path for name in tokenizer_users(wildcards.tokenizer) for path in model_inputs(name)],
    }


def train_inputs(wildcards):
    """The prepared model and the training targets at the method's bins; soft also needs their tries."""
    bins = TARGETS[f"{wildcards.method}_max_bins"]
    inputs = {"model": model_inputs(wildcards.model), "targets": targets_file("train", bins)}
    if wildcards.method == "soft":
        inputs["tries"] = tries_file(MODELS[wildcards.model]["tokenizer"], "train", bins)
    return inputs


def tries_option(wildcards, input):
    return f"--tries {shlex.quote(input.tries)}" if wildcards.method == "soft" else ""


def train_launcher(wildcards, resources):
    """`calft`, or torchrun over the job's GPUs when it has more than one (DDP on one node)."""
    if int(resources.gpu) > 1:
        return f"torchrun --standalone --nproc-per-node {int(resources.gpu)} -m calft.cli"
    return "calft"


def model_and_adapter(wildcards):
    """The model, and the adapter for soft and hard (base and SSOT run the base model)."""
    inputs = {"model": model_inputs(wildcards.model)}
    if wildcards.method in ("soft", "hard"):
        inputs["adapter"] = layout.ADAPTER.format(model=wildcards.model, method=wildcards.method)
    return inputs


def evaluation_inputs(wildcards):
    """The model, the adapter, and the evaluation targets of the prompt set."""
    return model_and_adapter(wildcards) | {"targets": targets_file(wildcards.prompt_set, TARGETS["eval_max_bins"])}


def ssot_option(wildcards):
    return "--ssot" if wildcards.method == "ssot" else ""


def generation_settings(section, wildcards):
    """A generation section as JSON; SSOT (base model, seed-then-answer protocol) has its own sample
    count and generation length."""
    settings = dict(section)
    if wildcards.method == "ssot":
        settings |= {key: TRANSFER["ssot"][key] for key in ("num_samples", "max_new_tokens")}
    return json.dumps(settings)


def irt_option(wildcards, input):
    return " ".join(f"--irt-parameters {shlex.quote(path)}" for path in input.irt)


def evaluator_inputs(key):
    """A NoveltyBench evaluator model: nothing for a local folder, else its download marker."""
    return [] if Path(NOVELTY[key]).is_dir() else [layout.NOVELTY_EVALUATOR_MARKER.format(evaluator=key)]


def aggregate_inputs(wildcards):
    """Exactly the files the report reads (calft.layout.report_inputs)."""
    return [str(path) for paths in layout.report_inputs(REPORT).values() for path in paths.values()]


def aggregate_outputs():
    return [str(path) for path in layout.report_outputs(REPORT)]


def aggregate_options():
    """The aggregate command's selection: methods, prompt sets and the optional stages' tables."""
    options = [f"--methods {shlex.quote(','.join(REPORT.methods))}",
               f"--prompt-sets {shlex.quote(','.join(REPORT.prompt_sets))}"]
    flags = {"--retention": REPORT.retention, "--perplexity": REPORT.perplexity, "--open-ended": REPORT.open_ended,
             "--mcq": REPORT.mcq, "--noveltybench": REPORT.noveltybench, "--ssot": REPORT.ssot}
    return " ".join(options + [flag for flag, on in flags.items() if on])


def ood_targets_option(wildcards, input):
    """Figure 3 draws the OOD samples over the targets of the OOD prompts."""
    return " ".join(f"--ood-targets {shlex.quote(path)}" for path in input.ood_targets)


def report_item(path):
    """A table or figure marked for `snakemake --report`, with the caption of its kind."""
    name = Path(path).stem
    kind = next((prefix.rstrip("_") for prefix in ("structured_", "ssot_", "per_family_", "figure3_ood_samples_")
                 if name.startswith(prefix)), name)
    if name.startswith(("retention_", "perplexity_")):
        category = "retention and perplexity"
    elif name.startswith(("transfer", "ssot_")):
        category = "transfer"
    else:
        category = "structured sampling"
    return report(path, caption=f"../report/{kind}.rst", category=category)


def all_outputs():
    """Everything the workflow produces for the configured models: prepared models, adapters, tries,
    and the tables and figures (which pull in every evaluation)."""
    outputs = [path for name in RUN_MODELS for path in model_inputs(name)]
    for name in RUN_MODELS:
        for method in ("soft", "hard"):
            if method in config["methods"]:
                outputs.append(layout.ADAPTER.format(model=name, method=method))
    outputs += aggregate_outputs()
    for tokenizer in dict.fromkeys(MODELS[m]["tokenizer"] for m in RUN_MODELS):
        if "soft" in config["methods"]:
            outputs.append(tries_file(tokenizer, "train", TARGETS["soft_max_bins"]))
        for prompt_set in PROMPTS["evaluation"]:
            outputs.append(tries_file(tokenizer, prompt_set, TARGETS["eval_max_bins"]))
    return outputs
