"""The report: tables from parquet files laid out as the workflow writes them, a missing input named,
and the figures' legends."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from calft import artifacts
from calft.layout import report_inputs
from calft.report import tables as aggregate
from calft.report.settings import ReportSelection


def _artifact(frame: pd.DataFrame, path) -> None:
    """A frame written as the workflow writes artifacts (checksummed pages, provenance), the columns
    of its kind that the test leaves out empty."""
    kind = path.stem
    names = artifacts.KINDS[kind].schema.names
    frame = frame.assign(**{name: None for name in names if name not in frame})[names]
    artifacts.write_frame(frame, path, artifacts.provenance(kind, {}))


def test_table1_and_the_ssot_table_from_parquet(tmp_path):
    for method, unique in (("base", 0.2), ("soft", 0.6), ("hard", 0.5), ("ssot", 0.3)):
        folder = tmp_path / "m" / method / "transfer"
        folder.mkdir(parents=True)
        open_ended = pd.DataFrame({"prompt_index": [0, 1], "support_size": [2.0, 4.0] if method != "ssot" else [None, None],
                                   "unique_fraction": [unique, unique + 0.2], "unique_fraction_insensitive": unique})
        _artifact(open_ended, folder / "open_ended.parquet")
        if method != "ssot":
            _artifact(pd.DataFrame({"parse_rate": [0.0 if method == "base" else 0.9],
                                    "tv": [np.nan if method == "base" else 0.1]}), folder / "mcq.parquet")
    selection = ReportSelection.from_dict(dict(models=["m"], methods=["base", "soft", "hard", "ssot"], prompt_sets=["ood"],
                                             open_ended=True, mcq=True))
    transfer_rows = aggregate.load_transfer(report_inputs(selection, tmp_path))
    table, columns = aggregate.transfer_table(transfer_rows, ["m"])
    assert [c for c, _, _ in columns] == ["support_size", "unique_fraction", "unique_fraction_insensitive", "tv",
                                          "parse_rate"]
    assert table.loc["m", ("unique_fraction", "soft")] == pytest.approx(0.7)
    markdown = aggregate.to_markdown(table, "Table 1", columns)
    assert "| — | 0.100 | 0.100 |" in markdown  # TV missing for base, not 0; no bold between equal values
    summary = pd.DataFrame({"prompt_set": "ood", "model": "m", "method": ["base", "soft", "ssot"],
                            "normalized_w1": [1.0, 0.2, np.nan], "valid_rate": [0.1, 0.9, 0.5]})
    table, columns = aggregate.ssot_table(summary, transfer_rows, "ood", ["m"])
    assert list(table.columns.get_level_values(1)[:3]) == ["base", "soft", "ssot"]
    assert "| m | 1.000 | **0.200** | — | 0.100 | **0.900** | 0.500 | 0.300 | **0.700** | 0.400 |" in \
        aggregate.to_markdown(table, "SSOT", columns)


def test_table2_averages_gp_irt_over_the_task_rows_and_pools_perplexity(tmp_path):
    for method, shift in (("base", 0.0), ("soft", 0.1)):
        folder = tmp_path / "m" / method
        folder.mkdir(parents=True)
        tasks = pd.DataFrame({"task": ["mmlu", "gsm8k", "gsm8k"], "kind": ["mmlu", "gsm8k", "gsm8k"],
                              "metric": ["acc", "strict", "flexible"], "items": 100,
                              "accuracy": [0.5, 0.2, 0.3], "irt": 0.0, "pirt": 0.0,
                              "gpirt": [0.6 + shift, 0.1 + shift, 0.2 + shift]})
        _artifact(tasks, folder / "retention.parquet")
        slices = pd.DataFrame({"slice": ["a", "all"], "documents": 1, "tokens": 10, "bytes": 40, "nll": [20.0, 20.0 + shift],
                               "perplexity": [np.exp(2.0), np.exp((20 + shift) / 10)], "bits_per_byte": 0.5})
        _artifact(slices, folder / "perplexity.parquet")
    inputs = report_inputs(ReportSelection.from_dict(dict(models=["m"], methods=["base", "soft"], prompt_sets=["ood"],
                                                          retention=True, perplexity=True)), tmp_path)
    retention_rows = aggregate.load_retention(inputs)
    table, columns = aggregate.table2(retention_rows, aggregate.load_perplexity(inputs), ["m"])
    assert [label for _, label, _ in columns] == ["gp-IRT", "PALOMA ppl"]
    assert table.loc["m", ("retention", "base")] == pytest.approx(0.3)
    assert table.loc["m", ("retention", "soft")] == pytest.approx(0.4)
    assert math.isnan(table.loc["m", ("retention", "hard")])
    markdown = aggregate.to_markdown(table, "Table 2", columns)
    assert "| m | 0.300 | **0.400** | — | **7.389** | 7.463 | — |" in markdown
    tasks, columns = aggregate.task_table(retention_rows, ["m"])
    assert [label for _, label, _ in columns] == ["gp-IRT", "accuracy"]
    assert list(tasks.index) == [("m", "mmlu"), ("m", "gsm8k strict"), ("m", "gsm8k flexible")]
