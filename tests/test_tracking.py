"""Trackers: a training run's curves and its headline metrics in TensorBoard, read back with
TensorBoard's own reader, and a tracker that cannot connect costs one warning, never the run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import SMOL_ENTRY, calft_in_process, cli_settings, train_arguments

from calft import artifacts, metrics


def _events(folder) -> dict[str, list]:
    """Every scalar of a TensorBoard run folder: tag -> [(step, value)], as TensorBoard reads them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def _tracked(folder, trackers=("tensorboard",)) -> dict:
    return {"trackers": list(trackers), "project": "calft", "run": "m/hard", "group": "hard", "folder": str(folder)}


def test_training_curves_and_evaluation_metrics_reach_tensorboard(tiny_model_dir, work, tmp_path):
    tracking = _tracked(tmp_path / "tracking")
    arguments = train_arguments(tiny_model_dir, work / "train.parquet", tmp_path / "trained")
    settings = json.loads(arguments[2]) | {"tracking": tracking}
    calft_in_process([arguments[0], "--settings", json.dumps(settings), *arguments[3:]])
    scores = work / "scores.parquet"
    logit_kl = [
        "logit-kl",
        *cli_settings(model=SMOL_ENTRY, sampling={"logit_kl_paths": 1}, tracking=tracking),
        "--model-dir",
        str(tiny_model_dir),
        "--tries",
        str(work / "ood-tries.parquet"),
        "--targets",
        str(work / "ood.parquet"),
        "--output",
        str(tmp_path / "logit_kl.parquet"),
    ]
    calft_in_process(logit_kl)
    score = ["score", "--samples", str(work / "samples.parquet"), "--targets", str(work / "ood.parquet")]
    calft_in_process([*score, "--output", str(tmp_path / "scores.parquet"), "--tracking", json.dumps(tracking)])

    events = _events(tmp_path / "tracking" / "tensorboard" / "m" / "hard")
    log = pd.read_parquet(tmp_path / "trained" / "log.parquet")
    assert [step for step, _ in events["train/loss"]] == list(log.step)
    assert np.allclose([value for _, value in events["train/loss"]], log.loss, rtol=1e-6)  # float32 in the events
    assert np.allclose([value for _, value in events["train/grad_norm"]], log.grad_norm, rtol=1e-6)
    assert [value for _, value in events["train/examples"]] == list(log.examples.cumsum())
    expected = metrics.headline(pd.read_parquet(scores))
    assert events["eval/ood/valid_rate"][0][1] == pytest.approx(expected["valid_rate"], rel=1e-6)
    assert events["eval/ood/logit_kl"][0][1] == pytest.approx(
        metrics.headline(pd.read_parquet(tmp_path / "logit_kl.parquet"))["logit_kl"], rel=1e-6
    )
    recorded = artifacts.read_provenance(tmp_path / "trained" / "log.parquet")["config"]["tracking"]
    assert recorded == ["tensorboard"]  # the training log records which trackers ran


def test_a_tracker_that_cannot_connect_warns_once_and_training_completes(
    tiny_model_dir, work, tmp_path, monkeypatch, capsys
):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    monkeypatch.setenv("WANDB_INIT_TIMEOUT", "5")
    monkeypatch.setenv("WANDB_SILENT", "true")
    arguments = train_arguments(tiny_model_dir, work / "train.parquet", tmp_path / "trained")
    settings = json.loads(arguments[2]) | {"tracking": _tracked(tmp_path / "tracking", ["wandb", "tensorboard"])}
    calft_in_process([arguments[0], "--settings", json.dumps(settings), *arguments[3:]])
    warnings = [line for line in capsys.readouterr().err.splitlines() if "tracker" in line and " is off" in line]
    assert len(warnings) == 1 and "tracker wandb is off for this job" in warnings[0], warnings
    log = pd.read_parquet(tmp_path / "trained" / "log.parquet")
    assert list(log.step) == [1, 2] and (tmp_path / "trained" / "adapter").is_dir()
    assert artifacts.read_provenance(tmp_path / "trained" / "log.parquet")["config"]["tracking"] == ["tensorboard"]
