"""The paper beside calft: the data file holds what the paper prints, a synthetic run in the paper's
configuration fills the comparable rows with the numbers its parquet gives, and a run in another
configuration names the keys that differ."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from score_frames import scores_frame

from calft import artifacts
from calft.report import paper_comparison
from calft.report.settings import ReportSelection
from calft.report.writers import Report
from calft.training.settings import Training
from calft.transfer.prompts import CATEGORIES

ROOT = Path(__file__).resolve().parents[2]
PAPER_TEXT = ROOT.parent / "shared" / "spec" / "paper-2605.11845.txt"
PAPER_CONFIG = yaml.safe_load((ROOT / "config.paper.yaml").read_text())
SOURCES = {name: model["source"] for name, model in PAPER_CONFIG["models"].items()}
GREEN_QWEN_OOD = "Table 26, Qwen3-14B, d=5, 16384 bins, 16 draws x 2 epochs, OOD W1, the final setting (green row)"
A100 = {"type": "cuda", "name": "NVIDIA A100-SXM4-80GB", "processes": 4}


def _write(frame: pd.DataFrame, path: Path, kind: str, config: dict) -> None:
    names = artifacts.KINDS[kind].schema.names
    frame = frame.assign(**{name: None for name in names if name not in frame})[names]
    path.parent.mkdir(parents=True, exist_ok=True)
    artifacts.write_frame(frame, path, artifacts.provenance(kind, config))


def _training(method: str, decimals: int, max_bins: int) -> dict:
    return {
        "device": A100,
        "method": method,
        "model": {},
        "targets": {"decimals": decimals, "max_bins": max_bins, "per_family": None, "families": None},
        "training": Training.from_dict(PAPER_CONFIG["training"]).to_dict(),  # as a training log records it
    }


def _scores(w1: float) -> pd.DataFrame:
    """Two families of two prompts: the family median of W1 is the mean of the families' means."""
    return scores_frame([w1 - 0.01, w1 + 0.01, w1 - 0.02, w1 + 0.02], samples=1000)


def _paper_run(results: Path, minutes: dict, wider: dict) -> ReportSelection:
    """Every file of the 12 paper models, base, soft and hard, in the paper's configuration: W1 0.1
    base, 0.08 soft, 0.06 hard; `wider[method]` of the 1224 (prompt, model) pairs get a wider support
    than base; training logs of the paper's step counts and `minutes[method]` per run."""
    selection = ReportSelection.from_dict(
        dict(
            models=list(SOURCES),
            methods=["base", "soft", "hard"],
            prompt_sets=["ood", "unseen"],
            evaluations=["open_ended"],
        )
    )
    from calft.layout import report_inputs

    inputs = report_inputs(selection, results)
    steps = {"soft": 189, "hard": 1988}
    bins = {"soft": 1001, "hard": 16384}
    pair = 0
    for position, (model, source) in enumerate(SOURCES.items()):
        for method in ("base", "soft", "hard"):
            w1 = {"base": 0.1, "soft": 0.08, "hard": 0.06}[method]
            record = {"model": {"source": source}}
            for prompt_set in ("ood", "unseen"):
                scores = {
                    "reference": {"prompt_set": prompt_set, "decimals": 5, "max_bins": 16384},
                    "samples": {**record, "sampling": {"num_samples": 1000}},
                }
                _write(_scores(w1), inputs["scores"][model, method, prompt_set], "scores", scores)
                kl = _scores(w1)[["prompt_id", "family", "split"]].assign(logit_kl=1.0, logit_kl_exact=np.nan)
                _write(kl, inputs["logit_kl"][model, method, prompt_set], "logit_kl", scores)
            support = np.full(102, 10)
            if method != "base":
                above = min(max(wider[method] - position * 102, 0), 102)  # the first pairs in model order
                support[:above] = 50
            pair += 102
            open_ended = pd.DataFrame(
                {
                    "prompt_index": np.arange(102),
                    "category": CATEGORIES[:102],
                    "prompt": "p",
                    "support_size": support,
                    "samples": 100,
                    "empty": 0,
                    "answers": 100,
                    "unique_fraction": 0.5,
                    "unique_fraction_insensitive": 0.5,
                }
            )
            config = {**record, "settings": {"num_samples": 100}}
            _write(open_ended, inputs["open_ended"][model, method], "open_ended", config)
            answers = {
                "weekday": {"base": ["Wednesday"] * 80 + ["Monday"] * 20, "soft": ["Monday"] * 40 + ["Friday"] * 60},
                "city": {
                    "base": [f"c{i}" for i in (0,) * 20 + (1,) * 20 + (2,) * 20 + (3,) * 14 + tuple(range(4, 30))]
                },
            }
            samples = pd.concat(
                pd.DataFrame(
                    {
                        "prompt_index": CATEGORIES.index(category),
                        "normalized": shown.get(method, ["Tuesday"] * 100),
                        "sample_idx": np.arange(100),
                    }
                )
                for category, shown in answers.items()
            )
            _write(samples, inputs["open_ended_samples"][model, method], "open_ended_samples", config)
            if method != "base":
                log = pd.DataFrame({"step": [1, steps[method]], "seconds": [0.0, minutes[method][position] * 60]})
                _write(log, inputs["train_log"][model, method], "train_log", _training(method, 5, bins[method]))
    return selection


def _table(tmp_path, selection) -> pd.DataFrame:
    report = Report(selection, tmp_path, None, tmp_path / "tables", tmp_path / "figures")
    return paper_comparison.comparison_table(report).set_index("where")


def test_a_run_in_the_papers_configuration_fills_the_comparable_rows(tmp_path):
    minutes = {"soft": list(np.linspace(1.0, 12.0, 12)), "hard": [10.0] * 12}
    selection = _paper_run(tmp_path, minutes, {"soft": 1101, "hard": 1000})
    table = _table(tmp_path, selection)
    compared = table[table.comparison == "compared"]

    assert compared.loc[GREEN_QWEN_OOD, "calft"] == "0.06"  # the hard run's family median: (0.06 + 0.06) / 2
    assert compared.loc[GREEN_QWEN_OOD, "difference"] == f"{0.06 - 0.0736:+.4g}"
    anchor = table.loc["Table 26, Qwen3-14B, d=3, 1001 bins, 16 draws x 2 epochs, OOD W1, the anchor row"]
    assert anchor.comparison == "not comparable: training.decimals = 5; training.max_bins = 16384"

    soft_pairs = compared.loc["Appendix D.4, soft-target fine-tuning widens top-90% support"]
    assert (soft_pairs.calft, soft_pairs.difference) == ("1101/1224", "+0")
    assert compared.loc["Appendix D.4, hard-target fine-tuning widens top-90% support", "calft"] == "1000/1224"
    claim = "soft-target fine-tuning widens"  # noqa: F841 (the counted claims below)
    assert compared.loc['§5, transfer ("increases the top-90% support size for every model")', "calft"] == "11/12"
    weekday = 'Appendix D.4 on Figure 10, Qwen3-14B weekday prompt, base ("80% of samples to Wednesday")'
    assert (compared.loc[weekday, "calft"], compared.loc[weekday, "difference"]) == ("80%", "+0")
    soft_weekday = 'Appendix D.4 on Figure 10, Qwen3-14B weekday prompt, soft ("roughly 40%")'
    assert compared.loc[soft_weekday, "calft"] == "60%"  # Friday's 60 of 100
    city = 'Appendix D.4 on Figure 10, Gemma-3-27B-it city prompt, base ("74% of samples on its top four cities")'
    assert compared.loc[city, "calft"] == "74%"  # 20 + 20 + 20 + 14 of 100, the other 26 answers once each
    median = "Appendix B.1, soft-target optimizer-loop wall-clock, median over the 12 models (minutes)"
    assert float(compared.loc[median, "calft"]) == pytest.approx(6.5)
    hours = "Appendix B.1, hard-target A100 GPU-hours, total across the 12 models"
    assert float(compared.loc[hours, "calft"]) == pytest.approx(12 * 10 / 60 * 4)
    assert set(compared["calft's value from"]) == {"this run's artifacts", "calft's code at the paper's settings"}
    for label in ("soft", "hard"):
        run_steps = table[table.measures == f"optimizer steps each {label}-target training log of the run records"]
        assert run_steps.comparison.tolist() == ["compared"] and run_steps.difference.tolist() == ["+0"]
    novelty = table.loc['§5, NoveltyBench ("best on overall utility for 8 of the 12 models")']
    assert novelty.comparison == "not comparable: not measured"  # NoveltyBench is off in this run
    assert len(compared) == 3 + 2 + 2 + 2 + 6 + 8 + 4  # settings, run steps, D.4, claims, Figure 10, B.1, green rows


def test_another_configuration_names_the_keys_that_differ(tmp_path):
    selection = _paper_run(tmp_path, {"soft": [1.0] * 12, "hard": [1.0] * 12}, {"soft": 1101, "hard": 1089})
    selection = ReportSelection.from_dict({**vars(selection), "models": list(SOURCES)[:3]})
    table = _table(tmp_path, selection)
    d4 = table.loc["Appendix D.4, soft-target fine-tuning widens top-90% support"]
    assert d4.comparison.startswith("not comparable: models = 3 (Qwen/Qwen3-0.6B, Qwen/Qwen3-1.7B, Qwen/Qwen3-4B)")
    green = table.loc[
        "Table 26, Qwen3-14B, d=5, 16384 bins, 16 draws x 2 epochs, OOD W1, the final setting (green row)"
    ]
    assert green.comparison == "not comparable: model Qwen/Qwen3-14B is not in this run"
    assert (table.loc["§4.1 and Appendix B, the training prompt configurations", "calft"]) == "1988"
    without_open_ended = _table(tmp_path, ReportSelection.from_dict({**vars(selection), "evaluations": []}))
    d4 = without_open_ended.loc["Appendix D.4, soft-target fine-tuning widens top-90% support"]
    assert d4.calft == "" and d4.comparison.startswith("not comparable: models = 3")


def test_every_entry_is_measurable_and_table_26_reads_back_to_the_papers_text():
    entries = paper_comparison.paper_numbers()
    assert len({entry["id"] for entry in entries}) == len(entries)
    for entry in entries:
        assert entry["measurement"]["kind"] in paper_comparison.MEASUREMENTS
        assert np.isfinite(paper_comparison.printed_value(entry["printed"]))
    if not PAPER_TEXT.exists():
        pytest.skip("the paper's text is not beside this checkout")
    rows = {}
    for entry in entries:
        found = re.fullmatch(r"table26-(.+)-d(\d)-b(\d+)-(\d+)x(\d)-(ood|unseen)", entry["id"])
        if found:
            model, *setting, prompt_set = found.groups()
            rows.setdefault(model, {}).setdefault(tuple(map(int, setting)), {})[prompt_set] = entry["printed"]
    assert [len(settings) for settings in rows.values()] == [10, 10]
    text = PAPER_TEXT.read_text().replace("\\", "")
    for model, label in (("qwen3-14b", "Qwen3-14B"), ("gemma-3-12b-it", "Gemma-3-12B-it")):
        printed = "".join(
            f"{d}{bins}{draws}{epochs}{draws * epochs}{values['ood']}{values['unseen']}"
            for (d, bins, draws, epochs), values in rows[model].items()
        )
        assert label + printed in text  # the extracted table, cell by cell, in the paper's row order
