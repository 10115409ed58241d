"""The report stage's commands: aggregate, aggregate-ablations."""

from __future__ import annotations

from calft.command import command, input_path, output_path
from calft.jobs import Job
from calft.report.settings import AblationSelection, ReportSelection


def add_commands(sub) -> None:
    ag = command(
        sub,
        "aggregate",
        "calft.report.commands:aggregate",
        ReportSelection,
        "JSON: models and methods in table order, prompt_sets, and evaluations: the optional evaluations "
        "whose tables to write (retention, perplexity, open_ended, mcq, noveltybench; calft.evaluations)",
        job=Job("aggregate"),
        help="tables and figures from the per-prompt parquet files (no model)",
        description="Read exactly the files the selection needs (calft.report.items.report_inputs; a missing "
        "one is an error naming it) and write every table and figure of calft.report.items that the "
        "selection turns on (each table as csv, md and tex), then the paper index.",
    )
    input_path(ag, "--results", default="results", help="results folder")
    input_path(ag, "--ood-targets", default=None, help="OOD evaluation targets, for Figure 3")
    output_path(ag, "--tables", None, default="results/tables", help="folder for the tables")
    output_path(ag, "--figures", None, default="results/figures", help="folder for the figures")

    ab = command(
        sub,
        "aggregate-ablations",
        "calft.report.commands:aggregate_ablations",
        AblationSelection,
        "JSON: models (column order), prompt_sets, and runs (each: method, variant, '' for the final "
        "setting, models, decimals, max_bins, draws_per_prompt, epochs)",
        job=Job("aggregate_ablations"),
        help="the ablation tables and figure from parquet files (no model)",
        description="Write Table 24 (construction cost), Tables 25-26 (the soft and hard training variants "
        "that the runs name, against the one evaluation reference) and Figure 14 (OOD samples of the soft "
        "variants by training decimals), each table as csv, md and tex.",
    )
    input_path(ab, "--results", default="results", help="results folder")
    input_path(ab, "--construction-cost", required=True, help="parquet file written by 'calft construction-cost'")
    input_path(ab, "--ood-targets", default=None, help="OOD evaluation targets, for Figure 14")
    output_path(ab, "--output", None, default="results/ablations", help="folder for the tables and the figure")
