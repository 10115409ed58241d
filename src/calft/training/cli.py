"""The training stage's commands: train, release."""

from __future__ import annotations

from calft import jobs
from calft.command import command, input_path, integer_in, model_paths, output_path
from calft.jobs import Job
from calft.training.settings import TrainSettings


def add_commands(sub) -> None:
    r = command(
        sub,
        "train",
        "calft.training.commands:train",
        TrainSettings,
        "JSON: method (soft: KL to the trie's next-token targets on a sampled path; hard: cross-entropy on "
        "sampled completions), model (the model's config entry) and training (the config's section); "
        "missing keys take the schema's defaults",
        offline=True,
        job=Job(jobs.train_job, ("model", "method", "variant"), ("model", "method")),
        help="train a soft- or hard-target LoRA adapter (resumes from its checkpoint; torchrun for several GPUs)",
        description="Calibration Fine-Tuning of one model. Writes a peft adapter folder and a parquet "
        "training log (step, epoch, loss, lr, examples, tokens, seconds). Launch under torchrun for DDP "
        "over several GPUs; on SIGTERM it checkpoints and exits with status 3, and a rerun resumes.",
    )
    model_paths(r, adapter=False)
    input_path(
        r,
        "--targets",
        required=True,
        help="training targets from 'calft discretize' (soft: the soft bins; hard: the hard bins)",
    )
    input_path(r, "--tries", default=None, help="soft only: the tries of the soft-bin targets")
    output_path(r, "--adapter", "adapter", required=True, help="output peft adapter folder")
    output_path(r, "--train-log", "train_log", required=True, help="output parquet training log")
    output_path(r, "--checkpoints", "checkpoint", required=True, help="folder for the resumable training state")
    r.add_argument(
        "--threads", type=integer_in(0, 1024), default=0, help="CPU threads for torch (default: torch's choice)"
    )
    r.add_argument(
        "--restart",
        action="store_true",
        help="ignore the checkpoint in --checkpoints and train from the first step (it is replaced at the first save)",
    )

    rel = command(
        sub,
        "release",
        "calft.training.commands:release",
        help="an adapter ready to publish: its folder with a model card that states its headline metrics",
        description="Copy a trained calft adapter and write its model card (README.md) with the "
        "headline metrics of its scores and logit KL files, per evaluation prompt set, beside the base model's.",
    )
    input_path(rel, "--adapter", required=True, help="the calft adapter folder")
    input_path(rel, "--results", nargs="+", required=True, help="the adapter's scores and logit KL parquet files")
    input_path(rel, "--base-results", nargs="*", default=[], help="the base model's, for comparison")
    output_path(rel, "--output", "adapter", required=True, help="the release folder to write")
