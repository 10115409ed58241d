"""The report stage's command: aggregate."""

from __future__ import annotations

from calft.command import command, input_path, output_path
from calft.report.settings import ReportSelection


def add_commands(sub) -> None:
    ag = command(sub, "aggregate", "calft.report.commands:aggregate", ReportSelection,
                 "JSON: models and methods in table order, prompt_sets, and which optional stages' tables "
                 "(retention, perplexity, open_ended, mcq, noveltybench) to write",
                 help="tables and figures from the per-prompt parquet files (no model)",
                 description="Read exactly the files the selection needs (calft.layout.report_inputs; a missing "
                 "one is an error naming it) and write Tables 6/7 (csv, md, tex), summary and per-prompt CSVs, "
                 "Figures 2-7, and the tables of the optional stages.")
    input_path(ag, "--results", default="results", help="results folder")
    input_path(ag, "--ood-targets", default=None, help="OOD evaluation targets, for Figure 3")
    output_path(ag, "--tables", None, default="results/tables", help="folder for the tables")
    output_path(ag, "--figures", None, default="results/figures", help="folder for the figures")
