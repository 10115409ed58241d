"""The training stage's commands: train one model's soft or hard LoRA adapter, resumably; release one
with its evaluated model card."""

from __future__ import annotations

import logging
from pathlib import Path

from calft import artifacts
from calft.errors import UserError
from calft.methods import METHODS
from calft.training.settings import TrainSettings

log = logging.getLogger(__name__).info


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


def release(adapter: str, results: list[str], base_results: list[str], output: str) -> None:
    """The adapter with its card's headline metrics (calft.metrics.headline), per evaluation prompt
    set, beside the base model's: a folder to publish."""
    import shutil

    from calft.metrics import headline
    from calft.training import card

    def measured(paths: list[str]) -> dict[str, dict[str, float]]:
        values: dict[str, dict[str, float]] = {}
        for path in paths:
            kind = artifacts.read_provenance(path)["artifact"]
            rows = artifacts.read_table(path, kind).to_pandas()
            prompt_set = artifacts.recorded_reference(path)["prompt_set"]
            values.setdefault(prompt_set, {}).update(headline(rows))
        return values

    mine, base = measured(results), measured(base_results)
    metrics = {
        prompt_set: {"this adapter": values, **({"base model": base[prompt_set]} if prompt_set in base else {})}
        for prompt_set, values in mine.items()
    }
    artifacts.read_record(adapter, "adapter")  # a calft adapter, checked before anything is written
    with artifacts.atomic_path(output, "adapter") as folder:
        shutil.copytree(adapter, folder, ignore=shutil.ignore_patterns(".snakemake_timestamp"))
        card.publish(folder, metrics)
    log(f"release folder {output}: {sum(len(v) for v in mine.values())} headline metrics")
