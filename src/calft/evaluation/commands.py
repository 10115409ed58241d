"""The evaluation stage's commands: sample answers, score them, and the trie logit KL."""

from __future__ import annotations

import logging
from pathlib import Path

from calft import artifacts
from calft.settings import ModelEntry, Sampling
from calft.errors import UserError

log = logging.getLogger(__name__).info


def sample(model_dir: str, adapter: str | None, model_config: ModelEntry, sampling: Sampling, targets: str,
           output: str, ssot: bool) -> None:
    from calft.evaluation.sample import sample_prompt_set
    from calft.modeling.loader import load

    artifacts.require(targets, adapter)
    if sampling.backend != "hf":
        raise UserError(f"sampling.backend '{sampling.backend}' is not available; use 'hf'")
    log(f"sample {targets}: {sampling.num_samples} per prompt, adapter {adapter}, ssot {ssot}")
    prompts = artifacts.read_prompts(targets, ["family", "split", "params", "prompt"])
    loaded = load(model_dir, model_config, Path(adapter) if adapter else None)
    frame = sample_prompt_set(loaded, prompts, sampling, ssot)
    info = artifacts.provenance("samples", {"model": model_config.to_dict(), "adapter": adapter,
                                            "sampling": sampling.to_dict(), "ssot": ssot,
                                            "targets": artifacts.read_provenance(targets)["config"]})
    artifacts.write_frame(frame, output, info)
    log(f"wrote {len(frame)} samples, valid rate {frame.valid.mean():.3f}, to {output}")


def score(samples: str, targets: str, output: str) -> None:
    from calft.evaluation.score import score_samples

    artifacts.check_same_targets(samples, "samples", targets)
    frame = artifacts.read_table(samples, "samples").to_pandas()
    prompts = artifacts.read_prompts(targets, ["family", "split", "params"])
    unknown = set(frame.prompt_id) - set(prompts.prompt_id)
    if unknown:
        raise UserError(f"{samples} holds samples of prompts that {targets} does not have, e.g. {sorted(unknown)[0]!r}")
    scores = score_samples(frame, prompts)
    info = artifacts.provenance("scores", {"samples": artifacts.read_provenance(samples)["config"]})
    artifacts.write_frame(scores, output, info)
    log(f"scored {len(scores)} prompts: mean valid rate {scores.valid_rate.mean():.3f}")


def logit_kl(model_dir: str, adapter: str | None, model_config: ModelEntry, tries: str, targets: str, paths: int,
             seed: int, exact: bool, output: str) -> None:
    from calft.evaluation.logit_kl import logit_kl_table
    from calft.modeling.chat import prompt_ids
    from calft.modeling.loader import load
    from calft.targets.canonical import check_fingerprint
    from calft.training.data import SoftTargets

    artifacts.require(targets, tries, adapter)
    artifacts.check_same_targets(tries, "tries", targets)
    check_fingerprint(tries, artifacts.read_provenance(tries)["config"]["fingerprint"], model_dir,
                      model_config.terminator)
    prompts = artifacts.read_prompts(targets, ["family", "split", "prompt"])
    trie = SoftTargets(tries)
    loaded = load(model_dir, model_config, Path(adapter) if adapter else None)
    trie.check_tokens(loaded.model.config.get_text_config().vocab_size)
    rendered = prompt_ids(loaded.tokenizer, list(prompts.prompt), loaded.chat)
    table = logit_kl_table(loaded.model, trie, prompts, rendered, paths, seed, exact)
    info = artifacts.provenance("logit_kl", {"model": model_config.to_dict(), "adapter": adapter, "paths": paths,
                                             "seed": seed, "exact": exact,
                                             "tries": artifacts.read_provenance(tries)["config"]})
    artifacts.write_frame(table, output, info)
