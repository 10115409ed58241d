"""The transfer stage's commands: open-ended generation, MCQ balance and NoveltyBench."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from calft import artifacts, methods
from calft.transfer.settings import EVALUATORS, McqSettings, NoveltyBench, NoveltyBenchSettings, OpenEndedSettings

log = logging.getLogger(__name__).info


def open_ended(
    settings: OpenEndedSettings,
    model_dir: str,
    adapter: str | None,
    ssot_instruction: str | None,
    samples: str,
    output: str,
) -> None:
    from calft.modeling import ssot as seed_of_thought
    from calft.modeling.loader import adapter_record, load, model_record
    from calft.transfer.open_ended import THRESHOLDS, evaluate_open_ended

    ssot = settings.prompting == methods.SEED_THEN_ANSWER
    instruction = seed_of_thought.job_instruction(ssot, ssot_instruction, settings.model.chat_protocol, open_ended=True)
    loaded = load(model_dir, settings.model, adapter)
    per_prompt, generated = evaluate_open_ended(loaded, settings.open_ended, instruction and instruction.text)
    info = artifacts.provenance(
        "open_ended",
        {
            "model": model_record(settings.model, model_dir),
            "adapter": adapter_record(adapter),
            "ssot": ssot,
            "ssot_instruction": instruction and instruction.record(),
            "settings": settings.open_ended.to_dict(),
            "thresholds": THRESHOLDS.tolist(),
        },
    )
    artifacts.write_frame(generated, samples, info | {"artifact": "open_ended_samples"})
    artifacts.write_frame(per_prompt, output, info)
    log(
        f"open-ended: mean support {per_prompt.support_size.mean():.1f}, "
        f"mean unique fraction {per_prompt.unique_fraction.mean():.3f}"
    )


def mcq(settings: McqSettings, model_dir: str, adapter: str | None, samples: str, output: str) -> None:
    from calft.modeling.loader import adapter_record, load, model_record
    from calft.transfer.mcq import evaluate_mcq

    summary, generated = evaluate_mcq(load(model_dir, settings.model, adapter), settings.mcq)
    info = artifacts.provenance(
        "mcq",
        {
            "model": model_record(settings.model, model_dir),
            "adapter": adapter_record(adapter),
            "settings": settings.mcq.to_dict(),
        },
    )
    artifacts.write_frame(generated, samples, info | {"artifact": "mcq_samples"})
    artifacts.write_frame(pd.DataFrame([summary]), output, info)
    log(f"mcq: {summary}")


def noveltybench(
    settings: NoveltyBenchSettings,
    model_dir: str,
    adapter: str | None,
    data_dir: str,
    generations: str,
    output: str,
    similarity_model: str | None = None,
    similarity_tokenizer: str | None = None,
    reward_model: str | None = None,
) -> None:
    """The evaluators (calft.transfer.settings.EVALUATORS) are folders or download markers; each
    defaults to the setting's folder."""
    import torch

    from calft.modeling.loader import adapter_record, load, model_record
    from calft.modeling.source import resolve
    from calft.transfer.noveltybench import generate_answers, rate_answers, read_prompt_files

    section = settings.noveltybench
    given = dict(zip(EVALUATORS, (similarity_model, similarity_tokenizer, reward_model)))
    evaluators = {key: resolve(given[key] or getattr(section, key)) for key in EVALUATORS}
    artifacts.verify_data(data_dir, section.trust_data_dir, "transfer.noveltybench")
    prompts = read_prompt_files(Path(data_dir), section.splits, section.prompts_limit)
    loaded = load(model_dir, settings.model, adapter)
    generated = generate_answers(loaded, prompts, section)
    device = loaded.device
    del loaded
    summary, generated = rate_answers(
        generated, section, device, {key: found.folder for key, found in evaluators.items()}
    )
    loaded_evaluators = {key: found.record() for key, found in evaluators.items()}
    info = artifacts.provenance(
        "noveltybench",
        {
            "model": model_record(settings.model, model_dir),
            "adapter": adapter_record(adapter),
            "settings": section.to_dict(),
            "evaluators": loaded_evaluators,
        },
    )
    artifacts.write_frame(generated, generations, info | {"artifact": "noveltybench_generations"})
    artifacts.write_frame(summary, output, info)
    log("noveltybench:\n" + summary.to_string(index=False))
    if torch.cuda.is_available():
        log(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


def fetch_noveltybench(settings: NoveltyBench, output: str) -> None:
    """NoveltyBench's prompt files, in a folder whose provenance records their checksums."""
    from calft.transfer.noveltybench import fetch_prompts, read_prompt_files

    with artifacts.atomic_path(output, "eval_data/noveltybench") as folder:
        folder.mkdir()
        fetch_prompts(settings.prompts_url, folder)
        read_prompt_files(folder, settings.splits, None, settings.prompts_url)  # the benchmark's counts
        artifacts.record_data(folder, artifacts.provenance("eval_data/noveltybench", settings.to_dict()))
    log(f"fetched NoveltyBench's prompts from {settings.prompts_url} to {output}")
