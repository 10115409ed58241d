"""The transfer stage's settings: the config's `transfer` sections and the settings of its commands."""

from __future__ import annotations

from dataclasses import dataclass

from calft.modeling.settings import Generation, ModelEntry
from calft.settings import Section

EVALUATORS = ("similarity_model", "similarity_tokenizer", "reward_model")  # NoveltyBench's models, by setting


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
    stop_unparseable: bool


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
    similarity_tokenizer: str
    similarity_threshold: float
    reward_model: str
    reward_dtype: str
    reward_add_special_tokens: bool
    patience: float


@dataclass(frozen=True)
class OpenEndedSettings(Section):
    SCHEMA_PATH = ("$defs", "open_ended_settings")
    LABEL = "settings"
    model: ModelEntry
    open_ended: OpenEnded
    prompting: str  # a method's prompting (calft.methods)


@dataclass(frozen=True)
class McqSettings(Section):
    SCHEMA_PATH = ("$defs", "mcq_settings")
    LABEL = "settings"
    model: ModelEntry
    mcq: Mcq


@dataclass(frozen=True)
class NoveltyBenchSettings(Section):
    SCHEMA_PATH = ("$defs", "noveltybench_settings")
    LABEL = "settings"
    model: ModelEntry
    noveltybench: NoveltyBench
