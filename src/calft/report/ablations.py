"""The paper's ablations (Appendix E) from cached parquet: Table 24 (what the output space and the trie
cost to build over the precision grid), Tables 25-26 (soft and hard training variants, family-median
normalized W1 per model and split against the one evaluation reference, each run's settings as its
training log records them) and the rows' marks (the final setting; the best value per model and
split in bold).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from calft import artifacts
from calft.errors import UserError
from calft.methods import METHODS
from calft.report import records
from calft.report.flat_tables import FINAL
from calft.report.settings import AblationRun
from calft.report.tables import SET_TITLES

MIB = 2**20


def cost_reference(construction_cost) -> dict:
    """The evaluation reference the construction-cost measurements mark, as they record it."""
    recorded = artifacts.read_provenance(construction_cost)["config"].get("reference")
    if not isinstance(recorded, dict) or not {"decimals", "max_bins"} <= set(recorded):
        raise UserError(f"{construction_cost} records no evaluation reference: rerun the rule construction_cost")
    return recorded


def recorded_runs(runs: list[AblationRun], train_logs: dict) -> list[AblationRun]:
    """The rows of Tables 25-26 with the settings their training logs record; a run trained with
    other settings than the report is asked for (a variant edited after training) is an error."""
    recorded = []
    for run in runs:
        grids = {
            model: records.trained_grid(train_logs[model, run.method, run.variant], run.method) for model in run.models
        }
        configured = {key: getattr(run, key) for key in ("decimals", "max_bins", "draws_per_prompt", "epochs")}
        for model, grid in grids.items():
            if grid != configured:
                changed = [key for key in configured if grid[key] != configured[key]]
                was = ", ".join(f"{key} {grid[key]}" for key in changed)
                now = ", ".join(f"{key} {configured[key]}" for key in changed)
                name = f"variant '{run.variant}' of {run.method}" if run.variant else f"the final {run.method} setting"
                raise UserError(
                    f"{name} on {model} was trained with {was}, but the config now says {now}: retrain it "
                    f"with `snakemake --cores all {'ablations' if run.variant else 'all'}` (its changed settings "
                    "rerun its training), or restore the config"
                )
        recorded.append(dataclasses.replace(run, **next(iter(grids.values()))))
    return recorded


def cost_note(recorded: dict) -> str:
    """What Table 24's measurements were taken on, as they record it."""
    cost = recorded.get("construction_cost", {})
    tokens = (
        "one token per character" if cost.get("tokenizer") == "characters" else f"{recorded.get('tokenizer')}'s tokens"
    )
    return (
        f"the '{cost.get('prompt_set', 'train')}' prompts, {tokens}, one prompt at a time; reference = the reference "
        "implementation's algorithm (what the paper measured: the whole decimal grid materialized, then thinned), "
        "calft = calft's; peaks are tracemalloc's; ★ = the evaluation reference"
    )


COST_MEASURES = {
    "output space ms/prompt": ("space_seconds", "mean", 1000),
    "trie ms/prompt": ("trie_seconds", "mean", 1000),
    "output space peak MiB": ("space_peak_bytes", "max", 1 / MIB),
    "trie peak MiB": ("trie_peak_bytes", "max", 1 / MIB),
}


def construction_cost_table(cost: pd.DataFrame, reference: tuple[int, int]) -> pd.DataFrame:
    """Table 24: per grid point, the mean construction time per prompt of the output space and the
    trie and the worst per-prompt tracemalloc peak of each, with the reference's algorithm (what
    the paper measured), calft's and their ratio; the evaluation reference's row marked."""
    keys = ["decimals", "max_bins"]
    calft = cost[cost.algorithm == "calft"].groupby(keys, sort=True)
    paper = cost[cost.algorithm == "reference"].groupby(keys, sort=True)
    table = pd.DataFrame(
        {
            "prompts": calft.size(),
            "mean outputs": calft.outputs.mean().round().astype(int),
            "mean trie nodes": calft.trie_nodes.mean().round().astype(int),
        }
    )
    for label, (column, statistic, scale) in COST_MEASURES.items():
        ours, theirs = calft[column].agg(statistic) * scale, paper[column].agg(statistic) * scale
        table[f"{label}: reference"] = theirs.round(3)
        table[f"{label}: calft"] = ours.round(3)
        table[f"{label}: reference/calft"] = (theirs / ours).round(1)
    table["row"] = ["evaluation reference" if key == reference else "" for key in table.index]
    return table.reset_index()


def variant_table(
    summary: pd.DataFrame, runs: list, method: str, models: list[str], prompt_sets: list[str]
) -> pd.DataFrame:
    """Table 25 (soft) or 26 (hard): a row per run of `method` (its settings), a column per model and
    prompt set with the family-median normalized W1; '' marks no run of that model."""
    draws = METHODS[method].training.draws_label
    rows = []
    for run in (run for run in runs if run.method == method):
        row = {
            "variant": run.variant or FINAL,
            "d": run.decimals,
            "max bins": run.max_bins,
            draws: run.draws_per_prompt,
            "epochs": run.epochs,
            "total draws": run.draws_per_prompt * run.epochs,
        }
        for model in models:
            for prompt_set in prompt_sets:
                match = summary[
                    (summary.model == model)
                    & (summary.method == method)
                    & (summary.variant == run.variant)
                    & (summary.prompt_set == prompt_set)
                ]
                row[f"{model} {prompt_set} W1"] = match.normalized_w1.iloc[0] if len(match) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def variant_title(method: str, table_number: int, prompt_sets: list[str], reference: str) -> str:
    sets = ", ".join(SET_TITLES.get(s, s) for s in prompt_sets)
    return (
        f"Table {table_number}: {method}-target training variants, family-median normalized W1 "
        f"({sets}) against the evaluation reference {reference}"
    )
