"""The modeling stage's settings: a model's config entry, what a sampler call needs, and where
`prepare-model` finds a model."""

from __future__ import annotations

from dataclasses import dataclass

from calft.settings import Section


@dataclass(frozen=True)
class ModelEntry(Section):
    """One entry of `models`: where the model comes from and how its prompts are rendered."""

    SCHEMA_PATH = ("$defs", "model")
    LABEL = "model"
    name: str | None  # the key in the config's `models`, filled in by the workflow
    source: str
    path: str | None
    revision: str | None
    tokenizer: str
    terminator: str
    terminator_is_eos: bool
    chat_protocol: str
    dtype: str
    chat_template_kwargs: dict
    generation_prefix: str | None
    template_date: str | None
    add_special_tokens: bool


@dataclass(frozen=True)
class Generation(Section):
    """What every sampler call needs: how many samples of how many tokens, how, from which seed."""

    num_samples: int
    max_new_tokens: int
    temperature: float
    top_p: float
    seed: int
    chunk_size: int | None  # None: as many rows as fit in free memory


@dataclass(frozen=True)
class ModelSourceSettings(Section):
    """prepare-model: the embedded model, or a hub model at a revision."""

    SCHEMA_PATH = ("$defs", "model_source_settings")
    LABEL = "settings"
    source: str
    revision: str | None
