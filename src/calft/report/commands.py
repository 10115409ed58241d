"""The report stage's command: every table and figure from the cached parquet files, no model."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from calft import artifacts, layout
from calft.methods import MAIN
from calft.report import aggregates
from calft.report.settings import AblationSelection, ReportSelection

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
    summary = aggregates.summary(per_prompt)
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
            table, columns = report.model_mean_table(retention_rows, "task", columns)
            _write_table(
                tables,
                "table21_retention_tasks_model_mean",
                table,
                columns,
                "Retention per task, mean over the models (Table 21, right)",
            )
            label = report.retention_score_label(retention_rows)
            score = "gpirt" if label == "gp-IRT" else "accuracy"
            with artifacts.atomic_path(figures / "figure11_retention_per_task.png", "report") as path:
                plots.figure_panels(
                    retention_rows[["task", "model", "method", score]].set_axis(
                        ["panel", "model", "method", "value"], axis=1
                    ),
                    f"{label} (higher is better)",
                    "Retention per task (Figure 11)",
                    False,
                    path,
                )
        if perplexity:
            table, columns = report.slice_table(perplexity_rows, models)
            _write_table(tables, "perplexity_slices", table, columns, "PALOMA perplexity per slice (Tables 22-23)")
            table, columns = report.model_mean_table(perplexity_rows, "slice", columns)
            _write_table(
                tables,
                "table23_perplexity_slices_model_mean",
                table,
                columns,
                "PALOMA per slice, mean over the models (Table 23)",
            )
            for number, measure in ((12, "perplexity"), (13, "bits_per_byte")):
                name = "paloma_perplexity" if measure == "perplexity" else "paloma_bits_per_byte"
                with artifacts.atomic_path(figures / f"figure{number}_{name}.png", "report") as path:
                    plots.figure_panels(
                        perplexity_rows[["slice", "model", "method", measure]].set_axis(
                            ["panel", "model", "method", "value"], axis=1
                        ),
                        plots.METRIC_LABELS[measure],
                        f"PALOMA {measure.replace('_', ' ')} per slice (Figure {number})",
                        False,
                        path,
                    )

    if selection.transfer:
        table, columns = report.transfer_table(transfer, models)
        _write_table(tables, "transfer", table, columns, "Transfer beyond numbers (Table 1)")
    if selection.noveltybench:
        table, columns = report.noveltybench_split_table(report.load_noveltybench(inputs), models)
        _write_table(tables, "table10_noveltybench_splits", table, columns, "NoveltyBench per split (Table 10)")
        _novelty_cases(inputs, selection.methods, tables)
    if ssot:
        ssot_summary = pd.concat([summary, aggregates.summary(rows[rows.method == "ssot"])])
        for prompt_set in prompt_sets:
            table, columns = report.ssot_table(ssot_summary, transfer, prompt_set, models)
            title = f"SSOT baseline, {report.SET_TITLES.get(prompt_set, prompt_set)} (Tables 8-9)"
            _write_table(tables, f"ssot_{prompt_set}", table, columns, title)

    for model, samples in ood_samples.items():
        main = {method: frame for method, frame in samples.items() if method in MAIN}
        with artifacts.atomic_path(figures / f"figure3_ood_samples_{model}.png", "report") as path:
            plots.figure_ood_samples(main, ood_prompts.astype(str), f"{model}: OOD samples against the target", path)
        if "ssot" in samples:
            compared = {method: samples[method] for method in ("base", "ssot", "soft") if method in samples}
            with artifacts.atomic_path(figures / f"figure8_ood_samples_ssot_{model}.png", "report") as path:
                plots.figure_ood_samples(
                    compared,
                    ood_prompts.astype(str),
                    f"{model}: OOD samples of the base model, its SSOT prompting and the soft adapter (Figure 8)",
                    path,
                )
    if selection.open_ended:
        _open_ended_items(inputs, models, tables, figures)
    _appendix_tables(inputs, Path(results) / "benchmarks", tables)
    _write_index(selection, results, tables, figures)
    log(f"wrote tables to {tables} and figures to {figures}")


def _write_index(selection: ReportSelection, results: str, tables: Path, figures: Path) -> None:
    """index.md: every paper item, the file that reproduces it or why it is absent."""
    from calft.report import index

    ablations = selection.ablation_selection
    ablation_outputs = layout.ablation_outputs(ablations, layout.under(results, layout.ABLATIONS)) if ablations else []
    rows = index.entries(layout.report_outputs(selection, tables, figures), ablation_outputs, selection.mcq)
    _write_text(tables / "index.md", index.to_markdown(rows))


FIGURE10_PROMPTS = ("city", "mammal", "weekday")  # the paper's Figure 10


def _open_ended_items(inputs: dict, models: list[str], tables: Path, figures: Path) -> None:
    """Figure 9 and the Appendix D.4 counts from the per-prompt rows, Figure 10 from the samples."""
    from calft.report import figures as plots
    from calft.report import tables as report

    rows = pd.concat(
        [
            report.read(path, "open_ended").assign(model=model, method=method)
            for (model, method), path in inputs["open_ended"].items()
            if method in MAIN
        ],
        ignore_index=True,
    )
    if (rows.method != "base").any():
        counts = aggregates.open_ended_counts(rows)
        title = "Open-ended prompts that fine-tuning widened, kept or narrowed against base (Appendix D.4)"
        _write_flat_table(tables, "appendix_d4_open_ended_counts", counts, title)
        with artifacts.atomic_path(figures / "figure9_open_ended_per_prompt.png", "report") as path:
            plots.figure_open_ended_per_prompt(rows, path)
    texts = dict(zip(rows.prompt_index, rows.prompt))  # the prompts as the results record them
    index_of = dict(zip(rows.category, rows.prompt_index))
    for model in models:
        samples = {
            method: report.read(path, "open_ended_samples")
            for (sample_model, method), path in inputs["open_ended_samples"].items()
            if sample_model == model
        }
        sampled = sorted(set.intersection(*(set(frame.prompt_index) for frame in samples.values()))) if samples else []
        chosen = [index_of[c] for c in FIGURE10_PROMPTS if index_of.get(c) in sampled] or sampled[:3]
        with artifacts.atomic_path(figures / f"figure10_open_ended_frequencies_{model}.png", "report") as path:
            plots.figure_open_ended_frequencies(samples, {i: texts[i] for i in chosen}, model, path)


def _novelty_cases(inputs: dict, methods: list[str], tables: Path) -> None:
    """Tables 11-19: the qualitative NoveltyBench cases of each regime the methods allow."""
    from calft.report import novelty_cases
    from calft.report import tables as report

    paths = inputs["noveltybench_generations"]
    generations = pd.concat(
        [
            report.read(path, "noveltybench_generations").assign(model=model, method=method)
            for (model, method), path in paths.items()
        ],
        ignore_index=True,
    )
    patience = {key: artifacts.read_provenance(path)["config"]["settings"]["patience"] for key, path in paths.items()}
    scores = novelty_cases.prompt_scores(generations, patience)
    shown = [method for method in MAIN if method in methods]
    for regime, name in layout.novelty_case_tables(methods).items():
        cases = novelty_cases.case_rows(generations, scores, novelty_cases.choose_cases(scores, regime), shown)
        _write_text(tables / f"{name}.csv", cases.to_csv(index=False))
        _write_text(tables / f"{name}.md", novelty_cases.to_markdown(cases, regime))
        _write_text(tables / f"{name}.tex", novelty_cases.to_latex(cases, regime))


def _appendix_tables(inputs: dict, benchmarks: Path, tables: Path) -> None:
    """Tables 3-5 and the cost report of Appendix B.1."""
    from calft.report import appendix

    def write(name: str, table: pd.DataFrame, title: str) -> None:
        _write_flat_table(tables, name, table, title)

    if inputs["train_log"]:
        logs = {
            key: (artifacts.read_table(path, "train_log").to_pandas(), artifacts.read_provenance(path)["config"])
            for key, path in inputs["train_log"].items()
        }
        shared, specific = appendix.hyperparameter_tables({key: record for key, (_, record) in logs.items()})
        write(
            "table3_shared_hyperparameters",
            shared,
            "Shared hyperparameters, as the training logs record them (Table 3)",
        )
        write("table4_method_hyperparameters", specific, "Method-specific hyperparameters (Table 4)")
        write(
            "appendix_b1_training_cost",
            appendix.training_cost(logs),
            "Training cost per method: optimizer-loop minutes and GPU-hours (Appendix B.1)",
        )
    write("table5_families", appendix.families_table(), "The 30 distribution families (Table 5)")
    write(
        "appendix_b1_stage_wallclock",
        appendix.stage_wallclock(benchmarks),
        "Wall-clock per workflow stage, summed over its jobs, from Snakemake's benchmark files (Appendix B.1)",
    )


def aggregate_ablations(
    settings: AblationSelection, results: str, construction_cost: str, ood_targets: str | None, output: str
) -> None:
    """Tables 24-26 and Figure 14 from the construction-cost parquet and the variants' scores."""
    from calft.report import ablations
    from calft.report import tables as report

    folder = Path(output)
    outputs = layout.ablation_outputs(settings, folder)
    for path in outputs:
        artifacts.check_output(path, "report")
    inputs = layout.ablation_inputs(settings, results)
    cost = report.read(construction_cost, "construction_cost")
    recorded = artifacts.read_provenance(construction_cost)["config"]["reference"]
    rows = report.load(inputs) if inputs["scores"] else None
    folder.mkdir(parents=True, exist_ok=True)

    table = ablations.construction_cost_table(cost, (recorded["decimals"], recorded["max_bins"]))
    title = "Table 24: construction cost of the output space and the trie over the precision grid"
    note = "per prompt, one at a time; peaks are tracemalloc's; ★ = the evaluation reference"
    _write_flat_table(folder, "table24_construction_cost", table, title, note)
    for method in settings.methods:
        number = layout.TABLE_OF_METHOD[method]
        table = ablations.variant_table(
            aggregates.summary(rows), settings.rows, method, settings.models, settings.prompt_sets
        )
        title = ablations.variant_title(method, number, settings.prompt_sets, rows.reference.iloc[0])
        _write_flat_table(
            folder,
            f"table{number}_{method}_ablation",
            table,
            title,
            "★ = the final setting; bold = the best per model and split; — = undefined",
        )
    if settings.soft_models and ood_targets:
        _figure14(settings, inputs, ood_targets, folder)
    log(f"wrote Tables 24-26 and Figure 14 to {folder}")


def _write_flat_table(folder: Path, name: str, table, title: str, note: str = "") -> None:
    from calft.report import flat_tables

    _write_text(folder / f"{name}.csv", table.to_csv(index=False))
    _write_text(folder / f"{name}.md", flat_tables.to_markdown(table, title, note))
    _write_text(folder / f"{name}.tex", flat_tables.to_latex(table, title, note))


def _figure14(settings: AblationSelection, inputs: dict, ood_targets: str, folder: Path) -> None:
    """Per model, the OOD samples of every soft run coloured by its training decimals."""
    from calft.report import figures as plots
    from calft.report import tables as report

    prompts = artifacts.read_table(ood_targets, "targets", ["prompt_id", "family", "params"]).to_pandas().astype(str)
    runs = {run.variant: run for run in settings.rows if run.method == "soft"}
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


DECIMALS_PALETTE = ["#d95f02", "#7570b3", "#1b9e77", "#e7298a", "#66a61e", "#a6761d"]  # Figure 14, by decimals
BINS_STYLES = ["-", "--", ":", "-."]  # Figure 14, by bin cap
