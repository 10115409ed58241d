"""The evaluation stage's commands: sample answers, score them, and the trie logit KL."""

from __future__ import annotations

import logging

from calft import artifacts, methods
from calft.errors import UserError
from calft.evaluation.settings import LogitKlSettings, SampleSettings

log = logging.getLogger(__name__).info


def sample(
    settings: SampleSettings,
    model_dir: str,
    adapter: str | None,
    targets: str,
    ssot_instruction: str | None,
    output: str,
) -> None:
    from calft.evaluation.sample import sample_prompt_set
    from calft.modeling import ssot as seed_of_thought
    from calft.modeling.loader import adapter_record, load, model_record

    artifacts.require(targets)
    ssot = settings.prompting == methods.SEED_THEN_ANSWER
    instruction = seed_of_thought.job_instruction(ssot, ssot_instruction, settings.model.chat_protocol)
    log(f"sample {targets}: {settings.sampling.num_samples} per prompt, adapter {adapter}, ssot {ssot}")
    prompts = _read_prompts(targets, ["family", "split", "params", "prompt"])
    loaded = load(model_dir, settings.model, adapter)
    frame = sample_prompt_set(loaded, prompts, settings.sampling, instruction and instruction.text)
    info = artifacts.provenance(
        "samples",
        {
            "model": model_record(settings.model, model_dir),
            "adapter": adapter_record(adapter),
            "sampling": settings.sampling.to_dict(),
            "ssot": ssot,
            "ssot_instruction": instruction and instruction.record(),
            "targets": artifacts.read_provenance(targets)["config"],
        },
    )
    artifacts.write_frame(frame, output, info)
    log(f"wrote {len(frame)} samples, valid rate {frame.valid.mean():.3f}, to {output}")


def _read_prompts(targets: str, columns: list[str]):
    """The prompts of a targets artifact, with the families it declares registered (calft.targets.declared)."""
    from calft.targets import declared

    declared.register(artifacts.read_provenance(targets)["config"].get("declared_families") or {})
    return artifacts.read_prompts(targets, columns)


def score(samples: str, targets: str, output: str, tracking=None) -> None:
    from calft.evaluation.score import score_samples

    artifacts.check_same_targets(samples, "samples", targets)
    frame = artifacts.read_table(samples, "samples").to_pandas()
    prompts = _read_prompts(targets, ["family", "split", "params"])
    unknown = set(frame.prompt_id) - set(prompts.prompt_id)
    if unknown:
        raise UserError(f"{samples} holds samples of prompts that {targets} does not have, e.g. {sorted(unknown)[0]!r}")
    _check_support(samples, frame, prompts)
    scores = score_samples(frame, prompts)
    info = artifacts.provenance(
        "scores",
        {"reference": artifacts.evaluation_reference(targets), "samples": artifacts.read_provenance(samples)["config"]},
    )
    artifacts.write_frame(scores, output, info)
    log(f"scored {len(scores)} prompts: mean valid rate {scores.valid_rate.mean():.3f}")
    _track_headline(tracking, scores, artifacts.evaluation_reference(targets)["prompt_set"])


def _track_headline(run, rows, prompt_set: str) -> None:
    """The run's headline metrics on a prompt set (calft.metrics.headline) to its tracker run."""
    from calft.metrics import headline
    from calft.tracking import open_tracking

    tracking = open_tracking(run)
    tracking.summary({f"eval/{prompt_set}/{name}": value for name, value in headline(rows).items()})
    tracking.close()


def _check_support(path: str, samples, prompts) -> None:
    """Every sample marked valid has a value its prompt's family can take (the sampler never marks
    another one valid)."""
    import json

    from calft.evaluation.parse import in_support

    families = prompts.set_index("prompt_id")
    for prompt_id, group in samples[samples.valid].groupby("prompt_id", observed=True):
        family, params = families.family[prompt_id], json.loads(families.params[prompt_id])
        if not in_support(group.value.to_numpy(float), family, params).all():
            raise UserError(
                f"{path} marks values valid that the {family} family of prompt {prompt_id!r} cannot take: "
                "the file was changed after sampling"
            )


def logit_kl(
    settings: LogitKlSettings, model_dir: str, adapter: str | None, tries: str, targets: str, output: str
) -> None:
    from calft.evaluation.logit_kl import logit_kl_table
    from calft.modeling.chat import prompt_ids
    from calft.modeling.loader import adapter_record, load, model_record
    from calft.modeling.tokenizer import check_fingerprint
    from calft.modeling.trees import SoftTargets

    artifacts.require(targets, tries)
    artifacts.check_same_targets(tries, "tries", targets)
    check_fingerprint(
        tries, artifacts.read_provenance(tries)["config"]["fingerprint"], model_dir, settings.model.terminator
    )
    prompts = artifacts.read_prompts(targets, ["family", "split", "prompt"])
    trie = SoftTargets(tries)
    loaded = load(model_dir, settings.model, adapter)
    trie.check_tokens(loaded.model.config.get_text_config().vocab_size)
    rendered = prompt_ids(loaded.tokenizer, list(prompts.prompt), loaded.chat)
    paths, seed, exact = settings.sampling.logit_kl_paths, settings.sampling.seed, settings.sampling.logit_kl_exact
    table = logit_kl_table(loaded.model, trie, prompts, rendered, paths, seed, exact)
    info = artifacts.provenance(
        "logit_kl",
        {
            "reference": artifacts.evaluation_reference(targets),
            "model": model_record(settings.model, model_dir),
            "adapter": adapter_record(adapter),
            "paths": paths,
            "seed": seed,
            "exact": exact,
            "tries": artifacts.read_provenance(tries)["config"],
        },
    )
    artifacts.write_frame(table, output, info)
    _track_headline(settings.tracking, table, artifacts.evaluation_reference(targets)["prompt_set"])
