"""The paper beside calft: each number the paper prints (paper_numbers.yaml), calft's value where the
run measured the same thing under the same configuration, their difference, and otherwise the
configuration keys that differ.

A measurement (one `register_measurement` function per kind, called with the report, the entry's
configuration and its arguments) reads the report's inputs and returns calft's value together with
the configuration the run's artifacts record for it, as the keys the data file uses. Settings-derived
numbers (training prompts, planned optimizer steps) are computed by calft's own code at the paper's
settings, so they compare on any run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources

import numpy as np
import pandas as pd
import yaml

from calft import methods
from calft.report import appendix

THIS_RUN = "this run's artifacts"
AT_PAPER_SETTINGS = "calft's code at the paper's settings"
COLUMNS = ["where", "measures", "paper", "calft", "difference", "comparison", "calft's value from", "note"]


@dataclass(frozen=True)
class Measured:
    value: float | None  # None: the run has nothing of the kind
    recorded: dict = field(default_factory=dict)  # configuration key -> what the run's artifacts record
    shown: str | None = None  # calft's value as the table prints it (a count "a/b"), else the number
    source: str = THIS_RUN


MEASUREMENTS: dict[str, Callable[..., Measured]] = {}


def register_measurement(kind: str):
    def register(function):
        MEASUREMENTS[kind] = function
        return function

    return register


def paper_numbers() -> list[dict]:
    """The entries of the data file, in its order."""
    text = resources.files("calft.report").joinpath("paper_numbers.yaml").read_text()
    return yaml.safe_load(text)["entries"]


def printed_value(printed: str) -> float:
    """A printed number as a float: '0.0759', '1101/1224' (the count), '80%' and '~40%' (0.8, 0.4)."""
    text = printed.lstrip("~")
    if "/" in text:
        return float(text.split("/")[0])
    if text.endswith("%"):
        return float(text[:-1]) / 100
    return float(text)


def model_sources(report) -> dict[str, str]:
    """The run's models (config name -> the hub id its artifacts record as its source)."""
    sources = report.selection_sources
    return {name: sources[name] for name in report.selection.models if name in sources}


def training_record(config: dict, method: str) -> dict:
    """A training log's recorded configuration as the data file's training.* keys."""
    targets, training = config["targets"], config["training"]
    schedule = methods.METHODS[method].training.schedule(training)
    whole = targets.get("per_family") is None and targets.get("families") is None
    return {
        "training.method": method,
        "training.prompts": "full grid" if whole else f"{targets.get('per_family')} per family",
        "training.decimals": targets["decimals"],
        "training.max_bins": targets["max_bins"],
        "training.draws_per_prompt": schedule["draws_per_prompt"],
        "training.epochs": schedule["epochs"],
        "training.global_batch_size": training["global_batch_size"],
    }


def _agreed(records: list[dict]) -> dict:
    """The keys on which every record agrees (a key that varies is recorded as 'varies')."""
    keys = dict.fromkeys(key for record in records for key in record)
    agreed = {}
    for key in keys:
        values = {repr(record.get(key)) for record in records}
        agreed[key] = records[0].get(key) if len(values) == 1 else "varies between models"
    return agreed


def _run_training(report, method: str) -> dict:
    """What the run's training logs of `method` record, where its models agree, with their hardware."""
    configs = [config for (_, name), (_, config) in report.training_logs.items() if name == method]
    if not configs:
        return {}
    hardware = {appendix.device_label(config) for config in configs}
    agreed = _agreed([training_record(config, method) for config in configs])
    return agreed | {"hardware": hardware.pop() if len(hardware) == 1 else "varies between models"}


def _model_named(report, source: str) -> str | None:
    return next((name for name, recorded in model_sources(report).items() if recorded == source), None)


def _models(report) -> dict:
    return {"models": sorted(model_sources(report).values())}


@register_measurement("training_prompts")
def training_prompts(report, configuration: dict) -> Measured:
    from calft.targets.prompts import prompt_set

    return Measured(len(prompt_set("train")), {"training.prompts": "full grid"}, source=AT_PAPER_SETTINGS)


@register_measurement("planned_optimizer_steps")
def planned_optimizer_steps(report, configuration: dict, method: str) -> Measured:
    """calft's schedule (calft.training.schedule) for the paper's prompts, batch, epochs and draws, one
    draw per batch item (the paper's batches)."""
    from calft.targets.prompts import prompt_set
    from calft.training.schedule import MethodSchedule, steps_per_epoch

    epochs, draws = configuration["training.epochs"], configuration["training.draws_per_prompt"]
    schedule = MethodSchedule(epochs=epochs, draws_per_prompt=draws, group_size=1, tau=1.0, epsilon=0.0)
    batch = configuration["training.global_batch_size"]
    steps = steps_per_epoch(len(prompt_set("train")), schedule, batch) * epochs
    recorded = {key: value for key, value in configuration.items() if key.startswith("training.")}
    return Measured(steps, recorded, source=AT_PAPER_SETTINGS)


@register_measurement("optimizer_steps")
def optimizer_steps(report, configuration: dict, method: str) -> Measured:
    steps = {int(log.step.max()) for (_, m), (log, _) in report.training_logs.items() if m == method}
    value = steps.pop() if len(steps) == 1 else None
    return Measured(value, _run_training(report, method))


@register_measurement("family_median_w1")
def family_median_w1(report, configuration: dict, method: str, prompt_set: str) -> Measured:
    model = _model_named(report, configuration["model"])
    if model is None:
        return Measured(None, {"model": None})
    rows = report.summary[
        (report.summary.model == model) & (report.summary.method == method) & (report.summary.prompt_set == prompt_set)
    ]
    _, config = report.training_logs.get((model, method), (None, None))
    recorded = {"model": configuration["model"], **(training_record(config, method) if config else {})}
    recorded.update(report.evaluation_record(model, method, prompt_set))
    return Measured(float(rows.normalized_w1.iloc[0]) if len(rows) else None, recorded)


def _open_ended_record(report, method: str) -> dict:
    return {**_models(report), **report.open_ended_record(method), **_run_training(report, method)}


@register_measurement("pairs_above_base")
def pairs_above_base(report, configuration: dict, method: str, measure: str) -> Measured:
    from calft.report.aggregates import open_ended_counts

    if not report.inputs["open_ended"]:
        return Measured(None, _open_ended_record(report, method))
    counts = open_ended_counts(report.open_ended)
    row = counts[(counts.family == "all") & (counts.method == method) & (counts.measure == measure)]
    if row.empty:
        return Measured(None, _open_ended_record(report, method))
    higher, pairs = int(row.higher.iloc[0]), int(row.pairs.iloc[0])
    return Measured(higher, _open_ended_record(report, method), f"{higher}/{pairs}")


@register_measurement("models_where")
def models_where(report, configuration: dict, method: str, measure: str, claim: str) -> Measured:
    """How many models a claim holds for: `above_base` (method's value above base's) or `best` (the
    largest among the main methods)."""
    transfer = report.transfer
    if transfer is None or measure not in transfer:
        return Measured(None, {**_models(report), **_run_training(report, method)})
    values = transfer[transfer.method.isin(methods.MAIN)].pivot(index="model", columns="method", values=measure)
    if method not in values or methods.BASE not in values:
        return Measured(None, {**_models(report), **_run_training(report, method)})
    if claim == "above_base":
        holds = values[method] > values[methods.BASE]
    else:
        holds = values[method] >= values.max(axis=1)
    record = _open_ended_record(report, method) if measure == "support_size" else _run_training(report, method)
    return Measured(int(holds.sum()), {**_models(report), **record}, f"{int(holds.sum())}/{len(values)}")


@register_measurement("top_answers_share")
def top_answers_share(report, configuration: dict, method: str, category: str, top: int) -> Measured:
    """The share of a model's samples of one open-ended prompt on its `top` most frequent answers."""
    model = _model_named(report, configuration["model"])
    if model is None:
        return Measured(None, {"model": None})
    record = {**_open_ended_record(report, method), "model": configuration["model"]}
    samples = report.open_ended_samples(model, method) if report.inputs["open_ended"] else None
    if samples is None:
        return Measured(None, record)
    index = report.open_ended[report.open_ended.category == category].prompt_index
    answers = samples[samples.prompt_index.isin(set(index))].normalized
    if answers.empty:
        return Measured(None, record)
    share = float(answers.value_counts().iloc[:top].sum() / len(answers))
    return Measured(share, record, f"{share:.0%}")


def _training_costs(report, method: str):
    logs = {key: value for key, value in report.training_logs.items() if key[1] == method}
    if not logs:  # the method is not trained in this run
        return None
    costs = appendix.training_cost(logs)
    return costs.iloc[0] if len(costs) else None


@register_measurement("training_minutes")
def training_minutes(report, configuration: dict, method: str, statistic: str) -> Measured:
    costs = _training_costs(report, method)
    record = {**_models(report), **_run_training(report, method)}
    return Measured(None if costs is None else float(costs[f"{statistic}_minutes"]), record)


@register_measurement("gpu_hours")
def gpu_hours(report, configuration: dict, method: str) -> Measured:
    costs = _training_costs(report, method)
    record = {**_models(report), **_run_training(report, method)}
    return Measured(None if costs is None else float(costs.gpu_hours), record)


def _same(recorded, paper) -> bool:
    if isinstance(paper, list):
        return isinstance(recorded, list) and sorted(map(str, recorded)) == sorted(map(str, paper))
    if isinstance(paper, int | float) and isinstance(recorded, int | float):
        return bool(np.isclose(recorded, paper))
    return recorded == paper


def _differences(recorded: dict, configuration: dict) -> list[str]:
    """The configuration keys on which the run differs from the paper, each with the run's value."""
    if "model" in recorded and recorded["model"] is None:
        return [f"model {configuration['model']} is not in this run"]
    differing = []
    for key, paper in configuration.items():
        if key not in recorded:
            differing.append(f"{key} (not recorded)")
        elif recorded[key] is None:
            differing.append(f"{key} (not in this run)")
        elif not _same(recorded[key], paper):
            shown = recorded[key]
            if isinstance(paper, list):
                shown = f"{len(shown)} ({', '.join(map(str, shown[:3]))}{', ...' if len(shown) > 3 else ''})"
            differing.append(f"{key} = {shown}")
    return differing


def _measure(report, entry: dict) -> Measured:
    arguments = dict(entry["measurement"])
    return MEASUREMENTS[arguments.pop("kind")](report, entry["configuration"], **arguments)


def comparison_table(report, entries: list[dict] | None = None) -> pd.DataFrame:
    """One row per paper number: the paper's value, calft's, their difference, or why they differ."""
    rows = []
    for entry in paper_numbers() if entries is None else entries:
        measured = _measure(report, entry)
        differing = _differences(measured.recorded, entry["configuration"])
        comparable = not differing and measured.value is not None and np.isfinite(measured.value)
        paper = printed_value(entry["printed"])
        shown = measured.shown or (f"{measured.value:.4g}" if measured.value is not None else "")
        reason = "not comparable: " + "; ".join(differing or ["not measured"])
        rows.append(
            {
                "where": entry["where"],
                "measures": entry["measures"],
                "paper": entry["printed"],
                "calft": shown if comparable else "",
                "difference": f"{measured.value - paper:+.4g}" if comparable else "",
                "comparison": "compared" if comparable else reason,
                "calft's value from": measured.source,
                "note": entry.get("note", ""),
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)
