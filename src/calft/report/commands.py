"""The report stage's command: every table and figure from the cached parquet files, no model."""

from __future__ import annotations

import logging
from pathlib import Path

from calft import artifacts, layout, methods
from calft.errors import UserError
from calft.report import aggregates, items
from calft.report.settings import AblationSelection, ReportSelection

log = logging.getLogger(__name__).info


def aggregate(settings: ReportSelection, results: str, ood_targets: str | None, tables: str, figures: str) -> None:
    """Every item of calft.report.items that the selection turns on, then the paper index."""
    from calft.report import index, writers

    report = writers.Report(settings, Path(results), ood_targets, Path(tables), Path(figures))
    for path in items.report_outputs(settings, tables, figures):  # refuse before writing any of them
        artifacts.check_output(path, "report")
    report.read_all()  # every input the tables share is read (and checked) before anything is written
    report.tables.mkdir(parents=True, exist_ok=True)
    report.figures.mkdir(parents=True, exist_ok=True)
    for item in items.all_items():
        if item.writer and not item.ablation and item.files(settings):
            item.write(report)
    rows = index.entries(settings, tables, figures, layout.under(results, layout.ABLATIONS))
    writers.write_text(report.tables / "index.md", index.to_markdown(rows))
    log(f"wrote tables to {tables} and figures to {figures}")


def aggregate_ablations(
    settings: AblationSelection, results: str, construction_cost: str, ood_targets: str | None, output: str
) -> None:
    """Tables 24-26 and Figure 14 from the construction-cost parquet and the variants' scores."""
    from calft.report import ablations, records
    from calft.report import tables as report
    from calft.report.writers import write_flat_table

    folder = Path(output)
    outputs = items.ablation_outputs(settings, folder)
    for path in outputs:
        artifacts.check_output(path, "report")
    inputs = layout.ablation_inputs(settings, results)
    records.check_cells(inputs, variants=True)
    runs = ablations.recorded_runs(settings.rows, inputs["train_log"])
    cost = report.read(construction_cost, "construction_cost")
    reference = ablations.cost_reference(construction_cost)
    rows = report.load(inputs) if inputs["scores"] else None
    if rows is not None and rows.reference.iloc[0] != report.reference_label(reference):
        raise UserError(
            f"{construction_cost} marks the evaluation reference {report.reference_label(reference)} but the "
            f"scores were measured against {rows.reference.iloc[0]}: rerun the rule construction_cost"
        )
    folder.mkdir(parents=True, exist_ok=True)

    table = ablations.construction_cost_table(cost, (reference["decimals"], reference["max_bins"]))
    title = "Table 24: construction cost of the output space and the trie over the precision grid"
    note = ablations.cost_note(artifacts.read_provenance(construction_cost)["config"])
    write_flat_table(folder, "table24_construction_cost", table, title, note)
    for method in settings.methods:
        number = items.ABLATION_TABLES[method]
        table = ablations.variant_table(aggregates.summary(rows), runs, method, settings.models, settings.prompt_sets)
        title = ablations.variant_title(method, number, settings.prompt_sets, rows.reference.iloc[0])
        write_flat_table(
            folder,
            f"table{number}_{method}_ablation",
            table,
            title,
            "★ = the final setting; bold = the best per model and split; — = undefined",
        )
    if settings.soft_models and ood_targets:
        _figure14(settings, runs, inputs, ood_targets, folder)
    if settings.methods:
        _variant_curves(inputs, folder)
    log(f"wrote Tables 24-26, Figure 14 and the variants' training curves to {folder}")


def _variant_curves(inputs: dict, folder: Path) -> None:
    """The training curves of every ablation run: a line per (model, variant), coloured by model."""
    from calft.report import figures as plots

    logs, families = {}, {}
    for (model, method, variant), path in inputs["train_log"].items():
        label = f"{model} {variant or 'final'}"
        logs[label, method] = artifacts.read_table(path, "train_log").to_pandas()
        families[label] = model
    with artifacts.atomic_path(folder / "training_curves_ablations.png", "report") as path:
        title = "Training curves of the ablation runs, a line per (model, variant) (calft's own figure)"
        plots.figure_training_curves(logs, families, path, title)


def _figure14(settings: AblationSelection, runs: list, inputs: dict, ood_targets: str, folder: Path) -> None:
    """Per model, the OOD samples of every soft run coloured by its training decimals."""
    from calft.report import figures as plots
    from calft.report import tables as report

    prompts = artifacts.read_table(ood_targets, "targets", ["prompt_id", "family", "params"]).to_pandas().astype(str)
    runs = {run.variant: run for run in runs if run.method == methods.SOFT}
    decimals = sorted({run.decimals for run in runs.values()})
    bins = sorted({run.max_bins for run in runs.values()})
    for model in settings.soft_models:
        samples, colors, styles = {}, {}, {}
        for (sample_model, _, variant), path in inputs["ood_samples"].items():
            if sample_model == model:
                run = runs[variant]
                label = f"d={run.decimals}, {run.max_bins} bins" + ("" if variant else " (final)")
                samples[label] = report.read(path, "samples")
                colors[label] = DECIMALS_PALETTE[decimals.index(run.decimals) % len(DECIMALS_PALETTE)]
                styles[label] = BINS_STYLES[bins.index(run.max_bins) % len(BINS_STYLES)]
        title = f"{model}: OOD samples of the soft variants; colour = training decimals, line = bin cap (Figure 14)"
        with artifacts.atomic_path(folder / f"figure14_ood_samples_by_decimals_{model}.png", "report") as path:
            plots.figure_ood_samples(samples, prompts, title, path, colors, styles)


DECIMALS_PALETTE = ["#7b3294", "#e7298a", "#a6761d", "#000000", "#b2182b", "#01665e"]  # Figure 14: by decimals
BINS_STYLES = ["-", "--", ":", "-."]  # Figure 14, by bin cap
