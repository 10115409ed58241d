"""Whole-config validation (calft.config), in-process: every invalid config is refused before any
job runs, with every problem named by its key. One end-to-end case through Snakemake is in
test_workflow.py."""

from pathlib import Path

import pytest
import yaml

from calft import config
from calft.targets.families import SEEN

ROOT = Path(__file__).resolve().parents[1]


def test_the_micro_and_local_configs_are_valid_and_get_the_schema_defaults():
    for path in (ROOT / ".test" / "config.yaml", ROOT / "config.yaml"):
        values = yaml.safe_load(path.read_text())
        config.validate(values)
        assert values["training"]["lora_r"] == 16 and values["sampling"]["temperature"] == 1.0


def test_training_families_must_be_seen_ones_of_the_registry():
    """Every registered seen family may be trained on; a held-out or unknown one is named."""
    values = yaml.safe_load((ROOT / ".test" / "config.yaml").read_text())
    values["prompts"]["train_families"] = list(SEEN)
    config.validate(values)


@pytest.mark.parametrize(
    "changes, key",
    [
        ({"prompts.train_families": ["gaussian", "gausian"]}, "prompts.train_families: 'gausian' is unknown"),
        ({"prompts.train_families": ["poisson"]}, "prompts.train_families: 'poisson' is held out"),
        ({"run_models": ["smol", "qwen"]}, "run_models: unknown model 'qwen'"),
        ({"models.smol.terminatr": "<|im_end|>"}, "models.smol"),
        ({"sampling.num_samples": -5}, "sampling.num_samples"),
        ({"sampling.num_samples": 100.0}, "sampling.num_samples: 100.0 is not of type 'integer'"),
        ({"training.global_batch_size": 8.0}, "training.global_batch_size: 8.0 is not of type 'integer'"),
        ({"targets.decimals": 5.0}, "targets.decimals: 5.0 is not of type 'integer'"),
        ({"models.smol.terminator": None}, "models.smol: 'terminator' is a required property"),
        ({"targets.decimals": "five"}, "targets.decimals"),
        ({"models.smol.path": "/does/not/exist"}, "models.smol.path: folder '/does/not/exist' does not exist"),
        (
            {"models.other": {"source": "embedded", "tokenizer": "smollm2", "terminator": "<|endoftext|>"}},
            "which shares tokenizer 'smollm2'",
        ),
        ({"training.hard_group_size": 3}, "training.hard_group_size: 3 does not divide"),
        ({"training.learning_rate": 0}, "training.learning_rate"),
        (
            {"perplexity.offline": False, "perplexity.data_dir": "/no/paloma"},
            "perplexity.data_dir: no PALOMA files /no/paloma/pydoc_topics/test/*.jsonl.gz",
        ),
        ({"retention.data_dir": "/no/probes"}, "retention.data_dir: '/no/probes' has no arithmetic.parquet"),
        ({"retention.suite": "tinybench"}, "retention.suite"),
        (
            {"transfer.noveltybench.enabled": True, "transfer.noveltybench.data_dir": "/no/nb"},
            "transfer.noveltybench.data_dir: no curated.jsonl in '/no/nb'",
        ),
        ({"targets.eval_decimals": 9}, "targets.eval_decimals"),
        ({"ablations.variants.bad": {"method": "ssot"}}, "ablations.variants.bad.method"),
        (
            {"ablations.variants.Bad_Name": {"method": "soft", "decimals": 4}},
            "ablations.variants: 'Bad_Name' does not match",
        ),
        ({"methods": ["base", "hard"]}, "ablations.variants.soft-d3.method: 'soft' is not trained by this config"),
        (
            {"ablations.variants.s2": {"method": "soft", "samples_per_prompt_per_epoch": 4}},
            "ablations.variants.s2.samples_per_prompt_per_epoch: only hard-target training samples completions",
        ),
        ({"ablations.variants.same": {"method": "soft", "decimals": 2}}, "ablations.variants.same: changes nothing"),
        (
            {"ablations.variants.again": {"method": "soft", "decimals": 3}},
            "ablations.variants.again: the same setting as variant 'soft-d3'",
        ),
        (
            {"ablations.variants.h": {"method": "hard", "samples_per_prompt_per_epoch": 6}},
            "ablations.variants.h: training.hard_group_size: 4 does not divide "
            "training.hard_samples_per_prompt_per_epoch (6)",
        ),
        (
            {"ablations.variants.m": {"method": "soft", "max_bins": 70, "models": ["nope"]}},
            "ablations.variants.m.models: unknown model 'nope'",
        ),
        ({"ablations.models": ["nope"]}, "ablations.models: unknown model 'nope'"),
        (
            {"ablations.variants.r": {"method": "soft", "decimals": 4, "evaluations": ["noveltybench"]}},
            "ablations.variants.r.evaluations: 'noveltybench' is disabled",
        ),
    ],
)
def test_invalid_config_names_the_key(micro_config, changes, key):
    with pytest.raises(config.ConfigError) as refused:
        config.validate(micro_config(**changes))
    assert key in str(refused.value) and str(refused.value).startswith("invalid calft config:")


def test_every_problem_is_listed_at_once(micro_config):
    with pytest.raises(config.ConfigError) as refused:
        config.validate(micro_config(**{"run_models": ["nope"], "training.hard_group_size": 3}))
    assert len(refused.value.problems) == 4  # 3 divisibility checks of the group size, 1 unknown model
