"""The training stage's command: train one model's soft or hard LoRA adapter, resumably."""

from __future__ import annotations

import logging
from pathlib import Path

from calft import artifacts
from calft.errors import UserError
from calft.methods import METHODS
from calft.training.settings import TrainSettings


def train(
    settings: TrainSettings,
    model_dir: str,
    targets: str,
    tries: str | None,
    adapter: str,
    train_log: str,
    checkpoints: str,
    threads: int,
    restart: bool,
) -> None:
    """Exit status 3 when stopped by SIGTERM after a checkpoint (rerun to resume)."""
    from calft.modeling.loader import model_source
    from calft.training.loop import Interrupted, Run, run_training

    method, model_config = settings.method, settings.model

    if METHODS[method].training.tries and not tries:
        raise UserError(f"--tries is required for {method}-target training")
    artifacts.require(targets, tries)
    model_source(model_dir, model_config)  # a folder, or a marker of the pinned snapshot, before any work
    if tries:
        from calft.modeling.tokenizer import check_fingerprint

        artifacts.check_same_targets(tries, "tries", targets)
        check_fingerprint(
            tries, artifacts.read_provenance(tries)["config"]["fingerprint"], model_dir, model_config.terminator
        )
    run = Run(
        method=method,
        model_dir=Path(model_dir),
        model=model_config,
        settings=settings.training,
        targets=Path(targets),
        tries=Path(tries) if tries else None,
        adapter=Path(adapter),
        train_log=Path(train_log),
        checkpoints=Path(checkpoints),
        threads=threads,
        restart=restart,
        tracking=settings.tracking,
    )
    try:
        run_training(run)
    except Interrupted as stopped:
        logging.getLogger(__name__).info(str(stopped))
        raise SystemExit(3)
