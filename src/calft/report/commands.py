"""The report stage's command: every table and figure from the cached parquet files, no model."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from calft import artifacts, layout
from calft.methods import MAIN
from calft.report.settings import ReportSelection

log = logging.getLogger(__name__).info


def _write_text(path: Path, text: str) -> None:
    with artifacts.atomic_path(path, "report") as temporary:
        temporary.write_text(text)


def _write_table(tables: Path, name: str, table, columns, title: str) -> None:
    from calft.report import tables as report

    _write_text(tables / f"{name}.csv", table.to_csv())
    _write_text(tables / f"{name}.md", report.to_markdown(table, title, columns))
    _write_text(tables / f"{name}.tex", report.to_latex(table, title, columns))


def aggregate(settings: ReportSelection, results: str, ood_targets: str | None, tables: str, figures: str) -> None:
    from calft.report import figures as plots
    from calft.report import tables as report

    selection, models, prompt_sets = settings, settings.models, settings.prompt_sets
    retention, perplexity, ssot = settings.retention, settings.perplexity, "ssot" in settings.methods
    inputs = layout.report_inputs(selection, results)
    tables, figures = Path(tables), Path(figures)
    for path in layout.report_outputs(selection, tables, figures):  # refuse before writing any of them
        artifacts.check_output(path, "report")
    rows = report.load(inputs)  # every input is read (and checked) before anything is written
    retention_rows = report.load_retention(inputs) if retention else None
    perplexity_rows = report.load_perplexity(inputs) if perplexity else None
    transfer = report.load_transfer(inputs)
    ood_samples, ood_prompts = {}, None
    if inputs["ood_samples"] and ood_targets:
        ood_prompts = artifacts.read_table(ood_targets, "targets", ["prompt_id", "family", "params"]).to_pandas()
        for (model, method), path in inputs["ood_samples"].items():
            ood_samples.setdefault(model, {})[method] = report.read(path, "samples")
    per_prompt = rows[rows.method.isin(MAIN)]
    summary = report.summary(per_prompt)
    tables.mkdir(parents=True, exist_ok=True)
    figures.mkdir(parents=True, exist_ok=True)
    _write_text(tables / "per_prompt.csv", per_prompt.to_csv(index=False))
    _write_text(tables / "summary.csv", summary.to_csv(index=False))
    for prompt_set in prompt_sets:
        title = f"Structured sampling, {report.SET_TITLES.get(prompt_set, prompt_set)}"
        _write_table(tables, f"structured_{prompt_set}", report.paper_table(summary, prompt_set), report.COLUMNS, title)
        for metric in ("normalized_w1", "logit_kl"):
            with artifacts.atomic_path(figures / f"per_family_{prompt_set}_{metric}.png", "report") as path:
                plots.figure_per_family(per_prompt, prompt_set, metric, path)
    with artifacts.atomic_path(figures / "figure2_family_median_w1.png", "report") as path:
        plots.figure_family_median(summary, prompt_sets, path)

    if retention or perplexity:
        table, columns = report.table2(retention_rows, perplexity_rows, models)
        _write_table(tables, "retention_perplexity", table, columns, "Retention and PALOMA perplexity (Table 2)")
        if retention:
            table, columns = report.task_table(retention_rows, models)
            _write_table(tables, "retention_tasks", table, columns, "Retention per task (Table 21)")
        if perplexity:
            table, columns = report.slice_table(perplexity_rows, models)
            _write_table(tables, "perplexity_slices", table, columns, "PALOMA perplexity per slice (Tables 22-23)")

    if selection.transfer:
        table, columns = report.transfer_table(transfer, models)
        _write_table(tables, "transfer", table, columns, "Transfer beyond numbers (Table 1)")
    if ssot:
        ssot_summary = pd.concat([summary, report.summary(rows[rows.method == "ssot"])])
        for prompt_set in prompt_sets:
            table, columns = report.ssot_table(ssot_summary, transfer, prompt_set, models)
            title = f"SSOT baseline, {report.SET_TITLES.get(prompt_set, prompt_set)} (Tables 8-9)"
            _write_table(tables, f"ssot_{prompt_set}", table, columns, title)

    for model, samples in ood_samples.items():
        with artifacts.atomic_path(figures / f"figure3_ood_samples_{model}.png", "report") as path:
            plots.figure_ood_samples(samples, ood_prompts.astype(str), model, path)
    log(f"wrote tables to {tables} and figures to {figures}")
