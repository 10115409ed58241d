"""Training curves and headline metrics in the trackers researchers use, one registry.

A job that trains or evaluates a (model, method, variant) opens that run's tracker run: one per
(model, method, variant), named `<model>/<method><variant>` and grouped by `<method><variant>`, so that
the trainings of a paper run sit side by side. Training logs every step; scoring and the logit KL add
the run's headline metrics. A tracker that fails (not installed, no network, no login) is reported
once and dropped: the parquet artifacts stay the record, and no job fails for a tracker.

Adding a tracker is one `register_tracker` function: it opens a run and returns its Backend.
Cheap to import: a tracker's library is imported when its run opens.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from calft.settings import Section

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackedRun(Section):
    """What a job tracks into: the config's `tracking` section and the run's name, group and folder."""

    SCHEMA_PATH = ("$defs", "tracked_run")
    LABEL = "tracking"
    trackers: list
    project: str
    run: str
    group: str
    folder: str  # the log folder the trackers write under (TensorBoard's event files, W&B's offline runs)

    @property
    def run_id(self) -> str:
        """A stable id, so that every job of one (model, method, variant) writes into the same run."""
        return hashlib.sha256(f"{self.project}/{self.run}".encode()).hexdigest()[:16]


@dataclass
class Backend:
    log: Callable[[int, dict], None]  # (step, {name: value})
    summary: Callable[[dict], None]  # {name: value}: a run's final numbers
    close: Callable[[], None]


TRACKERS: dict[str, Callable[[TrackedRun], Backend]] = {}


def register_tracker(name: str):
    def register(opener):
        TRACKERS[name] = opener
        return opener

    return register


@register_tracker("tensorboard")
def _tensorboard(run: TrackedRun) -> Backend:
    """Event files under <folder>/tensorboard/<run>: no server, no account (`tensorboard --logdir`)."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(Path(run.folder) / "tensorboard" / run.run))

    def log_values(step: int, values: dict) -> None:
        for name, value in values.items():
            writer.add_scalar(name, value, step)

    return Backend(log_values, lambda values: log_values(0, values), writer.close)


@register_tracker("wandb")
def _wandb(run: TrackedRun) -> Backend:
    """Weights & Biases, offline unless WANDB_MODE says otherwise (`wandb sync` uploads later)."""
    import wandb

    folder = Path(run.folder)  # W&B writes its runs into <folder>/wandb
    folder.mkdir(parents=True, exist_ok=True)
    tracked = wandb.init(
        project=run.project,
        name=run.run,
        group=run.group,
        id=run.run_id,
        resume="allow",
        dir=str(folder),
        mode=os.environ.get("WANDB_MODE", "offline"),
    )
    return Backend(lambda step, values: tracked.log(values, step=step), tracked.summary.update, tracked.finish)


@register_tracker("mlflow")
def _mlflow(run: TrackedRun) -> Backend:
    """MLflow (install calft[mlflow]): the server MLFLOW_TRACKING_URI names, else a local file store
    under <folder>/mlruns (`mlflow ui --backend-store-uri <folder>/mlruns`). The run is found again
    by its calft id, so every job of it writes into one MLflow run."""
    from mlflow.tracking import MlflowClient

    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # a local store needs no database server
        uri = (Path(run.folder) / "mlruns").absolute().as_uri()
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(run.project)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(run.project)
    found = client.search_runs([experiment_id], filter_string=f"tags.calft_run = '{run.run_id}'")
    tags = {"calft_run": run.run_id, "group": run.group}
    run_id = (
        found[0].info.run_id if found else client.create_run(experiment_id, run_name=run.run, tags=tags).info.run_id
    )

    def log_values(step: int, values: dict) -> None:
        for name, value in values.items():
            client.log_metric(run_id, name, value, step=step)

    return Backend(log_values, lambda values: log_values(0, values), lambda: client.set_terminated(run_id))


@register_tracker("trackio")
def _trackio(run: TrackedRun) -> Backend:
    """trackio (install calft[trackio]): a local database under <folder>/trackio unless TRACKIO_DIR
    names another (`trackio show --project <project>`)."""
    os.environ.setdefault("TRACKIO_DIR", str(Path(run.folder).absolute() / "trackio"))
    import trackio

    tracked = trackio.init(
        project=run.project,
        name=run.run,
        group=run.group,
        resume="allow",
        embed=False,
        auto_log_gpu=False,
        auto_log_cpu=False,
    )
    return Backend(
        lambda step, values: tracked.log(values, step=step), lambda values: tracked.log(values), tracked.finish
    )


@dataclass
class Tracking:
    """The trackers of one job: each opened when first used, dropped with one warning when it fails."""

    run: TrackedRun | None
    backends: dict = field(default_factory=dict)
    failed: set = field(default_factory=set)

    def _each(self, action: str, *arguments, opening: bool = True) -> None:
        for name in self.run.trackers if self.run else []:
            if name in self.failed or (not opening and name not in self.backends):
                continue
            try:
                if name not in self.backends:
                    self.backends[name] = TRACKERS[name](self.run)
                getattr(self.backends[name], action)(*arguments)
            except Exception as error:  # a tracker never fails the job
                self.failed.add(name)
                self.backends.pop(name, None)
                log.warning(f"tracker {name} is off for this job ({type(error).__name__}: {error}); the parquet stays")

    def log(self, step: int, values: dict) -> None:
        self._each("log", step, values)

    def summary(self, values: dict) -> None:
        self._each("summary", values)

    def close(self) -> None:
        self._each("close", opening=False)
        self.backends.clear()

    @property
    def ran(self) -> list[str]:
        """The trackers that took this job's numbers."""
        return [name for name in (self.run.trackers if self.run else []) if name not in self.failed]


def open_tracking(run: TrackedRun | dict | None) -> Tracking:
    """The tracking of a job from its settings' `tracking` object (None: no tracker)."""
    return Tracking(TrackedRun(**run) if isinstance(run, dict) else run)
