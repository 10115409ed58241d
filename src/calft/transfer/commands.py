"""The transfer stage's commands: open-ended generation, MCQ balance and NoveltyBench."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from calft import artifacts
from calft.settings import Mcq, ModelEntry, NoveltyBench, OpenEnded

log = logging.getLogger(__name__).info


def _load(model_dir: str, model_config: ModelEntry, adapter: str | None):
    from calft.modeling.loader import load

    artifacts.require(adapter)
    return load(model_dir, model_config, Path(adapter) if adapter else None)


def open_ended(model_dir: str, adapter: str | None, model_config: ModelEntry, settings: OpenEnded, ssot: bool,
               samples: str, output: str) -> None:
    from calft.transfer import open_ended as evaluation

    per_prompt, generated = evaluation.open_ended(_load(model_dir, model_config, adapter), settings, ssot)
    info = artifacts.provenance("open_ended", {"model": model_config.to_dict(), "adapter": adapter, "ssot": ssot,
                                               "settings": settings.to_dict(),
                                               "thresholds": evaluation.THRESHOLDS.tolist()})
    artifacts.write_frame(generated, samples, info | {"artifact": "open_ended_samples"})
    artifacts.write_frame(per_prompt, output, info)
    log(f"open-ended: mean support {per_prompt.support_size.mean():.1f}, "
        f"mean unique fraction {per_prompt.unique_fraction.mean():.3f}")


def mcq(model_dir: str, adapter: str | None, model_config: ModelEntry, settings: Mcq, samples: str,
        output: str) -> None:
    from calft.transfer import mcq as evaluation

    summary, generated = evaluation.mcq(_load(model_dir, model_config, adapter), settings)
    info = artifacts.provenance("mcq", {"model": model_config.to_dict(), "adapter": adapter,
                                        "settings": settings.to_dict()})
    artifacts.write_frame(generated, samples, info | {"artifact": "mcq_samples"})
    artifacts.write_frame(pd.DataFrame([summary]), output, info)
    log(f"mcq: {summary}")


def noveltybench(model_dir: str, adapter: str | None, model_config: ModelEntry, settings: NoveltyBench,
                 data_dir: str, generations: str, output: str) -> None:
    import torch

    from calft.transfer import noveltybench as evaluation

    artifacts.verify_data(data_dir, settings.trust_data_dir, "transfer.noveltybench")
    prompts = evaluation.read_prompts(Path(data_dir), settings.splits, settings.prompts_limit)
    loaded = _load(model_dir, model_config, adapter)
    generated = evaluation.generate(loaded, prompts, settings)
    device = loaded.device
    del loaded
    summary, generated = evaluation.evaluate(generated, prompts, settings, device)
    info = artifacts.provenance("noveltybench", {"model": model_config.to_dict(), "adapter": adapter,
                                                 "settings": settings.to_dict()})
    artifacts.write_frame(generated, generations, info | {"artifact": "noveltybench_generations"})
    artifacts.write_frame(summary, output, info)
    log("noveltybench:\n" + summary.to_string(index=False))
    if torch.cuda.is_available():
        log(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


def fetch_noveltybench(settings: NoveltyBench, output: str) -> None:
    """NoveltyBench's prompt files, in a folder whose provenance records their checksums."""
    from calft.transfer import noveltybench as evaluation

    with artifacts.atomic_path(output, "eval_data/noveltybench") as folder:
        folder.mkdir()
        evaluation.fetch_prompts(settings.prompts_url, folder)
        evaluation.read_prompts(folder, settings.splits, None)  # the full splits, with the benchmark's counts
        artifacts.record_data(folder, artifacts.provenance("eval_data/noveltybench", settings.to_dict()))
    log(f"fetched NoveltyBench's prompts from {settings.prompts_url} to {output}")
