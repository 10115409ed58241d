"""Typed settings: the config sections that rules hand to `calft` commands as JSON.

Each section is a frozen dataclass whose fields are exactly the schema's keys for it. Parsing checks
the values against the config schema (`config.schema.yaml`, shipped with the package), fills in the
schema's defaults (the only place defaults live), refuses unknown keys and runs the section's
cross-key checks. The schema is thus the one definition of every key's type and range, for the
workflow and the command line alike. Cheap to import: the workflow parses it in every job.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import math
from dataclasses import dataclass
from importlib import resources
from typing import Any, ClassVar

from calft.errors import UserError


class SettingsError(UserError):
    """Values that break the schema or a cross-key rule; every problem names its key."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


@functools.cache
def schema() -> dict:
    import yaml

    return yaml.safe_load(resources.files("calft").joinpath("config.schema.yaml").read_text())


@functools.cache
def _validator_class():
    """Draft 2020-12 that fills in defaults (as Snakemake's `validate` does), whose integers are
    integers (JSON Schema's `integer` would take 100.0, which crashes the job that receives it) and
    whose numbers are finite (NaN passes every comparison)."""
    import jsonschema

    base = jsonschema.Draft202012Validator
    validate_properties = base.VALIDATORS["properties"]

    def properties_with_defaults(validator, properties, instance, subschema):
        if isinstance(instance, dict):
            for name, property_schema in properties.items():
                if "default" in property_schema:
                    instance.setdefault(name, copy.deepcopy(property_schema["default"]))
        yield from validate_properties(validator, properties, instance, subschema)

    checker = base.TYPE_CHECKER.redefine_many({
        "integer": lambda _, value: isinstance(value, int) and not isinstance(value, bool),
        "number": lambda _, value: isinstance(value, (int, float)) and not isinstance(value, bool)
        and math.isfinite(value),
    })
    return jsonschema.validators.extend(base, {"properties": properties_with_defaults}, type_checker=checker)


def schema_at(path: tuple[str, ...]) -> dict:
    """The subschema at `path` of the config schema, able to resolve the root's $defs."""
    node = schema()
    for key in path:
        node = node[key]
    return {**node, "$defs": schema()["$defs"]}


def schema_problems(instance: Any, path: tuple[str, ...] = (), label: str = "") -> list[str]:
    """'key.path: message' for each schema violation of `instance` (checked against the subschema at
    `path`; `format: date` must be a real date), filling in defaults in place. `label` prefixes the
    keys."""
    validator_class = _validator_class()
    validator = validator_class(schema_at(path), format_checker=validator_class.FORMAT_CHECKER)
    problems = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.path]):
        key = ".".join([label, *map(str, error.path)] if label else map(str, error.path)) or "(top level)"
        problems.append(f"{key}: {error.message}")
    return problems


@dataclass(frozen=True)
class Section:
    """A config section as typed settings. Subclasses name their place in the schema."""

    SCHEMA_PATH: ClassVar[tuple[str, ...]]
    LABEL: ClassVar[str]  # how messages name the section's keys

    @classmethod
    def from_dict(cls, values: dict):
        values = copy.deepcopy(values)
        problems = schema_problems(values, cls.SCHEMA_PATH, cls.LABEL)
        if problems:
            raise SettingsError(problems)
        section = cls(**values)
        problems = section.problems()
        if problems:
            raise SettingsError(problems)
        return section

    @classmethod
    def from_json(cls, text: str):
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise SettingsError([f"{cls.LABEL}: not valid JSON ({error})"]) from None
        if not isinstance(values, dict):
            raise SettingsError([f"{cls.LABEL}: expected a JSON object, got {type(values).__name__}"])
        return cls.from_dict(values)

    def problems(self) -> list[str]:
        """Cross-key checks (the schema checks one key at a time)."""
        return []

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


@dataclass(frozen=True)
class ModelEntry(Section):
    """One entry of `models`: where the model comes from and how its prompts are rendered."""

    SCHEMA_PATH = ("$defs", "model")
    LABEL = "model"
    source: str
    path: str | None
    revision: str | None
    tokenizer: str
    terminator: str
    dtype: str
    chat_template_kwargs: dict
    generation_prefix: str | None
    template_date: str | None
    add_special_tokens: bool


@dataclass(frozen=True)
class MethodSchedule:
    """What one training method draws per epoch and how it weighs its targets."""

    epochs: int
    draws_per_prompt: int  # continuations per prompt and epoch
    group_size: int  # continuations of one prompt that share its forward
    tau: float
    epsilon: float


@dataclass(frozen=True)
class Training(Section):
    SCHEMA_PATH = ("properties", "training")
    LABEL = "training"
    seed: int
    global_batch_size: int
    per_device_batch_size: int
    learning_rate: float
    weight_decay: float
    warmup_ratio: float
    lora_r: int
    lora_alpha: float
    lora_dropout: float
    lora_target_modules: list
    soft_epochs: int
    soft_tau: float
    soft_epsilon: float
    hard_epochs: int
    hard_samples_per_prompt_per_epoch: int
    soft_paths_per_prompt_per_epoch: int
    soft_group_size: int
    hard_group_size: int
    order: str
    checkpoint_every: int
    distributed: str
    gpus: int

    def schedule(self, method: str) -> MethodSchedule:
        if method == "soft":
            return MethodSchedule(self.soft_epochs, self.soft_paths_per_prompt_per_epoch, self.soft_group_size,
                                  self.soft_tau, self.soft_epsilon)
        return MethodSchedule(self.hard_epochs, self.hard_samples_per_prompt_per_epoch, self.hard_group_size, 1.0, 0.0)

    def problems(self) -> list[str]:
        problems = []
        for method in ("soft", "hard"):
            schedule = self.schedule(method)
            draws = ("soft_paths_per_prompt_per_epoch" if method == "soft" else "hard_samples_per_prompt_per_epoch")
            for key, value in ((draws, schedule.draws_per_prompt), ("global_batch_size", self.global_batch_size),
                               ("per_device_batch_size", self.per_device_batch_size)):
                if value % schedule.group_size:
                    problems.append(f"training.{method}_group_size: {schedule.group_size} does not divide "
                                    f"training.{key} ({value})")
        if self.global_batch_size % self.per_device_batch_size:
            problems.append(f"training.per_device_batch_size: {self.per_device_batch_size} does not divide "
                            f"training.global_batch_size ({self.global_batch_size})")
        return problems


@dataclass(frozen=True)
class Generation(Section):
    """What every sampler call needs: how many samples of how many tokens, how, from which seed."""

    num_samples: int
    max_new_tokens: int
    temperature: float
    top_p: float
    seed: int
    chunk_size: int


@dataclass(frozen=True)
class Sampling(Generation):
    SCHEMA_PATH = ("properties", "sampling")
    LABEL = "sampling"
    backend: str
    logit_kl_paths: int
    logit_kl_exact: bool
    gpus: int


@dataclass(frozen=True)
class OpenEnded(Generation):
    SCHEMA_PATH = ("properties", "transfer", "properties", "open_ended")
    LABEL = "transfer.open_ended"
    enabled: bool
    max_prompts: int | None


@dataclass(frozen=True)
class Mcq(Generation):
    SCHEMA_PATH = ("properties", "transfer", "properties", "mcq")
    LABEL = "transfer.mcq"
    enabled: bool


@dataclass(frozen=True)
class NoveltyBench(Section):
    SCHEMA_PATH = ("properties", "transfer", "properties", "noveltybench")
    LABEL = "transfer.noveltybench"
    enabled: bool
    data_dir: str | None
    trust_data_dir: bool
    prompts_url: str
    splits: list
    prompts_limit: int | None
    generations: int
    max_new_tokens: int
    seed: int
    similarity_model: str
    similarity_threshold: float
    reward_model: str
    reward_dtype: str
    reward_add_special_tokens: bool
    patience: float


@dataclass(frozen=True)
class Retention(Section):
    SCHEMA_PATH = ("properties", "retention")
    LABEL = "retention"
    enabled: bool
    suite: str
    data_dir: str | None
    trust_data_dir: bool
    tinybenchmarks_source: str
    tinybenchmarks_revisions: dict
    irt_parameters: str | None
    irt_url: str
    irt_sha256: str | None
    probe_items: int
    limit: int | None
    batch_size: int
    max_gen_toks: int
    apply_chat_template: bool
    seed: int
    gpus: int


@dataclass(frozen=True)
class Perplexity(Section):
    SCHEMA_PATH = ("properties", "perplexity")
    LABEL = "perplexity"
    enabled: bool
    offline: bool
    data_dir: str | None
    trust_data_dir: bool
    paloma_repository: str
    paloma_revision: str | None
    slices: list
    split: str
    prepend_bos: bool
    context: int
    stride: int
    max_documents: int | None
    offline_max_documents: int
    offline_max_chars: int
    gpus: int

    def problems(self) -> list[str]:
        if self.stride > self.context:
            return [f"perplexity.stride: {self.stride} exceeds perplexity.context ({self.context}); windows "
                    "would skip tokens"]
        return []


SECTIONS = (Training, Sampling, OpenEnded, Mcq, NoveltyBench, Retention, Perplexity)
