"""The paper's settings tables and cost report, generated rather than written by hand: Tables 3-4
(shared and method-specific hyperparameters, from what each adapter's training log records),
Table 5 (the 30 families, from the registry) and Appendix B.1 (training minutes and GPU-hours per
method from the training logs, wall-clock per stage from Snakemake's benchmark files).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from calft.methods import METHODS
from calft.targets.families import FAMILIES
from calft.targets.prompts import SELECTED, TEST_GRIDS, TRAIN_GRIDS

SHARED = [
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "lora_target_modules",
    "learning_rate",
    "weight_decay",
    "warmup_ratio",
    "global_batch_size",
    "per_device_batch_size",
    "seed",
    "order",
    "distributed",
    "gpus",
]


def _values(items) -> str:
    """One value, or the distinct ones joined when models differ."""
    shown = list(dict.fromkeys(", ".join(map(str, v)) if isinstance(v, list) else str(v) for v in items))
    return " / ".join(shown)


RECORDED = {  # Table 3's rows beyond the training section, as a training log's record holds them
    "quantile interval": lambda r: f"[{r['targets'].get('quantile_low')}, {r['targets'].get('quantile_high')}]",
    "training prompts per family": lambda r: r["targets"].get("per_family") or "all (the paper's grid)",
    "precision": lambda r: r.get("model", {}).get("dtype", "not recorded"),
    "hardware": lambda r: f"{r['device']['processes']} x {r['device']['name']}" if r.get("device") else "not recorded",
    "optimizer": lambda r: r.get("optimization", {}).get("optimizer", "not recorded"),
    "learning-rate schedule": lambda r: r.get("optimization", {}).get("schedule", "not recorded"),
    "maximum length": lambda r: (
        f"no truncation (longest prompt {r['optimization']['longest_prompt_tokens']} tokens)"
        if "optimization" in r
        else "not recorded"
    ),
}


def hyperparameter_tables(
    records: dict[tuple[str, str], dict], steps: dict[tuple[str, str], int]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tables 3 and 4 from the training logs ((model, method) -> the record's config, and the
    optimizer steps the log holds): the shared settings (one column), and per trained method its
    targets, schedule and steps."""
    shared = pd.DataFrame(
        {
            "hyperparameter": SHARED + list(RECORDED),
            "value": [_values(r["training"][key] for r in records.values()) for key in SHARED]
            + [_values(read(r) for r in records.values()) for read in RECORDED.values()],
        }
    )
    methods = list(dict.fromkeys(method for _, method in records))

    def scheduled(setting: str, when=lambda training: True):
        return lambda r, m: METHODS[m].training.schedule(r["training"])[setting] if when(METHODS[m].training) else "—"

    rows = {
        "training decimals": lambda r, m: r["targets"]["decimals"],
        "training max bins": lambda r, m: r["targets"]["max_bins"],
        "epochs": scheduled("epochs"),
        "draws per prompt per epoch": scheduled("draws_per_prompt"),
        "group size (one prompt forward)": scheduled("group_size"),
        "tau": scheduled("tau", lambda training: training.smoothed),
        "epsilon": scheduled("epsilon", lambda training: training.smoothed),
        "warm-up steps": lambda r, m: r.get("optimization", {}).get("warmup_steps", "not recorded"),
    }
    specific = pd.DataFrame(
        {"hyperparameter": [*rows, "optimizer steps"]}
        | {
            method: [_values(read(r, method) for (_, m), r in records.items() if m == method) for read in rows.values()]
            + [_values(steps[key] for key in records if key[1] == method)]
            for method in methods
        }
    )
    return shared, specific


def _grid_text(grid: dict) -> str:
    def axis(value) -> str:
        if isinstance(value, tuple):
            kind, start, stop, count = value
            return f"{count} {'log-' if kind == 'geo' else ''}spaced in [{start:g}, {stop:g}]"
        return "{" + ", ".join(f"{v:g}" for v in value) + "}"

    return "; ".join(f"{name}: {axis(value)}" for name, value in grid.items())


def families_table() -> pd.DataFrame:
    """Table 5: every family with its SciPy law, its training region (seen families), its test grid
    and the evaluation prompts' parameters; the held-out (OOD) families marked."""
    rows = []
    for family_id, family in FAMILIES.items():
        rows.append(
            {
                "family": family.display,
                "tier": family.tier,
                "id": family_id,
                "scipy": family.scipy_name,
                "kind": "integer" if family.integer else "continuous",
                "split": "held out (OOD)" if family.held_out else "seen",
                "training region": "—" if family.held_out else _grid_text(TRAIN_GRIDS[family_id]),
                "test grid": _grid_text(TEST_GRIDS[family_id]) if family_id in TEST_GRIDS else "—",
                "evaluation prompts": " | ".join(json.dumps(row) for row in SELECTED[family_id]),
            }
        )
    return pd.DataFrame(rows)


UNRECORDED_DEVICE = {"type": "unknown", "name": "not recorded", "processes": 1}


def device_label(record: dict) -> str:
    """The hardware a training log records: '<processes> x <device name>'."""
    device = record.get("device") or UNRECORDED_DEVICE
    return f"{device['processes']} x {device['name']}"


def training_cost(logs: dict[tuple[str, str], tuple[pd.DataFrame, dict]]) -> pd.DataFrame:
    """Appendix B.1, training: per method, the optimizer-loop minutes of its runs (min, median, max),
    their GPU-hours (minutes x GPUs; undefined where no run used a GPU) and the devices they ran on. `logs` maps (model,
    method) to the training log and its record."""
    rows = []
    for (model, method), (log, record) in logs.items():
        device = record.get("device") or UNRECORDED_DEVICE
        minutes = float(log.seconds.sum()) / 60
        gpus = device["processes"] if device["type"] == "cuda" else np.nan  # no GPU-hours on CPU: undefined
        rows.append(
            {
                "model": model,
                "method": method,
                "minutes": minutes,
                "gpu_hours": minutes * gpus / 60,
                "device": device_label(record),
            }
        )
    runs = pd.DataFrame(rows)
    summary = runs.groupby("method", sort=False).agg(
        runs=("minutes", "size"),
        min_minutes=("minutes", "min"),
        median_minutes=("minutes", "median"),
        max_minutes=("minutes", "max"),
        gpu_hours=("gpu_hours", lambda hours: hours.sum(min_count=1)),
        devices=("device", lambda d: ", ".join(dict.fromkeys(d))),
    )
    return summary.reset_index().round({"min_minutes": 3, "median_minutes": 3, "max_minutes": 3, "gpu_hours": 3})


def stage_wallclock(benchmarks: str | Path) -> pd.DataFrame:
    """Appendix B.1, evaluation: per workflow stage (Snakemake rule), the jobs and their summed
    wall-clock and CPU hours, from the benchmark files under `benchmarks` (results/benchmarks)."""
    rows = []
    for path in sorted(Path(benchmarks).rglob("*.tsv")):
        table = pd.read_csv(path, sep="\t")
        if {"s", "cpu_time"} <= set(table.columns) and len(table):
            parts = path.relative_to(benchmarks).parts
            rows.append(
                {
                    "stage": parts[0] if len(parts) > 1 else path.stem,
                    "s": float(table.s.iloc[-1]),
                    "cpu_s": float(table.cpu_time.iloc[-1]),
                }
            )
    if not rows:
        return pd.DataFrame(columns=["stage", "jobs", "wall_hours", "cpu_hours"])
    jobs = (
        pd.DataFrame(rows)
        .groupby("stage", sort=True)
        .agg(jobs=("s", "size"), wall_hours=("s", "sum"), cpu_hours=("cpu_s", "sum"))
    )
    jobs[["wall_hours", "cpu_hours"]] = (jobs[["wall_hours", "cpu_hours"]] / 3600).round(4)
    return jobs.reset_index()
