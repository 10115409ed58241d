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
    files: str  # what to download of a hub repository: a model's files, or an adapter's


@dataclass(frozen=True)
class AdapterEntry(Section):
    """One entry of `adapters`: an adapter calft did not train, on a configured base model."""

    SCHEMA_PATH = ("$defs", "adapter")
    LABEL = "adapter"
    model: str
    path: str | None
    hub: str | None
    revision: str | None
    trust: bool


@dataclass(frozen=True)
class ImportAdapterSettings(Section):
    """import-adapter: the adapter's method name, its entry and its base model's entry."""

    SCHEMA_PATH = ("$defs", "import_adapter_settings")
    LABEL = "settings"
    name: str
    model: ModelEntry
    adapter: AdapterEntry
