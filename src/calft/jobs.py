"""What each workflow rule gives its command: the `--settings` section of a job, derived from a
validated config and the job's wildcards, one function per rule.

The workflow's rules (workflow/rules/*.smk) and the command line's `--config FILE --model NAME ...`
(calft.command) both call `settings`, so a command run by hand gets exactly the settings its rule
would give it. Cheap to import: the workflow reads it in every job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from calft import layout, methods, variants
from calft.errors import UserError

DERIVATIONS: dict[str, Callable] = {}


def derives(*rules: str):
    """Register the function that derives the settings of these rules' jobs."""

    def register(function: Callable) -> Callable:
        for rule in rules:
            DERIVATIONS[rule] = function
        return function

    return register


class Run:
    """A validated config (calft.config.validate) as the rules read it: the run models, the declared
    adapters of those models (registered as methods), the methods in table order and the variants."""

    def __init__(self, config: dict):
        self.config = config
        self.models = config["models"]
        self.run_models = config["run_models"] or list(self.models)
        self.adapters = {name: entry for name, entry in config["adapters"].items() if entry["model"] in self.run_models}
        methods.register_adapters({name: entry["model"] for name, entry in self.adapters.items()})
        transfer = config["transfer"]
        self.methods = [name for name in methods.METHODS if name in config["methods"]]
        self.methods += list(self.adapters)
        self.methods += [name for name in methods.BASELINES if transfer[name]["enabled"]]
        self.variants = variants.declared(config)

    def variant(self, method: str, variant: str = "") -> variants.Variant:
        """The training setting of a (method, variant) results folder; `variant` is the folder's
        suffix (`~name`) or the bare name."""
        name = variant.removeprefix(variants.SEPARATOR)
        if not name:
            return variants.final(self.config, method)
        if name not in self.variants:
            raise UserError(
                f"unknown variant '{name}'; ablations.variants declares {', '.join(self.variants) or 'none'}"
            )
        found = self.variants[name]
        if found.method != method:
            raise UserError(f"variant '{name}' varies {found.method}, not {method}")
        return found

    def model(self, name: str) -> dict:
        if name not in self.models:
            raise UserError(f"unknown model '{name}'; defined models: {', '.join(self.models)}")
        return self.models[name]

    def adapter(self, name: str) -> dict:
        if name not in self.adapters:
            raise UserError(f"'{name}' is not a declared adapter of a run model ({', '.join(self.adapters) or 'none'})")
        return self.adapters[name]

    def method(self, name: str) -> methods.Method:
        if name not in methods.METHODS:
            raise UserError(f"unknown method '{name}' ({', '.join(methods.METHODS)})")
        return methods.METHODS[name]

    def tracked_run(self, model: str, method: str, variant: str) -> dict | None:
        """The tracker run (calft.tracking) of a (model, method, variant): its curves and headline
        metrics under logs/tracking; None when no tracker is configured."""
        tracking = self.config["tracking"]
        if not tracking["trackers"]:
            return None
        run = f"{method}{variant}"
        return dict(tracking, run=f"{model}/{run}", group=run, folder=layout.TRACKING)

    @cached_property
    def report(self) -> dict:
        """The report's selection (calft.report.settings.ReportSelection)."""
        from calft.evaluations import optional as optional_evaluations  # its schemas: not for `calft --help`

        config = self.config
        return dict(
            models=self.run_models,
            methods=self.methods,
            adapters={name: entry["model"] for name, entry in self.adapters.items()},
            families=config["families"],  # declared distribution families
            prompt_sets=config["prompts"]["evaluation"],
            evaluations=[evaluation.name for evaluation in optional_evaluations() if evaluation.enabled(config)],
            ablations=self.ablation_report,  # for the paper index: what the ablations target writes
            statistics=config["report"],  # sample-count marks and bootstrap intervals
        )

    @cached_property
    def ablation_report(self) -> dict:
        """The runs of Tables 25-26 (calft.report.settings.AblationSelection)."""
        return variants.ablation_report(self.config)

    def tokenizer_users(self, tokenizer: str) -> list[str]:
        """The run models that use this tokenizer; the first one's files build the shared tries."""
        return [name for name in self.run_models if self.models[name]["tokenizer"] == tokenizer]


def settings(rule: str, run: Run, **wildcards) -> dict:
    """The settings of the job of `rule` with these wildcards (their values as in the job's paths)."""
    if rule not in DERIVATIONS:
        raise UserError(f"the rule {rule} gives its command no settings")
    return DERIVATIONS[rule](run, **wildcards)


# Models and adapters.


@derives("prepare_embedded_model")
def _embedded(run: Run, **_) -> dict:
    return {"source": "embedded"}


@derives("download_hub_model")
def _hub_model(run: Run, hub_model: str, **_) -> dict:
    model = run.model(hub_model)
    return {"source": model["source"], "revision": model["revision"] or "main"}


@derives("download_hub_adapter")
def _hub_adapter(run: Run, adapter: str, **_) -> dict:
    entry = run.adapter(adapter)
    return {"source": entry["hub"], "revision": entry["revision"], "files": "adapter"}


@derives("import_adapter")
def _import_adapter(run: Run, model: str, method: str, **_) -> dict:
    return {"name": method, "model": run.model(model), "adapter": run.adapter(method)}


# Targets.


@derives("discretize")
def _discretize(run: Run, prompt_set: str, decimals: str, bins: str, **_) -> dict:
    """The prompts of a prompt set (the training grid may be thinned) and their discretization."""
    prompts, train = run.config["prompts"], prompt_set == "train"
    declared = run.config["families"]
    return dict(
        prompt_set=prompt_set,
        decimals=int(decimals),
        max_bins=int(bins),
        number_format=prompts["number_format"],
        families=prompts["train_families"] if train else None,
        per_family=prompts["train_per_family"] if train else None,
        **({"declared_families": declared} if declared else {}),
    )


@derives("build_tries")
def _build_tries(run: Run, tokenizer: str, **_) -> dict:
    users = run.tokenizer_users(tokenizer)
    if not users:
        raise UserError(f"no run model uses the tokenizer '{tokenizer}'")
    return {"terminator": run.models[users[0]]["terminator"]}


@derives("construction_cost")
def _construction_cost(run: Run, **_) -> dict:
    """Table 24's grid and prompts, the first run model's terminator and the reference's grid point."""
    targets = run.config["targets"]
    return dict(
        construction_cost=run.config["ablations"]["construction_cost"],
        number_format=run.config["prompts"]["number_format"],
        terminator=run.models[run.run_models[0]]["terminator"],
        reference=dict(decimals=targets["eval_decimals"], max_bins=targets["eval_max_bins"]),
    )


# Training and evaluation.


@derives(*(f"train_{name}" for name in methods.TRAINED))
def _train(run: Run, model: str, method: str, variant: str = "", **_) -> dict:
    """The method, the model, the training section with the variant's epochs and draws, and the
    tracker run of its curves."""
    return dict(
        method=method,
        model=run.model(model),
        training=run.variant(method, variant).training(run.config["training"]),
        tracking=run.tracked_run(model, method, variant),
    )


def _generation(run: Run, key: str, section: dict, model: str, method: str) -> dict:
    """A command that generates: the model, its generation `section` under `key`, and the method's
    prompting. A method with sizes of its own (SSOT: transfer.ssot) has its own sample counts and
    generation lengths."""
    found = run.method(method)
    if found.sizes:
        sizes = run.config["transfer"][found.sizes]
        prefix = "open_ended_" if key == "open_ended" else ""  # open-ended generation has sizes of its own
        section = section | {name: sizes[prefix + name] for name in ("num_samples", "max_new_tokens")}
    return {"model": run.model(model), key: section, "prompting": found.prompting}


@derives("sample")
def _sample(run: Run, model: str, method: str, **_) -> dict:
    return _generation(run, "sampling", run.config["sampling"], model, method)


@derives("logit_kl")
def _logit_kl(run: Run, model: str, method: str, variant: str = "", **_) -> dict:
    tracking = run.tracked_run(model, method, variant)
    return {"model": run.model(model), "sampling": run.config["sampling"], "tracking": tracking}


@derives("open_ended")
def _open_ended(run: Run, model: str, method: str, **_) -> dict:
    return _generation(run, "open_ended", run.config["transfer"]["open_ended"], model, method)


@derives("mcq")
def _mcq(run: Run, model: str, **_) -> dict:
    return {"model": run.model(model), "mcq": run.config["transfer"]["mcq"]}


@derives("noveltybench")
def _noveltybench(run: Run, model: str, **_) -> dict:
    return {"model": run.model(model), "noveltybench": run.config["transfer"]["noveltybench"]}


@derives("retention")
def _retention(run: Run, model: str, **_) -> dict:
    return {"model": run.model(model), "retention": run.config["retention"]}


@derives("perplexity")
def _perplexity(run: Run, model: str, **_) -> dict:
    return {"model": run.model(model), "perplexity": run.config["perplexity"]}


# Evaluation data.


@derives("retention_data")
def _retention_data(run: Run, suite: str | None = None, **_) -> dict:
    retention = run.config["retention"]
    return retention | {"suite": suite or retention["suite"]}


@derives("fetch_irt_parameters")
def _fetch_irt(run: Run, **_) -> dict:
    return dict(run.config["retention"])


@derives("fetch_paloma")
def _fetch_paloma(run: Run, **_) -> dict:
    return run.config["perplexity"] | {"offline": False}


@derives("perplexity_data_offline")
def _perplexity_offline(run: Run, **_) -> dict:
    return run.config["perplexity"] | {"offline": True}


@derives("fetch_noveltybench_prompts")
def _fetch_noveltybench(run: Run, **_) -> dict:
    return dict(run.config["transfer"]["noveltybench"])


@derives("download_noveltybench_model")
def _noveltybench_model(run: Run, evaluator: str, **_) -> dict:
    return {"source": run.config["transfer"]["noveltybench"][evaluator]}


# Report.


@derives("aggregate")
def _aggregate(run: Run, **_) -> dict:
    return run.report


@derives("aggregate_ablations")
def _aggregate_ablations(run: Run, **_) -> dict:
    return run.ablation_report


# Commands run by hand: which rule's settings a command takes, and the options that name its job.

JOB_OPTIONS = {
    "model": "a model of the config's `models`",
    "method": "a method (base, soft, hard, ssot, or a declared adapter)",
    "variant": "a training variant of ablations.variants (default: the method's top-level setting)",
    "prompt_set": "a prompt set (train, unseen, ood, unseen-full, ood-full)",
    "evaluator": "a NoveltyBench evaluator (similarity_model, similarity_tokenizer, reward_model)",
}


@dataclass(frozen=True)
class Job:
    """How a command run by hand (`--config FILE --model NAME ...`) names the job whose settings it
    takes: its rule, or a function (run, **options) -> (rule, wildcards), and the options it reads."""

    rule: str | Callable
    options: tuple[str, ...] = ()
    required: tuple[str, ...] = ()

    def settings(self, run: Run, **given) -> dict:
        missing = [name for name in self.required if given.get(name) is None]
        if missing:
            raise UserError(f"--config needs --{missing[0].replace('_', '-')} ({JOB_OPTIONS[missing[0]]})")
        given = {name: value for name, value in given.items() if value is not None}
        if callable(self.rule):
            rule, wildcards = self.rule(run, **given)
        else:
            rule, wildcards = self.rule, _wildcards(given)
        return settings(rule, run, **wildcards)


def _wildcards(given: dict) -> dict:
    """The options as the job's wildcards: a variant by its folder suffix."""
    variant = given.get("variant", "")
    return given | {"variant": f"{variants.SEPARATOR}{variant}" if variant else ""}


def discretize_job(run: Run, prompt_set: str, method: str | None = None, variant: str = "") -> tuple[str, dict]:
    """The training targets of a trained method (and variant), or an evaluation set's reference."""
    if prompt_set == "train":
        if method is None or not run.method(method).training:
            raise UserError("--prompt-set train needs --method naming a trained method (and --variant for a variant)")
        grid = run.variant(method, variant)
        decimals, bins = grid.decimals, grid.max_bins
    else:
        targets = run.config["targets"]
        decimals, bins = targets["eval_decimals"], targets["eval_max_bins"]
    return "discretize", {"prompt_set": prompt_set, "decimals": str(decimals), "bins": str(bins)}


def tries_job(run: Run, model: str) -> tuple[str, dict]:
    return "build_tries", {"tokenizer": run.model(model)["tokenizer"]}


def train_job(run: Run, model: str, method: str, variant: str = "") -> tuple[str, dict]:
    if not run.method(method).training:
        raise UserError(f"--method {method}: calft trains only {', '.join(methods.TRAINED)}")
    return f"train_{method}", _wildcards({"model": model, "method": method, "variant": variant})


def prepare_job(run: Run, model: str | None = None, method: str | None = None, evaluator: str | None = None):
    """A model (embedded or from the hub), a declared hub adapter (--method) or a NoveltyBench evaluator."""
    if [model, method, evaluator].count(None) != 2:
        raise UserError("--config needs one of --model, --method (a declared hub adapter) and --evaluator")
    if model is not None:
        embedded = run.model(model)["source"] == "embedded"
        return ("prepare_embedded_model", {}) if embedded else ("download_hub_model", {"hub_model": model})
    if method is not None:
        if not (run.adapters.get(method) or {}).get("hub"):
            raise UserError(f"--method {method} is not a declared hub adapter of a run model")
        return "download_hub_adapter", {"adapter": method}
    return "download_noveltybench_model", {"evaluator": evaluator}


def perplexity_data_job(run: Run) -> tuple[str, dict]:
    return ("perplexity_data_offline" if run.config["perplexity"]["offline"] else "fetch_paloma"), {}
