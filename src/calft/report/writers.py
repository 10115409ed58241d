"""The writers of the report's items (calft.report.items): each makes one item's files from a Report,
which reads every input once, when a writer first asks for it."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd

from calft import artifacts, methods
from calft.methods import MAIN
from calft.report import aggregates, intervals, items, records, text
from calft.report import figures as plots
from calft.report import tables as report_tables
from calft.report.settings import ReportSelection


@dataclass
class Report:
    """What the items are made of: the selection, its inputs (calft.report.items.report_inputs) and the
    folders they are written to."""

    selection: ReportSelection
    results: Path
    ood_targets: str | None
    tables: Path
    figures: Path

    @cached_property
    def inputs(self) -> dict:
        return items.report_inputs(self.selection, self.results)

    @cached_property
    def rows(self) -> pd.DataFrame:
        """Every per-prompt row (scores joined with logit KL), all methods."""
        return report_tables.load(self.inputs)

    @cached_property
    def per_prompt(self) -> pd.DataFrame:
        return self.rows[self.rows.method.isin(MAIN)]

    @cached_property
    def summary(self) -> pd.DataFrame:
        return self._summary(self.per_prompt)

    @cached_property
    def with_baselines(self) -> pd.DataFrame:
        """The summary rows of the main methods and of the baselines (Tables 8-9)."""
        return pd.concat([self.summary, self._summary(self.rows[self.rows.method.isin(methods.BASELINES)])])

    def _summary(self, rows: pd.DataFrame) -> pd.DataFrame:
        return aggregates.summary(rows, self.selection.bootstrap, self.selection.min_valid_samples)

    @cached_property
    def retention(self) -> pd.DataFrame | None:
        if not self.selection.runs("retention"):
            return None
        return report_tables.load_retention(self.inputs, self.selection.bootstrap.level)

    @cached_property
    def perplexity(self) -> pd.DataFrame | None:
        return report_tables.load_perplexity(self.inputs) if self.selection.runs("perplexity") else None

    @cached_property
    def transfer(self) -> pd.DataFrame | None:
        return report_tables.load_transfer(self.inputs, self.selection.bootstrap)

    @cached_property
    def ood_prompts(self) -> pd.DataFrame | None:
        if not self.ood_targets:
            return None
        return artifacts.read_table(self.ood_targets, "targets", ["prompt_id", "family", "params"]).to_pandas()

    @cached_property
    def ood_samples(self) -> dict[str, dict[str, pd.DataFrame]]:
        """model -> method -> OOD samples (Figures 3 and 8), when the OOD targets are given."""
        samples = {}
        if self.ood_targets:
            for (model, method), path in self.inputs["ood_samples"].items():
                samples.setdefault(model, {})[method] = report_tables.read(path, "samples")
        return samples

    @cached_property
    def open_ended(self) -> pd.DataFrame:
        """The main methods' per-prompt open-ended rows (Figures 9-10, Appendix D.4), with each model's
        family (its tokenizer, as the results record it)."""
        return pd.concat(
            [
                report_tables.read(path, "open_ended").assign(
                    model=model, method=method, family=report_tables.recorded_family(path, model)
                )
                for (model, method), path in self.inputs["open_ended"].items()
                if method in MAIN
            ],
            ignore_index=True,
        )

    @cached_property
    def training_logs(self) -> dict:
        """(model, method) -> (training log rows, the config they record) (Tables 3-4, Appendix B.1)."""
        return {
            key: (artifacts.read_table(path, "train_log").to_pandas(), artifacts.read_provenance(path)["config"])
            for key, path in self.inputs["train_log"].items()
        }

    @cached_property
    def selection_sources(self) -> dict[str, str]:
        """model -> the source (hub id, or "embedded") its results record."""
        sources = {}
        for paths in self.inputs.values():
            for key, path in paths.items():
                if key[0] not in sources:
                    sources[key[0]] = report_tables.recorded_source(path)
        return {model: source for model, source in sources.items() if source}

    def evaluation_record(self, model: str, method: str, prompt_set: str) -> dict:
        """What a structured-sampling score of (model, method, prompt set) was measured under."""
        path = self.inputs["scores"].get((model, method, prompt_set))
        if path is None:
            return {}
        config = artifacts.read_provenance(path)["config"]
        return {
            "evaluation.reference": report_tables.reference_label(config["reference"]),
            "evaluation.num_samples": config["samples"]["sampling"]["num_samples"],
        }

    def open_ended_record(self, method: str) -> dict:
        """The open-ended prompts and samples of a method's runs (from their rows), where every model agrees."""
        if not self.inputs["open_ended"]:
            return {}
        rows = self.open_ended[self.open_ended.method == method]
        prompts, samples = set(rows.groupby("model").size()), set(rows.samples)
        if len(prompts) != 1 or len(samples) != 1:
            return {}
        return {"open_ended.prompts": prompts.pop(), "open_ended.num_samples": int(samples.pop())}

    def open_ended_samples(self, model: str, method: str) -> pd.DataFrame | None:
        path = self.inputs["open_ended_samples"].get((model, method))
        return report_tables.read(path, "open_ended_samples") if path else None

    def read_all(self) -> None:
        """Read (and check) the inputs every selection needs, before anything is written."""
        records.check_cells(self.inputs)
        report_tables.check_one_snapshot(self.inputs)
        for name in ("rows", "retention", "perplexity", "transfer", "ood_prompts", "ood_samples"):
            getattr(self, name)

    def text(self, path: Path, text: str) -> None:
        write_text(path, text)

    def table(self, name: str, table, columns, title: str) -> None:
        """A table with a column per (measure, method), as csv (values, bounds, marks), md and tex."""
        note = report_tables.legend(self.selection.bootstrap, self.selection.min_valid_samples)
        self.text(self.tables / f"{name}.csv", text.csv_safe(table).to_csv())
        self.text(self.tables / f"{name}.md", report_tables.to_markdown(table, title, columns, note))
        self.text(self.tables / f"{name}.tex", report_tables.to_latex(table, title, columns, note))

    def flat_table(self, name: str, table, title: str) -> None:
        write_flat_table(self.tables, name, table, title)

    def figure(self, name: str):
        """A context manager giving the temporary path to save figure `name` (.png) to."""
        return artifacts.atomic_path(self.figures / f"{name}.png", "report")


def write_text(path: Path, text: str) -> None:
    with artifacts.atomic_path(path, "report") as temporary:
        temporary.write_text(text)


def write_flat_table(folder: Path, name: str, table, title: str, note: str = "") -> None:
    """A table whose columns are its own (no per-method groups), as csv, md and tex."""
    from calft.report import flat_tables

    write_text(folder / f"{name}.csv", text.csv_safe(table).to_csv(index=False))
    write_text(folder / f"{name}.md", flat_tables.to_markdown(table, title, note))
    write_text(folder / f"{name}.tex", flat_tables.to_latex(table, title, note))


def summary(report: Report) -> None:
    per_prompt = report.per_prompt.drop(columns=[c for c in report.per_prompt if c.endswith("_replicates")])
    report.text(report.tables / "per_prompt.csv", text.csv_safe(per_prompt).to_csv(index=False))
    report.text(report.tables / "summary.csv", text.csv_safe(report.summary).to_csv(index=False))


def structured(report: Report, which: str) -> None:
    for prompt_set in items.prompt_sets(report.selection, which):
        title = f"Structured sampling, {report_tables.SET_TITLES.get(prompt_set, prompt_set)}"
        table = report_tables.paper_table(report.summary, prompt_set)
        report.table(f"structured_{prompt_set}", table, report_tables.metric_columns(), title)


def per_family(report: Report, which: str, metrics: tuple[str, ...] | str) -> None:
    for prompt_set in items.prompt_sets(report.selection, which):
        for metric in items.figure_metrics(metrics):
            with report.figure(f"per_family_{prompt_set}_{metric}") as path:
                plots.figure_per_family(report.per_prompt, prompt_set, metric, path, report.selection.min_valid_samples)


def figure2(report: Report) -> None:
    with report.figure("figure2_family_median_w1") as path:
        plots.figure_family_median(
            report.summary, report.selection.prompt_sets, path, report.selection.min_valid_samples
        )


def figure3(report: Report) -> None:
    for model, samples in report.ood_samples.items():
        main = {method: frame for method, frame in samples.items() if method in MAIN}
        with report.figure(f"figure3_ood_samples_{model}") as path:
            title = f"{model}: OOD samples against the target"
            plots.figure_ood_samples(main, report.ood_prompts.astype(str), title, path)


def figure8(report: Report) -> None:
    for model, samples in report.ood_samples.items():
        shown = (methods.BASE, *methods.BASELINES, methods.SOFT)
        compared = {method: samples[method] for method in shown if method in samples}
        with report.figure(f"figure8_ood_samples_ssot_{model}") as path:
            plots.figure_ood_samples(
                compared,
                report.ood_prompts.astype(str),
                f"{model}: OOD samples of the base model, its SSOT prompting and the soft adapter (Figure 8)",
                path,
            )


FIGURE10_PROMPTS = ("city", "mammal", "weekday")  # the paper's Figure 10


def figure9(report: Report) -> None:
    """Figure 9 and the Appendix D.4 counts, from the same per-prompt rows."""
    rows = report.open_ended
    counts = aggregates.open_ended_counts(rows)
    title = (
        "Open-ended prompts that fine-tuning widened, kept or narrowed against base, over all models "
        "and per model family (Appendix D.4)"
    )
    report.flat_table("appendix_d4_open_ended_counts", counts, title)
    samples = pd.concat(
        [
            report_tables.read(path, "open_ended_samples").assign(model=model, method=method)
            for (model, method), path in report.inputs["open_ended_samples"].items()
        ],
        ignore_index=True,
    )
    title = (
        "How concentrated the open-ended answers are: the share of a prompt's samples on its 1 and 4 most "
        "frequent answers, mean, min and max over the prompts (Appendix D.4)"
    )
    report.flat_table("appendix_d4_concentration", aggregates.concentration(samples), title)
    with report.figure("figure9_open_ended_per_prompt") as path:
        plots.figure_open_ended_per_prompt(rows, path)


def figure10(report: Report) -> None:
    rows = report.open_ended
    texts = dict(zip(rows.prompt_index, rows.prompt))  # the prompts as the results record them
    index_of = dict(zip(rows.category, rows.prompt_index))
    for model in report.selection.models:
        samples = {
            method: report_tables.read(path, "open_ended_samples")
            for (sample_model, method), path in report.inputs["open_ended_samples"].items()
            if sample_model == model
        }
        sampled = sorted(set.intersection(*(set(frame.prompt_index) for frame in samples.values()))) if samples else []
        chosen = [index_of[c] for c in FIGURE10_PROMPTS if index_of.get(c) in sampled] or sampled[:3]
        with report.figure(f"figure10_open_ended_frequencies_{model}") as path:
            plots.figure_open_ended_frequencies(samples, {i: texts[i] for i in chosen}, model, path)


def figure11(report: Report) -> None:
    label = report_tables.retention_score_label(report.retention)
    score = "gpirt" if label == "gp-IRT" else "accuracy"
    values = report.retention[["task", "model", "method", score]].set_axis(
        ["panel", "model", "method", "value"], axis=1
    )
    with report.figure("figure11_retention_per_task") as path:
        plots.figure_panels(values, f"{label} (higher is better)", "Retention per task (Figure 11)", False, path)


def perplexity_figure(report: Report, number: int, measure: str) -> None:
    """Figures 12 and 13: one PALOMA measure per slice."""
    name = "paloma_perplexity" if measure == "perplexity" else "paloma_bits_per_byte"
    values = report.perplexity[["slice", "model", "method", measure]]
    values = values.set_axis(["panel", "model", "method", "value"], axis=1)
    title = f"PALOMA {measure.replace('_', ' ')} per slice (Figure {number})"
    with report.figure(f"figure{number}_{name}") as path:
        plots.figure_panels(values, plots.METRIC_LABELS[measure], title, False, path)


def table1(report: Report) -> None:
    table, columns = report_tables.transfer_table(report.transfer, report.selection.models)
    report.table("transfer", table, columns, "Transfer beyond numbers (Table 1)")


def table2(report: Report) -> None:
    table, columns = report_tables.table2(report.retention, report.perplexity, report.selection.models)
    report.table("retention_perplexity", table, columns, "Retention and PALOMA perplexity (Table 2)")


def tables3_4(report: Report) -> None:
    """Tables 3 and 4 from what the training logs record."""
    from calft.report import appendix

    shared, specific = appendix.hyperparameter_tables(
        {key: config for key, (_, config) in report.training_logs.items()},
        {key: int(log.step.max()) for key, (log, _) in report.training_logs.items()},
    )
    report.flat_table(
        "table3_shared_hyperparameters", shared, "Shared hyperparameters, as the training logs record them (Table 3)"
    )
    report.flat_table("table4_method_hyperparameters", specific, "Method-specific hyperparameters (Table 4)")


def training_curves(report: Report) -> None:
    families = {
        model: config["model"].get("tokenizer", model) for (model, _), (_, config) in report.training_logs.items()
    }
    with report.figure("training_curves") as path:
        plots.figure_training_curves({key: log for key, (log, _) in report.training_logs.items()}, families, path)


def table5(report: Report) -> None:
    from calft.report import appendix

    report.flat_table("table5_families", appendix.families_table(), "The 30 distribution families (Table 5)")


def ssot(report: Report, which: str) -> None:
    for prompt_set in items.prompt_sets(report.selection, which):
        table, columns = report_tables.ssot_table(
            report.with_baselines, report.transfer, prompt_set, report.selection.models
        )
        title = f"SSOT baseline, {report_tables.SET_TITLES.get(prompt_set, prompt_set)} (Tables 8-9)"
        report.table(f"ssot_{prompt_set}", table, columns, title)


def table10(report: Report) -> None:
    novelty = report_tables.load_noveltybench(report.inputs)
    table, columns = report_tables.noveltybench_split_table(novelty, report.selection.models)
    report.table("table10_noveltybench_splits", table, columns, "NoveltyBench per split (Table 10)")


def novelty_cases(report: Report, regime: str) -> None:
    """One regime of Tables 11-19: the qualitative NoveltyBench cases."""
    from calft.report import novelty_cases as cases

    generations = report_tables.novelty_generations(report.inputs)
    scores = report_tables.novelty_prompt_scores(report.inputs, generations)
    shown = [method for method in MAIN if method in report.selection.methods]
    name = items.novelty_case_tables(report.selection.methods)[regime]
    rows = cases.case_rows(generations, scores, cases.choose_cases(scores, regime), shown)
    report.text(report.tables / f"{name}.csv", text.csv_safe(rows).to_csv(index=False))
    report.text(report.tables / f"{name}.md", cases.to_markdown(rows, regime))
    report.text(report.tables / f"{name}.tex", cases.to_latex(rows, regime))


def table21(report: Report) -> None:
    table, columns = report_tables.task_table(report.retention, report.selection.models)
    report.table("retention_tasks", table, columns, "Retention per task (Table 21)")
    table, columns = report_tables.model_mean_table(report.retention, "task", columns)
    title = "Retention per task, mean over the models (Table 21, right)"
    report.table("table21_retention_tasks_model_mean", table, columns, title)


def table22(report: Report) -> None:
    table, columns = report_tables.slice_table(report.perplexity, report.selection.models)
    report.table("perplexity_slices", table, columns, "PALOMA perplexity per slice (Tables 22-23)")


def table23(report: Report) -> None:
    table, columns = report_tables.model_mean_table(report.perplexity, "slice", report_tables.SLICE_COLUMNS)
    title = "PALOMA per slice, mean over the models (Table 23)"
    report.table("table23_perplexity_slices_model_mean", table, columns, title)


def appendix_b1(report: Report) -> None:
    """The training cost (with trained methods) and the wall-clock per workflow stage."""
    from calft.report import appendix

    if report.inputs["train_log"]:
        report.flat_table(
            "appendix_b1_training_cost",
            appendix.training_cost(report.training_logs),
            "Training cost per method: optimizer-loop minutes and GPU-hours (Appendix B.1)",
        )
    report.flat_table(
        "appendix_b1_stage_wallclock",
        appendix.stage_wallclock(Path(report.results) / "benchmarks"),
        "Wall-clock per workflow stage, summed over its jobs, from Snakemake's benchmark files (Appendix B.1)",
    )


def evaluation_table(report: Report, evaluation: str) -> None:
    """A further evaluation's table (calft.evaluations): per model, each column's mean over prompts."""
    from calft.evaluations import EVALUATIONS

    columns = [report_tables.Column(*column) for column in EVALUATIONS[evaluation].table_columns]
    per_prompt = report_tables.per_method(report.inputs, evaluation)
    names = [column.name for column in columns]
    rows = aggregates.prompt_means(per_prompt, names).merge(
        intervals.prompt_mean_intervals(per_prompt, names, report.selection.bootstrap), on=["model", "method"]
    )
    table = report_tables.wide(rows, ["model"], report_tables.carried(rows, columns), report.selection.models)
    report.table(evaluation, table, columns, f"{evaluation}: means over prompts")


def paper_comparison(report: Report) -> None:
    from calft.report import paper_comparison as comparison

    title = "The paper's printed numbers beside calft's"
    note = (
        "a row compares only where the run measured the same thing under the configuration the paper "
        "states; otherwise it names the keys that differ, with this run's value"
    )
    write_flat_table(report.tables, "paper_comparison", comparison.comparison_table(report), title, note)
