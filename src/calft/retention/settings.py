"""The retention stage's settings: the config's `retention` and `perplexity` sections and the
settings of the commands that run a model on them."""

from __future__ import annotations

from dataclasses import dataclass

from calft.modeling.settings import ModelEntry
from calft.settings import Section


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
    choice_format: str
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
            return [
                f"perplexity.stride: {self.stride} exceeds perplexity.context ({self.context}); windows "
                "would skip tokens"
            ]
        return []


@dataclass(frozen=True)
class RetentionSettings(Section):
    SCHEMA_PATH = ("$defs", "retention_settings")
    LABEL = "settings"
    model: ModelEntry
    retention: Retention


@dataclass(frozen=True)
class PerplexitySettings(Section):
    SCHEMA_PATH = ("$defs", "perplexity_settings")
    LABEL = "settings"
    model: ModelEntry
    perplexity: Perplexity
