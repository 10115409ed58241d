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


def _tracked(folder, trackers=("tensorboard",), project: str = "calft") -> dict:
    return {"trackers": list(trackers), "project": project, "run": "m/hard", "group": "hard", "folder": str(folder)}


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


def _two_jobs(folder, tracker: str, project: str) -> None:
    """A training job logs two steps; an evaluation job adds the headline numbers to the same run (a
    project of the test's own: the run ids of other tests in this process stay apart)."""
    from calft.tracking import open_tracking

    training = open_tracking(_tracked(folder, [tracker], project))
    training.log(1, {"train/loss": 2.0})
    training.log(2, {"train/loss": 1.5})
    training.close()
    evaluation = open_tracking(_tracked(folder, [tracker], project))
    evaluation.summary({"eval/ood/valid_rate": 0.75})
    evaluation.close()
    assert training.ran == evaluation.ran == [tracker]


def test_mlflow_keeps_one_run_per_model_and_method_across_jobs(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    _two_jobs(tmp_path, "mlflow", "calft-mlflow")
    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").absolute().as_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("calft-mlflow").experiment_id])
    assert run.info.run_name == "m/hard" and run.data.tags["group"] == "hard"
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "train/loss")] == [(1, 2.0), (2, 1.5)]
    assert run.data.metrics["eval/ood/valid_rate"] == 0.75


def test_trackio_writes_a_local_run(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACKIO_DIR", str(tmp_path / "trackio"))  # before trackio reads it, at its import
    pytest.importorskip("trackio")
    project = f"calft-{tmp_path.name}"  # apart from any earlier run wherever trackio keeps its files
    _two_jobs(tmp_path, "trackio", project)
    from trackio.sqlite_storage import SQLiteStorage

    logged = SQLiteStorage.get_logs(project, "m/hard")
    assert [(row["step"], row["train/loss"]) for row in logged if "train/loss" in row] == [(1, 2.0), (2, 1.5)]
    assert any(row.get("eval/ood/valid_rate") == 0.75 for row in logged)


def test_wandb_writes_an_offline_run_without_a_network(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    _two_jobs(tmp_path, "wandb", "calft-offline")
    assert list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
