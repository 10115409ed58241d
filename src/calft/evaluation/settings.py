"""The evaluation stage's settings: the config's `sampling` section and the settings of `sample`
and `logit-kl`."""

from __future__ import annotations

from dataclasses import dataclass

from calft.modeling.settings import Generation, ModelEntry
from calft.settings import Section


@dataclass(frozen=True)
class Sampling(Generation):
    SCHEMA_PATH = ("properties", "sampling")
    LABEL = "sampling"
    backend: str
    logit_kl_paths: int
    logit_kl_exact: bool
    stop_invalid: bool
    gpus: int


@dataclass(frozen=True)
class SampleSettings(Section):
    SCHEMA_PATH = ("$defs", "sample_settings")
    LABEL = "settings"
    model: ModelEntry
    sampling: Sampling
    prompting: str  # a method's prompting (calft.methods)


@dataclass(frozen=True)
class LogitKlSettings(Section):
    SCHEMA_PATH = ("$defs", "logit_kl_settings")
    LABEL = "settings"
    model: ModelEntry
    sampling: Sampling  # logit_kl_paths, logit_kl_exact, seed
    tracking: dict | None  # the tracker run (calft.tracking) of the headline logit KL
