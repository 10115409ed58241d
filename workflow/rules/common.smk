# Config validation, paths and input functions. Parse-time code only: cheap imports, no torch
# (every SLURM job parses the workflow again). Paths come from calft.layout, the one results layout
# that the report reads too; methods from calft.methods; validation is calft.config, the same checks
# the commands run. Every command gets its settings as one JSON section, derived by calft.jobs from
# the config and the job's wildcards (`job_settings`), and checked by the command against the schema.
#
# Threads: model jobs declare one thread. Locally two one-thread jobs on two cores compute about
# 1.5 times what one job on both does (small matrices scale poorly), so `--cores N` runs N of them;
# a cluster profile sets its own (`set-threads`). The rules on the critical path (the embedded model
# first, then targets, tries, training) have priority, so that training starts first and everything
# else fills the other cores; targets and tries take one thread each, so that they run beside the
# model's preparation and the first training instead of waiting for both cores.

import json
import re
import shlex
from pathlib import Path

from calft import jobs, layout, slurm, variants
from calft.config import ConfigError, validate
from calft.errors import UserError
from calft.evaluations import EVALUATIONS
from calft.methods import METHODS, SEED_THEN_ANSWER, TRAINED
from calft.modeling import ssot
from calft.report import items as report_items
from calft.report.settings import AblationSelection, ReportSelection
from calft.retention.suites import SUITES
from calft.transfer.settings import EVALUATORS as NOVELTY_EVALUATORS

try:
    validate(config, workflow.configfiles)  # fills in the schema's defaults
except ConfigError as error:
    raise WorkflowError(str(error))


def _profile_resources():
    """The raw values of the resources a profile sets (profiles/slurm: account and partitions)."""
    settings = workflow.resource_settings
    default = settings.default_resources._data.values() if settings.default_resources else []
    per_rule = [resource for rule in (settings.overwrite_resources or {}).values() for resource in rule.values()]
    return [resource.raw for resource in [*default, *per_rule]]


if not workflow.remote_exec:  # the main process, before any job is submitted
    try:
        slurm.apply_site(_profile_resources(), overlay=Path(workflow.basedir) / slurm.OVERLAY)
    except UserError as error:
        raise WorkflowError(str(error))


MODELS = config["models"]
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
RUN = jobs.Run(config)  # registers the declared adapters as methods on their base model
RUN_MODELS = RUN.run_models
VARIANTS = RUN.variants  # the ablations' training variants, by name
ADAPTERS = RUN.adapters
RUN_METHODS = RUN.methods  # in table order
ABLATION_REPORT = RUN.ablation_report  # the runs of Tables 25-26
ABLATION_SELECTION = AblationSelection.from_dict(ABLATION_REPORT)
REPORT_SELECTION = ReportSelection.from_dict(RUN.report)


def job_settings(rule):
    """A rule's --settings, derived by calft.jobs from the config and the job's wildcards: the same
    function derives them for a command run by hand (`--config FILE --model NAME ...`)."""
    return lambda wildcards: json.dumps(jobs.settings(rule, RUN, **dict(wildcards.items())))


def _alternatives(names):
    return "|".join(sorted(map(re.escape, names))) or "(?!)"


wildcard_constraints:
    model=_alternatives(MODELS),
    embedded_model=_alternatives([m for m in MODELS if MODELS[m]["source"] == "embedded"]),
    hub_model=_alternatives([m for m in MODELS if MODELS[m]["source"] != "embedded"]),
    tokenizer=_alternatives({m["tokenizer"] for m in MODELS.values()}),
    prompt_set="train|unseen|ood|unseen-full|ood-full",
    method=_alternatives(METHODS),
    adapter=_alternatives(ADAPTERS),
    variant="(?:" + "|".join(["", *(re.escape(variant.suffix) for variant in VARIANTS.values())]) + ")",
    decimals=r"\d+",
    bins=r"\d+",


def targets_file(prompt_set, decimals, bins):
    return layout.TARGETS.format(prompt_set=prompt_set, decimals=decimals, bins=bins)


def tries_file(tokenizer, prompt_set, decimals, bins):
    return layout.TRIES.format(tokenizer=tokenizer, prompt_set=prompt_set, decimals=decimals, bins=bins)


def reference_targets(prompt_set):
    """The one evaluation reference of a prompt set (targets.eval_*), whatever the training used."""
    return targets_file(prompt_set, TARGETS["eval_decimals"], TARGETS["eval_max_bins"])


def reference_tries(tokenizer, prompt_set):
    return tries_file(tokenizer, prompt_set, TARGETS["eval_decimals"], TARGETS["eval_max_bins"])


def run_variant(wildcards):
    """The training setting of a (method, variant) results folder: the method's final (top-level)
    setting, or a declared variant of that method."""
    try:
        return RUN.variant(wildcards.method, wildcards.variant)
    except UserError as error:
        raise WorkflowError(str(error))


def run_keys(model, method, variant=None):
    """The wildcards of a results folder (calft.layout) of a model, method and variant."""
    return dict(model=model, method=method, variant=variant.suffix if variant else "")


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
    """How a job names the model: its folder, or the download marker of a hub model, from which the
    job loads exactly the recorded snapshot offline (calft.modeling.source)."""
    model = MODELS[name]
    if model["path"]:
        return model["path"]
    return model_inputs(name)[0]


def model_paths(wildcards, input):
    """The model block of the rules that run a model (its folder or hub id, and the adapter of a
    method that has one)."""
    paths = f"--model-dir {shlex.quote(model_source(wildcards.model))}"
    if "adapter" in input.keys():
        paths += f" --adapter {shlex.quote(input.adapter)}"
    return paths


def adapter_source(name):
    """A declared adapter as import-adapter reads it: its folder, or the download marker of a hub adapter."""
    entry = ADAPTERS[name]
    return entry["path"] or layout.HUB_ADAPTER_MARKER.format(adapter=name)


def require_its_model(wildcards):
    """A declared adapter runs on its base model only."""
    method = METHODS[wildcards.method]
    if not method.applies_to(wildcards.model):
        raise WorkflowError(f"adapter '{wildcards.method}' is declared on model {method.model}, not {wildcards.model}")


def import_adapter_inputs(wildcards):
    """The base model and the declared adapter (of this model only)."""
    require_its_model(wildcards)
    return {"model": model_inputs(wildcards.model), "source": adapter_source(wildcards.method)}


def tokenizer_users(tokenizer):
    """The run models that use this tokenizer; the first one's files build the shared tries."""
    return RUN.tokenizer_users(tokenizer)


def same_tokenizer_options(wildcards):
    """build-tries checks that every other model sharing the tokenizer really has the same one."""
    others = tokenizer_users(wildcards.tokenizer)[1:]
    return " ".join(f"--same-tokenizer {shlex.quote(model_source(name))}" for name in others)


def _cost_uses_model():
    return config["ablations"]["construction_cost"]["tokenizer"] == "model"


def construction_cost_inputs(wildcards):
    """The first run model, when Table 24 is measured with its tokenizer."""
    return {"model": model_inputs(RUN_MODELS[0])} if _cost_uses_model() else {}


def construction_cost_tokenizer_option(wildcards):
    return f"--tokenizer {shlex.quote(str(model_source(RUN_MODELS[0])))}" if _cost_uses_model() else ""


def construction_cost_mem_mb(wildcards):
    from calft.targets.cost import memory_mb  # SciPy, for this job alone (a callable resource)
    from calft.targets.prompts import evenly_spaced, prompt_set

    cost = config["ablations"]["construction_cost"]
    prompts = evenly_spaced(prompt_set(cost["prompt_set"], PROMPTS["number_format"]), cost["max_prompts"])
    return memory_mb(prompts, cost["decimals"])


def tries_inputs(wildcards):
    return {
        "targets": layout.TARGETS.format(**wildcards),
        "models": [path for name in tokenizer_users(wildcards.tokenizer) for path in model_inputs(name)],
    }


def train_inputs(wildcards):
    """The prepared model and the training targets of the variant; soft also needs their tries."""
    variant = run_variant(wildcards)
    inputs = {"model": model_inputs(wildcards.model),
              "targets": targets_file("train", variant.decimals, variant.max_bins)}
    if METHODS[wildcards.method].training.tries:
        inputs["tries"] = tries_file(MODELS[wildcards.model]["tokenizer"], "train", variant.decimals, variant.max_bins)
    return inputs


def tracking_option(wildcards):
    run = RUN.tracked_run(wildcards.model, wildcards.method, wildcards.variant)
    return f"--tracking {shlex.quote(json.dumps(run))}" if run else ""


def tries_option(wildcards, input):
    return f"--tries {shlex.quote(input.tries)}" if "tries" in input.keys() else ""


def train_launcher(wildcards, resources):
    """`calft`, or torchrun over the job's GPUs when it has more than one (DDP on one node)."""
    if int(resources.gpu) > 1:
        return f"torchrun --standalone --nproc-per-node {int(resources.gpu)} -m calft.cli"
    return "calft"


def model_and_adapter(wildcards):
    """The model, and the adapter of a method that has one (of the variant, when the folder names one)."""
    require_its_model(wildcards)
    inputs = {"model": model_inputs(wildcards.model)}
    if wildcards.variant:
        run_variant(wildcards)  # only a trained method has variants, and only its own
    if METHODS[wildcards.method].adapter:
        inputs["adapter"] = layout.ADAPTER.format(**wildcards)
    return inputs


def evaluation_inputs(wildcards):
    """The model, the adapter, the evaluation targets of the prompt set, and the SSOT instruction of
    an SSOT-prompted method."""
    return (model_and_adapter(wildcards) | {"targets": reference_targets(wildcards.prompt_set)}
            | ssot_instruction_input(wildcards))


def open_ended_inputs(wildcards):
    return model_and_adapter(wildcards) | ssot_instruction_input(wildcards, open_ended=True)


def ssot_instruction_input(wildcards, open_ended=False):
    """The file of the SSOT instruction a job of an SSOT-prompted method reads (for its task and its
    model's chat protocol), so that editing it reruns exactly those jobs."""
    if METHODS[wildcards.method].prompting != SEED_THEN_ANSWER:
        return {}
    name = ssot.role(MODELS[wildcards.model]["chat_protocol"], open_ended)
    return {"ssot_instruction": ssot.instruction_file(TRANSFER["ssot"]["instructions"], name)}


def ssot_option(wildcards, input):
    path = input.get("ssot_instruction")
    return f"--ssot-instruction {shlex.quote(path)}" if path else ""


def irt_option(wildcards, input):
    return " ".join(f"--irt-parameters {shlex.quote(path)}" for path in input.irt)


def evaluator_inputs(key):
    """A NoveltyBench evaluator model or tokenizer: nothing for a local folder, else its download marker."""
    return [] if Path(NOVELTY[key]).is_dir() else [layout.NOVELTY_EVALUATOR_MARKER.format(evaluator=key)]


def evaluator_options(wildcards, input):
    """Each NoveltyBench evaluator as the job loads it: its download marker, else the setting's folder."""
    return " ".join(f"--{key.replace('_', '-')} {shlex.quote((input.get(key) or [NOVELTY[key]])[0])}"
                    for key in NOVELTY_EVALUATORS)


def aggregate_inputs(wildcards):
    """Exactly the files the report reads (calft.report.items.report_inputs)."""
    return [str(path) for paths in report_items.report_inputs(REPORT_SELECTION, layout.RESULTS).values()
            for path in paths.values()]


def aggregate_outputs():
    return [str(path) for path in report_items.report_outputs(REPORT_SELECTION, layout.TABLES, layout.FIGURES)]


def folder_of(name):
    """The folder of the aggregate output called `name` (the tables hold summary.csv, the figures
    figure 2)."""
    return lambda wildcards, output: next(str(Path(path).parent) for path in output if Path(path).name == name)


def ood_targets_option(wildcards, input):
    """Figure 3 draws the OOD samples over the targets of the OOD prompts."""
    return " ".join(f"--ood-targets {shlex.quote(path)}" for path in input.ood_targets)


def report_item(path):
    """A table or figure marked for `snakemake --report`, with the caption and category of its item
    (calft.report.items)."""
    caption, category = report_items.report_entry(Path(path).name, REPORT_SELECTION)
    return report(path, caption=f"../report/{caption}.rst", category=category)


def all_outputs():
    """Everything the workflow produces for the configured models: prepared models, adapters, tries,
    and the tables and figures (which pull in every evaluation)."""
    outputs = [path for name in RUN_MODELS for path in model_inputs(name)]
    for name in RUN_MODELS:
        for method in TRAINED:
            if method in config["methods"]:
                outputs.append(layout.ADAPTER.format(**run_keys(name, method)))
    outputs += aggregate_outputs()
    for tokenizer in dict.fromkeys(MODELS[m]["tokenizer"] for m in RUN_MODELS):
        for method in [name for name in TRAINED if name in config["methods"] and METHODS[name].training.tries]:
            final = variants.final(config, method)
            outputs.append(tries_file(tokenizer, "train", final.decimals, final.max_bins))
        for prompt_set in PROMPTS["evaluation"]:
            outputs.append(reference_tries(tokenizer, prompt_set))
    return outputs


def release_inputs(wildcards):
    """A trained adapter, and the scores and logit KL of it and of the base model on every evaluation
    prompt set (the card's headline metrics)."""
    if not METHODS[wildcards.method].training:
        raise WorkflowError(f"only an adapter calft trains is released, not '{wildcards.method}'")

    def results(method):
        keys = dict(wildcards) | {"method": method}
        return [template.format(**keys, prompt_set=prompt_set) for prompt_set in PROMPTS["evaluation"]
                for template in (layout.SCORES, layout.LOGIT_KL)]

    base = [name for name in RUN_METHODS if not METHODS[name].adapter and METHODS[name].main]
    return {"adapter": layout.ADAPTER.format(**wildcards), "results": results(wildcards.method),
            "base_results": results(base[0]) if base and not wildcards.variant else []}


def release_targets():
    """The `release` target: every trained adapter of the run models, with its card's metrics."""
    return [layout.RELEASE.format(**run_keys(model, method)) for model in RUN_MODELS for method in TRAINED
            if method in config["methods"]]


def ablation_inputs(wildcards):
    """Exactly the files the ablation report reads (calft.layout.ablation_inputs)."""
    inputs = layout.ablation_inputs(ABLATION_SELECTION)
    return [str(path) for paths in inputs.values() for path in paths.values()]


def ablation_outputs():
    return [str(path) for path in report_items.ablation_outputs(ABLATION_SELECTION, layout.ABLATIONS)]


def ablation_targets():
    """The `ablations` target: Tables 24-26 and Figure 14, and every variant's adapter, logit KL and
    the further evaluations it asks for."""
    outputs = ablation_outputs()
    for variant in VARIANTS.values():
        for model in variant.models:
            keys = run_keys(model, variant.method, variant)
            outputs.append(layout.ADAPTER.format(**keys))
            outputs += [layout.LOGIT_KL.format(**keys, prompt_set=s) for s in PROMPTS["evaluation"]]
            outputs += [EVALUATIONS[evaluation].results.format(**keys) for evaluation in variant.evaluations]
    return outputs
