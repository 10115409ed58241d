"""Adding a metric or an evaluation is an entry in a registry: a toy one, registered from a module of
its own, reaches every place that lists them without an edit anywhere else.

What a contributor writes, file by file:
- a per-prompt metric computed from the samples: one `register_metric` entry with its function
  (calft/metrics.py or a module of theirs); its figures come with `in_figures` (no further file);
- a model-based evaluation: the `register_evaluation` entry (calft/evaluations.py), the module that
  computes it and its command (calft/<stage>/), the command's declaration (calft/<stage>/cli.py),
  its rule (workflow/rules/<stage>.smk) and its config switch (config.schema.yaml): five files; its
  table, its place among the aggregate rule's inputs and in the index come from the entry.
"""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pandas as pd
import pytest

from calft import artifacts, layout
from calft.evaluation.score import score_samples
from calft.evaluations import EVALUATIONS
from calft.metrics import METRICS
from calft.report import aggregates, index, items, tables, writers
from calft.report.settings import ReportSelection
from calft.settings import SettingsError

TOY_MODULE = """
import numpy as np
import pyarrow as pa

from calft.evaluations import Evaluation, register_evaluation
from calft.metrics import FAMILY_MEAN, Metric, register_metric


def spread(values, valid, law):
    return float(np.std(values[valid])) if valid.any() else float("nan")


register_metric(Metric("toy_spread", "spread", "sample spread", "max", FAMILY_MEAN, "mean", from_samples=spread))
register_evaluation(
    Evaluation(
        "toy_eval",
        "transfer",
        "toy_eval",
        "results/{model}/{method}{variant}/transfer/toy_eval.parquet",
        "transfer.toy_eval",
        table_columns=(("toy_score", "toy score", "max"),),
        schema=pa.schema([("prompt_index", pa.int32()), ("toy_score", pa.float64())]),
    )
)
"""


@pytest.fixture
def toy_registrations(tmp_path, monkeypatch):
    (tmp_path / "toy_plugin.py").write_text(TOY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.import_module("toy_plugin")
    yield
    METRICS.pop("toy_spread")
    EVALUATIONS.pop("toy_eval")
    artifacts.KINDS.pop("toy_eval")
    sys.modules.pop("toy_plugin")


def test_a_registered_metric_is_scored_aggregated_tabled_and_drawn(toy_registrations):
    prompts = pd.DataFrame(
        {
            "prompt_id": ["g1", "g2", "g3", "p1"],
            "family": ["gaussian", "gaussian", "gaussian", "poisson"],
            "split": "ood",
            "params": ['{"mu": 0, "sigma": 1}'] * 3 + ['{"lambda": 3}'],
        }
    )
    samples = pd.DataFrame(
        {
            "prompt_id": ["g1", "g1", "g2", "g2", "g3", "g3", "p1", "p1", "p1"],
            "value": [0.0, 2.0, 0.0, 4.0, 1.0, 1.0, 0.0, 6.0, 99.0],
            "valid": [True] * 8 + [False],
        }
    )
    scores = score_samples(samples, prompts)
    assert scores.toy_spread.tolist() == [1.0, 2.0, 0.0, 3.0]  # the invalid 99 is left out
    assert artifacts.KINDS["scores"].schema.field("toy_spread").type == "double"

    per_prompt = scores.assign(prompt_set="ood", model="m", method="base", logit_kl=np.nan, logit_kl_exact=np.nan)
    summary = aggregates.summary(per_prompt)
    assert summary.toy_spread.tolist() == [2.0]  # equal-family mean: (mean(1, 2, 0) + 3) / 2, not the pooled 1.5
    assert ("toy_spread", "base") in tables.paper_table(summary, "ood").columns
    assert tables.Column("toy_spread", "spread", "max") in tables.metric_columns()

    selection = ReportSelection.from_dict(dict(models=["m"], methods=["base", "soft"], prompt_sets=["ood", "unseen"]))
    outputs = {str(path) for path in items.report_outputs(selection, "tables", "figures")}
    assert {"figures/per_family_ood_toy_spread.png", "figures/per_family_unseen_toy_spread.png"} <= outputs


def test_a_registered_evaluation_reaches_the_plan_its_table_and_the_index(toy_registrations, tmp_path):
    selection = ReportSelection.from_dict(
        dict(models=["m"], methods=["base", "soft", "ssot"], prompt_sets=["ood"], evaluations=["toy_eval"])
    )
    assert selection.problems() == []
    inputs = layout.report_inputs(selection, tmp_path)
    assert sorted(inputs["toy_eval"]) == [("m", "base"), ("m", "soft")]  # SSOT runs only its own two evaluations
    tables_dir, figures_dir = tmp_path / "tables", tmp_path / "figures"
    outputs = items.report_outputs(selection, tables_dir, figures_dir)
    assert {tables_dir / f"toy_eval.{suffix}" for suffix in ("csv", "md", "tex")} <= set(outputs)

    for (model, method), path in inputs["toy_eval"].items():
        frame = pd.DataFrame(
            {"prompt_index": [0, 1, 2], "toy_score": [1.0, 1.0, 1.5] if method == "base" else [4.0] * 3}
        )
        path.parent.mkdir(parents=True)
        artifacts.write_frame(frame, path, artifacts.provenance("toy_eval", {}) | {"artifact": "toy_eval"})
    report = writers.Report(selection, tmp_path, None, tables_dir, figures_dir)
    tables_dir.mkdir()
    for item in items.evaluation_items():
        item.write(report)
    # bootstrap intervals over the prompts: base's [1, 1.5] lies below soft's [4, 4], so soft is bold
    assert "| m | 1.167 \\[1.000, 1.500\\] | **4.000 \\[4.000, 4.000\\]** |" in (tables_dir / "toy_eval.md").read_text()

    markdown = index.to_markdown(index.entries(selection, tables_dir, figures_dir, tmp_path / "ablations"))
    assert f"| toy_eval: per model and method, the means over prompts | `{tables_dir / 'toy_eval.md'}` |  |" in markdown
    off = ReportSelection.from_dict(dict(models=["m"], methods=["base"], prompt_sets=["ood"]))
    assert "turn on: transfer.toy_eval.enabled" in index.to_markdown(index.entries(off, "t", "f", "a"))


def test_an_unknown_evaluation_in_the_selection_is_named():
    with pytest.raises(SettingsError) as error:
        ReportSelection.from_dict(dict(models=["m"], prompt_sets=["ood"], evaluations=["toy_eval"]))
    assert str(error.value) == (
        "settings.evaluations: unknown evaluation 'toy_eval' (retention, perplexity, open_ended, mcq, noveltybench)"
    )
